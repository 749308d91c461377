"""Segments: `segments` (three boundary detectors fused) and `repetitions` (per segment), per clip."""

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.common import clip_asset
from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.defs.resources import HandclustSettings
from handclust_assets.lib.errors import ClipError


def _stack(col: pl.Series) -> np.ndarray:
    return np.asarray(col.to_list(), np.float32)


@clip_asset(
    group="segments",
    code_version="segments-v1",
    description="Three boundary detectors (motion, appearance, kernel change points) fused into one boundary "
    "set; segments of `segment_min_s`-`segment_max_s` (default 2-6 s) that cover the clip exactly.",
)
def segments(
    context: dg.AssetExecutionContext, settings: HandclustSettings, flow: pl.DataFrame, scene_embeddings: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.segmentation import SEGMENT_SCHEMA, check_coverage, segment_clip

    clip = context.partition_key
    f = flow.sort("frame_idx")
    s = scene_embeddings.sort("frame_idx")
    segs = segment_clip(f["flow_mag"].to_numpy(), _stack(f["dir_hist"]), _stack(s["embedding"]) if s.height else None,
                        settings.sample_fps, times_s=f["t_s"].to_numpy(), min_len_s=settings.segment_min_s,
                        max_len_s=settings.segment_max_s)
    problems = check_coverage(segs, f.height)
    if problems:
        raise RuntimeError(f"{clip}: segmentation does not cover the clip: {problems}")
    df = segs.with_columns(pl.lit(clip).alias("clip")).select(["clip", *SEGMENT_SCHEMA])
    if not df.height:
        raise ClipError(clip, "no segments: the clip has no sampled frames")
    lens = df["end_s"] - df["start_s"]
    return dg.Output(
        df,
        metadata={
            "n_segments": dg.MetadataValue.int(df.height),
            "mean_length_s": dg.MetadataValue.float(float(lens.mean())),
            "multi_detector_share": dg.MetadataValue.float(float((df["votes"] >= 2).mean())),
        },
    )


@dg.asset_check(asset=segments, partitions_def=clip_partitions,
                description="Segments cover the clip exactly: no gap, no overlap, none empty.")
def segments_cover_clip(segments: pl.DataFrame) -> dg.AssetCheckResult:
    from handclust_assets.science.segmentation import check_coverage

    problems = []
    for (clip,), g in segments.group_by(["clip"]):
        n = int(g["end_frame"].max())
        problems += [f"{clip}: {p}" for p in check_coverage(g, n)]
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": "; ".join(problems) or "none"})


@clip_asset(
    group="evaluation",
    code_version="repetitions-v1",
    description="Repetition counting per segment: period from the scene self-similarity (off-diagonal profile) and "
    "from flow-magnitude autocorrelation, accepted when they agree within 30 %; count = length / period.",
)
def repetitions(
    context: dg.AssetExecutionContext,
    settings: HandclustSettings,
    segments: pl.DataFrame,
    flow: pl.DataFrame,
    scene_embeddings: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.repetition import REPETITION_SCHEMA, segment_repetitions

    clip = context.partition_key
    f = flow.sort("frame_idx")
    s = scene_embeddings.sort("frame_idx")
    seg = segments.sort("segment_idx")
    df, summary = segment_repetitions(_stack(s["embedding"]), f["flow_mag"].to_numpy(), seg, settings.sample_fps)
    df = df.with_columns(pl.lit(clip).alias("clip")).select(["clip", *REPETITION_SCHEMA])
    return dg.Output(
        df,
        metadata={
            "accepted_share": dg.MetadataValue.float(summary["accepted_share"]),
            "n_segments": dg.MetadataValue.int(summary["n_segments"]),
        },
    )


assets = [segments, repetitions]
checks = [segments_cover_clip]
