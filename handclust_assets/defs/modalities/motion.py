"""Modalities group, motion part: `flow`, `flow_rhythm`, `egomotion` (per clip, no model needed)."""

import time

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.common import named_failures
from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.defs.resources import HandclustSettings
from handclust_assets.lib.storage import arrays_path, frames_dir
from handclust_assets.video.frame_cache import FrameCache

FLOW_SCHEMA = {
    "clip": pl.Utf8,
    "frame_idx": pl.Int64,
    "t_s": pl.Float64,
    "flow_mag": pl.Float32,
    "dir_hist": pl.List(pl.Float32),
}
RHYTHM_SCHEMA = {
    "clip": pl.Utf8,
    "frame_idx": pl.Int64,
    "t_s": pl.Float64,
    "period_s": pl.Float32,
    "strength": pl.Float32,
    "mean_flow": pl.Float32,
}
EGO_SCHEMA = {
    "clip": pl.Utf8,
    "frame_idx": pl.Int64,
    "t_s": pl.Float64,
    "camera_mag": pl.Float32,
    "residual_mag": pl.Float32,
    "ratio": pl.Float32,
    "inlier_frac": pl.Float32,
    "residual_layout": pl.List(pl.Float32),
}


def open_cache(settings: HandclustSettings, clip: str) -> FrameCache:
    return FrameCache(frames_dir(settings.root(), clip))


def _rate(context: dg.AssetExecutionContext, what: str, n: int, video_s: float, t0: float) -> float:
    wall = max(time.perf_counter() - t0, 1e-9)
    context.log.info(f"{what}: {n} frames in {wall:.1f}s ({n / wall:.0f} frames/s, {video_s / wall:.1f}x realtime)")
    return video_s / wall


@dg.asset(
    partitions_def=clip_partitions,
    group_name="modalities",
    kinds={"python", "opencv"},
    deps=["frame_cache"],
    code_version="flow-v1",
    description="Dense optical flow (OpenCV DIS) between consecutive sampled frames: mean magnitude (fraction of "
    "frame width per sampled frame) and a magnitude-weighted direction histogram; the flow field on a 32x18 "
    "grid goes to storage/arrays/flow/<clip>.npz for ego-motion.",
)
@named_failures
def flow(context: dg.AssetExecutionContext, settings: HandclustSettings) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.flow import compute_flow

    clip = context.partition_key
    fc = open_cache(settings, clip)
    t0 = time.perf_counter()
    res = compute_flow(fc.iter_frames())
    xrt = _rate(context, f"{clip} flow", len(fc), len(fc) / fc.fps, t0)
    out = arrays_path(settings.root(), "flow", clip)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, field=res.field, t_s=fc.timestamps)
    df = pl.DataFrame(
        {
            "clip": [clip] * len(fc),
            "frame_idx": np.arange(len(fc)),
            "t_s": fc.timestamps,
            "flow_mag": np.asarray(res.mag, np.float32),
            "dir_hist": [row.astype(np.float32).tolist() for row in np.asarray(res.dir_hist)],
        },
        schema=FLOW_SCHEMA,
    )
    return dg.Output(
        df,
        metadata={
            "mean_flow": dg.MetadataValue.float(float(np.mean(res.mag))),
            "x_realtime": dg.MetadataValue.float(round(xrt, 1)),
            "n_frames": dg.MetadataValue.int(len(fc)),
        },
    )


@dg.asset(
    partitions_def=clip_partitions,
    group_name="modalities",
    kinds={"python", "numpy"},
    code_version="flow-rhythm-v1",
    description="12-s sliding FFT of flow magnitude: dominant period, periodicity strength (peak / total power) "
    "and mean flow, per frame (held from the windows covering it).",
)
@named_failures
def flow_rhythm(
    context: dg.AssetExecutionContext, settings: HandclustSettings, flow: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.rhythm import flow_rhythm as rhythm_fn

    clip = context.partition_key
    f = flow.filter(pl.col("clip") == clip).sort("frame_idx")
    mag = f["flow_mag"].to_numpy().astype(np.float64)
    _, per_frame = rhythm_fn(mag, settings.sample_fps)
    get = per_frame.__getitem__ if isinstance(per_frame, dict) else lambda k: getattr(per_frame, k)
    df = pl.DataFrame(
        {
            "clip": f["clip"],
            "frame_idx": f["frame_idx"],
            "t_s": f["t_s"],
            "period_s": np.asarray(get("dominant_period_s"), np.float32),
            "strength": np.asarray(get("periodicity_strength"), np.float32),
            "mean_flow": np.asarray(get("mean_flow"), np.float32),
        },
        schema=RHYTHM_SCHEMA,
    )
    per = df["period_s"].drop_nans().drop_nulls()
    return dg.Output(
        df,
        metadata={
            "median_period_s": dg.MetadataValue.float(float(per.median()) if per.len() else float("nan")),
            "mean_strength": dg.MetadataValue.float(float(df["strength"].fill_nan(0).mean() or 0.0)),
        },
    )


@dg.asset(
    partitions_def=clip_partitions,
    group_name="modalities",
    kinds={"python", "opencv"},
    deps=["flow"],
    code_version="egomotion-v2",
    description="RANSAC affine on the grid flow field per frame: camera (head) motion, residual motion not "
    "explained by the head (camera-compensated hand/object motion), their ratio, and where in the frame the residual "
    "motion happens (`residual_layout`: mean residual magnitude on a 4x3 grid, row-major from the top left).",
)
@named_failures
def egomotion(context: dg.AssetExecutionContext, settings: HandclustSettings) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.egomotion import egomotion as ego_fn
    from handclust_assets.science.egomotion import motion_layout

    clip = context.partition_key
    data = np.load(arrays_path(settings.root(), "flow", clip))
    field, t_s = data["field"].astype(np.float32), data["t_s"]
    t0 = time.perf_counter()
    res = ego_fn(field)
    _rate(context, f"{clip} egomotion", len(t_s), len(t_s) / settings.sample_fps, t0)
    df = pl.DataFrame(
        {
            "clip": [clip] * len(t_s),
            "frame_idx": np.arange(len(t_s)),
            "t_s": t_s,
            "camera_mag": np.asarray(res.camera_mag, np.float32),
            "residual_mag": np.asarray(res.residual_mag, np.float32),
            "ratio": np.asarray(res.ratio, np.float32),
            "inlier_frac": np.asarray(res.inlier_frac, np.float32),
            "residual_layout": [row.tolist() for row in motion_layout(res.residual_field)],
        },
        schema=EGO_SCHEMA,
    )
    return dg.Output(
        df,
        metadata={
            "mean_camera": dg.MetadataValue.float(float(np.mean(res.camera_mag))),
            "mean_residual": dg.MetadataValue.float(float(np.mean(res.residual_mag))),
        },
    )
