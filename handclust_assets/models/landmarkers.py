"""Thin wrapper over MediaPipe Tasks' PoseLandmarker and HandLandmarker in VIDEO running mode.

Frames in, plain numpy out (no MediaPipe objects leak). VIDEO mode carries landmarks from one frame to the
next (MediaPipe's own tracking), so frames must come in time order with strictly increasing timestamps:
`video_timestamps_ms` turns the frame cache's float seconds into such integers.

A model file that is missing, corrupt or of another version raises `ModelUnavailableError` naming the model
(the sha256 check in `find_mediapipe_model` runs before MediaPipe sees the file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from handclust_assets.errors import ModelUnavailableError
from handclust_assets.models.mediapipe_models import MEDIAPIPE_MODELS, find_mediapipe_model

POSE_MODEL = "pose_landmarker_full"
HAND_MODEL = "hand_landmarker"
N_POSE_KEYPOINTS = 33
N_HAND_KEYPOINTS = 21


def model_fingerprint(name: str) -> str:
    """`<name>@<sha256[:12]>` for code versions. `find_mediapipe_model` accepts only the file whose sha256 is the
    published digest, so that digest is the sha256 of whichever file a run uses (no hashing at import)."""
    return f"{name}@{MEDIAPIPE_MODELS[name][1][:12]}"


def video_timestamps_ms(t_s: np.ndarray | Iterable[float]) -> np.ndarray:
    """Integer milliseconds, strictly increasing (VIDEO mode rejects a repeated or earlier timestamp)."""
    ms = np.rint(np.asarray(list(t_s) if not isinstance(t_s, np.ndarray) else t_s, np.float64) * 1000.0)
    out = ms.astype(np.int64)
    for i in range(1, len(out)):
        if out[i] <= out[i - 1]:
            out[i] = out[i - 1] + 1
    return out


def _vision():  # noqa: ANN202 - mediapipe is imported lazily (slow import, not needed to load definitions)
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    return mp, vision, BaseOptions


def _create(name: str, path: Path, make: Callable[[], object]) -> object:
    try:
        return make()
    except (RuntimeError, ValueError, OSError) as e:
        raise ModelUnavailableError(
            name, f"MediaPipe could not load {path}: {e}",
            ["run `handclust fetch-models`", f"check that {path} is the published {MEDIAPIPE_MODELS[name][0]}"],
        ) from e


@dataclass
class PoseFrames:
    """detected: (N,) bool; keypoints: (N, 33, 4) float32 = normalised x, y (0..1 of width/height), z (same scale
    as x, hip-centred depth), visibility; NaN where no pose was found."""

    detected: np.ndarray
    keypoints: np.ndarray

    @property
    def coverage(self) -> float:
        return float(self.detected.mean()) if len(self.detected) else 0.0


@dataclass
class HandDetection:
    """One detected hand: `label` Left/Right (the person's own hand; see `mirrored`), classifier score,
    keypoints (21, 3) normalised x, y, z and the landmark bounding box (x0, y0, x1, y1), normalised."""

    label: str
    score: float
    keypoints: np.ndarray
    box: np.ndarray


@dataclass
class HandFrames:
    hands: list[list[HandDetection]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.hands)

    @property
    def coverage(self) -> float:
        return float(np.mean([len(h) > 0 for h in self.hands])) if self.hands else 0.0


def _mp_image(mp, rgb: np.ndarray):  # noqa: ANN001, ANN202
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb[..., :3], dtype=np.uint8))


def detect_pose(
    frames: Iterable[np.ndarray],
    t_s: np.ndarray,
    model_path: str | Path | None = None,
    min_detection_confidence: float = 0.5,
    min_tracking_confidence: float = 0.5,
    progress: Callable[[int], None] | None = None,
) -> PoseFrames:
    """PoseLandmarker (one person) in VIDEO mode over RGB frames with their timestamps (seconds)."""
    path = find_mediapipe_model(POSE_MODEL, model_path)
    mp, vision, BaseOptions = _vision()
    opts = vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(path)),
        running_mode=vision.RunningMode.VIDEO,
        num_poses=1,
        min_pose_detection_confidence=min_detection_confidence,
        min_pose_presence_confidence=min_detection_confidence,
        min_tracking_confidence=min_tracking_confidence,
    )
    ts = video_timestamps_ms(t_s)
    det: list[bool] = []
    kps: list[np.ndarray] = []
    lm = _create(POSE_MODEL, path, lambda: vision.PoseLandmarker.create_from_options(opts))
    with lm:  # type: ignore[attr-defined]
        for i, rgb in enumerate(frames):
            r = lm.detect_for_video(_mp_image(mp, rgb), int(ts[i]))  # type: ignore[attr-defined]
            if r.pose_landmarks:
                p = r.pose_landmarks[0]
                kps.append(np.asarray([[q.x, q.y, q.z, q.visibility if q.visibility is not None else 1.0]
                                       for q in p], np.float32))
                det.append(True)
            else:
                kps.append(np.full((N_POSE_KEYPOINTS, 4), np.nan, np.float32))
                det.append(False)
            if progress is not None:
                progress(i + 1)
    if len(det) != len(ts):
        raise ValueError(f"got {len(det)} frames but {len(ts)} timestamps")
    return PoseFrames(np.asarray(det, bool),
                      np.stack(kps) if kps else np.zeros((0, N_POSE_KEYPOINTS, 4), np.float32))


def detect_hands(
    frames: Iterable[np.ndarray],
    t_s: np.ndarray,
    model_path: str | Path | None = None,
    num_hands: int = 2,
    mirrored: bool = False,
    min_detection_confidence: float = 0.5,
    min_tracking_confidence: float = 0.5,
    progress: Callable[[int], None] | None = None,
) -> HandFrames:
    """HandLandmarker in VIDEO mode. MediaPipe labels handedness as if the image were mirrored (selfie
    camera); a helmet camera is not, so with `mirrored=False` the labels are swapped to the person's own hand."""
    path = find_mediapipe_model(HAND_MODEL, model_path)
    mp, vision, BaseOptions = _vision()
    opts = vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(path)),
        running_mode=vision.RunningMode.VIDEO,
        num_hands=int(num_hands),
        min_hand_detection_confidence=min_detection_confidence,
        min_hand_presence_confidence=min_detection_confidence,
        min_tracking_confidence=min_tracking_confidence,
    )
    swap = {"Left": "Right", "Right": "Left"}
    ts = video_timestamps_ms(t_s)
    out = HandFrames()
    lm = _create(HAND_MODEL, path, lambda: vision.HandLandmarker.create_from_options(opts))
    with lm:  # type: ignore[attr-defined]
        for i, rgb in enumerate(frames):
            r = lm.detect_for_video(_mp_image(mp, rgb), int(ts[i]))  # type: ignore[attr-defined]
            hands = []
            for lms, cats in zip(r.hand_landmarks, r.handedness):
                k = np.asarray([[q.x, q.y, q.z] for q in lms], np.float32)
                label = cats[0].category_name if cats else "Right"
                label = label if mirrored else swap.get(label, label)
                box = np.asarray([k[:, 0].min(), k[:, 1].min(), k[:, 0].max(), k[:, 1].max()], np.float32)
                hands.append(HandDetection(label, float(cats[0].score) if cats else float("nan"), k, box))
            out.hands.append(hands)
            if progress is not None:
                progress(i + 1)
    if len(out.hands) != len(ts):
        raise ValueError(f"got {len(out.hands)} frames but {len(ts)} timestamps")
    return out
