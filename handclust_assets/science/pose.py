"""Body pose: MediaPipe Pose (33 keypoints) per sampled frame -> per-frame geometry -> 18-D segment summary.

Coordinates. MediaPipe gives x, y normalised by the image width and height. Geometry here works in
"image heights": x * aspect (aspect = width / height), y, so distances do not depend on the frame's shape.
A keypoint counts as seen when its visibility is >= `VIS_MIN`; a quantity that needs an unseen keypoint is NaN
for that frame.

Per-frame features (`pose_frame_features`, NaN where undefined):

| feature          | meaning                                                                           |
| ---------------- | --------------------------------------------------------------------------------- |
| shoulder_span    | distance between the shoulders (image heights)                                    |
| elbow_angle_l/r  | angle at the elbow between upper arm and forearm (radians, pi = straight arm)      |
| wrist_height_l/r | (shoulder-line y - wrist y) / shoulder span: > 0 wrist above the shoulders         |
| torso_tilt       | angle of hip-midpoint -> shoulder-midpoint from image vertical (radians, + = right) |
| shoulder_roll    | angle of the left->right shoulder line from image horizontal (radians)             |
| mid_y            | y of the shoulder + hip midpoint (MediaPipe's estimate, also when occluded)        |
| bob_y            | mid_y minus its 4-s moving average (the vertical body bob; gaps interpolated)      |
| bob_period_s     | dominant period of bob_y (12-s sliding FFT; NaN where < 50 % of the window has a pose) |
| bob_strength     | periodicity strength of that window (peak / total power, 0..1)                     |
| wrist_speed_l/r  | wrist displacement between consecutive sampled frames / dt (image heights per s)   |
| hand_spread      | wrist-to-wrist distance / shoulder span                                           |
| arm_extension    | mean over arms of shoulder-to-wrist distance / shoulder span                      |
| upper_visibility | mean visibility of shoulders, elbows, wrists (0 when no pose)                      |

Segment summary (`pose_segment_vectors`, exactly `POSE_DIM` = 18 dims, NaN-free): see `POSE_VECTOR_DIMS`.
Each dimension is the NaN-mean over the segment's frames where it is defined, 0 where never defined; dim 0
(coverage) says how much of the segment had a pose, so "no body visible" is a value, not a NaN.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl
from scipy.ndimage import uniform_filter1d

from handclust_assets.science.rhythm import flow_rhythm

VIS_MIN = 0.5
NOSE, L_SH, R_SH, L_EL, R_EL, L_WR, R_WR, L_HIP, R_HIP = 0, 11, 12, 13, 14, 15, 16, 23, 24
UPPER = [L_SH, R_SH, L_EL, R_EL, L_WR, R_WR]

FRAME_FEATURES = (
    "shoulder_span", "elbow_angle_l", "elbow_angle_r", "wrist_height_l", "wrist_height_r", "torso_tilt",
    "shoulder_roll", "mid_y", "bob_y", "bob_period_s", "bob_strength", "wrist_speed_l", "wrist_speed_r",
    "hand_spread", "arm_extension", "upper_visibility",
)

# The 18 dimensions of the pose segment vector, in order, with their meaning.
POSE_VECTOR_DIMS: tuple[tuple[str, str], ...] = (
    ("coverage", "share of the segment's frames with a detected pose (0..1)"),
    ("shoulder_span", "mean shoulder distance, image heights (how close/large the body is)"),
    ("elbow_angle_l", "mean left elbow angle / pi (1 = straight arm)"),
    ("elbow_angle_r", "mean right elbow angle / pi"),
    ("elbow_motion", "mean over arms of the std of the elbow angle / pi (arm working vs still)"),
    ("wrist_height_l", "mean left wrist height above the shoulder line, in shoulder spans (clipped to +-5)"),
    ("wrist_height_r", "mean right wrist height above the shoulder line, in shoulder spans (clipped to +-5)"),
    ("torso_tilt", "mean torso tilt from vertical, radians (bending sideways)"),
    ("shoulder_roll", "mean shoulder-line roll from horizontal, radians"),
    ("bob_period_s", "median body-bob period, s (0 when aperiodic or no pose)"),
    ("bob_strength", "mean body-bob periodicity strength (0..1)"),
    ("bob_amplitude", "std of the vertical body bob / median shoulder span (clipped to 5)"),
    ("wrist_speed_l", "mean left wrist speed, image heights per s (clipped to 10)"),
    ("wrist_speed_r", "mean right wrist speed, image heights per s (clipped to 10)"),
    ("wrist_speed_p90", "90th percentile of both wrists' speed, image heights per s (clipped to 10)"),
    ("hand_spread", "mean wrist-to-wrist distance, shoulder spans (clipped to 5)"),
    ("arm_extension", "mean shoulder-to-wrist distance, shoulder spans (clipped to 5)"),
    ("upper_visibility", "mean visibility of shoulders, elbows and wrists over all frames (0..1)"),
)
POSE_DIM = len(POSE_VECTOR_DIMS)
assert POSE_DIM == 18


def _pts(kps: np.ndarray, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, 33, 2) points in image heights and (N, 33) seen-mask."""
    p = np.stack([kps[..., 0] * aspect, kps[..., 1]], axis=-1).astype(np.float64)
    vis = kps[..., 3]
    seen = np.isfinite(vis) & (np.nan_to_num(vis, nan=0.0) >= VIS_MIN)
    return p, seen


