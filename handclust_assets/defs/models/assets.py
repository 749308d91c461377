"""The models as observable source assets: their data version is which weights a run would use now.

Version = model id @ revision + the hub commit the revision resolves to (hub, else the local HF cache) or a local
weights folder's fingerprint; MediaPipe: the `.task` files' sha256 + the settings that change results. It is
observed at run time — by `model_update_sensor` every few minutes, or "Observe" in the UI — never when the
definitions are imported. An unavailable model has the version `unavailable:<id>` and the reason as metadata, so
the UI shows why a modality is missing and marks its partitions stale the moment the model appears.
"""

from typing import Any

import dagster as dg

from handclust_assets.defs.resources import (
    MediaPipeResource,
    SceneModelResource,
    ToolModelResource,
    VideoModelResource,
)

SCENE_WEIGHTS = "scene_model_weights"
VIDEO_WEIGHTS = "video_model_weights"
TOOL_WEIGHTS = "tool_model_weights"
MEDIAPIPE_FILES = "mediapipe_model_files"
# resource key -> the source asset that stands for its weights
WEIGHTS_OF = {"scene_model": SCENE_WEIGHTS, "video_model": VIDEO_WEIGHTS, "tool_model": TOOL_WEIGHTS,
              "mediapipe": MEDIAPIPE_FILES}


def model_state(resource: Any) -> tuple[str, str | None]:
    """(data version, reason it is unavailable or None). Cheap: no weights are loaded."""
    reason = resource.unavailable_reason()
    if reason is not None:
        return f"unavailable:{getattr(resource, 'model_id', type(resource).__name__)}", reason
    return resource.version(), None


def observation(key: str, resource: Any) -> dg.ObserveResult:
    version, reason = model_state(resource)
    return dg.ObserveResult(asset_key=key, data_version=dg.DataVersion(version[:255]), metadata={
        "version": version, "available": dg.MetadataValue.bool(reason is None), "reason": reason or "none"})


@dg.multi_observable_source_asset(specs=[
    dg.AssetSpec(SCENE_WEIGHTS, group_name="models", kinds={"pytorch"},
                 description="The scene model's weights (DINOv2 by default; EfficientNet-Lite0 fallback)."),
    dg.AssetSpec(VIDEO_WEIGHTS, group_name="models", kinds={"pytorch"}, description="The V-JEPA 2 weights."),
    dg.AssetSpec(TOOL_WEIGHTS, group_name="models", kinds={"pytorch"},
                 description="The OWLv2 weights and the tool prompts."),
    dg.AssetSpec(MEDIAPIPE_FILES, group_name="models", kinds={"mediapipe"},
                 description="MediaPipe pose + hand landmarker .task files (sha256-verified)."),
], can_subset=True, description="Which weights each model resource would load now.")
def model_weights(context: dg.AssetExecutionContext, scene_model: SceneModelResource,
                  video_model: VideoModelResource, tool_model: ToolModelResource, mediapipe: MediaPipeResource):
    by_key = {SCENE_WEIGHTS: scene_model, VIDEO_WEIGHTS: video_model, TOOL_WEIGHTS: tool_model,
              MEDIAPIPE_FILES: mediapipe}
    for key in context.selected_asset_keys:
        yield observation(key.to_user_string(), by_key[key.to_user_string()])


assets = [model_weights]
