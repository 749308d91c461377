"""Local periodicity of multichannel signals: windowed lag-correlation maps, octave-safe enhancement.

The building block of repetition counting. A signal is (T, C) channels on a uniform time grid (fs Hz), e.g. the
motion energy of every cell of a coarse grid over the image, or pixel intensities, or keypoint coordinates.

For every analysis centre and every integer lag k, each channel's Pearson correlation between x(t) and
x(t + k) is measured over a window of `n_cycles * k` samples around the centre (so a long period gets a long
window and a short one a short window; clamped to [min_window, max_window] and to the clip). Windows are
computed for all centres at once from cumulative sums, one lag at a time: O(lags x T x C).

Channels are pooled by weights that favour the channels which are themselves periodic there (a small moving
hand in 3 of 48 grid cells is not drowned by 45 cells of background noise): weight = channel s.d. x its own
enhanced periodicity squared.

Octave errors: a periodic signal correlates at every multiple of its period, so the raw map cannot tell P from
2P. The enhanced map (Tolonen & Karjalainen's enhanced summary autocorrelation) subtracts the positive part of
the correlation at k/2 and k/3 from that at k: at 2P or 3P the correlation at P is as high, so they cancel; at P,
the half and third of the period correlate weakly (or negatively), so P survives. A slow drift, which
correlates at every lag, cancels too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from numba import njit

EPS = 1e-9


@dataclass
class LagMap:
    """Correlation of a signal with itself at lag k (columns: k = 0 .. K samples) around each centre.

    centres: (n,) sample indices of the analysis centres; r: (n, K + 1) pooled correlation (NaN where the
    window is too short or the signal unseen); strength: (n,) best enhanced value over the candidate lags."""

    fs: float
    centres: np.ndarray
    r: np.ndarray
    enhanced: np.ndarray
    strength: np.ndarray


def frames_in(t_s: np.ndarray, seconds: float) -> int:
    """How many of a track's frames (times `t_s`, at their median spacing; 1 s for a single frame) span `seconds`:
    at least 1."""
    t = np.asarray(t_s, np.float64)
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    return max(1, int(round(seconds / max(dt, 1e-6))))


def cycle_window(periods: np.ndarray | float, n_cycles: float, lo: float | None, hi: float,
                 min_cycles: float = 0.0) -> np.ndarray:
    """The analysis window for candidate periods (in any one unit: samples or seconds): `n_cycles` periods clamped
    to [lo, hi] (lo None: no lower clamp), but at least `min_cycles` periods, past the cap (a slow period is judged
    over that many of its cycles). The one rule behind the lag maps' windows (`window_lengths`), the extent search's
    (`extent.refine_extents`) and the tracker's count of cycles in view (`counting.CountingParams.full_cycles`)."""
    periods = np.asarray(periods, np.float64)
    return np.maximum(np.clip(n_cycles * periods, lo, hi), min_cycles * periods)


def window_lengths(max_lag: int, fs: float, n_cycles: float, min_window_s: float, max_window_s: float,
                   n: int, min_cycles: float = 0.0) -> np.ndarray:
    """Window length (samples) for every lag 0..max_lag: `cycle_window` of the lag, rounded to whole samples, never
    longer than the signal."""
    lo, hi = int(round(min_window_s * fs)), int(round(max_window_s * fs))
    lengths = np.round(cycle_window(np.arange(max_lag + 1), n_cycles, lo, max(lo, hi), min_cycles))
    return np.minimum(lengths.astype(np.int64), n)


