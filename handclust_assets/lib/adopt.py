"""One video's per-clip results, reused under another partition key instead of computed again (no Dagster here).

A video renamed or moved in the watched folder, or copied into it, is a new clip partition holding the same
bytes as one already processed. Each per-clip result is a function of what it was made from: the video's content,
the code version of each step on the way, the settings and model versions it used. `made_from` is that, hashed:
a chain (a step's key takes its upstream steps' keys), rooted at the `clips` step's `video_identity` (content hash,
what the probe read, the fisheye intrinsics that apply), never at the path or the name. Where another partition's
result of a step was made from exactly the same, it is copied, not computed again (`adopt_partition`):
- the step's table partition, its `clip` column set to the new key;
- its side files: the frame cache folder (`frames/<clip>/`, hard links on a disk; the source named in its
  `meta.json` set to the new file) or a per-clip array (`arrays/<asset>/<clip>.npz`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from handclust_assets.lib import tables
from handclust_assets.lib.storage import Storage

FRAMES = "frames"  # a side file kind: the clip's frame cache folder
ARRAYS = "arrays"  # a side file kind: the clip's `arrays/<asset>/<clip>.npz`
SIDE_FILES = (FRAMES, ARRAYS)


def made_from(parts: Mapping[str, Any]) -> str:
    """A short stable hash of what a result was made from (JSON of `parts`, keys sorted; floats as JSON writes
    them)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def video_identity(content_hash: str, probe: Mapping[str, Any], intrinsics: Mapping[str, Any] | None,
                   code_version: str) -> str:
    """The root of the chain: the video's bytes (`content_hash`: size, first and last MiB) and what the probe read
    from them (duration, frames, size, codec...: a second check that the bytes are the same video), the fisheye
    intrinsics that apply (by value: a moved file may have another calibration beside it), the `clips` step's
    code version. Not the path, not the name."""
    return made_from({"step": "clips", "code_version": code_version, "content_hash": content_hash,
                      "probe": dict(probe), "intrinsics": dict(intrinsics) if intrinsics is not None else None})


def step_key(step: str, code_version: str, upstream: Mapping[str, str], config: Mapping[str, Any]) -> str:
    """A step's `made_from`: its name and code version, its per-clip upstream steps' `made_from`, and the
    configuration and model versions of the resources it used."""
    return made_from({"step": step, "code_version": code_version, "upstream": dict(upstream),
                      "config": dict(config)})


def side_file_parts(store: Storage, kind: str, table: str, clip: str) -> tuple[str, ...]:
    """Where a side file of this kind lives for a clip."""
    if kind == FRAMES:
        return store.frames(clip)
    if kind == ARRAYS:
        return store.arrays(table, clip)
    raise ValueError(f"unknown side file kind {kind!r} (one of {', '.join(SIDE_FILES)})")


def can_adopt(store: Storage, table: str, twin: str, side_files: Iterable[str]) -> bool:
    """Whether the twin's table partition and side files are all there to copy."""
    return store.exists(*tables.partition_parts(table, twin)) and all(
        store.exists(*side_file_parts(store, kind, table, twin)) for kind in side_files)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # the cache is replaced as a whole, never written in place: a shared inode is safe
    except OSError:
        shutil.copy2(src, dst)


def copy_frames(store: Storage, twin: str, clip: str, source: Mapping[str, Any] | None = None) -> None:
    """The twin's frame cache as this clip's (replacing any), the fields of `meta.json` in `source` (the new
    file's path, its intrinsics file) set."""
    src = store.fetch_dir(*store.frames(twin))
    with store.staging(*store.frames(clip)) as out:
        for f in sorted(Path(src).iterdir()):
            if f.is_file() and not f.name.startswith("."):
                _link_or_copy(str(f), str(out / f.name))
        meta_file = out / "meta.json"
        if source and meta_file.exists():
            meta = json.loads(meta_file.read_text())
            meta.update({k: v for k, v in source.items() if k in meta})
            meta_file.unlink()  # a link: write a new file, not through it into the twin's
            meta_file.write_text(json.dumps(meta))


def adopt_partition(store: Storage, table: str, twin: str, clip: str, side_files: Iterable[str] = (),
                    source: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Copy the twin's side files to this clip and return the twin's table partition as this clip's (its `clip`
    column set; column order and dtypes kept). The caller writes the table (the IO manager)."""
    df = tables.read_parquet(store, tables.partition_parts(table, twin))
    for kind in side_files:
        if kind == FRAMES:
            copy_frames(store, twin, clip, source)
        else:
            parts = side_file_parts(store, kind, table, twin)
            store.write_bytes(store.read_bytes(*parts), *side_file_parts(store, kind, table, clip))
    if "clip" in df.columns:
        df = df.with_columns(pl.lit(clip, dtype=df.schema["clip"]).alias("clip"))
    return df
