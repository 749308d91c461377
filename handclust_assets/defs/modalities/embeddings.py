"""Modalities, learned part: `scene_embeddings`, `video_embeddings`, `tool_scores` (per clip).

Each model is an observable source asset (`defs/models`): its data version is the model id + revision + the
weights' identity, observed at run time (never at import). The asset records the version it was built with
(`model_version` metadata and column); `model_update_sensor` re-runs partitions whose version differs from the
current one, and fills in partitions skipped while the model was unavailable.
"""

import time

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.common import GPU_STEP_TAGS, clip_asset
from handclust_assets.defs.ingest.assets import open_cache
from handclust_assets.defs.models.assets import SCENE_WEIGHTS, TOOL_WEIGHTS, VIDEO_WEIGHTS
from handclust_assets.defs.resources import (
    SceneModelResource,
    StorageResource,
    ToolModelResource,
    VideoModelResource,
)

SCENE_SCHEMA = {
    "clip": pl.Utf8,
    "frame_idx": pl.Int64,
    "t_s": pl.Float64,
    "model": pl.Utf8,
    "model_version": pl.Utf8,
    "embedding": pl.List(pl.Float32),
}
VIDEO_SCHEMA = {
    "clip": pl.Utf8,
    "window_idx": pl.Int64,
    "t_start_s": pl.Float64,
    "t_end_s": pl.Float64,
    "model": pl.Utf8,
    "model_version": pl.Utf8,
    "embedding": pl.List(pl.Float32),
}
TOOL_SCHEMA = {
    "clip": pl.Utf8,
    "frame_idx": pl.Int64,
    "t_s": pl.Float64,
    "prompt": pl.Utf8,
    "score": pl.Float32,
    "model": pl.Utf8,
    "model_version": pl.Utf8,
}

def _embedding_rows(clip: str, n: int) -> dict:
    return {"clip": [clip] * n, "frame_idx": np.arange(n)}


@clip_asset(
    group="modalities",
    kinds={"pytorch", "transformers"},
    deps=["frame_cache", SCENE_WEIGHTS],
    pool="models",
    op_tags=GPU_STEP_TAGS,
    optional=True,
    code_version="scene-v1",
    description="Per-frame scene embedding: DINOv2 CLS token (model configurable) or, where DINOv2 weights are "
    "absent, the offline EfficientNet-Lite0 ImageNet backbone. The `model` column says which produced each row.",
)
def scene_embeddings(
    context: dg.AssetExecutionContext, storage: StorageResource, scene_model: SceneModelResource
) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    fc = open_cache(storage, clip)
    enc = scene_model.load()
    t0 = time.perf_counter()
    emb = enc.embed(fc.frames())  # decoded one batch at a time: clips of any length
    wall = time.perf_counter() - t0
    context.log.info(f"{clip}: {len(emb)} frames with {enc.name} in {wall:.1f}s ({len(emb) / wall:.1f} frames/s)")
    if enc.name != scene_model.model_id:
        context.log.warning(f"{scene_model.model_id} unavailable: used the offline fallback {enc.name}")
    df = pl.DataFrame(
        {
            **_embedding_rows(clip, len(emb)),
            "t_s": fc.timestamps,
            "model": [enc.name] * len(emb),
            "model_version": [enc.version()] * len(emb),
            "embedding": list(emb),
        },
        schema=SCENE_SCHEMA,
    )
    return dg.Output(
        df,
        metadata={
            "model": enc.name,
            "model_version": scene_model.version(),  # what was asked for: the re-embed sensor compares this
            "model_used": enc.version(),
            "dim": dg.MetadataValue.int(int(emb.shape[1])),
            "frames_per_s": dg.MetadataValue.float(round(len(emb) / wall, 2)),
        },
    )


@clip_asset(
    group="modalities",
    kinds={"pytorch", "transformers"},
    deps=["frame_cache", VIDEO_WEIGHTS],
    pool="models",
    op_tags=GPU_STEP_TAGS,
    optional=True,
    code_version="video-v1",
    description="V-JEPA 2 video embedding: 64-frame windows at 1-s stride over the sampled frames, mean-pooled "
    "tokens (1024-D for ViT-L). Needs the V-JEPA 2 weights (hub or local_path); skipped, with the reason, without "
    "them.",
)
def video_embeddings(
    context: dg.AssetExecutionContext, storage: StorageResource, video_model: VideoModelResource
) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    enc = video_model.load()
    fc = open_cache(storage, clip)
    t0 = time.perf_counter()
    emb, ts, te = enc.embed_windows(fc.frames(), fc.fps, video_model.window_frames, video_model.stride_s)
    wall = time.perf_counter() - t0
    context.log.info(f"{clip}: {len(emb)} windows in {wall:.1f}s")
    df = pl.DataFrame(
        {
            "clip": [clip] * len(emb),
            "window_idx": np.arange(len(emb)),
            "t_start_s": ts,
            "t_end_s": te,
            "model": [enc.name] * len(emb),
            "model_version": [enc.version()] * len(emb),
            "embedding": list(emb),
        },
        schema=VIDEO_SCHEMA,
    )
    return dg.Output(df, metadata={"model_version": video_model.version(), "model_used": enc.version(),
                                   "windows": dg.MetadataValue.int(len(emb)),
                                   "windows_per_s": dg.MetadataValue.float(round(len(emb) / max(wall, 1e-9), 3))})


@clip_asset(
    group="modalities",
    kinds={"pytorch", "transformers"},
    deps=["frame_cache", TOOL_WEIGHTS],
    pool="models",
    op_tags=GPU_STEP_TAGS,
    optional=True,
    code_version="tools-v1",
    description="OWLv2 open-vocabulary tool presence: per frame and prompt (19 configurable prompts), the "
    "highest detection probability. Long format (clip, frame_idx, prompt, score).",
)
def tool_scores(
    context: dg.AssetExecutionContext, storage: StorageResource, tool_model: ToolModelResource
) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    det = tool_model.load()
    fc = open_cache(storage, clip)
    s = det.scores(fc.frames())
    n, p = s.shape
    df = pl.DataFrame(
        {
            "clip": [clip] * (n * p),
            "frame_idx": np.repeat(np.arange(n), p),
            "t_s": np.repeat(fc.timestamps, p),
            "prompt": det.prompts * n,
            "score": s.ravel(),
            "model": [det.name] * (n * p),
            "model_version": [det.version()] * (n * p),
        },
        schema=TOOL_SCHEMA,
    )
    top = df.group_by("prompt").agg(pl.col("score").mean()).sort("score", descending=True)
    return dg.Output(df, metadata={"top_tool": top["prompt"][0], "model_version": tool_model.version(),
                                   "model_used": det.version(), "frames": dg.MetadataValue.int(n)})


assets = [scene_embeddings, video_embeddings, tool_scores]