def compiled(fn: Callable) -> Callable:
    """`fn` compiled by numba (no GIL held, so the counter's thread pool runs signals in parallel), its machine code
    cached on disk (next to the module, else in the user's cache folder). Where no place to cache is writable (a
    read-only install without a home folder), numba refuses to cache at decoration, which would make this module
    fail to import: then it is compiled in each process instead (~1.5 s once per process)."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(nogil=True)(fn)


@compiled
def _lag_maps(xz: np.ndarray, seen: np.ndarray, all_valid: bool, centres: np.ndarray, lengths: np.ndarray,
              max_lag: int, min_pairs_frac: float, r: np.ndarray, sd: np.ndarray) -> None:
    """`channel_lag_correlation`'s loops, compiled: for each lag, the prefix sums of the lagged products (and,
    with unseen samples, of the pair mask and the masked values), then every centre's window sums to r and sd in
    one pass. The operations and their order are those of the vectorised numpy version it replaced (sequential
    prefix sums, the same formulas; no fused multiply-add without fastmath), so the values are the same bit for
    bit (checked on 300 random cases, gaps and constant channels included)."""
    t_len, n_ch = xz.shape
    n_c = len(centres)
    n_full, n_more = (t_len + 1, 0) if all_valid else (0, t_len + 1)  # each path sizes only the sums it reads
    p1 = np.zeros((n_full, n_ch))
    p2 = np.zeros((n_full, n_ch))
    if all_valid:
        for t in range(t_len):
            for ch in range(n_ch):
                v = xz[t, ch]
                p1[t + 1, ch] = p1[t, ch] + v
                p2[t + 1, ch] = p2[t, ch] + v * v
    pab = np.empty((t_len + 1, n_ch))
    pa = np.empty((n_more, n_ch))
    pb = np.empty((n_more, n_ch))
    paa = np.empty((n_more, n_ch))
    pbb = np.empty((n_more, n_ch))
    pm = np.empty(n_more)
    for k in range(1, max_lag + 1):
        length = lengths[k]
        n_pairs = length - k
        if n_pairs < max(3, k) or t_len - k < 3:
            continue
        if all_valid:
            for ch in range(n_ch):
                pab[0, ch] = 0.0
            for t in range(t_len - k):
                for ch in range(n_ch):
                    pab[t + 1, ch] = pab[t, ch] + xz[t, ch] * xz[t + k, ch]
        else:
            pm[0] = 0.0
            for ch in range(n_ch):
                pa[0, ch] = 0.0
                pb[0, ch] = 0.0
                paa[0, ch] = 0.0
                pbb[0, ch] = 0.0
                pab[0, ch] = 0.0
            for t in range(t_len - k):
                m = seen[t] * seen[t + k]
                pm[t + 1] = pm[t] + m
                for ch in range(n_ch):
                    a = xz[t, ch] * m
                    b = xz[t + k, ch] * m
                    pa[t + 1, ch] = pa[t, ch] + a
                    pb[t + 1, ch] = pb[t, ch] + b
                    paa[t + 1, ch] = paa[t, ch] + a * a
                    pbb[t + 1, ch] = pbb[t, ch] + b * b
                    pab[t + 1, ch] = pab[t, ch] + a * b
        need = max(3.0, min_pairs_frac * n_pairs)
        hi = max(0, t_len - length)
        for i in range(n_c):
            start = min(max(centres[i] - length // 2, 0), hi)
            stop = min(start + n_pairs, t_len - k)
            if all_valid:
                cnt = float(stop - start)
            else:
                cnt = pm[stop] - pm[start]
            if not cnt >= need:
                continue
            c = max(cnt, 1.0)
            for ch in range(n_ch):
                if all_valid:
                    sa = p1[stop, ch] - p1[start, ch]
                    sb = p1[stop + k, ch] - p1[start + k, ch]
                    saa = p2[stop, ch] - p2[start, ch]
                    sbb = p2[stop + k, ch] - p2[start + k, ch]
                else:
                    sa = pa[stop, ch] - pa[start, ch]
                    sb = pb[stop, ch] - pb[start, ch]
                    saa = paa[stop, ch] - paa[start, ch]
                    sbb = pbb[stop, ch] - pbb[start, ch]
                sab = pab[stop, ch] - pab[start, ch]
                va = max(saa - sa * sa / c, 0.0)
                vb = max(sbb - sb * sb / c, 0.0)
                cov = sab - sa * sb / c
                den = np.sqrt(va * vb)
                if den > EPS * c:
                    r[k, i, ch] = cov / max(den, EPS)
                sd[k, i, ch] = np.sqrt(va / c)


def channel_lag_correlation(x: np.ndarray, valid: np.ndarray, centres: np.ndarray, max_lag: int,
                            lengths: np.ndarray, min_pairs_frac: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel correlation r (n_centres, max_lag + 1, C) and the channels' s.d. in each window
    (n_centres, max_lag + 1, C). x: (T, C) float, finite where `valid`; invalid samples do not pair.

    For each lag k, a centre's window holds the pairs (x(t), x(t + k)) for t in [start, start + length - k),
    `length` = `lengths[k]` centred on the centre and kept within the clip; r is NaN where fewer than
    max(3, `min_pairs_frac` of them) pairs are seen or a side is constant, sd (the first side's) 0 there.
    Window sums come from prefix sums (float64: a long clip's sums lose digits otherwise); r and sd are stored
    as float32 (r within 3e-8 of the float64 value), which halves what the enhancement and pooling read.

    Computed by a compiled kernel (`_lag_maps`, numba, cached on disk after its first compile, ~1.5 s once per
    machine; ~0.3 s to load in a new process): 8x faster than the numpy version, whose ~20 temporaries per lag
    made the work memory-bound. Both are views of lag-major arrays (max_lag + 1, n_centres, C): one lag's
    values are one contiguous block, and `enhance` (along the lags) reads whole blocks."""
    valid = np.asarray(valid, bool)
    if len(lengths) <= max_lag or valid.shape != (x.shape[0],):  # the kernel reads without bounds checks
        raise ValueError(f"{len(lengths)} window lengths for lags 0..{max_lag}, {valid.shape} validity flags for "
                         f"{x.shape[0]} samples: need max_lag + 1 and one per sample")
    xz = np.ascontiguousarray(np.where(valid[:, None], x, 0.0), np.float64)
    r = np.full((max_lag + 1, len(centres), x.shape[1]), np.nan, np.float32)
    sd = np.zeros((max_lag + 1, len(centres), x.shape[1]), np.float32)
    _lag_maps(xz, valid.astype(np.float64), bool(np.all(valid)), np.asarray(centres, np.int64),
              np.asarray(lengths, np.int64), int(max_lag), float(min_pairs_frac), r, sd)
    return r.transpose(1, 0, 2), sd.transpose(1, 0, 2)


