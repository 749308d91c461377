"""Repetition counting through time (issue 12): `period_track` and `period_curve` per clip (the expensive part,
once per clip, in the clip's own run) and `repetition_counts` across clips (counts per activity span of the
activity timeline, from the stored tracks: nothing is recomputed).

- `period_track` (group segments): the clip's rhythm signals from the frame cache's source-rate motion track
  (camera-compensated motion energy per grid cell, luma thumbnails, camera translation and path); their windowed
  lag-correlation maps, the consensus weighted by each signal's own periodicity strength, and the Viterbi period
  path (science/counting.track_periods), over the whole frame and over the most periodic box of the picture
  (science/localize); the more periodic of the two is kept (`track_located`; the box is in the metadata).
  Stored long (TRACK_SCHEMA: the consensus and every signal's view per 0.1-s centre) so any span set can be
  counted later. The whole-clip count is in its metadata (and in
  `repetition_counts`). The 5-fps signals (flow, ego-motion, scene embeddings) are not used: on the development
  set each one made the counts worse (benchmarks/eval_repetitions_dev.py --with-flow; docs in the report).
- `period_curve` (group segments): the period curve over time for plots (PERIOD_CURVE_SCHEMA).
- `repetition_counts` (group evaluation, unpartitioned): per clip, a clip row and one row per activity span
  (consecutive segments of one fused activity in `activity_timeline`), SPAN_COUNT_SCHEMA.
"""

from collections.abc import Callable

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.common import Progress, clip_asset, numeric_metadata
from handclust_assets.defs.ingest.assets import open_cache
from handclust_assets.defs.resources import HandclustSettings, StorageResource
from handclust_assets.lib.same_video import EVERY_PARTITION
from handclust_assets.video.picture_box import BESIDE_PICTURE

TRACK_CODE_VERSION = "period-track-v20"  # v3: appearance pooled 3 x 3; v4: + appearance_velocity;
# v5: cubic lag reading, parabolic period refinement, multiples discounted; v6: periodic stretches end where the
# repetition does (science/extent.py), not where the 4-cycle windows blur them; v7: quiet gaps between periodic
# stretches are rests (marked still, not counted through); v8: an appearance that drifts (its own period >= 1.4 x its
# velocity's through the clip) does not vote; v9: rests inside a periodic stretch (its one-cycle similarity dips for
# 1.3 periods or more) are marked still, not counted; v10: so are centres where the picture (appearance_velocity)
# barely changes for a whole period and does not match the next cycle; v11: the thumbnails' global motion (hand-held
# sway, zoom, roll) is taken out before the box search and the appearance read them (`rhythm_signals.steady_thumbnails`)
# v12: rests shorter than a period, stroke by stroke (`counting._dwells`), are marked still, not counted; v13: the
# appearance velocity's cells keep their relative scale (`RhythmSignal.same_unit`): still pixels' noise weighs little
# v14: pauses that come in most cycles (a hold or slow turn at each end of a stroke) are part of the stroke, counted
# through (`counting._regular_pauses`), not rests; v15: rests found from the picture's change before tracking are cut
# out of the time axis and the joined signals tracked again; the more periodic track is kept (`science/rests.py`)
# v16: a candidate period is judged over at least 2.5 of its cycles, past the 12-s window cap (slow repetitions)
# v17: the sway removal fits a gain and an offset too (exposure, flicker; `CountingParams.unsway_photometric`)
# v18: the thumbnails are first shifted back by the picture's path (a pan or head turn past the sway fit's reach;
# `rhythm_signals.camera_shift`, `CountingParams.align_camera`; motion track version 6)
# v19: where it moves that far, the part of the energy that rises with the camera's speed is taken out
# (`rhythm_signals.without_camera_speed`, `CountingParams.discount_camera_speed`)
# v20: the part of the energy a change of light explains (a band of cells brightening or darkening together: a
# flickering lamp, an exposure swing) is taken out (`rhythm_signals.without_flicker`, `CountingParams.deflicker`)


def clip_count_metadata(counts: pl.DataFrame) -> dict[str, dg.MetadataValue]:
    row = counts.filter(pl.col("scope") == "clip").row(0, named=True)
    meta = numeric_metadata({k: row[k] for k in ("count", "count_estimate", "mean_period_s", "periodic_s",
                                                  "confidence")}, prefix="clip_")
    meta["clip_status"] = dg.MetadataValue.text(row["status"])
    meta["agreeing_signals"] = dg.MetadataValue.text(", ".join(row["agreeing_signals"]) or "-")
    return meta


