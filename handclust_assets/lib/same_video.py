"""Clip partitions that hold the same video: a renamed or moved file (its old partition keeps its results), or one
video copied twice into the watched folder.

Each is a partition of its own (a partition key comes from the path), so without this the cross-clip graph would
pool the same segments twice: HDBSCAN finds a denser cluster where there is only one clip's activity, and the
cross-clip mixing that weighs the modalities and the entropies that score them read one clip's activity as
repeated in two. Clips are the same video when their `content_hash` (sha256 of the file's size, first and last
MiB: `probe.content_hash`) is, or when the `footage_signature` step found one the same footage under other bytes
(re-encoded, resized, letterboxed, rotated: `science.footage`); of each such group the cross-clip graph keeps one
(`duplicate_clips`), and the others' per-clip results stay where they are (`handclust forget` deletes them). A
piece cut out of a longer clip without encoding it again is left out for the longer clip (`footage_relations`).

Plain polars; no Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import polars as pl

from handclust_assets.lib.tables import StorageLike, read_columns, table_partitions

CLIPS_TABLE = "clips"
FOOTAGE_TABLE = "footage_signature"  # per clip: `same_footage_as`, the same footage under other bytes
LINKS = {"clip": pl.Utf8, "same_footage_as": pl.Utf8}  # what of a `footage_signature` row is read
PIECES = {"clip": pl.Utf8, "within": pl.Utf8, "holds": pl.Utf8}  # ... for pieces cut out of a longer clip
IDENTITY = {"clip": pl.Utf8, "content_hash": pl.Utf8, "source_path": pl.Utf8}  # what of a `clips` row is read
WHY_BYTES = "same bytes"  # why a clip is pooled as another: a copy, or the file renamed or moved
WHY_FOOTAGE = "same footage"  # ... an export under other bytes (re-encoded, resized, rotated; or through one)
WHY_PIECE = "piece"  # ... a piece cut out of the other without encoding again (or the same footage as such a piece)
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


def duplicate_clips(clips: pl.DataFrame, exists: Callable[[str | None], bool] = source_exists,
                    links: Mapping[str, Iterable[str]] | None = None,
                    pieces: Mapping[str, Iterable[str]] | None = None,
                    why: dict[str, str] | None = None) -> dict[str, str]:
    """clip -> the clip kept in its place, for every clip of `clips` (rows with `clip`, `content_hash`,
    `source_path`) that holds the same video as another: the same content hash, or linked as the same footage
    under other bytes (`links`: clip -> clips, from `footage_relations`; either way round, and through each other).
    Of each group the kept one is the first clip whose source is still there (a renamed file's new partition, not
    the old one), by key; where none is, the first by key. A row without a content hash or link is nobody's
    duplicate. `pieces` (clip -> longer clips it is a piece of, cut without encoding again: `footage_relations`):
    every clip of a piece's group is left out for the kept clip of the longer one's (through pieces of pieces),
    whose results hold the piece's footage and more, whether or not its file is still there. `why`, where given, is
    filled with each left-out clip's reason (`WHY_BYTES`, `WHY_FOOTAGE`, `WHY_PIECE`)."""
    if clips.is_empty() or "content_hash" not in clips.columns:
        return {}
    rows = clips.select("clip", "content_hash", "source_path").unique("clip", keep="last").sort("clip")
    keys, hashes, sources = rows["clip"].to_list(), rows["content_hash"].to_list(), rows["source_path"].to_list()
    parent = {k: k for k in keys}

    def root(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    def join(a: str, b: str) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first_of: dict[str, str] = {}
    for k, h in zip(keys, hashes):
        if h is not None:
            join(k, first_of.setdefault(h, k))
    for k, others in (links or {}).items():
        for o in others:
            if k in parent and o in parent:
                join(k, o)
    groups: dict[str, list[tuple[str, str | None]]] = {}
    for k, s in zip(keys, sources):
        groups.setdefault(root(k), []).append((k, s))
    kept_of: dict[str, str] = {}  # group root -> the clip it keeps
    for r, group in groups.items():
        present = [k for k, s in group if exists(s)]
        kept_of[r] = present[0] if present else group[0][0]
    inside: dict[str, str] = {}  # group root -> the root of a longer clip's group it is a piece of (first by key)

    def final(r: str) -> str:  # the group a piece's group is pooled as: the longest it lies in
        while r in inside:
            r = inside[r]
        return r

    for k in sorted(pieces or {}):
        for o in sorted((pieces or {})[k]):
            if k in parent and o in parent and root(k) not in inside and final(root(o)) != root(k):
                inside[root(k)] = root(o)  # (never a loop: claims that would close one are not taken)

    out: dict[str, str] = {}
    hash_of = dict(zip(keys, hashes))
    for r, group in groups.items():
        kept = kept_of[final(r)]
        for k, _ in group:
            if k == kept:
                continue
            out[k] = kept
            if why is not None:
                why[k] = (WHY_PIECE if root(k) != root(kept) else
                          WHY_BYTES if hash_of[k] is not None and hash_of[k] == hash_of[kept] else WHY_FOOTAGE)
    return out


def named_clips(text: str | None) -> list[str]:
    """The clip partitions a comma-separated list names (`same_footage_as`, `same_video_as`; "none": none)."""
    return [n for n in (x.strip() for x in (text or "").split(",")) if n and n != "none"]


def links_of(rows: Iterable[tuple[str, str | None]]) -> dict[str, list[str]]:
    """clip -> the clips its `same_footage_as` names, from (clip, same_footage_as) rows; clips naming none left
    out."""
    return {c: names for c, s in rows if (names := named_clips(s))}


def pieces_from(rows: Iterable[tuple[str, str | None, str | None]]) -> dict[str, list[str]]:
    """clip -> the longer clips it is a piece of, from (clip, within, holds) rows of `footage_signature` (each
    run names what it found either way round: a piece names its longer clip, a longer clip its pieces)."""
    out: dict[str, set[str]] = {}
    for clip, inside, holds in rows:
        for o in named_clips(inside):
            out.setdefault(clip, set()).add(o)
        for p in named_clips(holds):
            out.setdefault(p, set()).add(clip)
    return {k: sorted(v) for k, v in out.items()}


def footage_relations(root: StorageLike, keys: Iterable[str] | None = None
                      ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """From one read of the `footage_signature` rows ({}, {} before any): clip -> the clips its row names as the
    same footage under other bytes (`links_of`), and clip -> the longer clips it is a piece of, cut without
    encoding again (`pieces_from`)."""
    df = read_columns(root, FOOTAGE_TABLE, {**LINKS, **PIECES}, None if keys is None else list(keys))
    return links_of(df.select(list(LINKS)).rows()), pieces_from(df.select(list(PIECES)).rows())


def stand_ins(same: dict[str, str], present: list[str]) -> dict[str, str]:
    """`same` (clip -> the clip pooled in its place) for one table's partitions `present`: where the clip pooled in
    a group's place has no partition of this table (its run failed there, or has not got there yet), the first of
    the group's clips that has one stands in instead, so no footage drops out of a cross-clip input for want of
    its stand-in's results."""
    there = set(present)
    groups: dict[str, list[str]] = {}
    for k in present:
        groups.setdefault(same.get(k, k), []).append(k)
    out: dict[str, str] = {}
    for kept, members in groups.items():
        stand = kept if kept in there else min(members)
        out.update({k: stand for k in members if k != stand})
    return out


POOLED_CLIPS_SCHEMA = {"clip": pl.Utf8, "pooled": pl.Boolean, "pooled_as": pl.Utf8, "content_hash": pl.Utf8,
                       "source_path": pl.Utf8, "source_exists": pl.Boolean, "why": pl.Utf8}


def pooled_table(clips: pl.DataFrame, links: Mapping[str, Iterable[str]] | None = None,
                 pieces: Mapping[str, Iterable[str]] | None = None) -> pl.DataFrame:
    """One row per clip of `clips` (rows with `clip`, `content_hash`, `source_path`; the last row of a clip counts):
    whether the cross-clip graph pools it, as which clip and why (`duplicate_clips`, with the footage `links` and
    `pieces`), and whether its file is there (`POOLED_CLIPS_SCHEMA`): the `pooled_clips` table, and what
    `handclust forget --renamed` picks from (the same bytes only)."""
    rows = clips.select(list(IDENTITY)).unique("clip", keep="last").sort("clip")
    why: dict[str, str] = {}
    same = duplicate_clips(rows, links=links, pieces=pieces, why=why)
    return rows.with_columns(
        pl.col("clip").is_in(list(same)).not_().alias("pooled"),
        pl.col("clip").replace(same).alias("pooled_as"),
        pl.col("source_path").map_elements(source_exists, return_dtype=pl.Boolean).alias("source_exists"),
        pl.col("clip").replace_strict(why, default=None, return_dtype=pl.Utf8).alias("why"),
    ).select(list(POOLED_CLIPS_SCHEMA)).cast(POOLED_CLIPS_SCHEMA)


def left_out_duplicates(root: StorageLike, keys: Iterable[str] | None = None) -> dict[str, str]:
    """`duplicate_clips` of the `clips` table's partitions (of those in `keys`, where given), with their footage
    links and pieces (`footage_relations`); {} before any clip was ingested."""
    wanted = None if keys is None else list(keys)
    if wanted is not None and len(wanted) < 2:
        return {}
    links, pieces = footage_relations(root, wanted)
    return duplicate_clips(read_columns(root, CLIPS_TABLE, IDENTITY, wanted), links=links, pieces=pieces)


def same_video_as(root: StorageLike, clip: str, content_hash: str) -> list[str]:
    """The other clip partitions whose `clips` row has this content hash (sorted)."""
    if not content_hash:
        return []
    others = [k for k in table_partitions(root, CLIPS_TABLE) if k != clip]
    df = read_columns(root, CLIPS_TABLE, IDENTITY, others)
    return sorted(df.filter(pl.col("content_hash") == content_hash)["clip"].to_list())