def blockwise_lag_correlation(x: np.ndarray, valid: np.ndarray, centres: np.ndarray, max_lag: int,
                              lengths: np.ndarray, max_cells: float = 6e6
                              ) -> Iterator[tuple[slice, slice, np.ndarray, np.ndarray]]:
    """`channel_lag_correlation` in pieces, so memory stays flat however long the clip is: blocks of centres, each
    computed on its own stretch of the signal (a centre's windows lie within the longest window of it, so the
    values are the same), and within a block groups of channels of at most ~`max_cells` (centre, lag, channel)
    values (~50 MB per array). A block spans at least 20 of the longest windows, so the overlap costs little.
    `centres` ascending. Yields (the block's rows of `centres`, the group's channels, r, sd), r and sd (rows,
    max_lag + 1, channels); the groups of one block come one after another."""
    t_len, n_ch = x.shape
    n_c = len(centres)
    if n_c == 0 or n_ch == 0:
        return
    cells = max_lag + 1
    reach = int(np.max(lengths)) + 1
    spacing = max(1.0, float(np.median(np.diff(centres)))) if n_c > 1 else 1.0
    block = int(min(max(np.ceil(20 * reach / spacing), 1), max(1, max_cells // cells)))
    for b0 in range(0, n_c, block):
        cb = np.asarray(centres[b0 : b0 + block], np.int64)
        lo, hi = max(0, int(cb.min()) - reach), min(t_len, int(cb.max()) + reach)
        chunk = max(1, int(max_cells // (len(cb) * cells)))
        for c0 in range(0, n_ch, chunk):
            cols = slice(c0, min(n_ch, c0 + chunk))
            r, sd = channel_lag_correlation(x[lo:hi, cols], valid[lo:hi], cb - lo, max_lag, lengths)
            yield slice(b0, b0 + len(cb)), cols, r, sd


def enhance(r: np.ndarray, divisors: tuple[int, ...] = (2, 3)) -> np.ndarray:
    """Enhanced correlation along axis 1 (lags): max(r(k), 0) - the sum over d of max(r(k / d), 0), fractional lags
    interpolated; keeps any trailing axes (channels). NaN stays NaN.

    The maps are tens of MB (centres x lags x channels), so this works on views, not gathered copies: the lags
    k = d j + q (one residue q at a time) read r at j and j + 1, two contiguous slices."""
    finite = np.isfinite(r)
    pos = np.where(finite, np.maximum(r, 0.0), 0.0)
    n_lag = r.shape[1]
    out = pos.copy(order="K")  # r may be a lag-major view (`channel_lag_correlation`): keep its layout
    lags = np.arange(n_lag, dtype=np.float64)
    tail = (1,) * (r.ndim - 2)

    def run(idx: np.ndarray) -> np.ndarray:  # pos at these lags: a view when they are consecutive
        return pos[:, idx[0]:idx[0] + len(idx)] if np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))) \
            else pos[:, idx]

    for d in divisors:
        f = lags / d
        lo = np.floor(f).astype(np.int64)
        hi = np.minimum(lo + 1, n_lag - 1)
        w = f - lo
        for q in range(min(d, n_lag)):
            o, wq = out[:, q::d], w[q::d]
            if not wq.any():  # k / d is a whole lag: subtract r there (the weight of the next is 0)
                o -= run(lo[q::d])
                continue
            o -= run(lo[q::d]) * (1 - wq).reshape((1, len(wq)) + tail)
            o -= run(hi[q::d]) * wq.reshape((1, len(wq)) + tail)
    out[~finite] = np.nan
    out[:, : max(divisors)] = np.nan  # lags too short to be checked against their fractions
    return out


def pooled_lag_map(x: np.ndarray, valid: np.ndarray, fs: float, centres: np.ndarray, min_lag: int, max_lag: int,
                   n_cycles: float = 3.0, min_window_s: float = 2.0, max_window_s: float = 12.0,
                   min_window_cycles: float = 0.0) -> LagMap:
    """Per-channel lag correlation pooled over channels with weights s.d. x (own enhanced strength)^2."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    t_len = x.shape[0]
    max_lag = int(min(max_lag, max(t_len - 3, 0)))
    n_c = len(centres)
    if max_lag <= min_lag or t_len < 6 or x.shape[1] == 0:
        empty = np.full((n_c, max(max_lag, 0) + 1), np.nan)
        return LagMap(fs, centres, empty, empty.copy(), np.zeros(n_c))
    lengths = window_lengths(max_lag, fs, n_cycles, min_window_s, max_window_s, t_len, min_window_cycles)
    num = np.zeros((n_c, max_lag + 1))
    den = np.zeros((n_c, max_lag + 1))
    band = slice(min_lag, max_lag + 1)
    for rows, _, r, sd in blockwise_lag_correlation(x, valid, centres, max_lag, lengths):
        w = channel_weights(r, sd, band)
        num[rows] += np.einsum("nkc,nkc->nk", np.where(np.isfinite(r), r, 0.0), w)
        den[rows] += w.sum(axis=2)
    pooled = np.where(den > 0, num / np.maximum(den, 1e-300), np.nan)
    pe, strength = enhanced_strength(pooled, band)
    return LagMap(fs, centres, pooled, pe, strength)


def channel_weights(r: np.ndarray, sd: np.ndarray, band: slice) -> np.ndarray:
    """Pooling weights (n_centres, lags, C) of per-channel correlations r with window s.d. sd: s.d. x (the channel's
    own best enhanced correlation within the lag `band`)^2, 0 where r is NaN (a channel that repeats there
    outweighs many that do not)."""
    e = enhance(r)[:, band]
    q = np.max(np.where(np.isnan(e), 0.0, e), axis=1) if e.shape[1] else np.zeros((r.shape[0], r.shape[2]))
    return np.where(np.isfinite(r), sd * (np.maximum(q, 0.0)[:, None, :] ** 2 + 1e-6), 0.0)


def enhanced_strength(pooled: np.ndarray, band: slice) -> tuple[np.ndarray, np.ndarray]:
    """The enhanced map of a pooled correlation (n_centres, lags) and its strength per centre: the best enhanced
    value within the lag `band`, >= 0 (0 where nothing is judged)."""
    pe = enhance(pooled)
    with np.errstate(invalid="ignore"):
        strength = np.nan_to_num(np.nanmax(np.where(np.isfinite(pe[:, band]), pe[:, band], -np.inf), axis=1),
                                 neginf=0.0, nan=0.0)
    return pe, np.maximum(strength, 0.0)


def resample_to_grid(t_s: np.ndarray, values: np.ndarray, grid_t: np.ndarray, smooth_s: float = 0.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Values (T, C) at times t_s onto grid_t: Gaussian anti-alias smoothing (sigma `smooth_s`, in samples of the
    source), then linear interpolation per channel. A grid point is valid when a valid source sample lies within
    1.5 source intervals; NaN source samples are invalid. Returns (G, C) values and (G,) validity."""
    t_s = np.asarray(t_s, np.float64)
    v = np.asarray(values, np.float64)
    if v.ndim == 1:
        v = v[:, None]
    g = len(grid_t)
    if len(t_s) < 2 or v.shape[0] != len(t_s):
        return np.zeros((g, v.shape[1] if v.ndim == 2 else 0)), np.zeros(g, bool)
    order = np.argsort(t_s, kind="stable")
    t_s, v = t_s[order], v[order]
    row_ok = np.isfinite(v).all(axis=1)
    if row_ok.sum() < 2:
        return np.zeros((g, v.shape[1])), np.zeros(g, bool)
    dt = float(np.median(np.diff(t_s))) or 1e-3
    v = _fill_rows(v, row_ok)
    if smooth_s > 0 and smooth_s > 0.5 * dt:
        v = _gauss_smooth(v, smooth_s / dt)
    out = np.empty((g, v.shape[1]))
    for c in range(v.shape[1]):
        out[:, c] = np.interp(grid_t, t_s, v[:, c])
    tv = t_s[row_ok]
    idx = np.clip(np.searchsorted(tv, grid_t), 1, len(tv) - 1)
    near = np.minimum(np.abs(grid_t - tv[idx - 1]), np.abs(grid_t - tv[idx]))
    return out, near <= 1.5 * dt


def _fill_rows(v: np.ndarray, ok: np.ndarray) -> np.ndarray:
    if ok.all():
        return v
    idx = np.flatnonzero(ok)
    pos = np.arange(len(v))
    return np.stack([np.interp(pos, idx, v[idx, c]) for c in range(v.shape[1])], axis=1)


def _gauss_smooth(v: np.ndarray, sigma: float) -> np.ndarray:
    rad = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-rad, rad + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(v, ((rad, rad), (0, 0)), mode="edge")
    from scipy.ndimage import convolve1d

    return convolve1d(pad, k, axis=0, mode="nearest")[rad:-rad]
