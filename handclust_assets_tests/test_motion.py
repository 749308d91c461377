"""Flow, flow rhythm and ego-motion on frames with known motion."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from handclust_assets.science.egomotion import egomotion
from handclust_assets.science.flow import compute_flow
from handclust_assets.science.rhythm import autocorr_period, flow_rhythm

FPS = 5.0


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 6, w // 6, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _oscillating_object(period_s: float, seconds: float = 60.0, seed: int = 0) -> np.ndarray:
    """Static textured background with a textured patch moving with an asymmetric periodic stroke."""
    h, w = 180, 320
    bg, patch = _texture(h, w, seed), _texture(40, 60, seed + 1)
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(int(seconds * FPS)):
        ph = 2 * np.pi * (i / FPS) / period_s
        x = int(round(130 + 12 * (np.sin(ph) + 0.45 * np.sin(2 * ph))))
        img = bg.copy()
        img[70:110, x : x + 60] = patch
        noise = rng.integers(0, 4, img.shape, dtype=np.uint8)
        frames.append(cv2.add(img, noise))
    return np.stack(frames)


def test_flow_recovers_translation_direction_and_size() -> None:
    big = _texture(200, 400)
    frames = np.stack([big[20:180, 40 + 4 * i : 40 + 4 * i + 320] for i in range(6)])  # scene moves left 4 px
    res = compute_flow(frames)
    assert res.mag.shape == (6,) and res.dir_hist.shape == (6, 8) and res.field.shape == (6, 18, 32, 2)
    assert res.mag[0] == 0 and np.allclose(res.dir_hist[1:].sum(1), 1, atol=1e-5)
    assert np.allclose(res.mag[1:], 4 / 320, rtol=0.15)
    fx = res.field[1:, 3:-3, 3:-3, 0].astype(np.float32)
    assert np.median(fx) < 0 and abs(np.median(res.field[1:, 3:-3, 3:-3, 1])) < 0.2 * abs(np.median(fx))
    assert res.dir_hist[1:, 4].mean() > 0.8  # direction bin of pi (leftwards)


@pytest.mark.parametrize("period", [1.5, 2.5, 4.0])
def test_flow_rhythm_recovers_known_period(period: float) -> None:
    frames = _oscillating_object(period)
    mag = compute_flow(frames).mag
    windows, per_frame = flow_rhythm(mag, FPS)
    fft_period = float(np.nanmedian(windows.dominant_period_s))
    acf_period, _ = autocorr_period(mag, FPS, 0.5, 6.0)
    assert abs(fft_period - period) / period < 0.10, fft_period
    # The autocorrelation sees the sampled sequence's own period: a 1.5 s cycle is 7.5 samples at 5 fps, so
    # consecutive cycles are sampled at different phases and the sequence repeats exactly every 2 cycles.
    assert min(abs(acf_period - k * period) / (k * period) for k in (1, 2)) < 0.10, acf_period
    assert per_frame.dominant_period_s.shape == mag.shape
    assert np.all((per_frame.periodicity_strength >= 0) & (per_frame.periodicity_strength <= 1))


def test_rhythm_edge_cases() -> None:
    w, f = flow_rhythm(np.ones(100), FPS)
    assert np.all(np.isnan(w.dominant_period_s)) and np.all(w.periodicity_strength == 0)
    w, f = flow_rhythm(np.sin(np.arange(20) / FPS * 2 * np.pi / 1.0), FPS)  # shorter than the window
    assert len(w.t_center_s) == 1 and abs(w.dominant_period_s[0] - 1.0) < 0.15
    assert np.isnan(autocorr_period(np.zeros(50), FPS)[0])


def test_egomotion_separates_head_motion_from_hand_motion() -> None:
    big = _texture(260, 520, seed=3)
    moving, static = [], []
    patch = _texture(40, 40, seed=9)
    bg = big[40:220, 60:380]
    for i in range(25):
        dx, dy = int(6 * i), int(8 * np.sin(i))
        moving.append(big[40 + dy + 10 : 220 + dy + 10, 60 + dx % 120 : 380 + dx % 120])
        img = bg.copy()
        x = int(100 + 40 * np.sin(2 * np.pi * i / 6))
        img[60:100, x : x + 40] = patch
        static.append(img)
    em = egomotion(compute_flow(np.stack(moving)).field)
    es = egomotion(compute_flow(np.stack(static)).field)
    assert em.camera_mag[1:].mean() > 5 * es.camera_mag[1:].mean()
    assert np.median(es.ratio[1:]) > 5 * np.median(em.ratio[1:])
    assert em.affine.shape == (25, 2, 3) and np.all((em.inlier_frac >= 0) & (em.inlier_frac <= 1))
    assert np.array_equal(egomotion(compute_flow(np.stack(moving)).field).camera_mag, em.camera_mag)


def test_flow_on_real_clip(shared_clips: Path) -> None:
    from handclust_assets.video.frame_cache import sample_frames

    frames, _ = sample_frames(shared_clips / "02_cups.mp4", 5, 320)
    r = compute_flow(frames)
    assert np.isfinite(r.mag).all() and r.mag[1:].mean() > 0 and np.isfinite(r.field.astype(np.float32)).all()
    e = egomotion(r.field)
    assert np.isfinite(e.camera_mag).all() and np.isfinite(e.ratio).all()
