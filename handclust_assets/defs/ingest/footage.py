"""`footage_signature` (per clip): the clip's picture over time, and the other partitions holding the same footage
under other bytes (re-encoded, resized, letterboxed, rotated: `science.footage`), so the cross-clip graph pools it
once (`lib.same_video`); and the longer partitions it is a piece of, or the pieces of it, cut without encoding again
(the same keyframes to the byte: `science.footage.within`), so the graph pools the longer clip in a piece's place."""

from collections.abc import Callable

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.common import clip_asset
from handclust_assets.defs.ingest.assets import open_cache
from handclust_assets.defs.resources import StorageResource
from handclust_assets.lib.same_video import FOOTAGE_TABLE, named_clips
from handclust_assets.lib.storage import Storage

FOOTAGE_SCHEMA = {
    "clip": pl.Utf8,
    "duration_s": pl.Float64,
    "hz": pl.Float64,
    "side": pl.Int64,
    "signature": pl.List(pl.UInt8),  # n x side x side gray thumbnails, row by row
    "same_footage_as": pl.Utf8,  # other partitions holding this footage, comma-separated; null: none
    "best_match": pl.Float64,  # the highest `footage_match` against any other partition compared (null: none)
    "keyframe_s": pl.List(pl.Float64),  # times of the keyframes with detail (`science.footage.keyframe_hashes`)
    "keyframe_hashes": pl.List(pl.Int64),  # ... and a hash of each one's picture
    "within": pl.Utf8,  # longer partitions this clip is a piece of, cut without encoding again (comma-separated)
    "holds": pl.Utf8,  # shorter partitions that are pieces of this clip, cut without encoding again
}
_READ = {"clip": pl.Utf8, "duration_s": pl.Float64, "side": pl.Int64, "signature": pl.List(pl.UInt8)}
_KEYFRAMES = {"clip": pl.Utf8, "duration_s": pl.Float64, "keyframe_s": pl.List(pl.Float64),
              "keyframe_hashes": pl.List(pl.Int64)}


def others_index(store: Storage, clip: str) -> pl.DataFrame:
    """The other partitions' rows, without their signatures (`_KEYFRAMES`: clip, duration, keyframes): read once
    per run for both comparisons (one scan of every row; the signatures of the few as long are read after)."""
    from handclust_assets.lib.tables import read_columns, table_partitions

    others = [k for k in table_partitions(store, FOOTAGE_TABLE) if k != clip]
    return read_columns(store, FOOTAGE_TABLE, _KEYFRAMES, others) if others else pl.DataFrame(schema=_KEYFRAMES)


def compare_with_others(store: Storage, clip: str, duration_s: float, sig: np.ndarray,
                        index: pl.DataFrame | None = None) -> tuple[list[str], float | None, int]:
    """(the other partitions whose signature matches, the best score, how many were compared): only partitions
    whose footage is as long (`durations_agree`) are read. `index`: `others_index`, where already read."""
    from handclust_assets.lib.tables import read_columns
    from handclust_assets.science.footage import SAME_FOOTAGE, SIDE, durations_agree, footage_match

    lengths = others_index(store, clip) if index is None else index
    near = [c for c, d in lengths.select("clip", "duration_s").rows()
            if c != clip and d is not None and durations_agree(duration_s, d)]
    if not near:
        return [], None, 0
    same, best = [], None
    for other, _, side, flat in read_columns(store, FOOTAGE_TABLE, _READ, near).rows():
        if side != SIDE or flat is None:
            continue
        score = footage_match(sig, np.asarray(flat, np.uint8).reshape(-1, SIDE * SIDE))
        if np.isfinite(score):
            best = score if best is None else max(best, score)
            if score >= SAME_FOOTAGE:
                same.append(other)
    return sorted(same), best, len(near)


def pieces_of(store: Storage, clip: str, duration_s: float, kf_t: np.ndarray, kf_h: np.ndarray,
              index: pl.DataFrame | None = None) -> tuple[list[str], list[str]]:
    """(the longer partitions this clip is a piece of, the shorter partitions that are pieces of it), each cut
    without encoding again (`science.footage.within`). Only rows whose keyframes share a picture with this clip's
    are looked at closely. `index`: `others_index`, where already read."""
    from handclust_assets.science.footage import MIN_KEYFRAMES, within

    if len(kf_h) < MIN_KEYFRAMES:
        return [], []
    rows = (others_index(store, clip) if index is None else index).select(list(_KEYFRAMES)).rows()
    mine = set(int(h) for h in kf_h)
    inside, holds = [], []
    for other, d, ot, oh in rows:
        if other == clip or d is None or not ot or not oh or mine.isdisjoint(oh):
            continue
        ot, oh = np.asarray(ot, np.float64), np.asarray(oh, np.int64)
        if within(kf_t, kf_h, duration_s, ot, oh, d) is not None:
            inside.append(other)
        elif within(ot, oh, d, kf_t, kf_h, duration_s) is not None:
            holds.append(other)
    return sorted(inside), sorted(holds)


