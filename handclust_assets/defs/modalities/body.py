"""Modalities group, body part: `pose` and `hands` (MediaPipe Tasks per sampled frame, per clip) and their
segment summaries `pose_segments` (18-D) and `hand_segments` (16-D), which `segment_features` picks up as the
`pose` and `hands` modalities.

The models are found and sha256-verified by `MediaPipeResource` (paths optional); a missing or corrupt model
skips these assets (and their segment summaries), with the model named and how to get it (`handclust
fetch-models`) — the run stays green and `model_update_sensor` fills them in when the files appear.
"""

import time

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.common import Progress, clip_asset
from handclust_assets.defs.ingest.assets import open_cache
from handclust_assets.defs.models.assets import MEDIAPIPE_FILES
from handclust_assets.defs.resources import MediaPipeResource, StorageResource
from handclust_assets.models.landmarkers import HAND_MODEL, POSE_MODEL

POSE_SCHEMA = {
    "clip": pl.Utf8,
    "frame_idx": pl.Int64,
    "t_s": pl.Float64,
    "detected": pl.Boolean,
    # 33 x (x, y, z, visibility) flattened, MediaPipe's normalised image coordinates; null without a pose
    "keypoints": pl.List(pl.Float32),
    "shoulder_span": pl.Float32,
    "elbow_angle_l": pl.Float32,
    "elbow_angle_r": pl.Float32,
    "wrist_height_l": pl.Float32,
    "wrist_height_r": pl.Float32,
    "torso_tilt": pl.Float32,
    "shoulder_roll": pl.Float32,
    "mid_y": pl.Float32,
    "bob_y": pl.Float32,
    "bob_period_s": pl.Float32,
    "bob_strength": pl.Float32,
    "wrist_speed_l": pl.Float32,
    "wrist_speed_r": pl.Float32,
    "hand_spread": pl.Float32,
    "arm_extension": pl.Float32,
    "upper_visibility": pl.Float32,
}
_SLOT_COLS = {
    "source": pl.Utf8,  # detected | tracked | absent
    "box": pl.List(pl.Float32),  # x0, y0, x1, y1 normalised; null when absent
    "score": pl.Float32,  # handedness score (NaN unless detected)
    "openness": pl.Float32,  # fingertip-to-wrist / palm length (NaN unless detected)
    "keypoints": pl.List(pl.Float32),  # 21 x (x, y, z) flattened; null unless detected
}
HANDS_SCHEMA = {
    "clip": pl.Utf8,
    "frame_idx": pl.Int64,
    "t_s": pl.Float64,
    "state": pl.Utf8,  # detected (some hand detected) | tracked (none detected, some CSRT-tracked) | absent
    "n_detected": pl.Int64,
    "n_hands": pl.Int64,  # hands present after propagation
    **{f"{slot}_{k}": t for slot in ("left", "right") for k, t in _SLOT_COLS.items()},
}
POSE_SEGMENTS_SCHEMA = {
    "clip": pl.Utf8,
    "segment_idx": pl.Int64,
    "start_s": pl.Float64,
    "end_s": pl.Float64,
    "coverage": pl.Float32,
    "shoulder_span": pl.Float32,
    "bob_period_s": pl.Float32,
    "wrist_speed_p90": pl.Float32,
    "vector": pl.List(pl.Float32),
}
HAND_SEGMENTS_SCHEMA = {
    "clip": pl.Utf8,
    "segment_idx": pl.Int64,
    "start_s": pl.Float64,
    "end_s": pl.Float64,
    "coverage_detected": pl.Float32,
    "coverage": pl.Float32,
    "two_hand_share": pl.Float32,
    "speed_mean": pl.Float32,
    "vector": pl.List(pl.Float32),
}


def _chunk(mediapipe: MediaPipeResource, fps: float) -> int:
    return max(1, int(round(mediapipe.chunk_seconds * fps))) if mediapipe.chunk_seconds > 0 else 0


def _lists(arr: np.ndarray, keep: np.ndarray) -> list[list[float] | None]:
    flat = np.asarray(arr, np.float32).reshape(len(arr), -1)
    return [row.tolist() if k else None for row, k in zip(flat, keep)]