def _masked(p: np.ndarray, seen: np.ndarray, idx: int) -> np.ndarray:
    q = p[:, idx].copy()
    q[~seen[:, idx]] = np.nan
    return q


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Angle at b between b->a and b->c (radians; NaN if any point is NaN)."""
    u, v = a - b, c - b
    nu, nv = np.linalg.norm(u, axis=1), np.linalg.norm(v, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.sum(u * v, axis=1) / (nu * nv)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def _interp_nan(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    if not ok.any():
        return np.zeros_like(x)
    idx = np.arange(len(x))
    return np.interp(idx, idx[ok], x[ok])


def pose_frame_features(
    keypoints: np.ndarray,
    detected: np.ndarray,
    t_s: np.ndarray,
    aspect: float,
    fps: float,
    bob_window_s: float = 12.0,
) -> dict[str, np.ndarray]:
    """Per-frame pose geometry (see the module docstring) from (N, 33, 4) keypoints; float32 arrays, NaN where
    undefined, plus `detected` (bool)."""
    kps = np.asarray(keypoints, np.float32)
    det = np.asarray(detected, bool)
    n = len(det)
    if kps.shape != (n, 33, 4):
        raise ValueError(f"keypoints must be (N, 33, 4), got {kps.shape} for N={n}")
    t = np.asarray(t_s, np.float64)
    p, seen = _pts(kps, float(aspect))
    seen &= det[:, None]
    ls, rs, le, re = (_masked(p, seen, i) for i in (L_SH, R_SH, L_EL, R_EL))
    lw, rw, lh, rh = (_masked(p, seen, i) for i in (L_WR, R_WR, L_HIP, R_HIP))
    with np.errstate(invalid="ignore", divide="ignore"):
        span = np.linalg.norm(ls - rs, axis=1)
        span[span < 1e-4] = np.nan
        sh_mid = (ls + rs) / 2
        hip_mid = (lh + rh) / 2
        wh_l = (sh_mid[:, 1] - lw[:, 1]) / span
        wh_r = (sh_mid[:, 1] - rw[:, 1]) / span
        torso = sh_mid - hip_mid
        tilt = np.arctan2(torso[:, 0], -torso[:, 1])
        roll = np.arctan2(rs[:, 1] - ls[:, 1], rs[:, 0] - ls[:, 0])
        # MediaPipe's left shoulder is the person's left: facing the camera it is on the image right, so the
        # line points leftwards (roll near +-pi). Fold to a small angle from horizontal either way.
        roll = np.where(roll > np.pi / 2, roll - np.pi, np.where(roll < -np.pi / 2, roll + np.pi, roll))
        spread = np.linalg.norm(lw - rw, axis=1) / span
        dl, dr = np.linalg.norm(ls - lw, axis=1), np.linalg.norm(rs - rw, axis=1)
        ext = np.where(np.isfinite(dl) & np.isfinite(dr), (dl + dr) / 2, np.where(np.isfinite(dl), dl, dr)) / span
    # the body midpoint uses MediaPipe's estimates even for occluded points: a continuous series for the bob
    raw = p[:, [L_SH, R_SH, L_HIP, R_HIP], 1].mean(axis=1)
    mid_y = np.where(det, raw, np.nan)
    dt = np.diff(t, prepend=np.nan)
    dt[dt <= 0] = np.nan

    def speed(w: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(np.diff(w, axis=0, prepend=np.full((1, 2), np.nan)), axis=1)
        return d / dt

    with np.errstate(invalid="ignore", divide="ignore"):
        sp_l, sp_r = speed(lw), speed(rw)
    bob_y = np.full(n, np.nan)
    period = np.full(n, np.nan)
    strength = np.zeros(n)
    if det.sum() >= 4:
        filled = _interp_nan(mid_y)
        trend = uniform_filter1d(filled, size=max(3, int(round(4.0 * fps))), mode="nearest")
        hp = filled - trend
        bob_y = np.where(det, hp, np.nan)
        _, frames = flow_rhythm(hp, fps, window_s=bob_window_s, min_period_s=max(0.5, 2.0 / fps))
        local_cov = uniform_filter1d(det.astype(np.float64), size=max(3, int(round(bob_window_s * fps))),
                                     mode="constant")
        good = local_cov >= 0.5
        period = np.where(good, frames.dominant_period_s, np.nan)
        strength = np.where(good, frames.periodicity_strength, 0.0)
    vis = np.where(det[:, None], np.nan_to_num(kps[:, UPPER, 3], nan=0.0), 0.0).mean(axis=1)
    out = {
        "shoulder_span": span, "elbow_angle_l": _angle(ls, le, lw), "elbow_angle_r": _angle(rs, re, rw),
        "wrist_height_l": wh_l, "wrist_height_r": wh_r, "torso_tilt": tilt, "shoulder_roll": roll,
        "mid_y": mid_y, "bob_y": bob_y, "bob_period_s": period, "bob_strength": strength,
        "wrist_speed_l": sp_l, "wrist_speed_r": sp_r, "hand_spread": spread, "arm_extension": ext,
        "upper_visibility": vis,
    }
    res = {k: np.asarray(v, np.float32) for k, v in out.items()}
    res["detected"] = det
    return res


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else 0.0


def _nanstd(x: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.std()) if len(x) > 1 else 0.0


def pose_segment_vectors(feats: Mapping[str, np.ndarray], segments: pl.DataFrame) -> np.ndarray:
    """(S, 18) float32 pose summary per segment (dims in `POSE_VECTOR_DIMS`), never NaN.

    `feats` holds the per-frame arrays of `pose_frame_features` (or the same columns read back from the `pose`
    table); `segments` has `start_frame` / `end_frame` (end exclusive) indexing those frames."""
    det = np.asarray(feats["detected"], bool)
    f = {k: np.asarray(feats[k], np.float64) for k in FRAME_FEATURES}
    rows = []
    for a, b in zip(segments["start_frame"].to_list(), segments["end_frame"].to_list()):
        a, b = max(0, int(a)), min(len(det), int(b))
        if b <= a:
            rows.append(np.zeros(POSE_DIM))
            continue
        s = {k: v[a:b] for k, v in f.items()}
        span_med = np.nanmedian(s["shoulder_span"]) if np.isfinite(s["shoulder_span"]).any() else np.nan
        per = s["bob_period_s"][np.isfinite(s["bob_period_s"])]
        speeds = np.concatenate([s["wrist_speed_l"], s["wrist_speed_r"]])
        speeds = speeds[np.isfinite(speeds)]
        bob = s["bob_y"][np.isfinite(s["bob_y"])]
        amp = float(bob.std() / span_med) if len(bob) > 1 and np.isfinite(span_med) and span_med > 0 else 0.0
        rows.append([
            float(det[a:b].mean()),
            _nanmean(s["shoulder_span"]),
            _nanmean(s["elbow_angle_l"]) / np.pi,
            _nanmean(s["elbow_angle_r"]) / np.pi,
            (_nanstd(s["elbow_angle_l"]) + _nanstd(s["elbow_angle_r"])) / (2 * np.pi),
            np.clip(_nanmean(s["wrist_height_l"]), -5, 5),
            np.clip(_nanmean(s["wrist_height_r"]), -5, 5),
            _nanmean(s["torso_tilt"]),
            _nanmean(s["shoulder_roll"]),
            float(np.median(per)) if len(per) else 0.0,
            _nanmean(s["bob_strength"]),
            min(amp, 5.0),
            min(_nanmean(s["wrist_speed_l"]), 10.0),
            min(_nanmean(s["wrist_speed_r"]), 10.0),
            min(float(np.percentile(speeds, 90)), 10.0) if len(speeds) else 0.0,
            np.clip(_nanmean(s["hand_spread"]), 0, 5),
            np.clip(_nanmean(s["arm_extension"]), 0, 5),
            _nanmean(s["upper_visibility"]),
        ])
    out = np.nan_to_num(np.asarray(rows, np.float64).reshape(-1, POSE_DIM), nan=0.0, posinf=0.0, neginf=0.0)
    return out.astype(np.float32)
