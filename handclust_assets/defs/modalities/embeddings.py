"""Modalities group, learned part: `scene_embeddings`, `video_embeddings`, `tool_scores` (per clip).

Each model's id + revision (+ local weights fingerprint) is in the asset's code_version, so the UI marks
partitions stale when a model changes, and a `model_version` column records what produced every row.
"""

import time

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.common import named_failures
from handclust_assets.defs.modalities.motion import open_cache
from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.defs.resources import (
    HandclustSettings,
    SceneModelResource,
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

# Default resources, also used to compute code versions at load time (env vars override the defaults).
SCENE_MODEL = SceneModelResource(
    model_id=dg.EnvVar("HANDCLUST_SCENE_MODEL").get_value("facebook/dinov2-small") or "facebook/dinov2-small",
    local_path=dg.EnvVar("HANDCLUST_SCENE_MODEL_PATH").get_value(None),
)
VIDEO_MODEL = VideoModelResource(
    model_id=dg.EnvVar("HANDCLUST_VIDEO_MODEL").get_value("facebook/vjepa2-vitl-fpc64-256")
    or "facebook/vjepa2-vitl-fpc64-256",
    local_path=dg.EnvVar("HANDCLUST_VIDEO_MODEL_PATH").get_value(None),
)
TOOL_MODEL = ToolModelResource(
    model_id=dg.EnvVar("HANDCLUST_TOOL_MODEL").get_value("google/owlv2-base-patch16-ensemble")
    or "google/owlv2-base-patch16-ensemble",
    local_path=dg.EnvVar("HANDCLUST_TOOL_MODEL_PATH").get_value(None),
)


def _embedding_rows(clip: str, n: int) -> dict:
    return {"clip": [clip] * n, "frame_idx": np.arange(n)}


@dg.asset(
    partitions_def=clip_partitions,
    group_name="modalities",
    kinds={"pytorch", "transformers"},
    deps=["frame_cache"],
    pool="models",
    code_version=f"scene-v1|{SCENE_MODEL.version()}",
    description="Per-frame scene embedding: DINOv2 CLS token (model configurable) or, where DINOv2 weights are "
    "absent, the offline EfficientNet-Lite0 ImageNet backbone. The `model` column says which produced each row.",
)
@named_failures
def scene_embeddings(
    context: dg.AssetExecutionContext, settings: HandclustSettings, scene_model: SceneModelResource
) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    fc = open_cache(settings, clip)
    enc = scene_model.load()
    t0 = time.perf_counter()
    frames = fc.all_frames()
    emb = enc.embed(frames)
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


@dg.asset(
    partitions_def=clip_partitions,
    group_name="modalities",
    kinds={"pytorch", "transformers"},
    deps=["frame_cache"],
    pool="models",
    code_version=f"video-v1|{VIDEO_MODEL.version()}",
    description="V-JEPA 2 video embedding: 64-frame windows at 1-s stride over the sampled frames, mean-pooled "
    "tokens (1024-D for ViT-L). Needs the V-JEPA 2 weights (hub or local_path); fails clearly without them.",
)
@named_failures
def video_embeddings(
    context: dg.AssetExecutionContext, settings: HandclustSettings, video_model: VideoModelResource
) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    fc = open_cache(settings, clip)
    enc = video_model.load()
    t0 = time.perf_counter()
    emb, ts, te = enc.embed_windows(fc.all_frames(), fc.fps, video_model.window_frames, video_model.stride_s)
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


@dg.asset(
    partitions_def=clip_partitions,
    group_name="modalities",
    kinds={"pytorch", "transformers"},
    deps=["frame_cache"],
    pool="models",
    code_version=f"tools-v1|{TOOL_MODEL.version()}",
    description="OWLv2 open-vocabulary tool presence: per frame and prompt (19 configurable prompts), the "
    "highest detection probability. Long format (clip, frame_idx, prompt, score).",
)
@named_failures
def tool_scores(
    context: dg.AssetExecutionContext, settings: HandclustSettings, tool_model: ToolModelResource
) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    fc = open_cache(settings, clip)
    det = tool_model.load()
    s = det.scores(fc.all_frames())
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
