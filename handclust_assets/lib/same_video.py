"""Clip partitions that hold the same video: a renamed or moved file (its old partition keeps its results), or one
video copied twice into the watched folder.

Each is a partition of its own (a partition key comes from the path), so without this the cross-clip graph would
pool the same segments twice: HDBSCAN finds a denser cluster where there is only one clip's activity, and the
cross-clip mixing that weighs the modalities and the entropies that score them read one clip's activity as
repeated in two. Clips are the same video when their `content_hash` (sha256 of the file's size, first and last
MiB: `probe.content_hash`) is; of each such group the cross-clip graph keeps one (`duplicate_clips`), and the
others' per-clip results stay where they are (`handclust forget` deletes them).

Plain polars; no Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

import polars as pl

from handclust_assets.lib.tables import StorageLike, read_columns, table_partitions

CLIPS_TABLE = "clips"
IDENTITY = {"clip": pl.Utf8, "content_hash": pl.Utf8, "source_path": pl.Utf8}  # what of a `clips` row is read
SAME_VIDEO = "handclust/same_video"  # an input's metadata key (the IO manager reads it) ...
EVERY_PARTITION = {SAME_VIDEO: "every partition"}  # ... that keeps clips holding the same video in a cross-clip input
_SHARD_REF = re.compile(r"^(?P<shard>.+?\.tar)::")  # a tar-shard member's `source_path` (`lib.shards`)


def source_exists(source_path: str | None) -> bool:
    """Whether a `clips` row's `source_path` is still there: the file, or for a tar-shard member
    (`<shard>.tar::<member>`) its shard."""
    if not source_path:
        return False
    m = _SHARD_REF.match(source_path)
    return Path(m["shard"] if m else source_path).exists()


def duplicate_clips(clips: pl.DataFrame, exists: Callable[[str | None], bool] = source_exists) -> dict[str, str]:
    """clip -> the clip kept in its place, for every clip of `clips` (rows with `clip`, `content_hash`,
    `source_path`) whose content hash another row shares. Of each group the kept one is the first clip whose
    source is still there (a renamed file's new partition, not the old one), by key; where none is, the first by
    key. A row without a content hash is nobody's duplicate."""
    if clips.is_empty() or "content_hash" not in clips.columns:
        return {}
    rows = (clips.select("clip", "content_hash", "source_path").drop_nulls("content_hash")
            .unique("clip", keep="last").sort("clip"))
    out: dict[str, str] = {}
    for group in rows.partition_by("content_hash", maintain_order=True):
        if group.height < 2:
            continue
        keys, sources = group["clip"].to_list(), group["source_path"].to_list()
        present = [k for k, s in zip(keys, sources) if exists(s)]
        kept = present[0] if present else keys[0]
        out.update({k: kept for k in keys if k != kept})
    return out


POOLED_CLIPS_SCHEMA = {"clip": pl.Utf8, "pooled": pl.Boolean, "pooled_as": pl.Utf8, "content_hash": pl.Utf8,
                       "source_path": pl.Utf8, "source_exists": pl.Boolean}


def pooled_table(clips: pl.DataFrame) -> pl.DataFrame:
    """One row per clip of `clips` (rows with `clip`, `content_hash`, `source_path`; the last row of a clip counts):
    whether the cross-clip graph pools it, as which clip (`duplicate_clips`), and whether its file is there
    (`POOLED_CLIPS_SCHEMA`): the `pooled_clips` table, and what `handclust forget --renamed` picks from."""
    rows = clips.select(list(IDENTITY)).unique("clip", keep="last").sort("clip")
    same = duplicate_clips(rows)
    return rows.with_columns(
        pl.col("clip").is_in(list(same)).not_().alias("pooled"),
        pl.col("clip").replace(same).alias("pooled_as"),
        pl.col("source_path").map_elements(source_exists, return_dtype=pl.Boolean).alias("source_exists"),
    ).select(list(POOLED_CLIPS_SCHEMA)).cast(POOLED_CLIPS_SCHEMA)


def left_out_duplicates(root: StorageLike, keys: Iterable[str] | None = None) -> dict[str, str]:
    """`duplicate_clips` of the `clips` table's partitions (of those in `keys`, where given); {} before any clip
    was ingested."""
    wanted = None if keys is None else list(keys)
    if wanted is not None and len(wanted) < 2:
        return {}
    return duplicate_clips(read_columns(root, CLIPS_TABLE, IDENTITY, wanted))


def same_video_as(root: StorageLike, clip: str, content_hash: str) -> list[str]:
    """The other clip partitions whose `clips` row has this content hash (sorted)."""
    if not content_hash:
        return []
    others = [k for k in table_partitions(root, CLIPS_TABLE) if k != clip]
    df = read_columns(root, CLIPS_TABLE, IDENTITY, others)
    return sorted(df.filter(pl.col("content_hash") == content_hash)["clip"].to_list())
