"""Where in the picture the repetition is: a box search over the source-rate motion track.

A repetition often fills only part of the picture (an actor in a still scene, hands at a bench while people pass
behind). Pooled over the whole frame, its cells and pixels are outvoted by the aperiodic rest, and the counter
sees the wrong period or none. So before counting, candidate boxes (halves and two-thirds of the frame on a 3 x 3
lattice of positions) are scored by how periodic their content is, cheaply: a few principal components of the
box's thumbnail pixels plus its mean frame difference, windowed lag-correlation every second, octave-enhanced
(the same maps as the counter, `periodicity`), all boxes' channels in one pass. The counter then tracks the
best box as well as the whole frame, and the clip keeps whichever of the two is more periodic through time
(`counting.track_located`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handclust_assets.science.periodicity import (
    blockwise_lag_correlation,
    channel_weights,
    enhanced_strength,
    frames_in,
    resample_to_grid,
    window_lengths,
)

FULL_FRAME = (0.0, 0.0, 1.0)


@dataclass(frozen=True)
class BoxScore:
    box: tuple[float, float, float]  # (top, left, side) as shares of the frame's height / width
    score: float  # mean octave-enhanced periodicity over the clip, in [0, 1]


def candidate_boxes(sizes: tuple[float, ...] = (0.5, 0.7), steps: int = 3) -> list[tuple[float, float, float]]:
    """(top, left, side) boxes: every size at a steps x steps lattice of positions (shares of the frame)."""
    out = []
    for s in sizes:
        for top in np.linspace(0.0, 1.0 - s, steps):
            for left in np.linspace(0.0, 1.0 - s, steps):
                out.append((round(float(top), 4), round(float(left), 4), float(s)))
    return out


def crop_box(a: np.ndarray, box: tuple[float, float, float]) -> np.ndarray:
    """a (T, h, w) cut to the box (at least one cell each way)."""
    h, w = a.shape[1:3]
    top, left, side = box
    y0, x0 = int(np.floor(top * h)), int(np.floor(left * w))
    y1, x1 = max(y0 + 1, int(np.ceil((top + side) * h))), max(x0 + 1, int(np.ceil((left + side) * w)))
    return a[:, y0:min(y1, h), x0:min(x1, w)]


def principal_scores(z: np.ndarray, k: int) -> np.ndarray:
    """The first k principal component scores (T, k) of centred rows z (T, P) (zero-padded past rank), from the
    smaller scatter matrix: pixels x pixels, or frames x frames when a box holds more pixels than the clip has
    frames. Signs are arbitrary (correlations do not care)."""
    out = np.zeros((len(z), k))
    if z.shape[1] <= len(z):
        _, vec = np.linalg.eigh(z.T @ z)
        kk = min(k, vec.shape[1])
        out[:, :kk] = z @ vec[:, ::-1][:, :kk]
    else:
        val, vec = np.linalg.eigh(z @ z.T)  # z z^T u = s^2 u, and z v = s u
        kk = min(k, vec.shape[1])
        out[:, :kk] = vec[:, ::-1][:, :kk] * np.sqrt(np.maximum(val[::-1][:kk], 0.0))
    return out


def _box_channels(intensity: np.ndarray, energy: np.ndarray | None, box: tuple[float, float, float],
                  k: int) -> np.ndarray:
    z = crop_box(intensity, box).reshape(len(intensity), -1).astype(np.float64)  # in place from here: long clips
    sd = z.std(axis=1, keepdims=True)
    z -= z.mean(axis=1, keepdims=True)
    z /= np.where(sd > 1e-6, sd, 1.0)
    z -= z.mean(axis=0)
    out = np.zeros((len(z), k + 1))
    if z.shape[1] >= 2 and len(z) >= 3:
        out[:, :k] = principal_scores(z, k)
    if energy is not None:
        out[:, k] = crop_box(energy, box).reshape(len(energy), -1).astype(np.float64).mean(axis=1)
    return out


def score_boxes(t_s: np.ndarray, intensity: np.ndarray, energy: np.ndarray | None,
                boxes: list[tuple[float, float, float]], fs: float = 20.0, n_components: int = 4,
                min_period_s: float = 0.25, max_period_s: float = 10.0, min_cycles: float = 3.0,
                step_s: float = 1.0, n_cycles: float = 4.0, min_window_s: float = 2.5, max_window_s: float = 12.0
                ) -> list[BoxScore]:
    """How periodic each box's content is (see the module doc). intensity (T, h, w) thumbnails, energy (T, gh, gw)
    frame differences (uncompensated) or None, at times t_s. Scores in the order of `boxes`. The keywords are the
    counter's (`counting.CountingParams`, which `counting.track_located` passes): the grid rate, the period band,
    and the window rule (n_cycles x the lag, clamped to min / max_window_s; the box search leaves out the
    counter's `min_window_cycles`, so slow lags are judged over the capped window: on the dev set's train clips
    the longer windows moved the chosen box a few clips each way and lost three where found)."""
    t = np.asarray(t_s, np.float64)
    zeros = [BoxScore(b, 0.0) for b in boxes]
    if len(t) < 8 or intensity is None or len(intensity) != len(t) or not boxes:
        return zeros
    duration = float(t[-1] - t[0]) + float(np.median(np.diff(t)))
    per_box = [_box_channels(np.asarray(intensity), energy, b, n_components) for b in boxes]
    width = per_box[0].shape[1]
    grid = np.arange(int(np.floor(duration * fs)) + 1) / fs
    vals, ok = resample_to_grid(t - t[0], np.concatenate(per_box, axis=1), grid, 0.04)
    max_lag = int(min(max_period_s, duration / min_cycles) * fs)
    min_lag = max(3, int(np.ceil(min_period_s * fs)))
    if max_lag <= min_lag + 2 or ok.sum() < 8:
        return zeros
    mu, sd = vals[ok].mean(axis=0), vals[ok].std(axis=0)
    vals = (vals - mu) / np.where(sd > 1e-9, sd, 1.0)
    step = max(1, int(round(step_s * fs)))
    centres = np.arange(step // 2, len(grid), step)
    lengths = window_lengths(max_lag, fs, n_cycles, min_window_s, max_window_s, len(grid))
    band = slice(min_lag, max_lag + 1)
    box_of = np.arange(vals.shape[1]) // width
    total = np.zeros(len(boxes))  # sum over centres of each box's strength

    def finish(num: np.ndarray, den: np.ndarray) -> None:
        for i in range(len(boxes)):
            pooled = np.where(den[..., i] > 0, num[..., i] / np.maximum(den[..., i], 1e-300), np.nan)
            total[i] += np.clip(enhanced_strength(pooled, band)[1], 0.0, 1.0).sum()

    rows_now, num, den = None, None, None
    for rows, cols, r, csd in blockwise_lag_correlation(vals, ok, centres, max_lag, lengths):
        if rows != rows_now:  # a new block of centres: the last one is complete
            if num is not None:
                finish(num, den)
            rows_now = rows
            num = np.zeros((rows.stop - rows.start, max_lag + 1, len(boxes)))
            den = np.zeros_like(num)
        w = channel_weights(r, csd, band)  # every box's channels weighted as `pooled_lag_map` weights them
        rw = np.where(np.isfinite(r), r, 0.0) * w
        for i in np.unique(box_of[cols]):
            mine = box_of[cols] == i
            num[..., i] += rw[:, :, mine].sum(axis=2)
            den[..., i] += w[:, :, mine].sum(axis=2)
    if num is not None:
        finish(num, den)
    return [BoxScore(b, float(total[i] / len(centres))) for i, b in enumerate(boxes)]


def best_box(t_s: np.ndarray, intensity: np.ndarray, energy: np.ndarray | None, min_change: float = 0.0,
             **kw: object) -> BoxScore:
    """The most periodic candidate box (ties: the first in `candidate_boxes` order); with `min_change` > 0 only
    boxes whose pixels change at least this share of the whole picture's mean change (`change_map`) are candidates."""
    from threadpoolctl import threadpool_limits

    boxes = candidate_boxes()
    if min_change > 0 and intensity is not None and np.asarray(intensity).ndim == 3 and len(intensity) >= 8:
        cmap = change_map(t_s, np.asarray(intensity))
        whole = float(cmap.mean())
        if whole > 0:
            boxes = [b for b in boxes if float(crop_box(cmap[None], b).mean()) >= min_change * whole]
    if not boxes:
        return BoxScore(FULL_FRAME, 0.0)
    with threadpool_limits(limits=1, user_api="blas"):  # small eighs: threads only fight other work on the cores
        scores = score_boxes(t_s, intensity, energy, boxes, **kw)
    return max(scores, key=lambda s: s.score) if scores else BoxScore(FULL_FRAME, 0.0)


def change_map(t_s: np.ndarray, intensity: np.ndarray, lag_s: float = 0.07) -> np.ndarray:
    """(h, w): each pixel's mean |I(t + d) - I(t - d)| over the clip, d ~ lag_s (a moving hand changes its
    pixels over a few frames far more than sensor noise or what is left of the camera's sway)."""
    d = frames_in(t_s, lag_s)
    a = np.asarray(intensity, np.float32)
    if len(a) <= 2 * d:
        return np.zeros(a.shape[1:], np.float64)
    return np.abs(a[2 * d:] - a[:-2 * d]).mean(axis=0, dtype=np.float64)
