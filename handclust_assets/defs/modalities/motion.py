"""Modalities, motion part: `flow`, `flow_rhythm`, `egomotion` (per clip, no model needed)."""

import io

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.common import Progress, clip_asset
from handclust_assets.defs.ingest.assets import open_cache
from handclust_assets.defs.resources import HandclustSettings, StorageResource
from handclust_assets.lib.adopt import ARRAYS

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



@clip_asset(
    group="modalities",
    kinds={"python", "opencv"},
    deps=["frame_cache"],
    code_version="flow-v1",
    side_files=(ARRAYS,),
    description="Dense optical flow (OpenCV DIS) between consecutive sampled frames: mean magnitude (fraction of "
    "frame width per sampled frame) and a magnitude-weighted direction histogram; the flow field on a 32x18 "
    "grid goes to storage/arrays/flow/<clip>.npz for ego-motion.",
)
def flow(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.flow import compute_flow

    clip = context.partition_key
    fc = open_cache(storage, clip)
    prog = Progress(context, f"{clip} flow", len(fc), video_s=len(fc) / fc.fps)
    res = compute_flow(fc.iter_frames())
    context.log.info(prog.line(len(fc)))
    buf = io.BytesIO()
    np.savez_compressed(buf, field=res.field, t_s=fc.timestamps)
    store = storage.store()
    store.write_bytes(buf.getvalue(), *store.arrays("flow", clip))
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
            **prog.metadata(),
        },
    )


@clip_asset(
    group="modalities",
    kinds={"python", "numpy"},
    code_version="flow-rhythm-v1",
    description="12-s sliding FFT of flow magnitude: dominant period, periodicity strength (peak / total power) "
    "and mean flow, per frame (held from the windows covering it).",
)
def flow_rhythm(
    context: dg.AssetExecutionContext, settings: HandclustSettings, flow: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.rhythm import flow_rhythm as rhythm_fn

    f = flow.sort("frame_idx")
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


@clip_asset(
    group="modalities",
    kinds={"python", "opencv"},
    deps=["flow"],
    code_version="egomotion-v2",
    description="RANSAC affine on the grid flow field per frame: camera (head) motion, residual motion not "
    "explained by the head (camera-compensated hand/object motion), their ratio, and where in the frame the residual "
    "motion happens (`residual_layout`: mean residual magnitude on a 4x3 grid, row-major from the top left).",
)
def egomotion(context: dg.AssetExecutionContext, settings: HandclustSettings, storage: StorageResource
              ) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.egomotion import egomotion as ego_fn
    from handclust_assets.science.egomotion import motion_layout

    clip = context.partition_key
    store = storage.store()
    data = np.load(io.BytesIO(store.read_bytes(*store.arrays("flow", clip))))
    field, t_s = data["field"].astype(np.float32), data["t_s"]
    prog = Progress(context, f"{clip} egomotion", len(t_s), video_s=len(t_s) / settings.sample_fps)
    res = ego_fn(field)
    context.log.info(prog.line(len(t_s)))
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


assets = [flow, flow_rhythm, egomotion]
