"""Where a repetition starts and ends: one-cycle similarity at the tracked period.

The period tracker (`counting.track_periods`) judges each analysis centre over a window of about four cycles
(at least 2.5 s), so the edges of a periodic stretch are blurred by up to half a window: a strong repetition is
called periodic a cycle or two before it starts and after it ends, a weak one only once the whole window lies
inside it. Counting from those edges had to guess (one period beyond each), and clips with footage before or
after the repetition were counted ~0.7 cycles too long on the development set.

Here every periodic stretch gets its edges from a much sharper measurement. Each signal on the rhythm grid is
compared with itself one tracked period later, sample by sample: per channel, the one-cycle moving average is
removed and the rest scaled by its one-cycle moving rms, so the product z(s) z(s + P(s)) is a local correlation
density, about 1 where the motion repeats and about 0 in aperiodic motion or stillness. Channels are pooled with
weights (their own mean product over the stretch)^2, signals with the consensus' weights (prior x strength^2),
and the pooled density is smoothed over one cycle. The stretch's edges are those of the maximum-sum run of
(density - `level` x its median over the stretch), searched from half an analysis window plus a period outside the
stretch to inside it: an edge sits where the density falls to `level` of its typical height, which the one-cycle
smoothing does not move. A pair (s, s + P) lies inside the repetition when s does and s + P does, so the run of
pair starts [a, b] means the repetition [a, b + P].

On the development set (`benchmarks/eval_repetitions_dev.py`, clips whose tracked period is right) the median
absolute edge error fell from ~1 period to 0.15-0.4 of one.

The same similarity finds rests inside a stretch (`rest_centres`), which the tracker's windows of four cycles
bridge: where the actor holds still (or only the camera shakes) for a while, nothing matches itself a period
later, so the pairs that start from a period before the rest to its end fall to ~0. A dip of the similarity
(smoothed over half a period) below `rest_level` of its median for at least `rest_periods` periods of pair starts
[a, b] means the rest [a + P, b]; its centres are not counted.

Plain numpy; no Dagster.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import uniform_filter1d

from handclust_assets.science.periodicity import cycle_window


@dataclass(frozen=True)
class GridSignal:
    """One signal on the rhythm grid, as the extent search needs it."""

    values: np.ndarray  # (G, C) standardised values on the grid (anything where `valid` is False)
    valid: np.ndarray  # (G,) bool
    min_lag: int  # the shortest lag (grid samples) the signal can judge
    weight: np.ndarray  # (n_centres,) the signal's consensus weight per analysis centre (prior x strength^2)


@dataclass(frozen=True)
class ExtentParams:
    fs: float = 20.0  # rhythm grid rate (Hz)
    n_cycles: float = 4.0  # the tracker's analysis window (cycles, clamped to [min_window_s, max_window_s])
    min_window_s: float = 2.5
    max_window_s: float = 12.0
    min_window_cycles: float = 0.0  # ... but at least this many periods, past the cap
    level: float = 0.3  # an edge is where the one-cycle similarity falls below this share of its median
    min_level: float = 0.1  # a stretch whose median similarity is lower keeps its edges +- `fallback_periods`
    fallback_periods: float = 1.0
    median_centres: int = 41  # the stretch's period is smoothed by a running median over this many centres first
    rest_level: float = 0.3  # `rest_centres`: inside a stretch, similarity below this share of its median ...
    rest_periods: float = 1.3  # ... for at least this many periods (of pair starts) is a rest; 0 = off
    rest_smooth: float = 0.5  # the similarity is smoothed over this many periods first


def periodic_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive True stretches of a boolean array as (first, last) index pairs, inclusive."""
    idx = np.flatnonzero(np.asarray(mask, bool))
    if not len(idx):
        return []
    cut = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate([[idx[0]], idx[cut + 1]])
    stops = np.concatenate([idx[cut], [idx[-1]]])
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def max_sum_run(v: np.ndarray) -> tuple[int, int]:
    """(first, last) indices, inclusive, of the contiguous run with the largest sum (the first such run); (0, 0)
    for an empty array. NaN counts as 0."""
    v = np.nan_to_num(np.asarray(v, np.float64))
    if not len(v):
        return 0, 0
    cum = np.concatenate([[0.0], np.cumsum(v)])
    low = np.minimum.accumulate(cum[:-1])  # the smallest prefix sum before each end
    last = int(np.argmax(cum[1:] - low))
    first = int(np.argmin(cum[: last + 1]))
    return first, last