@clip_asset(
    group="segments",
    code_version=TRACK_CODE_VERSION,
    deps=["frame_cache"],
    description="Repetition rhythm of the clip through time, from the frame cache's source-rate motion track "
    "(motion energy per grid cell, appearance thumbnails, camera translation): windowed lag-correlation per signal, "
    "consensus weighted by each signal's own periodicity, Viterbi period path with pauses (0.1-s centres), over the "
    "whole frame and over the most periodic box of the picture; the more periodic one is kept (metadata: region). "
    "Long table: the consensus and each signal's view; any span set is counted from it without recomputing. The "
    "whole-clip count is in the metadata.",
)
def period_track(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.Output[pl.DataFrame]:
    from handclust_assets.lib.errors import ClipError
    from handclust_assets.science.counting import TRACK_SCHEMA, count_spans, track_frame, track_located
    from handclust_assets.science.localize import FULL_FRAME

    clip = context.partition_key
    store = storage.store()
    cache = open_cache(storage, clip)
    motion = cache.motion_track()
    if motion is None:
        raise ClipError(store.uri(*store.frames(clip)), "the frame cache has no source-rate motion track (built by "
                        "an older version): re-materialize frame_cache")
    if len(motion) < 8:  # the video's own fault, so the error names the video (the cache records its source)
        raise ClipError(cache.meta.get("source") or clip, f"the clip has {len(motion)} decodable frame(s) "
                        f"({motion.duration_s:.2f} s): too short to count repetitions (8 frames at least)")
    duration = motion.duration_s
    prog = Progress(context, f"{clip} period track", 1, unit="clips", video_s=duration)
    track, box = track_located(motion.t_s, motion.energy, motion.intensity, motion.camera, motion.energy_raw,
                               duration, path=motion.path)
    counts = count_spans(track)
    region = "whole frame" if box == FULL_FRAME else f"box top {box[0]:.2f} left {box[1]:.2f} side {box[2]:.2f}"
    if motion.box is not None:  # the track was made of the picture inside black bars (picture_box.content_box)
        top, bottom, left, right = (float(v) for v in motion.box)
        region += (f" of the picture inside {BESIDE_PICTURE[motion.box_kind]} (rows {top:.2f}-{bottom:.2f}, "
                   f"columns {left:.2f}-{right:.2f} of the frame)")
    context.log.info(f"{prog.line(1)}; counted in the {region}")
    df = track_frame(track).with_columns(pl.lit(clip).alias("clip")).select(["clip", *TRACK_SCHEMA])
    return dg.Output(df, metadata={**clip_count_metadata(counts), **prog.metadata(),
                                   "signals": dg.MetadataValue.text(", ".join(track.available) or "-"),
                                   "region": dg.MetadataValue.text(region),
                                   "region_side": dg.MetadataValue.float(float(box[2]))})


@clip_asset(
    group="segments",
    code_version="period-curve-v1",
    description="The period curve over time (for plots): the consensus period (NaN where aperiodic or paused) and "
    "its strength every 0.1 s, then each signal's own period and periodicity strength.",
)
def period_curve(context: dg.AssetExecutionContext, period_track: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.counting import PERIOD_CURVE_SCHEMA, track_from_frame
    from handclust_assets.science.counting import period_curve as curve_fn

    clip = context.partition_key
    df = curve_fn(track_from_frame(period_track)).with_columns(pl.lit(clip).alias("clip"))
    df = df.select(["clip", *PERIOD_CURVE_SCHEMA])
    cons = df.filter(pl.col("signal") == "consensus")["period_s"].drop_nans().drop_nulls()
    return dg.Output(df, metadata={
        "median_period_s": dg.MetadataValue.float(float(cons.median()) if cons.len() else float("nan")),
        "periodic_share": dg.MetadataValue.float(
            round(cons.len() / max(1, df.filter(pl.col("signal") == "consensus").height), 4))})


def activity_spans(timeline: pl.DataFrame | None, clip: str) -> pl.DataFrame | None:
    """Consecutive segments of one activity merged into spans (start_s, end_s, activity), in time order."""
    if timeline is None or not timeline.height:
        return None
    seg = timeline.filter(pl.col("clip") == clip).sort("start_s")
    if not seg.height:
        return None
    run = (pl.col("activity") != pl.col("activity").shift(1)).fill_null(True).cum_sum()
    return (seg.with_columns(run.alias("_run")).group_by("_run", maintain_order=True)
            .agg(pl.col("start_s").min(), pl.col("end_s").max(), pl.col("activity").first()).drop("_run"))


def counts_for_clips(period_track: pl.DataFrame, activity_timeline: pl.DataFrame | None,
                     trimmed: bool | Callable[[str], bool] = False) -> pl.DataFrame:
    """Plain function behind `repetition_counts`: clip + SPAN_COUNT_SCHEMA rows for every clip with a track;
    `trimmed` (True, or clip -> bool): those clips and their spans are counted from their first moment to their
    last (`CountingParams.count_to_edges`)."""
    from handclust_assets.science.counting import (
        SPAN_COUNT_SCHEMA,
        CountingParams,
        count_spans,
        track_from_frame,
    )

    is_trimmed = trimmed if callable(trimmed) else (lambda _clip: bool(trimmed))
    frames = []
    for clip in sorted(period_track["clip"].unique().to_list()):
        track = track_from_frame(period_track.filter(pl.col("clip") == clip))
        params = CountingParams(count_to_edges=is_trimmed(clip))
        counts = count_spans(track, activity_spans(activity_timeline, clip), params)
        frames.append(counts.with_columns(pl.lit(clip).alias("clip")).select(["clip", *SPAN_COUNT_SCHEMA]))
    schema = {"clip": pl.Utf8, **SPAN_COUNT_SCHEMA}
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


@dg.asset(
    group_name="evaluation",
    ins={"period_track": dg.AssetIn(metadata=EVERY_PARTITION)},  # a copy's count is its own (`lib.same_video`)
    code_version="repetition-counts-v6",  # v2: null, not NaN, where no count is given; v3: agreement per source;
    # v4: "brief" (signals agree on too little of the span), where v3 said "no agreement"; v5: counted between the
    # stored stretch's own edges (period-track-v6), no longer one period beyond them; v6: a clip or span counted to
    # its edges (trimmed) needs `min_reps` turns where the repetition was found, not only once stretched; a stretch
    # tracked at an octave of its span's typical period, where a signal still sees that period, counted at it; a
    # span found periodic on less than `min_coverage` of its time is not stretched to its edges
    kinds={"python", "duckdb"},
    description="Repetitions per clip and per activity span (consecutive segments of one fused activity in the "
    "activity timeline): count (integral of 1/period over the periodic time, pauses excluded), the count "
    "estimate, mean period, periodic seconds, confidence, which signals agreed and the status (counted / no "
    "agreement / brief: agreed on too little of the span / aperiodic). From the stored period tracks; nothing is "
    "recomputed. Clips trimmed to their repetition (the `trimmed_clips` setting, or those matching "
    "`trimmed_clip_patterns`: $HANDCLUST_TRIMMED_CLIPS=1 or ='bench/*') are counted from their first moment to "
    "their last, spans too.",
)
def repetition_counts(context: dg.AssetExecutionContext, settings: HandclustSettings,
                      period_track: pl.DataFrame | None,
                      activity_timeline: pl.DataFrame | None) -> dg.Output[pl.DataFrame]:
    if period_track is None:
        raise dg.Failure("no clip has a period track yet (materialize period_track in a clip run first)")
    if activity_timeline is None:
        context.log.warning("no activity timeline yet: counting whole clips only")
    trimmed = [c for c in sorted(period_track["clip"].unique().to_list()) if settings.is_trimmed(c)]
    df = counts_for_clips(period_track, activity_timeline, set(trimmed).__contains__)
    if trimmed:
        shown = ", ".join(trimmed[:10]) + (f" and {len(trimmed) - 10} more" if len(trimmed) > 10 else "")
        context.log.info(f"{len(trimmed)} clip(s) trimmed to their repetition, counted (spans too) from their first "
                         f"moment to their last: {shown}")
    clips = df.filter(pl.col("scope") == "clip")
    spans = df.filter(pl.col("scope") == "span")
    counted = spans.filter(pl.col("status") == "counted")
    return dg.Output(df, metadata={
        "clips": dg.MetadataValue.int(clips.height),
        "spans": dg.MetadataValue.int(spans.height),
        "counted_span_share": dg.MetadataValue.float(round(counted.height / max(1, spans.height), 4)),
        "total_repetitions": dg.MetadataValue.float(float(np.nansum(clips["count_estimate"].to_numpy()))),
        "aperiodic_clips": dg.MetadataValue.int(clips.filter(pl.col("status") == "aperiodic").height),
        "clips_counted_to_edges": dg.MetadataValue.int(len(trimmed)),
    })


assets = [period_track, period_curve, repetition_counts]
