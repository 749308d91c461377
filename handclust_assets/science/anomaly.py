"""Anomalous spans (EgoClean): row-mean typicality of the window self-similarity -> 1 - typicality -> EMA ->
Otsu threshold with hysteresis (theta_on = Otsu, theta_off = midway between Otsu and the median)."""

from __future__ import annotations

import numpy as np
import polars as pl

SCORE_SCHEMA = {
    "window_idx": pl.Int64,
    "t_s": pl.Float64,
    "raw_score": pl.Float64,
    "smoothed": pl.Float64,
    "theta_on": pl.Float64,
    "theta_off": pl.Float64,
    "is_anomaly": pl.Boolean,
}
SPAN_SCHEMA = {"span_idx": pl.Int64, "start_s": pl.Float64, "end_s": pl.Float64, "peak_score": pl.Float64,
               "mean_score": pl.Float64}


def typicality(emb: np.ndarray) -> np.ndarray:
    """Row-mean cosine similarity of each row to all rows (zero rows count as orthogonal to everything).
    Rows with a non-finite value are left out of every mean and get NaN."""
    e = np.asarray(emb, np.float64)
    ok = np.isfinite(e).all(axis=1) if e.ndim == 2 else np.zeros(len(e), bool)
    out = np.full(len(e), np.nan)
    if ok.any():
        f = e[ok]
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        out[ok] = (f @ f.T).mean(axis=1)
    return out


def ema(x: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average; a non-finite sample leaves the average where it was (NaN before the first
    finite sample)."""
    out = np.empty(len(x))
    acc = None
    for i, v in enumerate(np.asarray(x, np.float64)):
        if np.isfinite(v):
            acc = v if acc is None else alpha * v + (1 - alpha) * acc
        out[i] = np.nan if acc is None else acc
    return out


def _otsu_on_bins(x: np.ndarray, bins: int) -> float:
    hist, edges = np.histogram(x, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    b = between[:-1]
    ties = np.flatnonzero(b >= b.max() * (1 - 1e-9))  # empty bins make a plateau: take its middle
    return float(edges[ties + 1].mean())


def otsu_threshold(x: np.ndarray, bins: int = 128) -> float:
    """Otsu's threshold over the finite values of `x`, always within their [min, max]; NaN when there are none.

    A range too narrow to hold `bins` distinct float bin edges (an almost-constant score a few ulps wide, which
    made numpy raise "Too many bins for data range") is binned after rescaling to [0, 1]."""
    x = np.asarray(x, np.float64).ravel()
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return float("nan")
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return hi
    edges = np.linspace(lo, hi, bins + 1)
    if np.isfinite(hi - lo) and np.all(edges[:-1] < edges[1:]):
        t = _otsu_on_bins(x, bins)
    else:  # halves keep hi - lo finite for any finite data
        half_span = hi / 2 - lo / 2
        t = lo + 2 * half_span * _otsu_on_bins((x / 2 - lo / 2) / half_span, bins)
    return float(min(max(t, lo), hi))


def hysteresis_spans(score: np.ndarray, t_s: np.ndarray, theta_on: float, theta_off: float,
                     min_len_s: float = 0.0, step_s: float = 1.0) -> list[tuple[float, float, float, float]]:
    spans, start = [], None
    for i, v in enumerate(score):
        if start is None and v >= theta_on:
            start = i
            while start > 0 and score[start - 1] >= theta_off:
                start -= 1
        elif start is not None and v < theta_off:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(score)))
    out = []
    for a, b in spans:
        s0, s1 = float(t_s[a]), float(t_s[b - 1] + step_s)
        if s1 - s0 >= min_len_s:
            out.append((s0, s1, float(np.nanmax(score[a:b])), float(np.nanmean(score[a:b]))))
    return out


def detect_anomalies(emb: np.ndarray, t_start_s: np.ndarray, t_end_s: np.ndarray | None = None, alpha: float = 0.3,
                     min_contrast: float = 0.05) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-window scores and spans. Otsu always splits a histogram in two, so a homogeneous clip would get
    spurious spans: spans are kept only when the threshold stands `min_contrast` above the median score.
    A window whose embedding holds NaN/inf gets a NaN raw score and carries the smoothed score over; with no
    finite window at all, the thresholds are NaN and there are no spans."""
    emb = np.asarray(emb, np.float64)
    t = np.asarray(t_start_s, np.float64)
    n = len(emb)
    if n == 0:
        return pl.DataFrame(schema=SCORE_SCHEMA), pl.DataFrame(schema=SPAN_SCHEMA)
    raw = 1.0 - typicality(emb)  # NaN for a window whose embedding is not finite
    sm = ema(raw, alpha)
    on = otsu_threshold(sm)
    med = float(np.median(sm[np.isfinite(sm)])) if np.isfinite(sm).any() else float("nan")
    off = (on + med) / 2
    step = float(np.median(np.diff(t))) if n > 1 else 1.0
    spans = hysteresis_spans(sm, t, on, off, step_s=step) if on - med >= min_contrast else []
    flags = np.zeros(n, bool)
    for s0, s1, _, _ in spans:
        flags |= (t >= s0) & (t < s1)
    scores = pl.DataFrame({"window_idx": np.arange(n), "t_s": t, "raw_score": raw, "smoothed": sm,
                           "theta_on": np.full(n, on), "theta_off": np.full(n, off), "is_anomaly": flags},
                          schema=SCORE_SCHEMA)
    sp = pl.DataFrame([{"span_idx": i, "start_s": a, "end_s": b, "peak_score": p, "mean_score": m}
                       for i, (a, b, p, m) in enumerate(spans)], schema=SPAN_SCHEMA) if spans else pl.DataFrame(
        schema=SPAN_SCHEMA)
    return scores, sp