def cycle_products(values: np.ndarray, valid: np.ndarray, lag: np.ndarray, lo: int, hi: int, box: int
                   ) -> np.ndarray:
    """Per channel, z(s) z(s + lag(s)) for the pair starts s in [lo, hi) (NaN where either sample is invalid or
    outside the grid), z = the values minus their `box`-sample moving average, over their `box`-sample moving rms
    (floored at 0.2 of the stretch's rms, so stillness does not blow up to unit noise). `lag` (G,) in samples,
    fractional (linear interpolation)."""
    g = len(values)
    lo, hi = max(0, lo), min(hi, g)
    if hi <= lo or values.shape[1] == 0:
        return np.full((max(hi - lo, 0), values.shape[1]), np.nan)
    box = max(int(box), 1)
    reach = int(np.ceil(np.max(lag[lo:hi]))) + 2
    a, b = max(0, lo - 2 * box), min(g, hi + reach + 2 * box)
    ok_ab = np.asarray(valid[a:b], bool) & np.isfinite(values[a:b]).all(axis=1)  # only the slice read here: a
    # long clip has many stretches, and each would otherwise scan the whole grid
    x = np.where(ok_ab[:, None], values[a:b], 0.0).astype(np.float64)
    hp = x - uniform_filter1d(x, size=box, axis=0, mode="nearest")
    rms = np.sqrt(np.maximum(uniform_filter1d(hp * hp, size=box, axis=0, mode="nearest"), 0.0))
    floor = 0.2 * np.sqrt(np.mean(hp * hp, axis=0)) + 1e-9
    z = hp / np.maximum(rms, floor)
    s = np.arange(lo, hi)
    target = s + lag[s]
    i0 = np.floor(target).astype(np.int64)
    inside = (target >= 0) & (i0 + 1 < b)
    i0 = np.clip(i0, a, b - 2)
    f = (target - i0)[:, None]
    later = z[i0 - a] * (1 - f) + z[i0 + 1 - a] * f
    prod = z[s - a] * later
    ok = inside & ok_ab[s - a] & ok_ab[i0 - a] & ok_ab[i0 + 1 - a]
    prod[~ok] = np.nan
    return prod


def _stretch_weights(signals: Sequence[GridSignal], i0: int, i1: int) -> np.ndarray:
    """Each signal's consensus weight, averaged over the stretch's centres i0..i1 (0 where it has none there)."""
    return np.array([float(np.mean(s.weight[i0 : i1 + 1])) if len(s.weight) > i1 else 0.0 for s in signals])


def _pooled_similarity(signals: Sequence[GridSignal], lag: np.ndarray, lo: int, hi: int, box: int,
                       core: np.ndarray, signal_w: np.ndarray) -> np.ndarray | None:
    """One pooled similarity per pair start in [lo, hi): channels weighted by their mean product over `core`
    (a mask over those pair starts) squared, signals by `signal_w`. None when no signal can judge the lag."""
    num = np.zeros(hi - lo)
    den = np.zeros(hi - lo)
    for sig, w_sig in zip(signals, signal_w):
        if w_sig <= 0 or np.min(lag[lo:hi]) < sig.min_lag:
            continue
        prod = cycle_products(sig.values, sig.valid, lag, lo, hi, box)
        seen = np.isfinite(prod)
        with np.errstate(invalid="ignore"):
            r = np.nansum(np.where(seen[core], prod[core], 0.0), axis=0) / np.maximum(seen[core].sum(axis=0), 1)
        w_ch = np.where(seen[core].any(axis=0), np.maximum(r, 0.0) ** 2, 0.0)
        if w_ch.sum() <= 0:
            continue
        d = np.nansum(np.where(seen, prod, 0.0) * w_ch, axis=1) / w_ch.sum()
        any_seen = seen[:, w_ch > 0].any(axis=1)
        num += np.where(any_seen, d, 0.0) * w_sig
        den += np.where(any_seen, w_sig, 0.0)
    if den.max(initial=0.0) <= 0:
        return None
    return np.where(den > 0, num / np.maximum(den, 1e-12), 0.0)


def _join_octave_blips(runs: list[tuple[int, int]], t: np.ndarray, period: np.ndarray) -> list[tuple[int, int]]:
    """Neighbouring periodic stretches joined where the gap between them is shorter than a period and their
    periods differ by half an octave or more: the tracker dipped out for a centre or two and came back at an
    octave (often where noise starts), which is no new repetition. Stretches at similar periods stay apart (a
    rest between two bouts of the same work)."""
    out: list[tuple[int, int]] = []
    for a, b in runs:
        if out:
            pa, pb = period[out[-1][1]], period[a]
            if t[a] - t[out[-1][1]] <= max(pa, pb) and abs(np.log2(pa / pb)) >= 0.5:
                out[-1] = (out[-1][0], b)
                continue
        out.append((a, b))
    return out


