"""Body pose and hands with the REAL MediaPipe models on real and generated clips, and CSRT propagation.

Models are looked up in the shared model cache (scripts/setup.sh runs `handclust fetch-models`) and
/work/shared/data/models, and passed explicitly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest

from handclust_assets.lib.errors import ModelUnavailableError
from handclust_assets.lib.synthetic import generate_clip
from handclust_assets.models.landmarkers import (
    HandDetection,
    HandFrames,
    detect_hands,
    detect_pose,
    video_timestamps_ms,
)
from handclust_assets.science.hands import (
    ABSENT,
    DETECTED,
    HAND_DIM,
    TRACKED,
    hand_openness,
    hand_segment_vectors,
    iou,
    propagate_csrt,
    tracks_from_detections,
)
from handclust_assets.science.pose import (
    FRAME_FEATURES,
    L_EL,
    L_HIP,
    L_SH,
    L_WR,
    POSE_DIM,
    POSE_VECTOR_DIMS,
    R_EL,
    R_HIP,
    R_SH,
    R_WR,
    pose_frame_features,
    pose_segment_vectors,
)
from handclust_assets.video.frame_cache import sample_frames
from handclust_assets.video.writer import moving_pattern, write_video
from handclust_assets_tests.support import find_models_dir

FPS = 5.0


@pytest.fixture(scope="session")
def models() -> dict[str, Path]:
    d = find_models_dir()
    if d is None:
        pytest.skip("MediaPipe .task models not found: run `handclust fetch-models` (scripts/setup.sh does)")
    return {"pose": d / "pose_landmarker_full.task", "hand": d / "hand_landmarker.task"}


@pytest.fixture(scope="module")
def cups(shared_clips: Path) -> tuple[np.ndarray, np.ndarray]:
    return sample_frames(shared_clips / "02_cups.mp4", FPS, 480)


@pytest.fixture(scope="module")
def blocks(shared_clips: Path) -> tuple[np.ndarray, np.ndarray]:
    return sample_frames(shared_clips / "03_blocks.mp4", FPS, 480)


@pytest.fixture(scope="module")
def blocks_hands(blocks, models) -> HandFrames:
    fr, ts = blocks
    return detect_hands(fr, ts, models["hand"], num_hands=2)


def _segments(bounds: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"segment_idx": list(range(len(bounds) - 1)), "start_frame": bounds[:-1],
                         "end_frame": bounds[1:]})


# ---------------------------------------------------------------- pose


def test_pose_on_a_real_clip_shapes_coverage_and_determinism(cups, models) -> None:
    fr, ts = cups
    a = detect_pose(fr, ts, models["pose"])
    b = detect_pose(iter(fr), ts, models["pose"])  # a generator works too
    n = len(fr)
    assert a.detected.shape == (n,) and a.detected.dtype == bool
    assert a.keypoints.shape == (n, 33, 4) and a.keypoints.dtype == np.float32
    assert 0.0 <= a.coverage <= 1.0 and a.coverage > 0.5  # a person is in view of 02_cups
    assert np.all(np.isnan(a.keypoints[~a.detected])) and np.all(np.isfinite(a.keypoints[a.detected]))
    vis = a.keypoints[a.detected][..., 3]
    assert vis.min() >= 0 and vis.max() <= 1
    np.testing.assert_array_equal(a.detected, b.detected)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_pose_vector_is_18d_and_nan_free_on_a_real_clip(cups, models) -> None:
    fr, ts = cups
    res = detect_pose(fr, ts, models["pose"])
    feats = pose_frame_features(res.keypoints, res.detected, ts, fr.shape[2] / fr.shape[1], FPS)
    assert set(FRAME_FEATURES) <= set(feats) and all(feats[k].shape == (len(fr),) for k in FRAME_FEATURES)
    segs = _segments([0, 12, 30, len(fr)])
    v = pose_segment_vectors(feats, segs)
    assert POSE_DIM == 18 == len(POSE_VECTOR_DIMS) and v.shape == (3, 18) and v.dtype == np.float32
    assert np.all(np.isfinite(v))
    for k, (a, b) in enumerate([(0, 12), (12, 30), (30, len(fr))]):
        assert v[k, 0] == pytest.approx(res.detected[a:b].mean())
    assert np.all((v[:, 0] >= 0) & (v[:, 0] <= 1)) and np.all(v[:, 17] <= 1)


def test_no_body_visible_is_a_value_not_nan(tmp_path: Path, models) -> None:
    # generated clips: a drifting texture (nothing to find) and a synthetic helmet-cam clip (gloves, tools, no
    # person; the detector may fire on the odd frame). Absent pose -> coverage 0 in the vector, never NaN.
    write_video(tmp_path / "texture.mp4", moving_pattern(20, 320, 180), 5)
    fr, ts = sample_frames(tmp_path / "texture.mp4", FPS, 320)
    res = detect_pose(fr, ts, models["pose"])
    assert res.coverage == 0.0 and np.isnan(res.keypoints).all()
    feats = pose_frame_features(res.keypoints, res.detected, ts, 16 / 9, FPS)
    v = pose_segment_vectors(feats, _segments([0, 10, len(fr)]))
    assert v.shape == (2, POSE_DIM) and np.all(np.isfinite(v)) and np.all(v[:, 0] == 0)
    e = pose_segment_vectors(feats, _segments([5, 5, 999]))  # empty / out-of-range segments: zeros, no error
    assert np.all(np.isfinite(e)) and np.all(e == 0)
    generate_clip(tmp_path / "synthetic.mp4", seed=3, width=320, height=180, fps=10, activities=[("trowel", 4.0)])
    fr, ts = sample_frames(tmp_path / "synthetic.mp4", FPS, 320)
    res = detect_pose(fr, ts, models["pose"])
    assert res.coverage <= 0.25
    feats = pose_frame_features(res.keypoints, res.detected, ts, 16 / 9, FPS)
    v = pose_segment_vectors(feats, _segments([0, 10, len(fr)]))
    assert np.all(np.isfinite(v)) and np.all(v[:, 0] <= 0.25)


def _skeleton(n: int, bob_period_s: float) -> np.ndarray:
    """Synthetic keypoints facing the camera: shoulders 0.2 apart, left arm straight down, right forearm
    horizontal (elbow at 90 degrees, wrist above the elbow line), the body bobbing with a known period."""
    k = np.zeros((n, 33, 4), np.float32)
    k[..., 3] = 0.99
    t = np.arange(n) / FPS
    dy = 0.02 * np.sin(2 * np.pi * t / bob_period_s)
    for idx, (x, y) in {L_SH: (0.6, 0.4), R_SH: (0.4, 0.4), L_EL: (0.6, 0.55), L_WR: (0.6, 0.7),
                        R_EL: (0.4, 0.55), R_WR: (0.25, 0.55), L_HIP: (0.58, 0.8), R_HIP: (0.42, 0.8)}.items():
        k[:, idx, 0] = x
        k[:, idx, 1] = y + dy
    return k


def test_pose_geometry_on_a_known_skeleton() -> None:
    n = int(30 * FPS)
    k = _skeleton(n, bob_period_s=1.25)
    det = np.ones(n, bool)
    f = pose_frame_features(k, det, np.arange(n) / FPS, 1.0, FPS)
    assert np.allclose(f["shoulder_span"], 0.2, atol=1e-5)
    assert np.allclose(f["elbow_angle_l"], np.pi, atol=1e-3) and np.allclose(f["elbow_angle_r"], np.pi / 2, atol=1e-3)
    assert np.allclose(f["wrist_height_l"], -1.5, atol=1e-3) and np.allclose(f["wrist_height_r"], -0.75, atol=1e-3)
    assert np.allclose(f["torso_tilt"], 0, atol=1e-3) and np.allclose(f["shoulder_roll"], 0, atol=1e-3)
    v = pose_segment_vectors(f, _segments([0, n]))[0]
    dims = [d for d, _ in POSE_VECTOR_DIMS]
    assert v[dims.index("coverage")] == 1.0
    assert abs(v[dims.index("bob_period_s")] - 1.25) / 1.25 < 0.1
    assert v[dims.index("bob_strength")] > 0.3
    # invisible keypoints are undefined for that frame, not zeros
    k2 = k.copy()
    k2[::2, L_WR, 3] = 0.1
    f2 = pose_frame_features(k2, det, np.arange(n) / FPS, 1.0, FPS)
    assert np.isnan(f2["elbow_angle_l"][::2]).all() and np.isfinite(f2["elbow_angle_l"][1::2]).all()
    # partly absent pose: coverage in the vector, still finite
    det2 = det.copy()
    det2[: n // 2] = False
    f3 = pose_frame_features(np.where(det2[:, None, None], k, np.nan), det2, np.arange(n) / FPS, 1.0, FPS)
    v3 = pose_segment_vectors(f3, _segments([0, n // 2, n]))
    assert np.all(np.isfinite(v3)) and v3[0, 0] == 0 and v3[1, 0] == 1


def test_chunked_parallel_runs_do_not_depend_on_the_worker_count(cups, blocks_hands, blocks, models) -> None:
    fr, ts = cups
    one = detect_pose(fr, ts, models["pose"], chunk_frames=20, workers=1)
    two = detect_pose(fr.__getitem__, ts, models["pose"], chunk_frames=20, workers=2)  # a read(i) callable
    np.testing.assert_array_equal(one.detected, two.detected)
    np.testing.assert_array_equal(one.keypoints, two.keypoints)
    streamed = detect_pose(iter(fr), ts, models["pose"])  # one stream = one chunk
    whole = detect_pose(fr, ts, models["pose"], chunk_frames=0)
    np.testing.assert_array_equal(streamed.keypoints, whole.keypoints)
    with pytest.raises(ValueError, match="timestamps"):
        detect_pose(fr[:3], ts, models["pose"])
    bfr, _ = blocks
    base = tracks_from_detections(blocks_hands)
    a = propagate_csrt(base, bfr.__getitem__, 25, workers=1)
    b = propagate_csrt(base, bfr.__getitem__, 25, workers=3)
    np.testing.assert_array_equal(a.source, b.source)
    np.testing.assert_array_equal(a.boxes, b.boxes)


def test_video_timestamps_strictly_increase() -> None:
    ms = video_timestamps_ms(np.array([0.0, 0.2, 0.2, 0.2004, 0.6]))
    assert ms.dtype == np.int64 and np.all(np.diff(ms) > 0) and ms[0] == 0 and ms[-1] == 600


# ---------------------------------------------------------------- hands


def test_hands_on_a_real_clip_shapes_and_determinism(blocks, blocks_hands, models) -> None:
    fr, ts = blocks
    again = detect_hands(fr, ts, models["hand"], num_hands=2)
    assert len(blocks_hands) == len(fr)
    assert 0 < blocks_hands.coverage < 1  # 03_blocks: hands enter after the first frames
    for hs, hs2 in zip(blocks_hands.hands, again.hands):
        assert len(hs) == len(hs2) and len(hs) <= 2
        for h, h2 in zip(hs, hs2):
            assert h.label in ("Left", "Right") and 0 <= h.score <= 1
            assert h.keypoints.shape == (21, 3) and h.keypoints.dtype == np.float32
            assert h.box.shape == (4,) and h.box[0] <= h.box[2] and h.box[1] <= h.box[3]
            np.testing.assert_array_equal(h.keypoints, h2.keypoints)
    t = tracks_from_detections(blocks_hands)
    assert t.boxes.shape == (len(fr), 2, 4) and t.source.shape == (len(fr), 2)
    assert t.keypoints.shape == (len(fr), 2, 21, 3) and t.coverage == pytest.approx(blocks_hands.coverage)
    op = hand_openness(t.keypoints, fr.shape[2] / fr.shape[1])
    assert op.shape == (len(fr), 2) and np.all(np.isfinite(op[t.source == DETECTED]))


def test_csrt_lifts_coverage_on_a_real_clip_and_never_lowers_it(blocks, blocks_hands) -> None:
    fr, _ = blocks
    base = tracks_from_detections(blocks_hands)
    out = propagate_csrt(base, fr.__getitem__, max_gap_frames=25)
    again = propagate_csrt(base, fr.__getitem__, max_gap_frames=25)
    assert out.coverage > base.coverage  # hands detected intermittently on 03_blocks: CSRT fills the gaps
    assert 0 <= base.coverage <= out.coverage <= 1
    np.testing.assert_array_equal(out.boxes, again.boxes)  # deterministic
    # detections are untouched; tracked boxes appear only where nothing was detected for that slot
    det = base.source == DETECTED
    assert np.all(out.source[det] == DETECTED) and np.array_equal(out.boxes[det], base.boxes[det])
    assert np.all(base.source[out.source == TRACKED] == ABSENT)
    assert np.all(np.isfinite(out.boxes[out.source != ABSENT])) and np.all(np.isnan(out.boxes[out.source == ABSENT]))
    assert set(out.state) <= {"detected", "tracked", "absent"} and "tracked" in set(out.state)
    assert out.stats["updates"] > 0
    for gap in (0, 1, 3):
        g = propagate_csrt(base, fr.__getitem__, max_gap_frames=gap)
        assert g.coverage >= base.coverage
        if gap == 0:
            np.testing.assert_array_equal(g.source, base.source)
        # no tracked frame is further than `gap` frames from a detection of its slot
        for s in range(2):
            d = np.flatnonzero(base.source[:, s] == DETECTED)
            for i in np.flatnonzero(g.source[:, s] == TRACKED):
                assert np.abs(d - i).min() <= gap


def test_csrt_boxes_agree_with_held_out_detections(cups, blocks, models) -> None:
    ious, recovered, held_n = [], 0, 0
    for fr, ts in (cups, blocks):
        base = tracks_from_detections(detect_hands(fr, ts, models["hand"], num_hands=2))
        held = base.copy()
        hidden = []
        for s in range(2):
            d = base.source[:, s] == DETECTED
            for i in range(2, len(fr) - 2, 4):  # hide 2 of every 4 frames where the slot is detected around them
                if d[i - 1] and d[i] and d[i + 1] and d[i + 2]:
                    for j in (i, i + 1):
                        hidden.append((j, s, base.boxes[j, s].copy()))
                        held.source[j, s] = ABSENT
                        held.boxes[j, s] = np.nan
        out = propagate_csrt(held, fr.__getitem__, max_gap_frames=25)
        for j, s, box in hidden:
            held_n += 1
            if out.source[j, s] == TRACKED:
                recovered += 1
                ious.append(iou(out.boxes[j, s], box))
    assert held_n >= 10
    assert recovered / held_n >= 0.8, (recovered, held_n)
    assert np.median(ious) >= 0.45, np.round(ious, 2)


def _square_scene(n: int, speed: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """A textured square on a textured background moving right by `speed` px per frame (leaves the frame)."""
    rng = np.random.default_rng(0)
    h, w, size = 180, 320, 40
    bg = cv2.resize(rng.integers(60, 120, (18, 32, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    patch = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    frames, boxes = [], []
    for i in range(n):
        img = bg.copy()
        x = int(40 + speed * i)
        x0, x1 = max(0, x), min(w, x + size)
        if x1 > x0:
            img[70 : 70 + size, x0:x1] = patch[:, x0 - x : x1 - x]
        frames.append(img)
        boxes.append(np.array([x / w, 70 / h, (x + size) / w, (70 + size) / h], np.float32))
    return np.stack(frames), boxes


def test_csrt_follows_a_moving_object_and_stops_when_it_leaves_the_frame() -> None:
    fr, truth = _square_scene(30, speed=12.0)
    det = HandFrames([[HandDetection("Left", 0.9, np.zeros((21, 3), np.float32), truth[0])]] + [[] for _ in fr[1:]])
    out = propagate_csrt(tracks_from_detections(det), fr.__getitem__, max_gap_frames=40)
    tracked = np.flatnonzero(out.source[:, 0] == TRACKED)
    assert len(tracked) >= 15 and tracked[0] == 1 and np.all(np.diff(tracked) == 1)
    assert np.median([iou(out.boxes[i, 0], truth[i]) for i in tracked[:15]]) > 0.5
    # the square is fully outside from frame 24 on (x >= 320): the tracker must have stopped by then
    assert tracked[-1] < 24 and np.all(out.source[24:, 0] == ABSENT)
    assert out.source[:, 1].max() == ABSENT  # the other slot had no anchor: nothing invented


def test_csrt_stops_when_it_meets_another_detection() -> None:
    fr, truth = _square_scene(12, speed=4.0)
    hands = [[] for _ in fr]
    hands[0] = [HandDetection("Left", 0.9, np.zeros((21, 3), np.float32), truth[0])]
    # the same object is detected as the other hand at frame 6 (a handedness flip): left must not run into it
    hands[6] = [HandDetection("Right", 0.9, np.zeros((21, 3), np.float32), truth[6])]
    out = propagate_csrt(tracks_from_detections(HandFrames(hands)), fr.__getitem__, max_gap_frames=20)
    left = np.flatnonzero(out.source[:, 0] == TRACKED)
    assert len(left) and left.max() < 6
    assert out.stats.get("met_detection", 0) >= 1


def test_hand_segment_vectors_fixed_length_and_nan_free(blocks, blocks_hands) -> None:
    fr, ts = blocks
    base = tracks_from_detections(blocks_hands)
    out = propagate_csrt(base, fr.__getitem__, max_gap_frames=25)
    op = hand_openness(out.keypoints, fr.shape[2] / fr.shape[1])
    segs = _segments([0, 5, 20, len(fr)])
    v = hand_segment_vectors(out.boxes, out.source, op, ts, segs)
    assert v.shape == (3, HAND_DIM) and v.dtype == np.float32 and np.all(np.isfinite(v))
    assert np.all(v[:, 1] >= v[:, 0]) and np.all((v[:, :5] >= 0) & (v[:, :5] <= 1))
    empty = hand_segment_vectors(np.full((10, 2, 4), np.nan), np.zeros((10, 2), np.int8), np.full((10, 2), np.nan),
                                 np.arange(10) / FPS, _segments([0, 10, 10]))
    assert empty.shape == (2, HAND_DIM) and np.all(np.isfinite(empty)) and np.all(empty[:, :5] == 0)


# ---------------------------------------------------------------- models


def test_missing_or_corrupt_model_names_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDCLUST_MODEL_CACHE", str(tmp_path / "empty"))
    frames, ts = np.zeros((2, 32, 32, 3), np.uint8), np.array([0.0, 0.2])
    with pytest.raises(ModelUnavailableError) as e:
        detect_pose(frames, ts, tmp_path / "nope.task")
    assert "pose_landmarker_full" in str(e.value) and "fetch-models" in str(e.value)
    bad = tmp_path / "hand_landmarker.task"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelUnavailableError) as e:
        detect_hands(frames, ts, bad)
    assert "hand_landmarker" in str(e.value) and "sha256" in str(e.value)
