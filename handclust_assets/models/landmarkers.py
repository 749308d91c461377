"""Thin wrapper over MediaPipe Tasks' PoseLandmarker and HandLandmarker in VIDEO running mode.

Frames in, plain numpy out (no MediaPipe objects leak). VIDEO mode carries landmarks from one frame to the
next (MediaPipe's own tracking), so frames must come in time order with strictly increasing timestamps:
`video_timestamps_ms` turns the frame cache's float seconds into such integers.

A model file that is missing, corrupt or of another version raises `ModelUnavailableError` naming the model
(the sha256 check in `find_mediapipe_model` runs before MediaPipe sees the file).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from handclust_assets.lib.errors import ModelUnavailableError
from handclust_assets.models.mediapipe_models import MEDIAPIPE_MODELS, find_mediapipe_model
from handclust_assets.models.native_logs import quiet_native_stderr
from handclust_assets.science.landmark_types import (  # noqa: F401 - re-exported: the old import path
    N_HAND_KEYPOINTS,
    N_POSE_KEYPOINTS,
    HandDetection,
    HandFrames,
    PoseFrames,
)

POSE_MODEL = "pose_landmarker_full"
HAND_MODEL = "hand_landmarker"
T = TypeVar("T")


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


def _vision():  # mediapipe is imported lazily (slow import, not needed to load definitions)
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


def _mp_image(mp, rgb: np.ndarray):
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb[..., :3], dtype=np.uint8))


Frames = Iterable[np.ndarray] | Sequence[np.ndarray] | Callable[[int], np.ndarray]
DEFAULT_CHUNK_FRAMES = 150  # 30 s at 5 fps


def default_workers() -> int:
    """MediaPipe runs each graph's inference on one thread on Linux desktops: one worker per core (max 4)."""
    return max(1, min(4, os.cpu_count() or 1))


def _run_video(
    name: str,
    path: Path,
    make: Callable[[], object],
    convert: Callable[[object], T],
    frames: Frames,
    t_s: np.ndarray,
    chunk_frames: int,
    workers: int | None,
    progress: Callable[[int], None] | None,
) -> list[T]:
    """Run a VIDEO-mode landmarker over the frames. With random access (a sequence, an array or a `read(i)`
    callable) the clip is cut into fixed chunks of `chunk_frames`, each run by its own landmarker (VIDEO mode
    needs one time-ordered stream per instance), `workers` chunks at a time in threads (MediaPipe's ctypes
    calls release the GIL). Results depend on `chunk_frames` (one fresh detection at each chunk start), never
    on `workers`. A plain iterator is streamed through one landmarker."""
    mp, _, _ = _vision()
    ts = video_timestamps_ms(t_s)
    n = len(ts)
    results: list = [None] * n
    lock = threading.Lock()
    done = [0]
    if callable(frames):
        get, it = frames, None
    elif hasattr(frames, "__getitem__") and hasattr(frames, "__len__"):
        if len(frames) < n:  # type: ignore[arg-type]
            raise ValueError(f"got {len(frames)} frames but {n} timestamps")  # type: ignore[arg-type]
        get, it = frames.__getitem__, None  # type: ignore[union-attr]
    else:
        get, it = None, iter(frames)  # type: ignore[arg-type]
    step = n if it is not None or chunk_frames <= 0 else chunk_frames
    chunks = [(a, min(n, a + step)) for a in range(0, n, max(1, step))]

    def work(a: int, b: int) -> None:
        lm = _create(name, path, make)
        with lm:  # type: ignore[attr-defined]
            for i in range(a, b):
                try:
                    rgb = next(it) if it is not None else get(i)  # type: ignore[misc]
                except StopIteration:
                    raise ValueError(f"got {i} frames but {n} timestamps") from None
                results[i] = convert(lm.detect_for_video(_mp_image(mp, rgb), int(ts[i])))  # type: ignore[attr-defined]
                if progress is not None:
                    with lock:
                        done[0] += 1
                        progress(done[0])

    n_workers = min(workers or default_workers(), len(chunks))
    with quiet_native_stderr():
        if n_workers <= 1:
            for a, b in chunks:
                work(a, b)
        else:
            with ThreadPoolExecutor(n_workers, thread_name_prefix=f"mediapipe-{name}") as ex:
                for f in [ex.submit(work, a, b) for a, b in chunks]:
                    f.result()
    return results


