"""Where the repetition is (science/localize) and counting there (counting.track_located)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handclust_assets.science.counting import (
    CountingParams,
    count_spans,
    track_located,
    track_periods,
    track_score,
)
from handclust_assets.science.localize import (
    FULL_FRAME,
    BoxScore,
    best_box,
    candidate_boxes,
    change_map,
    crop_box,
    score_boxes,
)
from handclust_assets.science.rhythm_signals import motion_signals, steady_thumbnails


def _grid_energy(img: np.ndarray, rows: int = 4, cols: int = 8) -> np.ndarray:
    """Mean |frame difference| per cell of a rows x cols grid (as the motion track's energy)."""
    diff = np.abs(np.diff(img.astype(np.float64), axis=0, prepend=img[:1].astype(np.float64)))
    h, w = img.shape[1:]
    ys, xs = np.linspace(0, h, rows + 1).astype(int), np.linspace(0, w, cols + 1).astype(int)
    cells = [diff[:, ys[r]:ys[r + 1], xs[c]:xs[c + 1]].mean(axis=(1, 2)) for r in range(rows) for c in range(cols)]
    return np.stack(cells, axis=1).reshape(len(img), rows, cols).astype(np.float16)


def _scene(seconds: float = 24.0, fps: float = 30.0, period: float = 0.8, seed: int = 0
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """A 32 x 18 thumbnail stream: a bright blob swinging to and fro (one turn per `period`) in the bottom-right
    corner, over a scene whose every pixel wanders aperiodically (a smoothed random walk, larger than the blob's
    contrast). Returns (t_s, intensity, frame-difference energy on an 8 x 4 grid, true count)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    t = np.arange(n) / fps
    walk = np.cumsum(rng.normal(0, 1.0, (n, 18, 32)), axis=0)
    from scipy.ndimage import gaussian_filter

    walk = gaussian_filter(walk, (8, 1.5, 1.5))
    walk = 40 * (walk - walk.mean()) / walk.std()
    img = 120 + walk
    x = 24 + 4 * np.sin(2 * np.pi * t / period)
    yy, xx = np.mgrid[0:18, 0:32]
    for i in range(n):
        img[i] += 70 * np.exp(-((xx - x[i]) ** 2 + (yy - 13) ** 2) / 4.0)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return t, img, _grid_energy(img), int(seconds / period)


def test_the_best_box_holds_the_repetition_and_counting_there_is_right() -> None:
    t, img, energy, truth = _scene()
    found = best_box(t, img, energy)
    top, left, side = found.box
    assert found.box != FULL_FRAME and 0 < found.score <= 1
    assert top <= 13 / 18 <= top + side and left <= 24 / 32 <= left + side  # the blob's swing centre is inside
    duration = float(t[-1] + t[1])
    still = np.zeros((len(t), 2))  # the motion track's camera translation: a camera that does not move
    track, box = track_located(t, energy, img, still, energy, duration)
    p = CountingParams()  # what the counter searches: global motion and exposure out (and its change bar, if any)
    steady = steady_thumbnails(img, t, p.unsway_s, photometric=p.unsway_photometric)
    assert box == best_box(t, steady, energy, min_change=p.box_min_change).box
    top, left, side = box
    assert top <= 13 / 18 <= top + side and left <= 24 / 32 <= left + side
    full = track_periods(motion_signals(t, energy, steady, None, energy), duration)
    assert track_score(track) > track_score(full)
    count = count_spans(track).row(0, named=True)["count_estimate"]
    assert abs(count - truth) <= max(1.5, 0.1 * truth)


def _faint_ripple_and_actor(seed: int, seconds: float = 20.0, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """A still textured scene (32 x 18) with what the sway removal leaves of a camera's slow sway: a faint (1 grey
    level), perfectly periodic ripple (2.4 s) in the top-left quarter; and an actor, a bright blob swinging to and
    fro in the bottom right with a jittered period (0.8 s +- 15 %)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    t = np.arange(n) / fps
    bg = gaussian_filter(rng.uniform(0, 255, (18, 32)), 1.0)
    bg = (bg - bg.mean()) * 3 + 120
    img = np.repeat(bg[None], n, axis=0)
    img[:, :9, :16] += np.sin(2 * np.pi * t / 2.4)[:, None, None] * np.sign(bg[None, :9, :16] - bg[:9, :16].mean())
    periods = 0.8 * (1 + 0.15 * rng.standard_normal(int(seconds / 0.5) + 2))
    phase = np.interp(t, np.cumsum(np.r_[0.0, periods])[:-1], np.arange(len(periods)))
    x = 24 + 4 * np.sin(2 * np.pi * phase)
    yy, xx = np.mgrid[0:18, 0:32]
    for i in range(n):
        img[i] += 70 * np.exp(-((xx - x[i]) ** 2 + (yy - 13) ** 2) / 4.0)
    img += rng.normal(0, 0.5, img.shape)
    return t, np.clip(img, 0, 255)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_box_that_barely_changes_is_not_a_candidate(seed: int) -> None:
    # the box search is scale-free (each box's channels to unit variance), so a still corner where only a faint,
    # strictly periodic leftover of the sway moves outscores the actor, whose strokes vary; with `min_change` a
    # box must change at least as much as the picture does on average, and the actor's box wins
    t, img = _faint_ripple_and_actor(seed)
    top, left, side = best_box(t, img, None).box
    assert top + side <= 0.5 + 1e-9  # the faint top corner, not the actor (row 13 of 18)
    cmap = change_map(t, img)
    found = best_box(t, img, None, min_change=1.0)
    assert crop_box(cmap[None], found.box).mean() >= cmap.mean()
    top, left, side = found.box
    assert top <= 13 / 18 <= top + side and left <= 24 / 32 <= left + side
    # nothing changes more than the average everywhere: no box passes a bar above the maximum, and the whole frame
    # stays
    assert best_box(t, img, None, min_change=100.0) == BoxScore(FULL_FRAME, 0.0)


@pytest.mark.parametrize("amplitude", [1.0, 4.0, 10.0])
@pytest.mark.parametrize("with_camera", [False, True])
def test_a_whole_frame_repetition_stays_on_the_whole_frame_when_no_box_is_more_periodic(amplitude: float,
                                                                                        with_camera: bool) -> None:
    # the whole picture slides to and fro (a camera that repeats, e.g. a head bobbing with each step): with the
    # camera's translation in the track, the global motion leaves the appearance (`steady_thumbnails`) and votes
    # through camera_motion instead; without one, the thumbnails are read as they are. Counted right either way
    n, fps = 480, 30.0
    t = np.arange(n) / fps
    x = 16 + amplitude * np.sin(2 * np.pi * t / 1.0)
    xx = np.arange(32)[None, None, :]
    img = np.clip(120 + 80 * np.cos(2 * np.pi * (xx - x[:, None, None]) / 32) + np.zeros((n, 18, 32)), 0, 255)
    img = img.astype(np.uint8)
    energy = _grid_energy(img)
    camera = None
    if with_camera:  # as the motion track measures it: px of the 64-px image per frame, none under 0.25 px
        camera = np.zeros((n, 2))
        camera[1:, 0] = 2 * np.diff(x)
        camera[np.abs(camera[:, 0]) < 0.25] = 0
    track, box = track_located(t, energy, img, camera, energy, n / fps)
    assert ("camera_motion" in track.available) == with_camera
    count = count_spans(track).row(0, named=True)["count_estimate"]
    assert abs(count - 16) <= 1.5  # counted right whichever region won


def test_boxes_cover_the_frame_and_crops_are_never_empty() -> None:
    boxes = candidate_boxes()
    assert len(boxes) == 18 and len(set(boxes)) == 18
    a = np.zeros((3, 5, 7))
    for b in [*boxes, FULL_FRAME]:
        c = crop_box(a, b)
        assert c.shape[0] == 3 and c.shape[1] >= 1 and c.shape[2] >= 1
    assert crop_box(a, FULL_FRAME).shape == a.shape


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 120), h=st.integers(1, 18), w=st.integers(1, 32), kind=st.sampled_from(
    ["constant", "tiny", "noise", "nan_energy"]), seed=st.integers(0, 10_000))
