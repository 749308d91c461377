"""The actor's rests found before tracking (`science.rests`) and the time axis without them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handclust_assets.science.rests import find_rests, windowed_mean, without_rests

FS = 30.0


def _strokes_with_rests(rests: list[tuple[float, float]], seconds: float = 12.0, period: float = 0.5,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The picture's change of strokes (|sin|, twice per period) with sensor noise, near the noise floor inside
    `rests`."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    change = np.abs(np.sin(np.pi * t / (period / 2))) + 0.2
    for a, b in rests:
        change[(t >= a) & (t < b)] = 0.0
    return t, change + 0.02 * np.abs(rng.normal(size=len(t)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rests_are_found_where_the_change_dips_against_the_strokes(seed: int) -> None:
    truth = [(2.0, 2.6), (5.3, 6.5), (9.0, 9.45)]
    t, change = _strokes_with_rests(truth, seed=seed)
    found = find_rests(t, change, ratio=0.15, min_s=0.25, ref_s=4.0, smooth_s=0.1)
    assert len(found) == len(truth), found
    for (a, b), (x, y) in zip(found, truth):
        assert abs(a - x) <= 0.1 and abs(b - y) <= 0.1, (found, truth)


def test_short_dips_a_quiet_clip_and_the_switch_off_are_no_rests() -> None:
    t, change = _strokes_with_rests([(3.0, 3.15), (7.0, 7.2)])  # the slow turns of a stroke, not rests
    assert find_rests(t, change, 0.15, 0.25, 4.0, 0.1) == []
    assert find_rests(t, np.full(len(t), 0.3), 0.15, 0.25, 4.0, 0.1) == []  # a quiet clip: no dip against itself
    t, change = _strokes_with_rests([(4.0, 5.0)])
    assert find_rests(t, change, 0.0, 0.25, 4.0, 0.1) == []  # ratio 0: off
    assert find_rests(t[:5], change[:5], 0.15, 0.25, 4.0, 0.1) == []  # too few samples to judge


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["random", "constant", "zeros", "tiny", "huge", "spiky"]), n=st.integers(0, 400),
       ratio=st.floats(0.0, 0.5), min_s=st.floats(0.0, 1.0), smooth_s=st.floats(0.0, 0.3), seed=st.integers(0, 999))
def test_rests_are_ordered_disjoint_long_enough_and_inside_the_clip(kind: str, n: int, ratio: float, min_s: float,
                                                                   smooth_s: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    change = {"random": rng.random(n), "constant": np.full(n, 0.7), "zeros": np.zeros(n),
              "tiny": 1e-12 * rng.random(n), "huge": 1e12 * rng.random(n),
              "spiky": np.where(rng.random(n) < 0.1, 50.0, 0.01)}[kind]
    found = find_rests(t, change, ratio, min_s, 4.0, smooth_s)
    if n < 8 or ratio <= 0:
        assert found == []
    for a, b in found:
        assert b - a >= min_s - 1e-9
        assert t[0] <= a < b <= t[-1] + 1.0 / FS + 1e-9
    for (_, b), (a2, _) in zip(found[:-1], found[1:]):
        assert b <= a2 + 1e-9


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 200), starts=st.lists(st.floats(0.0, 6.0), max_size=4), lengths=st.lists(
    st.floats(0.05, 1.5), min_size=4, max_size=4))
def test_the_cut_axis_drops_the_rests_and_keeps_the_order(n: int, starts: list[float], lengths: list[float]) -> None:
    # disjoint rests from sorted starts, each ending before the next starts
    rests, end = [], -1.0
    for a, w in zip(sorted(starts), lengths):
        a = max(a, end + 0.01)
        rests.append((a, a + w))
        end = a + w
    t = np.arange(n) / FS
    cut, inside = without_rests(t, rests)
    assert np.all(np.diff(cut) >= -1e-12)  # the order is kept
    expected = np.array([any(a <= x < b for a, b in rests) for x in t], bool)
    assert np.array_equal(inside, expected)
    total = sum(b - a for a, b in rests)
    after = t >= end
    assert np.allclose(cut[after], t[after] - total)  # after every rest: shifted by all of them
    before = t < min((a for a, _ in rests), default=np.inf)
    assert np.array_equal(cut[before], t[before])
    same, none_inside = without_rests(t, [])
    assert np.array_equal(same, t) and not none_inside.any()


def test_windowed_mean_is_the_mean_of_the_samples_in_each_window() -> None:
    t = np.arange(10) * 0.1
    x = np.arange(10, dtype=float)
    m = windowed_mean(t, x, np.array([0.45, 0.0, 5.0]), 0.3)
    assert m[0] == pytest.approx(np.mean([3.0, 4.0, 5.0]))  # samples at 0.3-0.5 (window [0.3, 0.6))
    assert m[1] == pytest.approx(np.mean([0.0, 1.0]))  # cut at the start
    assert np.isnan(m[2])  # nothing there