def detect_pose(
    frames: Frames,
    t_s: np.ndarray,
    model_path: str | Path | None = None,
    min_detection_confidence: float = 0.5,
    min_tracking_confidence: float = 0.5,
    progress: Callable[[int], None] | None = None,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    workers: int | None = None,
) -> PoseFrames:
    """PoseLandmarker (one person) in VIDEO mode over RGB frames with their timestamps (seconds).

    `frames`: an iterable (streamed, one landmarker), or a sequence / `read(i)` callable (chunked, parallel)."""
    path = find_mediapipe_model(POSE_MODEL, model_path)
    _, vision, BaseOptions = _vision()
    opts = vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(path)),
        running_mode=vision.RunningMode.VIDEO,
        num_poses=1,
        min_pose_detection_confidence=min_detection_confidence,
        min_pose_presence_confidence=min_detection_confidence,
        min_tracking_confidence=min_tracking_confidence,
    )
    absent = np.full((N_POSE_KEYPOINTS, 4), np.nan, np.float32)

    def convert(r) -> np.ndarray | None:
        if not r.pose_landmarks:
            return None
        return np.asarray([[q.x, q.y, q.z, q.visibility if q.visibility is not None else 1.0]
                           for q in r.pose_landmarks[0]], np.float32)

    res = _run_video(POSE_MODEL, path, lambda: vision.PoseLandmarker.create_from_options(opts), convert, frames,
                     t_s, chunk_frames, workers, progress)
    det = np.asarray([k is not None for k in res], bool)
    kps = np.stack([absent if k is None else k for k in res]) if res else np.zeros((0, N_POSE_KEYPOINTS, 4),
                                                                                     np.float32)
    return PoseFrames(det, kps)


def detect_hands(
    frames: Frames,
    t_s: np.ndarray,
    model_path: str | Path | None = None,
    num_hands: int = 2,
    mirrored: bool = False,
    min_detection_confidence: float = 0.5,
    min_tracking_confidence: float = 0.5,
    progress: Callable[[int], None] | None = None,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    workers: int | None = None,
) -> HandFrames:
    """HandLandmarker in VIDEO mode. MediaPipe labels handedness as if the image were mirrored (selfie
    camera); a helmet camera is not, so with `mirrored=False` the labels are swapped to the person's own hand.
    `frames` as in `detect_pose`."""
    path = find_mediapipe_model(HAND_MODEL, model_path)
    _, vision, BaseOptions = _vision()
    opts = vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(path)),
        running_mode=vision.RunningMode.VIDEO,
        num_hands=int(num_hands),
        min_hand_detection_confidence=min_detection_confidence,
        min_hand_presence_confidence=min_detection_confidence,
        min_tracking_confidence=min_tracking_confidence,
    )
    swap = {"Left": "Right", "Right": "Left"}

    def convert(r) -> list[HandDetection]:
        hands = []
        for lms, cats in zip(r.hand_landmarks, r.handedness):
            k = np.asarray([[q.x, q.y, q.z] for q in lms], np.float32)
            label = cats[0].category_name if cats else "Right"
            label = label if mirrored else swap.get(label, label)
            box = np.asarray([k[:, 0].min(), k[:, 1].min(), k[:, 0].max(), k[:, 1].max()], np.float32)
            hands.append(HandDetection(label, float(cats[0].score) if cats else float("nan"), k, box))
        return hands

    res = _run_video(HAND_MODEL, path, lambda: vision.HandLandmarker.create_from_options(opts), convert, frames,
                     t_s, chunk_frames, workers, progress)
    return HandFrames(list(res))
