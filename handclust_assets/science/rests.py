"""The actor's rests between strokes, found before any period is known, and the time axis without them.

Work comes in bouts: a few strokes, a pause (reach for the next brick, look up), a few more. A rest of half a
period or more shifts the phase of every stroke after it, so a window of four cycles that holds a rest no longer
matches itself one period later. The tracker then finds no rhythm at the stroke's period, or a slower quasi-period
of strokes plus rests, and the rules that take rests out of the count afterwards (`counting`: `_frozen_centres`,
`_dwells`, `extent.rest_centres`) need the right period to begin with.

Here rests are found from the picture's change alone (`counting._picture_change`: how much the pooled thumbnails
change over +-0.07 s, its noise floor removed), averaged over `smooth_s`: a run where it stays below `ratio` of
its running median over `ref_s` seconds for at least `min_s` is a rest. The running median follows a busy
background that calms down; a rest is a dip against the strokes around it, not a quiet clip. Cutting such runs out
of every signal's time axis (`without_rests`) joins the bouts: an actor who rests where a stroke ends resumes from
there, so the joined signal keeps the strokes' phase. `counting.track_periods` tracks the joined signals too and
keeps the cut track only when it is clearly more periodic (`CountingParams.rest_cut_margin`), so a run cut by mistake
(a slow turn, a still moment that was no rest) costs nothing unless the cut track is the better one.

Plain numpy; no Dagster.
"""

from __future__ import annotations

import numpy as np

from handclust_assets.science.extent import periodic_runs


def windowed_mean(t: np.ndarray, x: np.ndarray, t_c: np.ndarray, window_s: float | np.ndarray) -> np.ndarray:
    """Mean of the samples x (at sorted times t) within [t_c - w / 2, t_c + w / 2) around each centre (w:
    one window for all, or one per centre); NaN where the window holds no sample."""
    cum = np.concatenate([[0.0], np.cumsum(x)])
    a = np.searchsorted(t, t_c - np.asarray(window_s) / 2)
    b = np.searchsorted(t, t_c + np.asarray(window_s) / 2)
    return np.where(b > a, (cum[b] - cum[a]) / np.maximum(b - a, 1), np.nan)


def find_rests(t: np.ndarray, change: np.ndarray, ratio: float, min_s: float, ref_s: float, smooth_s: float
               ) -> list[tuple[float, float]]:
    """Rests as (start, end) seconds, in time order: runs where `change` (sampled at sorted, roughly uniform times
    `t`, finite), averaged over `smooth_s`, stays below `ratio` x its running median over `ref_s` for at least
    `min_s`. Empty when `ratio` <= 0, or with fewer than 8 samples."""
    t = np.asarray(t, np.float64)
    change = np.asarray(change, np.float64)
    if ratio <= 0 or len(t) < 8 or len(change) != len(t):
        return []
    dt = float(np.median(np.diff(t)))
    if not dt > 0:
        return []
    from scipy.ndimage import median_filter

    level = windowed_mean(t, change, t, smooth_s) if smooth_s > 0 else change
    ref = median_filter(level, size=max(3, int(round(ref_s / dt)) | 1), mode="nearest")
    with np.errstate(invalid="ignore"):
        low = level < ratio * ref
    return [(float(t[a]), float(t[last] + dt)) for a, last in periodic_runs(low) if t[last] - t[a] + dt >= min_s]


def without_rests(t: np.ndarray, rests: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Times `t` on the time axis with `rests` ((start, end) seconds, disjoint) taken out: each time less the rest
    time before it; and which times fall inside a rest (they have no place on the cut axis)."""
    t = np.asarray(t, np.float64)
    if not rests:
        return t.copy(), np.zeros(len(t), bool)
    r = np.asarray(sorted(rests), np.float64)
    before = np.concatenate([[0.0], np.cumsum(r[:, 1] - r[:, 0])])  # rest time before each rest starts
    k = np.searchsorted(r[:, 0], t, side="right") - 1  # the last rest starting at or before each time
    started = k >= 0
    kk = np.maximum(k, 0)
    shift = np.where(started, before[kk] + np.clip(t - r[kk, 0], 0.0, r[kk, 1] - r[kk, 0]), 0.0)
    return t - shift, started & (t < r[kk, 1])