def _running_median(v: np.ndarray, window: int) -> np.ndarray:
    """Centred running median whose window is cut at the ends (not padded: a padded end repeats its last value,
    and a short octave blip at a stretch's end would outvote the rest)."""
    v = np.asarray(v, np.float64)
    half = min(max(window, 1), 2 * len(v) - 1) // 2
    if half == 0:
        return v
    padded = np.concatenate([np.full(half, np.nan), v, np.full(half, np.nan)])
    return np.nanmedian(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)


def refine_extents(t: np.ndarray, period: np.ndarray, signals: Sequence[GridSignal], duration_s: float,
                   params: ExtentParams | None = None) -> np.ndarray:
    """The tracked period per analysis centre `t` (NaN where aperiodic) with every periodic stretch's edges moved
    to where the repetition starts and ends (module doc): centres added at the edges take the stretch's nearest
    period (after a running median over `median_centres`), centres cut off become NaN. A stretch where no signal
    can judge its period, or whose similarity is below `min_level`, keeps its edges +- `fallback_periods` periods
    (the tracker's window blur, as before). Stretches that dip out for less than a period and come back half an
    octave away are one stretch (`_join_octave_blips`)."""
    p = params or ExtentParams()
    t = np.asarray(t, np.float64)
    period = np.asarray(period, np.float64)
    out = np.full(len(t), np.nan)
    finite = np.isfinite(period)
    runs = _join_octave_blips(periodic_runs(finite), t, period)
    if not runs:
        return out
    g = min((len(s.values) for s in signals), default=0)
    grid_t = np.arange(g) / p.fs
    for ri, (i0, i1) in enumerate(runs):
        inner = np.flatnonzero(finite[i0 : i1 + 1]) + i0  # a joined gap takes its neighbours' period
        log_p = np.interp(t[i0 : i1 + 1], t[inner], np.log(period[inner]))
        log_p = _running_median(log_p, p.median_centres)  # an octave blip at an edge would otherwise be carried
        # into the added centres
        typical = float(np.exp(np.median(log_p)))
        window = float(cycle_window(typical, p.n_cycles, p.min_window_s, p.max_window_s, p.min_window_cycles))
        reach = window / 2 + typical
        lo_t, hi_t = t[i0] - reach, t[i1] + reach
        if ri > 0:  # never past the middle of the gap to a neighbouring stretch
            lo_t = max(lo_t, 0.5 * (t[runs[ri - 1][1]] + t[i0]))
        if ri + 1 < len(runs):
            hi_t = min(hi_t, 0.5 * (t[i1] + t[runs[ri + 1][0]]))
        lo_t, hi_t = max(lo_t, 0.0), min(hi_t, duration_s)
        span = _refined_span(t, log_p, i0, i1, typical, lo_t, hi_t, grid_t, signals, p)
        if span is None:
            span = (t[i0] - p.fallback_periods * np.exp(log_p[0]), t[i1] + p.fallback_periods * np.exp(log_p[-1]))
        span = (max(span[0], lo_t), min(span[1], hi_t))  # the grid's floor / ceil may reach a sample past them
        sel = (t >= span[0]) & (t <= span[1])
        out[sel] = np.exp(np.interp(t[sel], t[i0 : i1 + 1], log_p))
    return out


def _refined_span(t: np.ndarray, log_p: np.ndarray, i0: int, i1: int, typical: float, lo_t: float,
                  hi_t: float, grid_t: np.ndarray, signals: Sequence[GridSignal], p: ExtentParams
                  ) -> tuple[float, float] | None:
    g = len(grid_t)
    if g < 8:
        return None
    lo = int(np.floor(lo_t * p.fs))
    hi = min(int(np.ceil(hi_t * p.fs)), g - 1)
    lag = np.full(g, np.nan)  # the stretch's period in samples, held at its ends; only its search region is read
    lag[lo : hi + 1] = np.exp(np.interp(grid_t[lo : hi + 1], t[i0 : i1 + 1], log_p)) * p.fs
    box = max(3, int(round(typical * p.fs)))
    pairs_hi = hi - int(round(typical * p.fs))  # pair starts whose partner is still in the search region
    if pairs_hi - lo < 3:
        return None
    starts = np.arange(lo, pairs_hi)
    half = typical * p.fs / 2  # a centre's one-cycle pair starts half a period before it
    core = (starts >= t[i0] * p.fs - half) & (starts <= t[i1] * p.fs - half)
    if core.sum() < 3:
        core = np.ones(len(starts), bool)
    signal_w = _stretch_weights(signals, i0, i1)
    sim = _pooled_similarity(signals, lag, lo, pairs_hi, box, core, signal_w)
    if sim is None:
        return None
    smooth = uniform_filter1d(sim, size=box, mode="nearest")
    typical_sim = float(np.median(smooth[core]))
    if not typical_sim >= p.min_level:
        return None
    a, b = max_sum_run(smooth - p.level * typical_sim)
    return (lo + a) / p.fs, (lo + b) / p.fs + lag[min(lo + b, g - 1)] / p.fs