@clip_asset(
    group="modalities",
    kinds={"python", "mediapipe"},
    deps=["frame_cache", MEDIAPIPE_FILES],
    pool="models",
    optional=True,
    code_version="pose-v1",
    description="MediaPipe PoseLandmarker (pose_landmarker_full, VIDEO mode) on every cached frame: detected flag, "
    "33 keypoints (x, y, z, visibility) and per-frame geometry (shoulder span, elbow angles, wrist heights, torso "
    "tilt, body bob and its period, wrist speeds). Coverage = share of frames with a pose.",
)
def pose(
    context: dg.AssetExecutionContext, storage: StorageResource, mediapipe: MediaPipeResource
) -> dg.Output[pl.DataFrame]:
    from handclust_assets.models.landmarkers import detect_pose
    from handclust_assets.science.pose import FRAME_FEATURES, pose_frame_features

    clip = context.partition_key
    path = mediapipe.pose_model()
    fc = open_cache(storage, clip)
    n = len(fc)
    context.log.info(f"{clip} pose: {n} frames ({n / fc.fps:.0f} s of video) with {path}")
    prog = Progress(context, f"{clip} pose", n, video_s=n / fc.fps)
    res = detect_pose(fc.read, fc.timestamps, path, mediapipe.min_detection_confidence,
                      mediapipe.min_tracking_confidence, progress=prog,
                      chunk_frames=_chunk(mediapipe, fc.fps), workers=mediapipe.n_workers())
    feats = pose_frame_features(res.keypoints, res.detected, fc.timestamps, fc.width / fc.height, fc.fps)
    df = pl.DataFrame(
        {
            "clip": [clip] * n,
            "frame_idx": np.arange(n),
            "t_s": fc.timestamps,
            "detected": res.detected,
            "keypoints": _lists(res.keypoints, res.detected),
            **{k: feats[k] for k in FRAME_FEATURES},
        },
        schema=POSE_SCHEMA,
    )
    context.log.info(f"{clip} pose: coverage {res.coverage:.1%}; {prog.line(n)}")
    return dg.Output(
        df,
        metadata={
            "coverage": dg.MetadataValue.float(round(res.coverage, 4)),
            **prog.metadata(),
            "model": POSE_MODEL,
            "model_version": mediapipe.version(),
        },
    )


@clip_asset(
    group="modalities",
    kinds={"python", "mediapipe", "opencv"},
    deps=["frame_cache", MEDIAPIPE_FILES],
    pool="models",
    optional=True,
    code_version="hands-v1",
    description="MediaPipe HandLandmarker (VIDEO mode, num_hands configurable) on every cached frame: 21 keypoints, "
    "handedness and box per hand; detections then propagated forward and backward in time with an OpenCV CSRT "
    "tracker up to max_gap_frames (anchored CSRT), stopping at tracker failure or another detection. State per "
    "frame: detected / tracked / absent; coverage before and after propagation.",
)
def hands(
    context: dg.AssetExecutionContext, storage: StorageResource, mediapipe: MediaPipeResource
) -> dg.Output[pl.DataFrame]:
    from handclust_assets.models.landmarkers import detect_hands
    from handclust_assets.science.hands import (
        DETECTED,
        SOURCE_NAMES,
        CsrtConfig,
        hand_openness,
        propagate_csrt,
        tracks_from_detections,
    )

    clip = context.partition_key
    path = mediapipe.hand_model()
    fc = open_cache(storage, clip)
    n = len(fc)
    context.log.info(f"{clip} hands: {n} frames ({n / fc.fps:.0f} s of video) with {path}, "
                     f"num_hands={mediapipe.num_hands}, CSRT reach {mediapipe.max_gap_frames} frames")
    prog = Progress(context, f"{clip} hands (detect)", n, video_s=n / fc.fps)
    t0 = time.perf_counter()
    det = detect_hands(fc.read, fc.timestamps, path, mediapipe.num_hands, mediapipe.mirrored,
                       mediapipe.min_detection_confidence, mediapipe.min_tracking_confidence,
                       progress=prog,
                       chunk_frames=_chunk(mediapipe, fc.fps), workers=mediapipe.n_workers())
    t_det = time.perf_counter() - t0
    base = tracks_from_detections(det)
    t1 = time.perf_counter()
    tracks = propagate_csrt(base, fc.read, mediapipe.max_gap_frames, CsrtConfig(work_width=mediapipe.csrt_work_width),
                            progress=lambda done, total: None, workers=mediapipe.n_workers())
    t_csrt = time.perf_counter() - t1
    openness = hand_openness(tracks.keypoints, fc.width / fc.height)
    cols: dict = {}
    for s, slot in enumerate(("left", "right")):
        src = tracks.source[:, s]
        cols[f"{slot}_source"] = [SOURCE_NAMES[v] for v in src]
        cols[f"{slot}_box"] = _lists(tracks.boxes[:, s], src != 0)
        cols[f"{slot}_score"] = tracks.score[:, s]
        cols[f"{slot}_openness"] = openness[:, s]
        cols[f"{slot}_keypoints"] = _lists(tracks.keypoints[:, s], src == DETECTED)
    df = pl.DataFrame(
        {
            "clip": [clip] * n,
            "frame_idx": np.arange(n),
            "t_s": fc.timestamps,
            "state": tracks.state.tolist(),
            "n_detected": tracks.n_detected,
            "n_hands": tracks.n_present,
            **cols,
        },
        schema=HANDS_SCHEMA,
    )
    st = tracks.stats
    context.log.info(f"{clip} hands: coverage {base.coverage:.1%} detected -> {tracks.coverage:.1%} with CSRT "
                     f"({st.get('updates', 0)} tracker updates in {t_csrt:.1f}s; detection {t_det:.1f}s)")
    return dg.Output(
        df,
        metadata={
            "coverage_detected": dg.MetadataValue.float(round(base.coverage, 4)),
            "coverage": dg.MetadataValue.float(round(tracks.coverage, 4)),
            "coverage_lift": dg.MetadataValue.float(round(tracks.coverage - base.coverage, 4)),
            "two_hand_share": dg.MetadataValue.float(round(float((tracks.n_present == 2).mean()) if n else 0.0, 4)),
            **prog.metadata(),
            "csrt_updates": dg.MetadataValue.int(int(st.get("updates", 0))),
            "csrt_seconds": dg.MetadataValue.float(round(t_csrt, 2)),
            "model": HAND_MODEL,
            "model_version": mediapipe.version(),
        },
    )


