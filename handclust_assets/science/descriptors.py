"""Segment descriptors per modality: pooled per-frame (or per-window) features over each segment."""

from __future__ import annotations

import numpy as np
import polars as pl


def _ranges(segs: pl.DataFrame) -> list[tuple[int, int]]:
    return list(zip(segs["start_frame"].to_list(), segs["end_frame"].to_list()))


def describe_mean(emb: np.ndarray, segs: pl.DataFrame, normalise: bool = True) -> np.ndarray:
    """Mean of per-frame vectors per segment (L2-normalised when `normalise`): scene embeddings."""
    emb = np.asarray(emb, np.float32)
    out = np.stack([emb[a:b].mean(axis=0) if b > a else np.zeros(emb.shape[1], np.float32) for a, b in _ranges(segs)])
    if normalise:
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)


def describe_windows(win_emb: np.ndarray, t_start: np.ndarray, t_end: np.ndarray, segs: pl.DataFrame) -> np.ndarray:
    """Mean of the windows whose centre lies in each segment (nearest window when none): V-JEPA 2."""
    win_emb = np.asarray(win_emb, np.float32)
    centres = (np.asarray(t_start) + np.asarray(t_end)) / 2.0
    out = []
    for s, e in zip(segs["start_s"].to_list(), segs["end_s"].to_list()):
        m = (centres >= s) & (centres < e)
        out.append(win_emb[m].mean(axis=0) if m.any() else win_emb[np.argmin(np.abs(centres - (s + e) / 2))])
    return np.stack(out).astype(np.float32)


def describe_tools(scores: np.ndarray, segs: pl.DataFrame, scale: float = 100.0) -> np.ndarray:
    """Log-normalised tool histogram: mean score per prompt over the segment -> log1p(scale * x) -> L1-normalise.

    The log compresses the few very confident prompts (gloved hand, safety vest) that would otherwise dominate.
    """
    m = describe_mean(scores, segs, normalise=False)
    h = np.log1p(scale * np.maximum(m, 0))
    return (h / np.maximum(h.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


def describe_stats(x: np.ndarray, segs: pl.DataFrame) -> np.ndarray:
    """Mean and std of each column per segment (NaN-safe): (S, 2k)."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    out = []
    for a, b in _ranges(segs):
        v = x[a:b]
        with np.errstate(all="ignore"):
            mu = np.nan_to_num(np.nanmean(v, axis=0)) if len(v) else np.zeros(x.shape[1])
            sd = np.nan_to_num(np.nanstd(v, axis=0)) if len(v) else np.zeros(x.shape[1])
        out.append(np.concatenate([mu, sd]))
    return np.asarray(out, np.float32)


def describe_rhythm(period: np.ndarray, strength: np.ndarray, mean_flow: np.ndarray, segs: pl.DataFrame) -> np.ndarray:
    """(S, 4): median period (s, 0 when aperiodic), mean periodicity strength, log mean flow, flow std."""
    out = []
    for a, b in _ranges(segs):
        p = np.asarray(period[a:b], np.float64)
        p = p[np.isfinite(p)]
        mf = np.asarray(mean_flow[a:b], np.float64)
        out.append([float(np.median(p)) if len(p) else 0.0, float(np.nanmean(strength[a:b])) if b > a else 0.0,
                    float(np.log1p(1000 * mf.mean())) if len(mf) else 0.0, float(np.log1p(1000 * mf.std())) if len(mf)
                    else 0.0])
    return np.nan_to_num(np.asarray(out, np.float32))


def describe_egomotion(camera: np.ndarray, residual: np.ndarray, ratio: np.ndarray, segs: pl.DataFrame,
                       layout: np.ndarray | None = None) -> np.ndarray:
    """(S, 6) mean/std of log camera motion, log residual motion and log ratio; with the residual `layout`
    (N, cells) also (S, 6 + cells): the share of camera-compensated motion in each frame region."""
    x = np.stack([np.log1p(1000 * np.asarray(camera)), np.log1p(1000 * np.asarray(residual)),
                  np.log1p(np.asarray(ratio))], axis=1)
    out = describe_stats(x, segs)
    if layout is None or len(layout) == 0:
        return out
    m = describe_mean(np.asarray(layout, np.float32), segs, normalise=False).astype(np.float64)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1e-12)
    return np.hstack([out, share]).astype(np.float32)


def describe_flow(mag: np.ndarray, dir_hist: np.ndarray, segs: pl.DataFrame) -> np.ndarray:
    """(S, B + 3): mean magnitude-weighted direction histogram, log mean / std / 90th percentile of flow
    magnitude (raw image motion, head included: what the camera saw move, and which way)."""
    h = describe_mean(np.asarray(dir_hist, np.float32), segs, normalise=False)
    mag = np.asarray(mag, np.float64)
    stats = []
    for a, b in _ranges(segs):
        v = mag[a:b] if b > a else np.zeros(1)
        stats.append([np.log1p(1000 * v.mean()), np.log1p(1000 * v.std()), np.log1p(1000 * np.percentile(v, 90))])
    return np.hstack([h, np.asarray(stats)]).astype(np.float32)