def test_box_scores_are_finite_and_bounded_on_hostile_tracks(n: int, h: int, w: int, kind: str, seed: int) -> None:
    """Real tracks are constant (a lens cap), tiny (a 5-frame clip, a 2-px thumbnail) or broken (NaN energy)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 25.0
    img = np.full((n, h, w), 128, np.uint8) if kind == "constant" else rng.integers(0, 256, (n, h, w), np.uint8)
    if kind == "tiny":
        img = (img // 128).astype(np.uint8)
    energy = rng.random((n, max(1, h // 4), max(1, w // 4))).astype(np.float16)
    if kind == "nan_energy":
        energy[::3] = np.nan
    scores = score_boxes(t, img, energy, candidate_boxes())
    assert len(scores) == 18
    assert all(np.isfinite(s.score) and 0.0 <= s.score <= 1.0 for s in scores)
    duration = float(n / 25.0)
    track, box = track_located(t, energy, img, None, energy, duration)
    assert box in [*candidate_boxes(), FULL_FRAME]
    assert len(track.t) == max(0, int(np.floor(duration / 0.1)))


def test_the_box_search_uses_the_counters_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """`track_located` hands the box search every setting the two share (grid rate, period band, window rule), so a
    user's `CountingParams` reaches both; the real search runs, its keywords are recorded on the way in."""
    import dataclasses
    import inspect

    from handclust_assets.science import counting

    seen: list[dict] = []

    def recording_best_box(*args: object, **kw: object) -> object:
        seen.append(kw)
        return best_box(*args, **kw)

    monkeypatch.setattr(counting, "best_box", recording_best_box)
    t, img, energy, _ = _scene(seconds=12.0)
    p = CountingParams(fs=16.0, min_period_s=0.3, max_period_s=5.0, min_cycles=2.5, n_cycles=3.5,
                       min_window_s=2.0, max_window_s=9.0, box_min_change=0.7)
    track_located(t, energy, img, np.zeros((len(t), 2)), energy, float(t[-1] + t[1]), p)
    shared = set(inspect.signature(score_boxes).parameters) & {f.name for f in dataclasses.fields(CountingParams)}
    assert {"fs", "max_period_s", "n_cycles", "max_window_s"} <= shared
    assert len(seen) == 1 and {k: seen[0].get(k) for k in shared} == {k: getattr(p, k) for k in shared}
    assert seen[0].get("min_change") == 0.7  # the change bar, under the search's own name
