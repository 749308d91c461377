"""EgoClean's per-clip diagnostics of window embeddings (V-JEPA 2 windows, or scene embeddings pooled to 1-s
windows), plain numpy:

1. consecutive cosine distance 1 - cos(e_i, e_i+1): the temporal-change signal (high = scene change);
2. the window self-similarity matrix (cosine; anomalies show as dark off-diagonal bands);
3. the autocorrelation of the distance signal and its peak period (peaks = repeating work cycle); the distance
   is clipped at its 95th percentile first, so the two spikes at an anomaly's edges (rare, huge) do not
   dominate the autocorrelation and pass for a period, while a cycle's own spikes (one per period) are kept;
4. cycle structure: each window's cosine similarity to the window one period earlier (the previous cycle).

Real footage gives constant, tiny and NaN-laden signals, so: a window whose embedding is non-finite or zero has
NaN similarities and distances (never a fake 0 or 1); NaNs in the distance signal count as its mean in the
autocorrelation; a constant signal has no autocorrelation (NaN) and no period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_PEAK = 0.1  # an autocorrelation peak lower than this is not called a period
OUTLIER_QUANTILE = 0.95  # the distance is clipped here before its autocorrelation


def unit_rows(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows scaled to unit length with invalid rows set to NaN, valid mask). Invalid: non-finite or ~zero."""
    e = np.asarray(emb, np.float64)
    if e.ndim != 2:
        e = e.reshape(len(e), -1)
    finite = np.all(np.isfinite(e), axis=1)
    norm = np.linalg.norm(np.where(finite[:, None], e, 0.0), axis=1)
    valid = finite & (norm > 1e-12)
    out = np.full(e.shape, np.nan)
    out[valid] = e[valid] / norm[valid, None]
    return out, valid


def consecutive_cosine_distance(emb: np.ndarray) -> np.ndarray:
    """(n - 1,) 1 - cos(e_i, e_{i+1}), in [0, 2]; NaN where either window is invalid."""
    u, _ = unit_rows(emb)
    if len(u) < 2:
        return np.zeros(0)
    return np.clip(1.0 - np.sum(u[1:] * u[:-1], axis=1), 0.0, 2.0)


def self_similarity(emb: np.ndarray) -> np.ndarray:
    """(n, n) cosine similarity (float32); rows/columns of invalid windows are NaN."""
    u, _ = unit_rows(emb)
    u32 = u.astype(np.float32)
    return np.clip(u32 @ u32.T, -1.0, 1.0) if len(u) else np.zeros((0, 0), np.float32)


def autocorrelation(x: np.ndarray, max_lag: int | None = None) -> np.ndarray:
    """Normalised autocorrelation r[k] = sum(y_i y_i+k) / sum(y_i^2), y = x - mean (NaN -> mean), for
    k = 0..max_lag (default n // 2). All NaN when x is empty, all-NaN or constant."""
    x = np.asarray(x, np.float64)
    n = len(x)
    max_lag = n // 2 if max_lag is None else min(int(max_lag), n - 1)
    if n == 0 or max_lag < 0:
        return np.zeros(0)
    finite = np.isfinite(x)
    if not finite.any():
        return np.full(max_lag + 1, np.nan)
    y = np.where(finite, x - x[finite].mean(), 0.0)
    energy = float(np.dot(y, y))
    if energy <= 1e-18 * max(1, n):
        return np.full(max_lag + 1, np.nan)
    full = np.correlate(y, y, mode="full")[n - 1 : n + max_lag]
    return full / energy


def dominant_period(acf: np.ndarray, min_lag: int = 2, min_peak: float = MIN_PEAK, near_best: float = 0.8
                    ) -> tuple[int | None, float]:
    """(lag, r[lag]) of the repeating period: among the local maxima of the autocorrelation past its first dip
    below zero (or past its first local minimum when it never dips), at lag >= min_lag, the first one reaching
    `near_best` of the highest (so a multiple of the period, nearly as high, does not win); it must reach
    `min_peak`. (None, NaN) when there is none."""
    r = np.asarray(acf, np.float64)
    if len(r) < 3 or not np.isfinite(r).any():
        return None, float("nan")
    below = np.flatnonzero(r[1:] < 0)
    start = int(below[0]) + 1 if below.size else 1
    if not below.size:
        mins = [k for k in range(1, len(r) - 1) if r[k] <= r[k - 1] and r[k] <= r[k + 1]]
        start = mins[0] if mins else len(r)
    peaks = [k for k in range(max(start, min_lag, 1), len(r) - 1)
             if np.isfinite(r[k]) and r[k] >= r[k - 1] and r[k] >= r[k + 1]]
    if not peaks:
        return None, float("nan")
    best = max(float(r[k]) for k in peaks)
    if not best >= min_peak:
        return None, float("nan")
    lag = next(k for k in peaks if r[k] >= max(near_best * best, min_peak))
    return lag, float(r[lag])


