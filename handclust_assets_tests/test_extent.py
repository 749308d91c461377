"""The repetition extent (science/extent.py): where a periodic stretch starts and ends, from one-cycle similarity
at its tracked period. Real numpy signals; no mocks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handclust_assets.science.counting import CountingParams, count_repetitions, track_periods
from handclust_assets.science.extent import (
    ExtentParams,
    GridSignal,
    max_sum_run,
    periodic_runs,
    refine_extents,
    rest_centres,
    unmatched_centres,
)
from handclust_assets.science.rhythm_signals import RhythmSignal
from handclust_assets_tests.science_strategies import examples, matrices
from handclust_assets_tests.support import clip_row

FS = 20.0
HOP = 0.1


def _aperiodic(n: int, c: int, rng: np.random.Generator, smooth: int = 6) -> np.ndarray:
    """Smoothed noise: motion that goes on without repeating (each channel a random walk's wiggles)."""
    x = rng.normal(size=(n + smooth, c))
    k = np.ones(smooth) / smooth
    return np.stack([np.convolve(x[:, j], k, mode="valid")[:n] for j in range(c)], 1) / np.sqrt(1.0 / smooth)


def _clip(start: float, stop: float, period: float, duration: float = 20.0, seed: int = 0, c: int = 6
          ) -> tuple[np.ndarray, np.ndarray]:
    """(grid times, values (G, c)): aperiodic motion before `start` and after `stop`, a repetition between."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * FS) + 1) / FS
    a = 2 * np.pi * t / period
    mix = rng.normal(size=(2, c))
    rep = np.stack([np.cos(a), np.sin(a)], 1) @ mix
    other = _aperiodic(len(t), c, rng)
    inside = ((t >= start) & (t < stop))[:, None]
    v = np.where(inside, rep, other) + 0.15 * rng.normal(size=(len(t), c))
    return t, (v - v.mean(0)) / v.std(0)


def _centres(duration: float) -> np.ndarray:
    return (np.arange(int(round(duration / HOP))) + 0.5) * HOP


def _grid(values: np.ndarray, n_centres: int) -> list[GridSignal]:
    return [GridSignal(values, np.ones(len(values), bool), 3, np.ones(n_centres))]


def _ends(period: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    idx = np.flatnonzero(np.isfinite(period))
    return float(t[idx[0]]), float(t[idx[-1]])


@pytest.mark.parametrize("tracked", [(2.6, 17.4), (6.0, 14.0), (3.0, 14.5)])
@pytest.mark.parametrize("seed", [0, 1])
def test_edges_move_to_where_the_repetition_starts_and_stops(tracked: tuple[float, float], seed: int) -> None:
    # a 0.8-s repetition from 4 to 16 s, aperiodic motion around it; the tracker's stretch bleeds past both
    # edges, stops short of both, or one of each: the edges land within a third of a period either way
    period = 0.8
    _, v = _clip(4.0, 16.0, period, seed=seed)
    t_c = _centres(20.0)
    tracked_p = np.where((t_c >= tracked[0]) & (t_c <= tracked[1]), period, np.nan)
    out = refine_extents(t_c, tracked_p, _grid(v, len(t_c)), 20.0, ExtentParams(fs=FS))
    first, last = _ends(out, t_c)
    assert first == pytest.approx(4.0, abs=period / 3)
    assert last == pytest.approx(16.0, abs=period / 3)
    assert np.allclose(out[np.isfinite(out)], period)


def test_without_similarity_the_stretch_keeps_its_edges_plus_one_period() -> None:
    # no signal can judge the period (too short for its samples, or nothing moves): the fallback is the tracker's
    # stretch +- one period, what counting did before the extent search existed
    t_c = _centres(20.0)
    tracked_p = np.where((t_c >= 8.0) & (t_c <= 12.0), 0.5, np.nan)
    _, v = _clip(0.0, 20.0, 0.5)
    too_coarse = [GridSignal(v, np.ones(len(v), bool), 15, np.ones(len(t_c)))]  # judges lags >= 0.75 s only
    still = _grid(np.ones((401, 3)), len(t_c))
    for sig in (too_coarse, still, []):
        out = refine_extents(t_c, tracked_p, sig, 20.0, ExtentParams(fs=FS))
        first, last = _ends(out, t_c)
        assert first == pytest.approx(7.5, abs=HOP)
        assert last == pytest.approx(12.5, abs=HOP)


def test_an_octave_blip_beside_a_stretch_is_not_grown_at_its_own_period() -> None:
    # the tracker dips out for a centre and comes back at half the period for half a second: the blip joins its
    # stretch, and the centres added at that edge take the stretch's period, not the blip's
    _, v = _clip(0.0, 12.0, 1.0, seed=5)
    t_c = _centres(20.0)
    p = np.where(t_c <= 9.0, 1.0, np.nan)
    p[(t_c > 9.15) & (t_c < 9.7)] = 0.5
    out = refine_extents(t_c, p, _grid(v, len(t_c)), 20.0, ExtentParams(fs=FS))
    added = np.isfinite(out) & ~np.isfinite(p)
    assert added.any()
    assert np.allclose(out[added], 1.0)


def _lead_tail_clip(period: float, seed: int) -> list[RhythmSignal]:
    """A position signal at 30 fps: cycles of `period` between 3 and 18 s of a 21-s clip, aperiodic motion around."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(21 * 30)) / 30.0
    inside = ((t >= 3.0) & (t < 18.0))[:, None]
    a = 2 * np.pi * (t - 3.0) / period
    pos = np.where(inside, np.stack([np.cos(a), np.sin(a)], 1) @ rng.normal(size=(2, 6)), 0.0)
    pos = pos + np.where(inside, 0.0, _aperiodic(len(t), 6, rng, smooth=10)) + 0.2 * rng.normal(size=pos.shape)
    return [RhythmSignal("appearance", t, pos)]


@pytest.mark.parametrize("period", [0.6, 1.1])
def test_lead_in_and_tail_are_not_counted(period: float) -> None:
    # 15 s of cycles with 3 s of aperiodic motion on either side, 4 seeds: counted within about half a cycle on
    # average, where the tracker's edges + one period (extent_level 0, the old rule) overcount (measured: mean
    # |error| 0.64 vs 0.77 cycles at 0.6 s, 0.33 vs 1.63 at 1.1 s over 8 seeds)
    truth = 15.0 / period
    refined, blurred = [], []
    for seed in range(4):
        sig = _lead_tail_clip(period, seed)
        refined.append(clip_row(count_repetitions(sig, 21.0))["count_estimate"] - truth)
        blurred.append(clip_row(count_repetitions(sig, 21.0, params=CountingParams(extent_level=0.0))
                                )["count_estimate"] - truth)
    assert np.all(np.abs(refined) <= 1.3)
    assert np.mean(np.abs(refined)) <= 0.8
    assert np.mean(np.abs(refined)) < np.mean(np.abs(blurred))


def test_max_sum_run_examples() -> None:
    assert max_sum_run(np.array([])) == (0, 0)
    assert max_sum_run(np.array([-1.0, 2.0, 3.0, -10.0, 4.0])) == (1, 2)
    assert max_sum_run(np.array([-3.0, -1.0, -2.0])) == (1, 1)
    assert max_sum_run(np.array([1.0, np.nan, 1.0])) == (0, 2)
    assert periodic_runs(np.array([0, 1, 1, 0, 1, 0, 0, 1, 1], bool)) == [(1, 2), (4, 4), (7, 8)]
    assert periodic_runs(np.zeros(4, bool)) == []


@examples(200)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=30))
def test_max_sum_run_is_the_best_run(values: list[float]) -> None:
    v = np.array(values)
    a, b = max_sum_run(v)
    best = max(v[i : j + 1].sum() for i in range(len(v)) for j in range(i, len(v)))
    assert 0 <= a <= b < len(v)
    assert v[a : b + 1].sum() == pytest.approx(best, abs=1e-9)


