"""A change of light is not motion: the part of the motion energy that a flickering lamp, a rolling band or an
exposure swing explains is taken out before counting (`rhythm_signals.without_flicker`, `CountingParams.deflicker`).
The motion tracks are made by the real `MotionTrackBuilder` from drawn frames, and end to end from real footage."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handclust_assets.lib.rep_eval import count_motion_track
from handclust_assets.science.counting import CountingParams
from handclust_assets.science.rhythm_signals import cell_means, photometric_change, without_flicker
from handclust_assets.video.motion_track import MotionTrack, MotionTrackBuilder, motion_track_from_video
from handclust_assets.video.writer import write_video
from handclust_assets_tests.support import clip_row

W, H, FPS = 64, 36, 30.0


def texture(seed: int = 0) -> np.ndarray:
    """A lit scene with detail (grey levels 60-190), as the motion image (64 x 36) sees one."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(60, 190, (9, 16)).astype(np.float32)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC) + rng.normal(0, 6, (H, W)).astype(np.float32)


def track_of(frames: list[np.ndarray]) -> MotionTrack:
    b = MotionTrackBuilder(crop_bars=False)
    for i, f in enumerate(frames):
        b.add_gray(np.clip(f, 0, 255).astype(np.uint8), i / FPS)
    return b.result()


def light_left(track: MotionTrack) -> float:
    """The share of the motion energy left once the light's part is out (frames after the first)."""
    e = np.asarray(track.energy, np.float32)[1:]
    return float(without_flicker(track.energy, track.intensity)[1:].sum() / max(e.sum(), 1e-9))


def test_a_flickering_lamp_leaves_the_motion_energy() -> None:
    scene = texture()
    gain = 1 + 0.12 * np.sin(2 * np.pi * 1.9 * np.arange(90) / FPS)
    assert light_left(track_of([scene * g for g in gain])) < 0.1


@pytest.mark.parametrize("bands", [0.8, 3.0])
def test_rolling_bands_of_light_leave_the_motion_energy(bands: float) -> None:
    """A lamp on mains seen by a rolling shutter: bright bands (`bands` to the picture's height) moving down."""
    scene = texture(1)
    y = np.linspace(0, 1, H)[:, None]
    frames = [scene * (1 + 0.12 * np.sin(2 * np.pi * (0.9 * i / FPS - bands * y))) for i in range(90)]
    assert light_left(track_of(frames)) < 0.3


def test_an_exposure_swing_leaves_the_motion_energy_and_a_fade_from_black_too() -> None:
    scene = texture(2)
    swing = [scene * (0.7 + 0.6 * i / 89) for i in range(90)]
    fade = [scene * (i / 89) for i in range(90)]
    assert light_left(track_of(swing)) < 0.1
    assert light_left(track_of(fade)) < 0.2  # its first frames are darker than the cells the gain is read in


def test_a_moving_hand_keeps_its_motion_energy() -> None:
    """A dark hand sweeping to and fro over a lit scene, a small bright tool entering one cell: no band of cells
    changes together, so nothing is taken."""
    scene = texture(3)
    frames = []
    for i in range(90):
        f = scene.copy()
        x = int(8 + 40 * (0.5 - 0.5 * np.cos(2 * np.pi * i / 30)))
        f[14:30, x:x + 12] = 35.0  # the hand
        if 40 <= i < 60:
            f[2:8, 52:60] = 240.0  # the tool, in one cell of the top row
        frames.append(f)
    assert light_left(track_of(frames)) > 0.97


def test_a_hand_darkening_a_whole_row_of_cells_keeps_most_of_its_energy() -> None:
    """A forearm laid across the picture darkens every cell of a row at once: the gain they share is taken, which
    is no more than the least change any of them has (the rows above and below keep theirs)."""
    scene = texture(4)
    frames = []
    for i in range(60):
        f = scene.copy()
        reach = int(W * min(1.0, max(0.0, (i - 10) / 20)))
        f[18:27, :reach] = 30.0
        frames.append(f)
    assert light_left(track_of(frames)) > 0.6