def _segment_frame(clip: str, seg: pl.DataFrame, vec: np.ndarray, extra: dict, schema: dict) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "clip": [clip] * seg.height,
            "segment_idx": seg["segment_idx"],
            "start_s": seg["start_s"],
            "end_s": seg["end_s"],
            **extra,
            "vector": [row.tolist() for row in vec] if len(vec) else [],
        },
        schema=schema,
    )


def _segment_output(clip: str, seg: pl.DataFrame, vec: np.ndarray, dims: list[str], shown: tuple[str, ...],
                    schema: dict) -> dg.Output[pl.DataFrame]:
    """One row per segment: the summary vector plus a few readable columns; coverage in the metadata."""
    df = _segment_frame(clip, seg, vec, {k: vec[:, dims.index(k)] for k in shown}, schema)
    cov = vec[:, dims.index("coverage")] if len(vec) else np.zeros(0)
    return dg.Output(df, metadata={
        "n_segments": dg.MetadataValue.int(df.height),
        "dim": dg.MetadataValue.int(len(dims)),
        "mean_coverage": dg.MetadataValue.float(round(float(cov.mean()) if len(cov) else 0.0, 4)),
        "dims": ", ".join(dims),
    })


@clip_asset(
    group="modalities",
    code_version="pose-segments-v1",
    description="18-D body-pose summary per segment (coverage, shoulder span, elbow angles, wrist heights, torso "
    "tilt, shoulder roll, body-bob period/strength/amplitude, wrist speeds, hand spread, arm extension, "
    "visibility); NaN-free, coverage carries 'no body visible'. One row per segment.",
)
def pose_segments(
    context: dg.AssetExecutionContext, segments: pl.DataFrame, pose: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.pose import FRAME_FEATURES, POSE_VECTOR_DIMS, pose_segment_vectors

    clip = context.partition_key
    seg = segments.sort("segment_idx")
    p = pose.sort("frame_idx")
    feats = {k: p[k].to_numpy() for k in FRAME_FEATURES}
    feats["detected"] = p["detected"].to_numpy()
    vec = pose_segment_vectors(feats, seg)
    return _segment_output(clip, seg, vec, [d for d, _ in POSE_VECTOR_DIMS],
                           ("coverage", "shoulder_span", "bob_period_s", "wrist_speed_p90"), POSE_SEGMENTS_SCHEMA)


@clip_asset(
    group="modalities",
    code_version="hand-segments-v1",
    description="16-D hand summary per segment (coverage before/after CSRT, two-hand share, left/right share, "
    "mean/std hand-box position and size, hand speed in the frame, hand spread, openness); NaN-free. One row per "
    "segment.",
)
def hand_segments(
    context: dg.AssetExecutionContext, segments: pl.DataFrame, hands: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.hands import HAND_VECTOR_DIMS, SOURCE_NAMES, hand_segment_vectors

    clip = context.partition_key
    seg = segments.sort("segment_idx")
    h = hands.sort("frame_idx")
    n = h.height
    code = {name: i for i, name in enumerate(SOURCE_NAMES)}
    boxes = np.full((n, 2, 4), np.nan, np.float64)
    source = np.zeros((n, 2), np.int8)
    openness = np.full((n, 2), np.nan, np.float64)
    for s, slot in enumerate(("left", "right")):
        source[:, s] = [code[v] for v in h[f"{slot}_source"].to_list()]
        for i, b in enumerate(h[f"{slot}_box"].to_list()):
            if b is not None:
                boxes[i, s] = b
        openness[:, s] = h[f"{slot}_openness"].to_numpy()
    vec = hand_segment_vectors(boxes, source, openness, h["t_s"].to_numpy(), seg)
    return _segment_output(clip, seg, vec, [d for d, _ in HAND_VECTOR_DIMS],
                           ("coverage_detected", "coverage", "two_hand_share", "speed_mean"), HAND_SEGMENTS_SCHEMA)


assets = [pose, hands, pose_segments, hand_segments]
