"""Flow rhythm: windowed FFT of flow magnitude -> dominant period, periodicity strength, mean flow."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RhythmWindows:
    t_center_s: np.ndarray
    dominant_period_s: np.ndarray  # NaN when the window has no periodic content
    periodicity_strength: np.ndarray  # peak power / total power (DC excluded), in [0, 1]
    mean_flow: np.ndarray


@dataclass
class RhythmFrames:
    dominant_period_s: np.ndarray
    periodicity_strength: np.ndarray
    mean_flow: np.ndarray


def _spectral_peak(x: np.ndarray, fps: float, min_period_s: float, max_period_s: float) -> tuple[float, float]:
    x = x - x.mean()
    if len(x) < 4 or not np.any(np.abs(x) > 1e-12):
        return float("nan"), 0.0
    x = x * np.hanning(len(x))
    nfft = 1 << int(np.ceil(np.log2(len(x) * 8)))  # zero padding: fine frequency grid
    p = np.abs(np.fft.rfft(x, nfft)) ** 2
    freqs = np.fft.rfftfreq(nfft, 1.0 / fps)
    band = (freqs >= 1.0 / max_period_s) & (freqs <= 1.0 / min_period_s)
    total = p[1:].sum()
    if not band.any() or total <= 0:
        return float("nan"), 0.0
    idx = np.flatnonzero(band)
    # Harmonic sum (pitch detection): a stroke's speed has harmonics, and the strongest spectral line is often
    # the 2nd or 3rd. Score each candidate f0 by P(f0) + 0.8 P(2 f0) + 0.6 P(3 f0) (harmonics below Nyquist).
    df = freqs[1] - freqs[0]
    score = p[idx].copy()
    for h, wgt in ((2, 0.8), (3, 0.6)):
        hk = np.rint(freqs[idx] * h / df).astype(np.int64)
        ok = hk < len(p)
        score[ok] += wgt * p[hk[ok]]
    k = idx[np.argmax(score)]
    if 0 < k < len(p) - 1:  # parabolic refinement of the peak
        a, b, c = np.log(p[k - 1] + 1e-30), np.log(p[k] + 1e-30), np.log(p[k + 1] + 1e-30)
        den = a - 2 * b + c
        off = 0.5 * (a - c) / den if den != 0 else 0.0
        f = freqs[k] + np.clip(off, -0.5, 0.5) * (freqs[1] - freqs[0])
    else:
        f = freqs[k]
    # strength: power within the main lobe (+-2 bins of the unpadded spectrum) over total power
    lobe = max(1, int(round(2 * nfft / len(x) / 2)))
    strength = float(p[max(1, k - lobe) : k + lobe + 1].sum() / total)
    return (1.0 / f if f > 0 else float("nan")), min(1.0, strength)


def flow_rhythm(
    mag: np.ndarray,
    fps: float,
    window_s: float = 12.0,
    hop_s: float = 1.0,
    min_period_s: float = 0.5,
    max_period_s: float | None = None,
) -> tuple[RhythmWindows, RhythmFrames]:
    """Sliding-window FFT. Windows of `window_s` every `hop_s`; per-frame values come from the window whose
    centre is nearest. A clip shorter than the window gets one window over all of it."""
    mag = np.asarray(mag, np.float64)
    n = len(mag)
    win = max(4, int(round(window_s * fps)))
    hop = max(1, int(round(hop_s * fps)))
    if max_period_s is None:
        max_period_s = min(window_s / 2.0, max(n / fps / 2.0, 2.0 / fps))
    min_period_s = max(min_period_s, 2.0 / fps)  # Nyquist
    starts = list(range(0, max(1, n - win + 1), hop)) if n >= win else [0]
    tc, per, st, mf = [], [], [], []
    for s0 in starts:
        seg = mag[s0 : s0 + win]
        p, strength = _spectral_peak(seg, fps, min_period_s, max_period_s)
        tc.append((s0 + len(seg) / 2.0) / fps)
        per.append(p)
        st.append(strength)
        mf.append(float(seg.mean()) if len(seg) else 0.0)
    w = RhythmWindows(np.asarray(tc), np.asarray(per), np.asarray(st), np.asarray(mf))
    if n == 0:
        e = np.zeros(0)
        return w, RhythmFrames(e, e, e)
    t = (np.arange(n) + 0.5) / fps
    nearest = np.abs(t[:, None] - w.t_center_s[None, :]).argmin(axis=1)
    return w, RhythmFrames(w.dominant_period_s[nearest], w.periodicity_strength[nearest], w.mean_flow[nearest])


def autocorr_period(
    x: np.ndarray, fps: float, min_period_s: float = 0.5, max_period_s: float | None = None
) -> tuple[float, float]:
    """Period (s) at the highest autocorrelation peak within the allowed lag range, and its value.

    Returns (nan, nan) when the signal is constant or shows no local autocorrelation peak.
    """
    x = np.asarray(x, np.float64)
    x = x - x.mean()
    n = len(x)
    if n < 4 or np.allclose(x, 0):
        return float("nan"), float("nan")
    ac = np.correlate(x, x, mode="full")[n - 1 :]
    ac = ac / ac[0]
    # unbiased-ish: normalise by overlap so long lags are not penalised too much
    ac = ac * n / np.maximum(n - np.arange(n), 1)
    lo = max(2, int(np.floor(min_period_s * fps)))
    hi = min(n - 2, int(np.ceil((max_period_s if max_period_s else n / fps / 2) * fps)))
    if hi <= lo:
        return float("nan"), float("nan")
    cand = [k for k in range(lo, hi + 1) if ac[k] >= ac[k - 1] and ac[k] >= ac[k + 1] and ac[k] > 0]
    if not cand:
        return float("nan"), float("nan")
    best = max(cand, key=lambda j: ac[j])
    # Prefer the fundamental: a coarsely sampled cycle (e.g. 7.5 samples) correlates better at whole multiples
    # of its period, so test best/m (m = 4, 3, 2) and take the shortest such lag whose correlation reaches
    # half of the best peak.
    for m in (4, 3, 2):
        j = best / m
        if j < lo:
            continue
        jl, jh = int(np.floor(j)), int(np.ceil(j))
        if max(ac[jl], ac[jh]) >= 0.5 * ac[best]:
            w = j - jl
            return float(j / fps), float((1 - w) * ac[jl] + w * ac[jh])
    k = best
    a, b, c = ac[k - 1], ac[k], ac[k + 1]
    den = a - 2 * b + c
    off = 0.5 * (a - c) / den if den != 0 else 0.0
    return float((k + np.clip(off, -0.5, 0.5)) / fps), float(b)