def test_cell_means_are_the_area_averages_the_energy_cells_are_made_of() -> None:
    rng = np.random.default_rng(5)
    imgs = rng.uniform(0, 255, (3, 18, 32)).astype(np.float32)
    got = cell_means(imgs, (4, 8))
    for i in range(3):
        np.testing.assert_allclose(got[i], cv2.resize(imgs[i], (8, 4), interpolation=cv2.INTER_AREA), atol=1e-3)
    np.testing.assert_allclose(cell_means(imgs, (2, 8)), imgs.reshape(3, 2, 9, 8, 4).mean(axis=(2, 4)), atol=1e-3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 12), h=st.integers(1, 20), w=st.integers(1, 40), rows=st.integers(1, 5),
       cols=st.integers(1, 9), kind=st.sampled_from(["random", "constant", "black", "white", "nan_energy"]),
       seed=st.integers(0, 2**16))
def test_the_light_part_is_never_more_than_the_energy_and_keeps_its_shape(n: int, h: int, w: int, rows: int,
                                                                         cols: int, kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = {"random": rng.integers(0, 256, (n, h, w)), "constant": np.full((n, h, w), 117),
           "black": np.zeros((n, h, w)), "white": np.full((n, h, w), 255),
           "nan_energy": rng.integers(0, 256, (n, h, w))}[kind].astype(np.uint8)
    energy = rng.uniform(0, 20, (n, rows, cols)).astype(np.float16)
    if kind == "nan_energy":
        energy[rng.uniform(size=energy.shape) < 0.3] = np.nan
    light = photometric_change(img, (rows, cols))
    assert light.shape == (n, rows, cols) and np.all(np.isfinite(light)) and np.all(light >= 0)
    out = without_flicker(energy, img)
    e = energy.astype(np.float32)
    assert out.shape == energy.shape
    assert np.array_equal(np.isnan(out), np.isnan(e))
    ok = np.isfinite(e)
    assert np.all(out[ok] >= 0) and np.all(out[ok] <= e[ok] + 1e-6)
    if kind in ("constant", "black", "white"):  # nothing changes, or every cell is too dark to read
        np.testing.assert_array_equal(out[ok], e[ok])


def test_without_thumbnails_of_the_same_frames_the_energy_is_left_as_it_is() -> None:
    e = np.ones((5, 2, 3), np.float16)
    assert np.array_equal(without_flicker(e, None), e.astype(np.float32))
    assert np.array_equal(without_flicker(e, np.zeros((4, 8, 8), np.uint8)), e.astype(np.float32))
    assert np.array_equal(without_flicker(e, np.zeros((5, 2, 3), np.uint8)[..., 0]), e.astype(np.float32))


def test_real_cycles_under_a_flickering_lamp_are_counted_as_the_cycles(shared_clips: Path, tmp_path: Path) -> None:
    """Real footage (04_coffee, 8 cycles out and back over 12 s) under a lamp flickering at 1.9 Hz (8 % of the
    light): the lamp's beat, two humps per flicker in every cell, was counted in place of the cycles (47.8 for 8
    with `deflicker` off, measured); with the light's part out of the energy, the cycles are counted."""
    from handclust_assets.lib.synthetic_reps import RealCycleSpec, cycle_real_clip

    spec = RealCycleSpec(name="coffee", src="04_coffee", start_s=2.0, piece_s=0.6, n_cycles=8, period_start_s=1.5,
                         period_end_s=1.65, rest_prob=0.0, shake_px=1.0, zoom=0.0, flicker=0.0)
    path, truth = cycle_real_clip(spec, shared_clips / "04_coffee.mp4", tmp_path)
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    lamp = 1 + 0.08 * np.sin(2 * np.pi * 1.9 * np.arange(len(frames)) / FPS)
    lit = write_video(tmp_path / "lit.mp4", (np.clip(f * g, 0, 255).astype(np.uint8) for f, g in zip(frames, lamp)),
                      FPS)
    track = motion_track_from_video(lit)
    counts = {}
    for on in (True, False):
        row = clip_row(count_motion_track(track, params=CountingParams(count_to_edges=True, deflicker=on)))
        counts[on] = row["count"] if row["count"] is not None else row["count_estimate"]
    assert CountingParams().deflicker
    assert abs(round(counts[True]) - truth.count) <= 1, counts
    assert abs(round(counts[False]) - truth.count) > 1, counts  # what the lamp did before