@examples(40)
@given(matrices(min_rows=0, max_rows=200, min_cols=1, max_cols=4), st.floats(0.3, 3.0),
       st.integers(0, 40), st.integers(1, 60))
def test_refine_extents_on_degenerate_signals(values: np.ndarray, period: float, first: int, length: int) -> None:
    # constant, tiny, huge, NaN- and inf-laden signals: the result is a period where it is finite, and the
    # stretch grows at most half a window plus a period beyond the tracker's edges
    duration = max(len(values) / FS, 0.5)
    t_c = _centres(duration)
    p = np.full(len(t_c), np.nan)
    p[first : first + length] = period
    valid = np.isfinite(values).all(axis=1) if len(values) else np.zeros(0, bool)
    sig = [GridSignal(values, valid, 3, np.ones(len(t_c)))]
    ep = ExtentParams(fs=FS)
    out = refine_extents(t_c, p, sig, duration, ep)
    assert out.shape == p.shape
    assert np.all(out[np.isfinite(out)] > 0)
    if np.isfinite(p).any():
        lo, hi = _ends(p, t_c)
        reach = np.clip(ep.n_cycles * period, ep.min_window_s, ep.max_window_s) / 2 + period
        if np.isfinite(out).any():
            a, b = _ends(out, t_c)
            assert a >= lo - reach - 1e-9 and b <= hi + reach + 1e-9
    else:
        assert not np.isfinite(out).any()


