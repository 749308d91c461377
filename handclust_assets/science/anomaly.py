"""Anomalous spans (EgoClean): typicality of each window in the clip's self-similarity -> 1 - typicality -> EMA ->
threshold with hysteresis -> spans.

The seed's detector (row-mean typicality, one Otsu threshold per clip, theta_off midway to the median) found the
strongest anomaly of a clip and missed a weaker one beside it: the strong one lifts Otsu's threshold above the weak
one, and a long anomaly's windows vouch for each other in the row mean. What it does now (parameters chosen on the
train seeds of `benchmarks/eval_anomalies.py`, numbers on its held-out seeds):

- typicality (`recurrence_typicality`): the mean cosine similarity to the `share` (15 %) most similar windows of
  the clip more than `exclude_s` (20 s) away. Normal work recurs through a clip, so its windows find close
  partners elsewhere; an anomaly's windows cannot vouch for each other (they are within `exclude_s` of each other,
  or a minority of the partners) and are measured against the clip's dominant content, not its mean.
- smoothing: EMA (alpha 0.5).
- thresholds (`clip_thresholds`): theta_on = median + `min_contrast`, theta_off midway between theta_on and the
  median. The median hardly moves with one strong anomaly, so a weaker one in the same clip still crosses; Otsu's
  split no longer sets theta_on (kept: `otsu_threshold`). `min_contrast` is in cosine-distance units of the
  embedding (0.12 for the offline EfficientNet-Lite0 scene embeddings pooled to 1-s windows).
- a clip in which no window stands `min_contrast` above the median has no span; theta_on is then capped at the
  top score, so it always lies within the smoothed scores (as Otsu's did).
"""

from __future__ import annotations

from typing import NamedTuple

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
        f = _unit_rows(e[ok])
        out[ok] = (f @ f.T).mean(axis=1)
    return out


def _unit_rows(e: np.ndarray) -> np.ndarray:
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def recurrence_typicality(emb: np.ndarray, t_s: np.ndarray | None = None, share: float = 0.15,
                          exclude_s: float = 20.0, min_neighbours: int = 5) -> np.ndarray:
    """Typicality against the clip's recurring content: the mean cosine similarity of each window to its
    k = max(min_neighbours, share * n) most similar windows more than `exclude_s` away (window start times `t_s`,
    default 0, 1, 2, ...). Zero rows count as orthogonal to everything; rows with a non-finite value get NaN and
    are nobody's neighbour.

    `exclude_s` is capped at a third of the clip's time span, so every window keeps partners in a short clip; a
    window with fewer than k partners uses those it has, one with none (a single window) the row mean of
    `typicality` (itself included)."""
    e = np.asarray(emb, np.float64)
    n = len(e)
    ok = np.isfinite(e).all(axis=1) if e.ndim == 2 else np.zeros(n, bool)
    out = np.full(n, np.nan)
    if not ok.any():
        return out
    t = np.arange(n, dtype=np.float64) if t_s is None else np.asarray(t_s, np.float64)
    f, tf = _unit_rows(e[ok]), t[ok]
    m = len(f)
    reach = min(exclude_s, (tf.max() - tf.min()) / 3) if m > 1 else 0.0
    k = min(m, max(min_neighbours, int(round(share * m))))
    typ = np.empty(m)
    block = max(1, int(4e6 // m))  # rows at a time: memory stays flat on long clips (a row needs only itself)
    for r0 in range(0, m, block):
        rows = np.arange(r0, min(m, r0 + block))
        sim = f[rows] @ f.T
        far = np.abs(tf[rows, None] - tf[None, :]) > reach
        far[np.arange(len(rows)), rows] = False
        top = -np.sort(-np.partition(np.where(far, sim, -np.inf), m - k, axis=1)[:, m - k:], axis=1)
        n_partners = np.minimum(far.sum(axis=1), k)
        sums = np.cumsum(np.where(np.isfinite(top), top, 0.0), axis=1)
        mean_top = sums[np.arange(len(rows)), np.maximum(n_partners - 1, 0)] / np.maximum(n_partners, 1)
        typ[rows] = np.where(n_partners > 0, mean_top, sim.mean(axis=1))
    out[ok] = typ
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


class ClipThresholds(NamedTuple):
    on: float  # theta_on
    off: float  # theta_off
    median: float
    stands_out: bool  # some smoothed score lies min_contrast above the median: spans may be reported


def clip_thresholds(smoothed: np.ndarray, min_contrast: float) -> ClipThresholds:
    """Thresholds of a clip's smoothed scores (NaN and stands_out=False when none is finite): theta_on = median +
    min_contrast, capped at the top score; theta_off midway between theta_on and the median. Where no score
    stands min_contrast above the median (the cap applies), the clip has no span."""
    x = np.asarray(smoothed, np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return ClipThresholds(float("nan"), float("nan"), float("nan"), False)
    med, top = float(np.median(x)), float(x.max())
    on = min(med + min_contrast, top)
    return ClipThresholds(on, (on + med) / 2, med, top - med >= min_contrast)


def detect_anomalies(emb: np.ndarray, t_start_s: np.ndarray, t_end_s: np.ndarray | None = None, alpha: float = 0.5,
                     min_contrast: float = 0.12, share: float = 0.15, exclude_s: float = 20.0
                     ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-window scores (SCORE_SCHEMA) and spans (SPAN_SCHEMA): raw = 1 - `recurrence_typicality` (share,
    exclude_s), smoothed = EMA (alpha), thresholds from `clip_thresholds` (min_contrast), spans by
    hysteresis. A window whose embedding holds NaN/inf gets a NaN raw score and carries the smoothed score over;
    with no finite window at all, the thresholds are NaN and there are no spans."""
    emb = np.asarray(emb, np.float64)
    t = np.asarray(t_start_s, np.float64)
    n = len(emb)
    if n == 0:
        return pl.DataFrame(schema=SCORE_SCHEMA), pl.DataFrame(schema=SPAN_SCHEMA)
    raw = 1.0 - recurrence_typicality(emb, t, share=share, exclude_s=exclude_s)  # NaN where not finite
    sm = ema(raw, alpha)
    on, off, _, stands_out = clip_thresholds(sm, min_contrast)
    step = float(np.median(np.diff(t))) if n > 1 else 1.0
    spans = hysteresis_spans(sm, t, on, off, step_s=step) if stands_out else []
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