def _stretch_similarity(t: np.ndarray, period: np.ndarray, signals: Sequence[GridSignal], p: ExtentParams
                        ) -> Iterator[tuple[int, int, int, float, np.ndarray, float]]:
    """Per periodic stretch of `period` with at least three periods of pair starts and a median similarity above
    `min_level`: (i0, i1, lo, typical period s, the one-cycle similarity of the pairs starting at grid samples
    lo, lo + 1, ... smoothed over `rest_smooth` periods, its median)."""
    g = min((len(s.values) for s in signals), default=0)
    if g < 8:
        return
    grid_t = np.arange(g) / p.fs
    for i0, i1 in periodic_runs(np.isfinite(period)):
        typical = float(np.exp(np.median(np.log(period[i0 : i1 + 1]))))
        per_samples = typical * p.fs
        lo = max(0, int(np.floor(t[i0] * p.fs)))
        hi = min(int(np.ceil(t[i1] * p.fs)), g - 1)
        pairs_hi = hi - int(round(per_samples))
        if pairs_hi - lo < 3 * per_samples:
            continue
        lag = np.full(g, np.nan)
        lag[lo : hi + 1] = np.interp(grid_t[lo : hi + 1], t[i0 : i1 + 1], period[i0 : i1 + 1]) * p.fs
        box = max(3, int(round(per_samples)))
        signal_w = _stretch_weights(signals, i0, i1)
        sim = _pooled_similarity(signals, lag, lo, pairs_hi, box, np.ones(pairs_hi - lo, bool), signal_w)
        if sim is None:
            continue
        smooth = uniform_filter1d(sim, size=max(1, int(round(p.rest_smooth * per_samples))), mode="nearest")
        typical_sim = float(np.median(smooth))
        if typical_sim > p.min_level:
            yield i0, i1, lo, typical, smooth, typical_sim


def stretch_rests(t: np.ndarray, period: np.ndarray, signals: Sequence[GridSignal], unmatched_level: float = 0.0,
                  params: ExtentParams | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Both readings of each stretch's one-cycle similarity, which is computed once: (`rest_centres`,
    `unmatched_centres` at `unmatched_level`). Either is all False when it is off (`rest_periods` <= 0,
    `unmatched_level` <= 0); with both off the similarity is not computed."""
    p = params or ExtentParams()
    t = np.asarray(t, np.float64)
    period = np.asarray(period, np.float64)
    rest, unmatched = np.zeros(len(t), bool), np.zeros(len(t), bool)
    if p.rest_periods <= 0 and unmatched_level <= 0:
        return rest, unmatched
    for i0, i1, lo, typical, smooth, typical_sim in _stretch_similarity(t, period, signals, p):
        if p.rest_periods > 0:
            for a, b in periodic_runs(smooth < p.rest_level * typical_sim):
                if b - a + 1 < p.rest_periods * typical * p.fs:
                    continue
                r0, r1 = (lo + a) / p.fs + typical, (lo + b + 1) / p.fs  # pairs from a period before the rest dip
                if r1 > r0:
                    rest |= (t >= r0) & (t < r1)
        if unmatched_level > 0:
            k = np.round((t[i0 : i1 + 1] - typical / 2) * p.fs).astype(np.int64) - lo
            ok = (k >= 0) & (k < len(smooth))
            unmatched[i0 : i1 + 1][ok] = smooth[k[ok]] < unmatched_level * typical_sim
    return rest, unmatched


def rest_centres(t: np.ndarray, period: np.ndarray, signals: Sequence[GridSignal], params: ExtentParams | None = None
                 ) -> np.ndarray:
    """Analysis centres `t` inside a rest within a periodic stretch of `period` (NaN where aperiodic; the refined
    stretches of `refine_extents`): see the module doc. A stretch shorter than three periods of pair starts, or
    whose similarity is weak throughout (median below `min_level`), has no rests."""
    return stretch_rests(t, period, signals, 0.0, params)[0]


def unmatched_centres(t: np.ndarray, period: np.ndarray, signals: Sequence[GridSignal], level: float,
                      params: ExtentParams | None = None) -> np.ndarray:
    """Centres inside a periodic stretch (as `rest_centres` reads them) where the pair starting half a period
    before the centre, i.e. the cycle around it against the next, is less similar than `level` x the stretch's
    median: whatever happens there does not repeat a period later. False outside such stretches (and in a stretch
    too short or too weakly similar to judge: fewer than three periods of pair starts, median below `min_level`),
    and everywhere with `level` <= 0."""
    return stretch_rests(t, period, signals, level, replace(params or ExtentParams(), rest_periods=0.0))[1]