def test_tracked_stretch_ends_where_the_repetition_does() -> None:
    # the track itself (what is stored and counted from) holds the refined stretch: its edges within a third of a
    # period of the repetition's (median over 4 seeds), closer than the tracker's own edges
    errors, tracker = [], []
    for seed in range(4):
        sig = _lead_tail_clip(1.1, seed)
        for params, out in ((CountingParams(), errors), (CountingParams(extent_level=0.0), tracker)):
            tr = track_periods(sig, 21.0, params)
            first, last = _ends(tr.period, tr.t)
            out.extend([abs(first - 3.0) / 1.1, abs(last - 18.0) / 1.1])
    assert np.median(errors) <= 1 / 3
    assert np.median(errors) < np.median(tracker)


def _cycles_with_rests(period: float, rests: list[tuple[float, float]], duration: float, seed: int, c: int = 6,
                       shake: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(grid times, values (G, c)): a repetition of `period` s that holds still through each (start, stop) rest (the
    phase stops; the camera shakes: noise at `shake` of the strokes' size), then goes on where it stopped."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * FS) + 1) / FS
    still = np.zeros(len(t), bool)
    for a, b in rests:
        still |= (t >= a) & (t < b)
    phase = np.cumsum(np.where(still, 0.0, 1.0 / (period * FS)))
    a = 2 * np.pi * phase
    v = np.stack([np.cos(a), np.sin(a)], 1) @ rng.normal(size=(2, c))
    v = v + np.where(still[:, None], shake, 0.1) * rng.normal(size=(len(t), c))
    return t, (v - v.mean(0)) / v.std(0)


def _rest_clip(period: float, seed: int, lengths: tuple[float, float, float]
               ) -> tuple[list[tuple[float, float]], np.ndarray, list[GridSignal]]:
    """20 s of cycles with rests of `lengths` periods at 4.0, 9.3 and 15.1 s: (rests, centres, grid signals)."""
    rests = [(start, start + n * period) for start, n in zip((4.0, 9.3, 15.1), lengths)]
    _, v = _cycles_with_rests(period, rests, 20.0, seed)
    tc = _centres(20.0)
    return rests, tc, _grid(v, len(tc))


def _rest_masks(tc: np.ndarray, rests: list[tuple[float, float]], margin: float) -> tuple[np.ndarray, np.ndarray]:
    """(near: the centres within `margin` s of a rest, inside: the centres in a rest)."""
    near, inside = np.zeros(len(tc), bool), np.zeros(len(tc), bool)
    for a, b in rests:
        near |= (tc >= a - margin) & (tc < b + margin)
        inside |= (tc >= a) & (tc < b)
    return near, inside


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("period", [0.5, 0.9])
def test_rests_inside_a_stretch_are_found_where_they_are(period: float, seed: int) -> None:
    rests, tc, grid = _rest_clip(period, seed, (1.8, 2.5, 1.5))
    found = rest_centres(tc, np.full(len(tc), period), grid, ExtentParams(fs=FS))
    assert found.any()
    near, inside = _rest_masks(tc, rests, 0.25)
    for a, b in rests:  # part of every rest (the shaking breaks some dips into pieces) ...
        assert found[(tc >= a) & (tc < b)].mean() >= 0.25
    assert found[inside].mean() >= 0.4  # ... and a good part of all of them
    assert not found[~near].any()  # never in the strokes


@settings(max_examples=25, deadline=None)
@given(period=st.floats(0.35, 2.0), seed=st.integers(0, 10_000), noise=st.floats(0.05, 0.4),
       swell=st.floats(0.0, 0.6))
def test_a_steady_repetition_has_no_rests(period: float, seed: int, noise: float, swell: float) -> None:
    """Strokes that go on (amplitude swelling by up to 60 %, noisy) are never taken for a rest."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(20 * FS) + 1) / FS
    a = 2 * np.pi * t / period
    amp = 1.0 + swell * np.sin(2 * np.pi * t / 7.3 + rng.uniform(0, 6.3))
    v = (np.stack([np.cos(a), np.sin(a)], 1) * amp[:, None]) @ rng.normal(size=(2, 6))
    v = v + noise * rng.normal(size=v.shape)
    tc = _centres(20.0)
    found = rest_centres(tc, np.full(len(tc), period), _grid((v - v.mean(0)) / v.std(0), len(tc)), ExtentParams(fs=FS))
    assert not found.any()


def test_rests_off_or_without_signals_find_nothing() -> None:
    _, v = _cycles_with_rests(0.8, [(5.0, 7.0)], 20.0, 0)
    tc = _centres(20.0)
    per = np.full(len(tc), 0.8)
    assert rest_centres(tc, per, _grid(v, len(tc)), ExtentParams(fs=FS)).any()
    assert not rest_centres(tc, per, _grid(v, len(tc)), ExtentParams(fs=FS, rest_periods=0.0)).any()
    assert not rest_centres(tc, per, [], ExtentParams(fs=FS)).any()
    assert not rest_centres(tc, np.full(len(tc), np.nan), _grid(v, len(tc)), ExtentParams(fs=FS)).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("period", [0.5, 0.9])
def test_unmatched_centres_are_the_rests_not_the_strokes(period: float, seed: int) -> None:
    # rests of 1-1.5 periods: the cycle around each rest does not match the next; the strokes always do
    rests, tc, grid = _rest_clip(period, seed, (1.2, 1.0, 1.5))
    found = unmatched_centres(tc, np.full(len(tc), period), grid, 0.4, ExtentParams(fs=FS))
    near, inside = _rest_masks(tc, rests, period)  # the cycle before a rest is compared with the rest
    assert found[inside].mean() >= 0.8
    assert not found[~near].any()


@settings(max_examples=25, deadline=None)
@given(period=st.floats(0.35, 2.0), seed=st.integers(0, 10_000), noise=st.floats(0.05, 0.4),
       calm=st.floats(1.0, 4.0))
def test_strokes_that_go_on_while_the_picture_calms_stay_matched(period: float, seed: int, noise: float,
                                                                 calm: float) -> None:
    """Strokes whose size drops `calm`-fold halfway (the busy background behind them stops) still repeat: away
    from the step, noise leaves at most a few centres unmatched (a frozen picture is also needed for a rest)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(20 * FS) + 1) / FS
    a = 2 * np.pi * t / period
    amp = np.where(t < 10, 1.0, 1.0 / calm)
    v = (np.stack([np.cos(a), np.sin(a)], 1) * amp[:, None]) @ rng.normal(size=(2, 6))
    v = v + noise * amp[:, None] * rng.normal(size=v.shape)
    tc = _centres(20.0)
    found = unmatched_centres(tc, np.full(len(tc), period), _grid((v - v.mean(0)) / v.std(0), len(tc)), 0.4,
                              ExtentParams(fs=FS))
    assert found[np.abs(tc - 10.0) > period].mean() <= 0.05


def test_unmatched_centres_without_a_stretch_or_signals_find_nothing() -> None:
    _, v = _cycles_with_rests(0.8, [(5.0, 6.0)], 20.0, 0)
    tc = _centres(20.0)
    per = np.full(len(tc), 0.8)
    assert unmatched_centres(tc, per, _grid(v, len(tc)), 0.4, ExtentParams(fs=FS)).any()
    assert not unmatched_centres(tc, per, [], 0.4, ExtentParams(fs=FS)).any()
    assert not unmatched_centres(tc, np.full(len(tc), np.nan), _grid(v, len(tc)), 0.4, ExtentParams(fs=FS)).any()
    assert not unmatched_centres(tc, per, _grid(v, len(tc)), 0.0, ExtentParams(fs=FS)).any()  # off
