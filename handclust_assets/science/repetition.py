"""Repetition counting by cross-modal agreement (the seeds' RepNet stand-in): a period from the scene
self-similarity matrix and one from flow-magnitude autocorrelation; accepted when they agree within 30 %."""

from __future__ import annotations

import numpy as np
import polars as pl

from handclust_assets.science.rhythm import autocorr_period

REPETITION_SCHEMA = {
    "segment_idx": pl.Int64,
    "ssm_period_s": pl.Float64,
    "flow_period_s": pl.Float64,
    "accepted": pl.Boolean,
    "period_s": pl.Float64,
    "rep_count": pl.Float64,
}


def ssm(emb: np.ndarray) -> np.ndarray:
    e = np.asarray(emb, np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return e @ e.T


def ssm_period(emb: np.ndarray, fps: float, min_period_s: float = 0.6, max_period_s: float | None = None
               ) -> tuple[float, float]:
    """Period from the SSM's off-diagonal profile: mean similarity at each lag (its autocorrelation structure),
    detrended; the period is the lag of the profile's autocorrelation peak."""
    s = ssm(emb)
    n = len(s)
    if n < 6:
        return float("nan"), float("nan")
    profile = np.array([np.mean(np.diagonal(s, k)) for k in range(n)])
    return first_strong_peak(profile, fps, min_period_s, max_period_s or n / fps / 2)


def first_strong_peak(profile: np.ndarray, fps: float, min_period_s: float, max_period_s: float
                      ) -> tuple[float, float]:
    """The lag profile of a periodic sequence (mean self-similarity per lag) peaks at every multiple of the
    period; return the first local maximum that reaches half of the strongest one (parabolic refinement)."""
    lo = max(1, int(np.floor(min_period_s * fps)))
    hi = min(len(profile) - 2, int(np.ceil(max_period_s * fps)))
    if hi <= lo:
        return float("nan"), float("nan")
    # remove the slow drift (walking forward, a head turn: similarity falls with lag) so periodic bumps show
    lags = np.arange(1, hi + 2)
    slope, icpt = np.polyfit(lags, profile[1 : hi + 2], 1)
    p = profile - (icpt + slope * np.arange(len(profile)))
    cand = [k for k in range(lo, hi + 1) if p[k] >= p[k - 1] and p[k] >= p[k + 1] and p[k] > 0]
    if not cand:
        return float("nan"), float("nan")
    best = max(p[k] for k in cand)
    k = next(k for k in cand if p[k] >= 0.5 * best)
    a, b, c = p[k - 1], p[k], p[k + 1]
    den = a - 2 * b + c
    off = 0.5 * (a - c) / den if den != 0 else 0.0
    return float((k + np.clip(off, -0.5, 0.5)) / fps), float(profile[k])


def flow_period(mag: np.ndarray, fps: float, min_period_s: float = 0.6, max_period_s: float | None = None
                ) -> tuple[float, float]:
    return autocorr_period(mag, fps, min_period_s, max_period_s)


def consensus_repetitions(p_ssm: float, p_flow: float, length_s: float, tol: float = 0.30) -> dict:
    """Accept when both periods exist and |a - b| / mean(a, b) <= tol; period = their mean, count = length/period."""
    ok = bool(np.isfinite(p_ssm) and np.isfinite(p_flow) and p_ssm > 0 and p_flow > 0
              and abs(p_ssm - p_flow) / ((p_ssm + p_flow) / 2) <= tol)
    period = (p_ssm + p_flow) / 2 if ok else float("nan")
    return {"accepted": ok, "period_s": period, "count": length_s / period if ok else float("nan")}


def segment_repetitions(scene_emb: np.ndarray, flow_mag: np.ndarray, segs: pl.DataFrame, fps: float,
                        context_s: float = 0.0) -> tuple[pl.DataFrame, dict]:
    """Per segment: both periods, the consensus and the count (segment length / period). With `context_s` > 0
    the periods are estimated on a window of at least that many seconds centred on the segment. Default: the
    segment alone — on the synthetic set a 10-s context accepted spurious periods on 24 % of idle segments
    (it reaches into the neighbours) against 6 % without, for no gain on periodic ones."""
    rows = []
    n = min(len(scene_emb), len(flow_mag))
    half = int(round(context_s * fps / 2))
    for r in segs.iter_rows(named=True):
        a0, b0 = r["start_frame"], r["end_frame"]
        mid = (a0 + b0) // 2
        a, b = (max(0, min(a0, mid - half)), min(n, max(b0, mid + half))) if half > 0 else (a0, b0)
        length = r["end_s"] - r["start_s"]
        maxp = (b - a) / fps / 2.0
        ps, _ = ssm_period(scene_emb[a:b], fps, 0.6, maxp) if b - a >= 6 else (float("nan"), 0)
        pf, _ = flow_period(flow_mag[a:b], fps, 0.6, maxp) if b - a >= 6 else (float("nan"), 0)
        c = consensus_repetitions(ps, pf, length)
        rows.append({"segment_idx": r["segment_idx"], "ssm_period_s": ps, "flow_period_s": pf,
                     "accepted": c["accepted"], "period_s": c["period_s"], "rep_count": c["count"]})
    df = pl.DataFrame(rows, schema=REPETITION_SCHEMA) if rows else pl.DataFrame(schema=REPETITION_SCHEMA)
    share = float(df["accepted"].mean()) if df.height else 0.0
    return df, {"accepted_share": share, "n_segments": df.height}
