"""`footage_signature` (per clip): the clip's picture over time, and the other partitions holding the same footage
under other bytes (re-encoded, resized, letterboxed, rotated: `science.footage`), so the cross-clip graph pools it
once (`lib.same_video`)."""

from collections.abc import Callable

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.common import clip_asset
from handclust_assets.defs.ingest.assets import open_cache
from handclust_assets.defs.resources import StorageResource
from handclust_assets.lib.same_video import FOOTAGE_TABLE
from handclust_assets.lib.storage import Storage

FOOTAGE_SCHEMA = {
    "clip": pl.Utf8,
    "duration_s": pl.Float64,
    "hz": pl.Float64,
    "side": pl.Int64,
    "signature": pl.List(pl.UInt8),  # n x side x side gray thumbnails, row by row
    "same_footage_as": pl.Utf8,  # other partitions holding this footage, comma-separated; null: none
    "best_match": pl.Float64,  # the highest `footage_match` against any other partition compared (null: none)
}
_READ = {"clip": pl.Utf8, "duration_s": pl.Float64, "side": pl.Int64, "signature": pl.List(pl.UInt8)}


def compare_with_others(store: Storage, clip: str, duration_s: float, sig: np.ndarray
                        ) -> tuple[list[str], float | None, int]:
    """(the other partitions whose signature matches, the best score, how many were compared): only partitions
    whose footage is as long (`durations_agree`) are read."""
    from handclust_assets.lib.tables import read_columns, table_partitions
    from handclust_assets.science.footage import SAME_FOOTAGE, SIDE, durations_agree, footage_match

    others = [k for k in table_partitions(store, FOOTAGE_TABLE) if k != clip]
    if not others:
        return [], None, 0
    lengths = read_columns(store, FOOTAGE_TABLE, {"clip": pl.Utf8, "duration_s": pl.Float64}, others)
    near = [c for c, d in lengths.rows() if d is not None and durations_agree(duration_s, d)]
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


def record_footage(store: Storage, clip: str, duration_s: float, sig: np.ndarray,
                   compare: Callable[..., tuple[list[str], float | None, int]] = compare_with_others
                   ) -> tuple[pl.DataFrame, list[str], float | None, int]:
    """Write the clip's signature row first, then compare it with the others' rows; returns the row with the links
    found (the IO manager writes it again with them) and `compare`'s result. Of two clips of one footage processed
    at once, on one machine or on two sharing a bucket, each writes before it looks, so whichever looks second
    sees the other's row and names it: no lock is needed, and `lib.same_video` joins the pair however many of the
    two name the other (union-find). Comparing first and writing after, two runs could each look before the other
    wrote and neither name the other."""
    from handclust_assets.lib.tables import write_table
    from handclust_assets.science.footage import SIDE, SIGNATURE_HZ

    def row(same: list[str], best: float | None) -> pl.DataFrame:
        return pl.DataFrame([{"clip": clip, "duration_s": duration_s, "hz": SIGNATURE_HZ, "side": SIDE,
                              "signature": sig.ravel().tolist(), "same_footage_as": ", ".join(same) or None,
                              "best_match": best}], schema=FOOTAGE_SCHEMA)

    write_table(row([], None), store, FOOTAGE_TABLE, clip)  # visible to the others before this one looks
    same, best, compared = compare(store, clip, duration_s, sig) if len(sig) else ([], None, 0)
    return row(same, best), same, best, compared


@clip_asset(group="ingest", code_version="footage-signature-v1", deps=["frame_cache"],
            description="The clip's picture over time (8 x 8 gray thumbnails at 2 Hz, from the frame cache's motion "
            "track: inside any bars or side panels) and the other clip partitions holding the same footage under "
            "other bytes: re-encoded, resized, letterboxed, rotated or flipped, re-wrapped. The same picture and the "
            "same changes sample by sample, durations within 1 %; the cross-clip graph pools such clips once, as it "
            "does copies with the same bytes.")
def footage_signature(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.footage import SIDE, signature

    clip = context.partition_key
    store = storage.store()
    cache = open_cache(storage, clip)
    motion = cache.motion_track()
    if motion is None:  # a frame cache of an older version: no footage to compare, nothing pooled on it
        context.log.warning(f"{clip}: the frame cache has no motion track (re-materialize frame_cache); no "
                            "signature")
        sig, duration = np.zeros((0, SIDE * SIDE), np.uint8), float("nan")
    else:
        sig, duration = signature(motion.t_s, motion.intensity), motion.duration_s
    df, same, best, compared = record_footage(store, clip, duration, sig)
    if same:
        context.log.warning(f"{cache.meta.get('source') or clip}: the same footage as clip partition(s) "
                            f"{', '.join(same)} under other bytes (re-encoded, resized, letterboxed, rotated...); "
                            "the cross-clip graph pools it once")
    meta = {"samples": dg.MetadataValue.int(len(sig)), "compared": dg.MetadataValue.int(compared),
            "same_footage_as": dg.MetadataValue.text(", ".join(same) or "none")}
    if best is not None:
        meta["best_match"] = dg.MetadataValue.float(round(float(best), 4))
    return dg.Output(df, metadata=meta)


assets = [footage_signature]
