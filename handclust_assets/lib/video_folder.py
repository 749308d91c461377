"""The watched video folder: stable, sanitized partition keys derived from each video's path."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from handclust_assets.video.probe import VIDEO_EXTENSIONS

_BAD = re.compile(r"[^a-z0-9_\-]+")


def _base_key(rel: Path) -> str:
    parts = [*rel.parent.parts, rel.stem]
    key = "__".join(_BAD.sub("_", p.lower()).strip("_-") or "clip" for p in parts)
    return key[:80]


def scan_videos(folder: str | Path) -> dict[str, Path]:
    """Map stable partition keys to the video files under `folder` (recursively; hidden files skipped).

    Keys: the path relative to the folder without extension, lowercased, non [a-z0-9_-] runs replaced by
    `_`, sub-folders joined by `__`. Two files that would share a key get their extension appended, then
    a short hash of their relative path, so keys never collide and never depend on scan order.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in VIDEO_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    by_key: dict[str, list[Path]] = {}
    for p in files:
        by_key.setdefault(_base_key(p.relative_to(folder)), []).append(p)
    out: dict[str, Path] = {}
    for key, paths in by_key.items():
        if len(paths) == 1:
            out[key] = paths[0]
            continue
        for p in paths:
            k = f"{key}_{p.suffix.lower().lstrip('.')}"
            if k in out or sum(q.suffix.lower() == p.suffix.lower() for q in paths) > 1:
                h = hashlib.sha1(str(p.relative_to(folder)).encode()).hexdigest()[:8]
                k = f"{key}_{h}"
            out[k] = p
    return dict(sorted(out.items()))


def file_fingerprint(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"