def clip_outliers(x: np.ndarray, quantile: float = 0.95) -> np.ndarray:
    """x with values above its `quantile` (finite values only) set to that quantile; NaNs stay."""
    x = np.asarray(x, np.float64)
    fin = x[np.isfinite(x)]
    if fin.size == 0:
        return x.copy()
    return np.where(np.isfinite(x), np.minimum(x, np.quantile(fin, quantile)), np.nan)


def cycle_similarity(emb: np.ndarray, period: int | None) -> np.ndarray:
    """(n,) cos(e_i, e_{i - period}): how much each window repeats the previous cycle; NaN where undefined."""
    u, _ = unit_rows(emb)
    out = np.full(len(u), np.nan)
    if period is None or period <= 0 or period >= len(u):
        return out
    out[period:] = np.sum(u[period:] * u[:-period], axis=1)
    return out


def pool_windows(frame_emb: np.ndarray, t_s: np.ndarray, window_s: float = 1.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame embeddings -> (window embeddings, window start s, window end s): the mean of the frames with
    floor(t / window_s) equal, as the anomaly_detection asset pools scene embeddings when V-JEPA is absent."""
    e = np.asarray(frame_emb, np.float64)
    t = np.asarray(t_s, np.float64)
    if len(e) == 0:
        return np.zeros((0, e.shape[1] if e.ndim == 2 else 0)), np.zeros(0), np.zeros(0)
    keys = np.floor(t / window_s)
    uniq, inv = np.unique(keys, return_inverse=True)
    sums = np.zeros((len(uniq), e.shape[1]))
    np.add.at(sums, inv, e)
    counts = np.bincount(inv, minlength=len(uniq))[:, None]
    starts = uniq * window_s
    return sums / counts, starts, starts + window_s


@dataclass
class AnomalyDiagnostics:
    t_s: np.ndarray  # (n,) window start times
    step_s: float  # window stride (median of start-time steps; 1.0 for < 2 windows)
    consecutive_distance: np.ndarray  # (n - 1,)
    ssm: np.ndarray  # (n, n) float32
    acf: np.ndarray  # autocorrelation of the (outlier-clipped) consecutive distance, lags 0..(n - 1) // 2
    period_windows: int | None
    acf_peak: float
    cycle_similarity: np.ndarray  # (n,)

    @property
    def period_s(self) -> float:
        return self.period_windows * self.step_s if self.period_windows else float("nan")

    def summary(self) -> dict[str, float | int]:
        """Numbers for asset metadata (NaN where undefined)."""
        d, c = self.consecutive_distance, self.cycle_similarity
        return {"n_windows": len(self.t_s),
                "mean_consecutive_distance": _nan_stat(np.nanmean, d),
                "max_consecutive_distance": _nan_stat(np.nanmax, d),
                "period_s": self.period_s, "acf_peak": self.acf_peak,
                "mean_cycle_similarity": _nan_stat(np.nanmean, c),
                "mean_offdiag_similarity": _mean_offdiag(self.ssm)}


def _nan_stat(fn, x: np.ndarray) -> float:
    return float(fn(x)) if len(x) and np.isfinite(x).any() else float("nan")


def _mean_offdiag(ssm: np.ndarray) -> float:
    n = len(ssm)
    if n < 2:
        return float("nan")
    off = ssm[~np.eye(n, dtype=bool)]
    return _nan_stat(np.nanmean, off)


def compute_diagnostics(emb: np.ndarray, t_s: np.ndarray, min_peak: float = MIN_PEAK) -> AnomalyDiagnostics:
    """All four diagnostics for one clip's window embeddings (n, d) with window start times (n,)."""
    t = np.asarray(t_s, np.float64)
    steps = np.diff(t)
    steps = steps[np.isfinite(steps) & (steps > 0)]
    step = float(np.median(steps)) if steps.size else 1.0
    dist = consecutive_cosine_distance(emb)
    acf = autocorrelation(clip_outliers(dist, OUTLIER_QUANTILE))
    period, peak = dominant_period(acf, min_peak=min_peak)
    return AnomalyDiagnostics(t_s=t, step_s=step if math.isfinite(step) else 1.0, consecutive_distance=dist,
                              ssm=self_similarity(emb), acf=acf, period_windows=period, acf_peak=peak,
                              cycle_similarity=cycle_similarity(emb, period))