def record_footage(store: Storage, clip: str, duration_s: float, sig: np.ndarray,
                   compare: Callable[..., tuple[list[str], float | None, int]] = compare_with_others,
                   keyframes: tuple[np.ndarray, np.ndarray] | None = None
                   ) -> tuple[pl.DataFrame, list[str], float | None, int]:
    """Write the clip's signature row first, then compare it with the others' rows; returns the row with the links
    found (the IO manager writes it again with them) and `compare`'s result. Of two clips of one footage processed
    at once, on one machine or on two sharing a bucket, each writes before it looks, so whichever looks second
    sees the other's row and names it: no lock is needed, and `lib.same_video` joins the pair however many of the
    two name the other (union-find). Comparing first and writing after, two runs could each look before the other
    wrote and neither name the other. `keyframes`: (times, hashes) of the clip's keyframes with detail, kept in the
    row and looked for in the others' (`pieces_of`: a piece cut out of a longer clip, either way round)."""
    from handclust_assets.lib.tables import write_table
    from handclust_assets.science.footage import SIDE, SIGNATURE_HZ

    kf_t, kf_h = keyframes if keyframes is not None else (np.zeros(0), np.zeros(0, np.int64))

    def row(same: list[str], best: float | None, inside: list[str], holds: list[str]) -> pl.DataFrame:
        return pl.DataFrame([{"clip": clip, "duration_s": duration_s, "hz": SIGNATURE_HZ, "side": SIDE,
                              "signature": sig.ravel().tolist(), "same_footage_as": ", ".join(same) or None,
                              "best_match": best, "keyframe_s": [float(t) for t in kf_t],
                              "keyframe_hashes": [int(h) for h in kf_h], "within": ", ".join(inside) or None,
                              "holds": ", ".join(holds) or None}], schema=FOOTAGE_SCHEMA)

    write_table(row([], None, [], []), store, FOOTAGE_TABLE, clip)  # visible to the others before this one looks
    index = others_index(store, clip)
    same, best, compared = compare(store, clip, duration_s, sig, index=index) if len(sig) else ([], None, 0)
    inside, holds = pieces_of(store, clip, duration_s, kf_t, kf_h, index=index)
    return row(same, best, inside, holds), same, best, compared


@clip_asset(group="ingest", code_version="footage-signature-v2", deps=["frame_cache"],
            description="The clip's picture over time (8 x 8 gray thumbnails at 2 Hz, from the frame cache's motion "
            "track: inside any bars or side panels) and the other clip partitions holding the same footage under "
            "other bytes: re-encoded, resized, letterboxed, rotated or flipped, re-wrapped. The same picture and the "
            "same changes sample by sample, durations within 1 %; the cross-clip graph pools such clips once, as it "
            "does copies with the same bytes. Also the longer partitions this clip is a piece of, and the shorter "
            "ones that are pieces of it, cut without encoding again (the same keyframes, to the byte of their "
            "pictures): the cross-clip graph pools the longer clip in their place.")
def footage_signature(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.footage import SIDE, keyframe_hashes, signature

    clip = context.partition_key
    store = storage.store()
    cache = open_cache(storage, clip)
    motion = cache.motion_track()
    if motion is None:  # a frame cache of an older version: no footage to compare, nothing pooled on it
        context.log.warning(f"{clip}: the frame cache has no motion track (re-materialize frame_cache); no "
                            "signature")
        sig, duration = np.zeros((0, SIDE * SIDE), np.uint8), float("nan")
        keyframes = None
    else:
        sig, duration = signature(motion.t_s, motion.intensity), motion.duration_s
        keyframes = keyframe_hashes(motion.t_s, motion.intensity, motion.keyframes)
    df, same, best, compared = record_footage(store, clip, duration, sig, keyframes=keyframes)
    source = cache.meta.get("source") or clip
    if same:
        context.log.warning(f"{source}: the same footage as clip partition(s) {', '.join(same)} under other bytes "
                            "(re-encoded, resized, letterboxed, rotated...); the cross-clip graph pools it once")
    inside, holds = named_clips(df["within"][0]), named_clips(df["holds"][0])
    if inside:
        context.log.warning(f"{source}: a piece of clip partition(s) {', '.join(inside)}, cut without encoding "
                            "again; the cross-clip graph pools the longer clip in its place")
    if holds:
        context.log.warning(f"{source}: clip partition(s) {', '.join(holds)} are pieces of this clip, cut without "
                            "encoding again; the cross-clip graph pools this clip in their place")
    meta = {"samples": dg.MetadataValue.int(len(sig)), "compared": dg.MetadataValue.int(compared),
            "same_footage_as": dg.MetadataValue.text(", ".join(same) or "none"),
            "keyframes": dg.MetadataValue.int(0 if keyframes is None else len(keyframes[1])),
            "within": dg.MetadataValue.text(", ".join(inside) or "none"),
            "holds": dg.MetadataValue.text(", ".join(holds) or "none")}
    if best is not None:
        meta["best_match"] = dg.MetadataValue.float(round(float(best), 4))
    return dg.Output(df, metadata=meta)


assets = [footage_signature]
