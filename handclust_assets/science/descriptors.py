"""Segment descriptors per modality: pooled per-frame (or per-window) features over each segment.

Every descriptor is finite (`describe_windows` without a single usable window excepted: NaN rows, no evidence).
A segment reaching past the data uses the frames that exist; a segment with none gets the empty-segment value.
NaN / inf entries (a frame a model could not score) are left out of the pooling.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl


def _ranges(segs: pl.DataFrame) -> list[tuple[int, int]]:
    return list(zip(segs["start_frame"].to_list(), segs["end_frame"].to_list()))


def _finite_mean(v: np.ndarray) -> np.ndarray:
    """Column means of (rows, d) over the finite entries (0 for a column with none)."""
    if len(v) and np.isfinite(v).all():
        return v.mean(axis=0)
    ok = np.isfinite(v)
    cnt = ok.sum(axis=0)
    return (np.where(ok, v, 0).sum(axis=0) / np.maximum(cnt, 1)).astype(v.dtype)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norm > 0, x / np.where(norm > 0, norm, 1), 0).astype(x.dtype)


def _unit_sum_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1; rows summing to 0 stay zero."""
    tot = x.sum(axis=1, keepdims=True)
    return np.where(tot > 0, x / np.where(tot > 0, tot, 1), 0)


def describe_mean(emb: np.ndarray, segs: pl.DataFrame, normalise: bool = True) -> np.ndarray:
    """(S, d) mean of per-frame vectors per segment (L2-normalised when `normalise`): scene embeddings."""
    emb = np.asarray(emb, np.float32)
    out = np.zeros((segs.height, emb.shape[1]), np.float32)
    for i, (a, b) in enumerate(_ranges(segs)):
        out[i] = _finite_mean(emb[a:b])
    return _unit_rows(out) if normalise else out


def describe_windows(win_emb: np.ndarray, t_start: np.ndarray, t_end: np.ndarray, segs: pl.DataFrame) -> np.ndarray:
    """Mean of the windows whose centre lies in each segment (nearest window when none): V-JEPA 2.
    Windows with a non-finite embedding or time are ignored; with no usable window, NaN rows (no evidence)."""
    win_emb = np.asarray(win_emb, np.float32)
    win_emb = win_emb[:, None] if win_emb.ndim == 1 else win_emb
    centres = (np.asarray(t_start, np.float64) + np.asarray(t_end, np.float64)) / 2.0
    ok = np.isfinite(win_emb).all(axis=1) & np.isfinite(centres)
    if not ok.any():
        return np.full((segs.height, win_emb.shape[1]), np.nan, np.float32)
    win_emb, centres = win_emb[ok], centres[ok]
    out = np.zeros((segs.height, win_emb.shape[1]), np.float32)
    for i, (s, e) in enumerate(zip(segs["start_s"].to_list(), segs["end_s"].to_list())):
        m = (centres >= s) & (centres < e)
        out[i] = win_emb[m].mean(axis=0) if m.any() else win_emb[np.argmin(np.abs(centres - (s + e) / 2))]
    return out


def describe_tools(scores: np.ndarray, segs: pl.DataFrame, scale: float = 100.0) -> np.ndarray:
    """Log-normalised tool histogram: mean score per prompt over the segment -> log1p(scale * x) -> L1-normalise.

    The log compresses the few very confident prompts (gloved hand, safety vest) that would otherwise dominate.
    """
    m = describe_mean(scores, segs, normalise=False)
    h = np.log1p(scale * np.maximum(m, 0))
    return _unit_sum_rows(h).astype(np.float32)


def describe_stats(x: np.ndarray, segs: pl.DataFrame) -> np.ndarray:
    """Mean and std of each column per segment (NaN-safe): (S, 2k)."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    x = np.where(np.isfinite(x), x, np.nan)  # inf is as unusable as NaN
    out = np.zeros((segs.height, 2 * x.shape[1]), np.float32)
    for i, (a, b) in enumerate(_ranges(segs)):
        v = x[a:b]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: mean of an empty slice -> 0
            mu = np.nan_to_num(np.nanmean(v, axis=0)) if len(v) else np.zeros(x.shape[1])
            sd = np.nan_to_num(np.nanstd(v, axis=0)) if len(v) else np.zeros(x.shape[1])
        out[i] = np.concatenate([mu, sd])
    return out


def describe_rhythm(period: np.ndarray, strength: np.ndarray, mean_flow: np.ndarray, segs: pl.DataFrame) -> np.ndarray:
    """(S, 4): median period (s, 0 when aperiodic), mean periodicity strength, log mean flow, flow std."""
    out = np.zeros((segs.height, 4), np.float32)
    for i, (a, b) in enumerate(_ranges(segs)):
        p = _finite(period[a:b])
        st = _finite(strength[a:b])
        mf = np.maximum(_finite(mean_flow[a:b]), 0.0)
        out[i] = [float(np.median(p)) if len(p) else 0.0, float(np.mean(st)) if len(st) else 0.0,
                  float(np.log1p(1000 * mf.mean())) if len(mf) else 0.0,
                  float(np.log1p(1000 * mf.std())) if len(mf) else 0.0]
    return np.nan_to_num(out)


def _finite(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v[np.isfinite(v)]


def describe_egomotion(camera: np.ndarray, residual: np.ndarray, ratio: np.ndarray, segs: pl.DataFrame,
                       layout: np.ndarray | None = None) -> np.ndarray:
    """(S, 6) mean/std of log camera motion, log residual motion and log ratio; with the residual `layout`
    (N, cells) also (S, 6 + cells): the share of camera-compensated motion in each frame region."""
    with np.errstate(invalid="ignore", divide="ignore"):  # a negative or -inf value -> NaN: left out
        x = np.stack([np.log1p(1000 * np.asarray(camera)), np.log1p(1000 * np.asarray(residual)),
                      np.log1p(np.asarray(ratio))], axis=1)
    out = describe_stats(x, segs)
    if layout is None or len(layout) == 0:
        return out
    m = describe_mean(np.asarray(layout, np.float32), segs, normalise=False).astype(np.float64)
    share = _unit_sum_rows(np.maximum(m, 0.0))
    return np.hstack([out, share]).astype(np.float32)


def describe_flow(mag: np.ndarray, dir_hist: np.ndarray, segs: pl.DataFrame) -> np.ndarray:
    """(S, B + 3): mean magnitude-weighted direction histogram, log mean / std / 90th percentile of flow
    magnitude (raw image motion, head included: what the camera saw move, and which way)."""
    h = describe_mean(np.asarray(dir_hist, np.float32), segs, normalise=False)
    mag = np.asarray(mag, np.float64)
    stats = np.zeros((segs.height, 3))
    for i, (a, b) in enumerate(_ranges(segs)):
        v = np.maximum(_finite(mag[a:b]), 0.0)
        v = v if len(v) else np.zeros(1)
        stats[i] = [np.log1p(1000 * v.mean()), np.log1p(1000 * v.std()), np.log1p(1000 * np.percentile(v, 90))]
    return np.hstack([h, stats]).astype(np.float32)
