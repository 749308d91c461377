"""Repetition counting through time: consensus of several rhythm signals, a tracked period curve, and counts
per activity span and per clip by integrating 1 / period over the time that is periodic.

Signals (any subset; each optional; built by `rhythm_signals`): source-rate motion energy, appearance and camera
motion from the motion track, and the 5-fps flow, scene, ego-motion and keypoints; "speed" signals (magnitudes)
peak twice per cycle, "position" signals repeat once. Both kinds are pooled into one lag-correlation map,
each signal weighted by its prior and by its own periodicity strength there (squared), then enhanced against
octave errors (see `periodicity`). Signals abstain at periods shorter than 3 of their own samples (a 5-fps
signal cannot see a 0.4 s stroke). A position signal whose own period is far longer than its velocity's (camera
sway or lighting drift outweighing a small repetition) does not vote.

A Viterbi path through that map (states: a log-spaced period grid and "aperiodic") gives the period curve:
smooth drift is cheap, octave jumps are expensive, pauses fall into the aperiodic state. Work in bouts (a few
strokes, a rest, a few more) shifts the strokes' phase at every rest, so rests found from the picture's change before
any period is known are cut out of the time axis and the joined signals tracked too; the cut track is kept when it
is clearly more periodic (`rests`, `track_periods`). The tracker's windows
blur each periodic stretch's edges, so they are set again where the repetition starts and ends (`extent`: every
signal compared with itself one tracked period later, sample by sample). Count = integral of
1 / period over the time that moves (stillness excluded), the period interpolated across gaps between stretches
where the consensus was unsure (a gap that moves less than half as much as the stretches is a rest: not
counted; so is a rest inside a stretch, where nothing matches itself a period later: `extent.rest_centres`, or
where the picture barely changes for a whole period and the cycle around it does not match the next one:
`_frozen_centres`, `extent.unmatched_centres`);
fewer than `min_reps` turns is not a repetition. A span is "counted" when enough signals support its
period, "no agreement" when signals are periodic but do not agree, "brief" when they agree but the
repetition fills less than `min_coverage` of the span (no count is given in either case; the estimate stays),
"aperiodic" when nothing repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from handclust_assets.science.extent import (
    ExtentParams,
    GridSignal,
    periodic_runs,
    refine_extents,
    stretch_rests,
)
from handclust_assets.science.localize import FULL_FRAME, best_box, crop_box
from handclust_assets.science.periodicity import (
    LagMap,
    cycle_window,
    enhance,
    pooled_lag_map,
    resample_to_grid,
)
from handclust_assets.science.rests import find_rests, windowed_mean, without_rests
from handclust_assets.science.rhythm_signals import (
    POSITION,
    SPEED,
    RhythmSignal,
    camera_shift,
    camera_speed,
    motion_signals,
    photometric_change,
    shifted_back,
    steady_thumbnails,
    without_camera_speed,
    without_flicker,
)

COUNTED, NO_AGREEMENT, BRIEF, APERIODIC = "counted", "no agreement", "brief", "aperiodic"
CONSENSUS = "consensus"

SPAN_COUNT_SCHEMA = {
    "scope": pl.Utf8,  # "clip" (the whole clip, one row) or "span"
    "span_idx": pl.Int64,  # -1 for the clip row
    "activity": pl.Int64,  # the fused cluster id of the span; null for the clip row or without clustering
    "start_s": pl.Float64,
    "end_s": pl.Float64,
    "count": pl.Float64,  # repetitions (fractional); null unless status == "counted"
    "count_estimate": pl.Float64,  # the consensus path's count even without agreement (null when aperiodic)
    "mean_period_s": pl.Float64,  # mean period over the periodic part (null when aperiodic)
    "periodic_s": pl.Float64,  # seconds of the span counted as periodic (pauses excluded)
    "confidence": pl.Float64,  # in [0, 1]: consensus strength x agreement x periodic coverage
    "agreeing_signals": pl.List(pl.Utf8),
    "available_signals": pl.List(pl.Utf8),
    "status": pl.Utf8,  # "counted" | "no agreement" | "brief" (agreed, but periodic too little of it) | "aperiodic"
}
# signals derived from another one's data: they vote in the consensus, but agreeing with their source is no
# independent evidence, so agreement is counted per source
DERIVED_FROM = {"appearance_velocity": "appearance"}
NULL_WHEN_NOT_GIVEN = ("count", "count_estimate", "mean_period_s")  # stored as null (never NaN) when not given
PERIOD_CURVE_SCHEMA = {
    "t_s": pl.Float64,
    "period_s": pl.Float64,  # NaN where aperiodic
    "strength": pl.Float64,  # enhanced correlation at that period, in [0, 1]
    "signal": pl.Utf8,  # "consensus" or a signal name (its own best period there)
}

# The stored period track (long format: the consensus rows, then each signal's), enough to count any span set
# again without the signals: `track_frame` / `track_from_frame`.
TRACK_SCHEMA = {
    "t_s": pl.Float64,  # analysis centre
    "signal": pl.Utf8,  # "consensus" or a signal name
    "kind": pl.Utf8,  # "consensus", "speed" or "position"
    "period_s": pl.Float64,  # consensus: the tracked period (NaN aperiodic); signal: its own period there
    "strength": pl.Float64,  # consensus: enhanced correlation at the period; signal: its own periodicity strength
    "free_period_s": pl.Float64,  # consensus: the best period even where "aperiodic" won; NaN for signals
    "support": pl.Float64,  # signal: its correlation at the consensus period (NaN: abstains); NaN for consensus
    "support_half": pl.Float64,  # signal: its correlation at half the consensus period
    "still": pl.Boolean,  # a pause: nothing moves around this centre, or a quiet gap between periodic stretches
    "duration_s": pl.Float64,  # the clip's duration (the same on every row)
}


@dataclass(frozen=True)
class CountingParams:
    fs: float = 20.0  # rhythm grid rate (Hz): periods down to ~0.25 s keep 5 samples
    hop_s: float = 0.1  # spacing of the analysis centres
    min_period_s: float = 0.25
    max_period_s: float = 10.0
    min_cycles: float = 3.0  # a period longer than span / min_cycles is not tested (a repetition repeats)
    full_cycles: float = 0.0  # a period seen fewer times than this in its window (or the clip) is discounted
    n_cycles: float = 4.0  # analysis window = n_cycles x candidate period, clamped:
    min_window_s: float = 2.5
    max_window_s: float = 12.0
    min_window_cycles: float = 2.5  # ... but a window holds at least this many candidate periods, past the cap (lags
    # above 4.8 s): capped at 12 s, a 9-s period was judged over 1.3 cycles and slow repetitions read a faster
    # rhythm or nothing (0: the cap alone)
    smooth_s: float = 0.04  # anti-alias Gaussian on source-rate signals (kills codec GOP flicker)
    periods_per_octave: int = 16
    periodic_threshold: float = 0.2  # consensus enhanced correlation needed to call a centre periodic
    octave_cost: float = 3.0  # Viterbi cost per octave of period change between neighbouring centres
    switch_cost: float = 0.6  # cost of entering / leaving the aperiodic state
    agree_tol: float = 1.2  # a signal agrees where its own period is within this ratio of the consensus'
    agree_r: float = 0.4  # ... or (speed signals) where it correlates this well at the period and at its half
    signal_threshold: float = 0.15  # a signal counts as periodic where its own strength reaches this
    min_agree: int = 2  # agreeing signals needed for "counted" (fewer if fewer are available)
    min_coverage: float = 0.25  # periodic share of a span needed to count it
    extent_level: float = 0.3  # a periodic stretch ends where its one-cycle similarity falls below this share of its
    # median (`extent`); 0 = off: the stretch keeps the tracker's edges +- extent_fallback_periods
    extent_min_level: float = 0.1  # a stretch less similar than this to itself a period later keeps the fallback
    extent_fallback_periods: float = 1.0  # the tracker's 4-cycle windows blur a stretch's edges by about this
    period_median_s: float = 2.0  # the counted period is the running median over this much periodic time
    min_reps: float = 2.5  # a span with fewer turns than this is aperiodic (one or two moves do not repeat)
    still_ratio: float = 0.12  # motion energy below this share of its typical moving level = a pause
    still_window_s: float = 0.6
    quiet_gap_ratio: float = 0.5  # an aperiodic gap between periodic stretches moving less than this share of the
    # stretches' median motion energy is a rest: not counted (0 = every gap counted through, period interpolated)
    pause_regular: float = 0.4  # pauses (`still_ratio`) of at most `pause_max_periods` periods inside the periodic
    # span that come in at least this share of the cycles are part of every stroke, not rests (`_regular_pauses`)
    pause_max_periods: float = 0.5  # (a pause of a whole period is a cycle left out, not a turn)
    workers: int = 2  # signals analysed in parallel threads
    multiple_near: float = 0.7  # a period whose 1/m (m >= 4) scores this share of it is a multiple (0: off)
    drift_ratio: float = 1.4  # a signal whose own period through the clip is at least this multiple of its
    # velocity's (`DERIVED_FROM`) follows drift or sway, not the repetition: its weight x `drift_weight` (0: off)
    drift_weight: float = 0.0  # 0: a drifting signal does not vote (nor weigh in the extent search)
    rest_level: float = 0.3  # inside a periodic stretch, one-cycle similarity below this share of its median for
    rest_periods: float = 1.3  # at least this many periods is a rest: not counted (`extent.rest_centres`; 0: off)
    frozen_ratio: float = 0.2  # where the picture's change over one period (`appearance_velocity`) falls below this
    # share of its median over the periodic centres, the actor rests: not counted (`_frozen_centres`; 0: off)
    frozen_min_window_s: float = 0.3  # ... judged over one tracked period, at least this long
    frozen_unmatched: float = 0.4  # ... and, inside a periodic stretch, where the cycle around it matches the next
    # less than this share of the stretch's one-cycle similarity (`extent.unmatched_centres`; strokes go on when only
    # the background calms down); 0: the picture's change alone decides
    dwell_ratio: float = 0.15  # where the picture's change (`appearance_velocity`, sample by sample) stays below this
    # share of its running median over `dwell_ref_periods` periods (at least 3 s) for `dwell_periods` to
    # `dwell_max_periods` of the tracked period, the actor rests between strokes: that run, less `dwell_allowance`
    # periods (a stroke's own slow turn), is not counted (`_dwells`: rests shorter than the one-period windows of
    # `_frozen_centres`, which judges longer stillness); 0: off
    dwell_periods: float = 0.5
    dwell_max_periods: float = 3.0
    dwell_ref_periods: float = 6.0
    dwell_allowance: float = 0.15
    dwell_regular: float = 0.6  # ... unless such runs come in at least this share of the cycles: then they are
    # part of every stroke (a hold at each press), already inside the tracked period
    keep_channel_scale: bool = True  # a `same_unit` signal's channels are centred and divided by one common s.d.,
    # not each by its own: scaled each to unit variance, the still pixels' sensor noise pooled with as much weight
    # as the few cells where a small hand moves (`_signal_map`); False: every channel to unit variance
    refine_lag: bool = True  # the tracked period refined between the lag grid's samples (parabolic peak)
    unsway_s: float = 10.0  # > 0: the picture's global motion (shift, zoom, roll against its moving mean over this
    # many seconds) is taken out of the thumbnails before the box search and the appearance read them
    # (`steady_thumbnails`, in `track_located`, where the track has the camera's translation); 0: off
    unsway_modes: int = 4  # 2: shift only; 3: + zoom; 4: + roll
    unsway_photometric: bool = True  # the fit has a gain and an offset on the picture too: an auto-exposure's or a
    # flickering light's slow swing, which moves every pixel as the sway does, leaves the appearance with it
    box_min_change: float = 0.0  # > 0: a box is a candidate of the box search only where its (steadied) pixels
    # change at least this share of the whole picture's mean change (`localize.change_map`): the search is
    # scale-free, so a still corner where only a faint, strictly periodic leftover of the sway can outscore the
    # actor. Off by default: at 1.0 it won on the dev set's train groups but made real clips where nothing repeats
    # count (03_blocks 10.3, bigbuckbunny 4.6; docs/results.md, thirty-ninth stop); 0: every box
    discount_camera_speed: bool = True  # where the path moves past the sway fit's reach (as for `align_camera`),
    # the part of each energy cell (compensated and raw) that rises with the camera's speed is taken out
    # (`without_camera_speed`): a sweep's coding noise and resampling follow its speed, two humps per sweep, and
    # were counted in place of the actor; the camera's own rhythm (walking) still votes through `camera_motion`
    align_camera: bool = True  # the thumbnails are first shifted back by the motion track's `path` (the picture's
    # displacement, tracked against key frames) about its moving mean over `unsway_s` (`camera_shift`): a pan
    # or head turn past the linear sway fit's few px of the 32-px thumbnail is undone before the fit; nothing where
    # the path stays within a thumbnail px of its mean (most clips) or the track has none (before version 6)
    unsway_blur: float = 1.0  # Gaussian sigma (px of the 32-px thumbnail) before the fit: the shift's effect on a
    # smoother picture is more nearly linear
    rest_cut_ratio: float = 0.15  # > 0: rests found before tracking, where the picture's change (averaged over
    # `rest_cut_smooth_s`) stays below this share of its running median over `rest_cut_ref_s` for at least
    # `rest_cut_min_s` (`rests.find_rests`), are cut out of the time axis and the signals tracked again; the more
    # periodic track is kept (`track_periods`); 0: off
    rest_cut_min_s: float = 0.25
    rest_cut_ref_s: float = 4.0
    rest_cut_smooth_s: float = 0.1
    rest_cut_min_share: float = 0.02  # ... when the rests add up to at least this share of the clip
    rest_cut_margin: float = 0.05  # the cut track is kept when its `track_score` beats the other's by more than this
    # (a cut that makes the track only a little more periodic is as likely to have cut strokes as rests)
    rest_cut_min_cycles: float = 4.0  # ... and when the cut clip still holds this many of its median periods: in a
    # few seconds of footage the cut can leave three turns of anything that look periodic (on the dev set's real
    # clips where nothing repeats it turned a 4-s talk and a 5-s stretch into counts; no labelled clip changed)
    octave_snap_tol: float = 0.25  # a stretch tracked within this (log) of half or twice a span's typical period
    # (median), where a signal's own period still reads the typical one, is counted at it (`_octave_consistent`);
    # 0: off
    octave_snap_share: float = 0.5  # ... when at least this share of the span's periodic centres is within it
    deflicker: bool = True  # the part of each motion energy cell that a change of light explains (a band of cells
    # brightening or darkening together: a flickering lamp, a rolling band, an exposure swing) is taken out
    # (`rhythm_signals.without_flicker`)
    count_to_edges: bool = False  # the span is all repetition (a clip trimmed to it, as benchmark clips are): count
    # from its first moment to its last at the nearest tracked period, not only from the first periodic centre to the
    # last; pauses (`still`) are still left out. Off by default: footage before or after a repetition is common.
    # Only a span found periodic on `min_coverage` of its time, with `min_reps` turns found, is stretched


@dataclass
class RepetitionCounts:
    counts: pl.DataFrame  # SPAN_COUNT_SCHEMA, the clip row first
    curve: pl.DataFrame  # PERIOD_CURVE_SCHEMA
    diagnostics: dict = field(default_factory=dict)


# ---------------------------------------------------------------- per-signal maps on the rhythm grid


@dataclass
class _SignalMap:
    name: str
    kind: str
    prior: float
    min_lag: int  # shortest lag this signal can judge (3 of its own samples)
    lag_map: LagMap
    values: np.ndarray  # (G, C) standardised values on the rhythm grid (float32), for the extent search
    valid: np.ndarray  # (G,)


def _standardise(v: np.ndarray, ok: np.ndarray, common: bool = False) -> np.ndarray:
    """Channels (columns) centred and scaled to unit s.d. over the valid rows; with `common` all by one s.d. (the
    root mean square of theirs), so they keep their relative scale. Constant channels are dropped."""
    if not ok.any():
        return v[:, :0]
    mu, sd = v[ok].mean(axis=0), v[ok].std(axis=0)
    keep = sd > 1e-9 * (np.abs(mu) + 1.0)
    if common and keep.any():
        return (v[:, keep] - mu[keep]) / float(np.sqrt(np.mean(sd[keep] ** 2)))
    return (v[:, keep] - mu[keep]) / sd[keep]


def _signal_map(sig: RhythmSignal, grid_t: np.ndarray, centres: np.ndarray, max_lag: int,
                p: CountingParams) -> _SignalMap | None:
    t = np.asarray(sig.t_s, np.float64)
    v = np.asarray(sig.values, np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if len(t) < 4 or v.shape[0] != len(t) or v.shape[1] == 0:
        return None
    dt_src = float(np.median(np.diff(np.sort(t)))) if len(t) > 1 else 1.0
    smooth = p.smooth_s if dt_src < 0.5 / p.fs else 0.0
    vals, ok = resample_to_grid(t, v, grid_t, smooth)
    vals = _standardise(vals, ok, common=sig.same_unit and p.keep_channel_scale)
    if vals.shape[1] == 0 or ok.sum() < 6:
        return None
    min_lag = max(int(np.ceil(p.min_period_s * p.fs)), int(np.ceil(3 * dt_src * p.fs)), 3)
    lm = pooled_lag_map(vals, ok, p.fs, centres, min_lag, max_lag, p.n_cycles, p.min_window_s, p.max_window_s,
                        p.min_window_cycles)
    return _SignalMap(sig.name, sig.kind, sig.prior, min_lag, lm, vals.astype(np.float32), ok)


def _signal_maps(signals: Sequence[RhythmSignal], grid_t: np.ndarray, centres: np.ndarray, max_lag: int,
                 p: CountingParams) -> list[_SignalMap | None]:
    """Every signal's lag map; signals in parallel threads (numpy's loops release the GIL), `p.workers` at most."""
    if p.workers <= 1 or len(signals) <= 1:
        return [_signal_map(s, grid_t, centres, max_lag, p) for s in signals]
    from concurrent.futures import ThreadPoolExecutor

    order = sorted(range(len(signals)), key=lambda i: -np.asarray(signals[i].values).size)  # biggest first
    with ThreadPoolExecutor(max_workers=min(p.workers, len(signals))) as pool:
        done = dict(zip(order, pool.map(lambda i: _signal_map(signals[i], grid_t, centres, max_lag, p), order)))
    return [done[i] for i in range(len(signals))]


def _consensus(maps: list[_SignalMap], n_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean correlation (n_centres, n_lag) over signals (weights: prior x own strength^2; a signal
    abstains where it is unseen) and its enhanced map. All lags take part, so the octave check of a short period
    sees how well its half and third correlate; a coarse signal's weight comes from its judgeable lags only."""
    num = np.zeros((len(maps[0].lag_map.centres), n_lag))
    den = np.zeros_like(num)
    for m in maps:
        r = np.full_like(num, np.nan)
        k = min(n_lag, m.lag_map.r.shape[1])
        r[:, :k] = m.lag_map.r[:, :k]
        w = m.prior * m.lag_map.strength[:, None] ** 2 * np.isfinite(r)
        num += np.nan_to_num(r) * w
        den += w
    cons = np.where(den > 1e-12, num / np.maximum(den, 1e-12), np.nan)
    e = enhance(cons)
    return cons, e


# ---------------------------------------------------------------- period tracking


def _lag_taps(lags: np.ndarray, n_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Fractional lags -> (indices, weights), each (len(lags), 4): Keys' cubic convolution (a = -0.5) over the four
    integer lags around each one, indices clipped to the map. Linear interpolation flattens a correlation peak
    between two lags: a 0.33-s cycle at 20 Hz (lag 6.6) read 0.89 where the map's true peak is 1.0, so a multiple
    that falls on an integer lag (17 cycles, 5.6 s) outscored it."""
    lags = np.asarray(lags, np.float64)
    lo = np.floor(lags)
    f = (lags - lo)[:, None]
    idx = np.clip(lo.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :], 0, n_lag - 1)
    w = np.concatenate([-0.5 * f**3 + f**2 - 0.5 * f, 1.5 * f**3 - 2.5 * f**2 + 1,
                        -1.5 * f**3 + 2 * f**2 + 0.5 * f, 0.5 * f**3 - 0.5 * f**2], axis=1)
    return idx, w


def _interp_lags(m: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """m (n, K+1) at fractional lags -> (n, len(lags)); NaN -> 0."""
    m0 = np.nan_to_num(m, nan=0.0)
    idx, w = _lag_taps(lags, m.shape[1])
    return np.einsum("nlk,lk->nl", m0[:, idx], w)


def _interp_lag_per_row(m: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """m (n, K+1), one fractional lag per row -> (n,); NaN -> 0. The diagonal of `_interp_lags(m, lags)` without
    its n x n intermediate (an hour at the 0.1-s hop would be 36,000^2 values)."""
    m0 = np.nan_to_num(m, nan=0.0)
    idx, w = _lag_taps(lags, m.shape[1])
    return np.sum(m0[np.arange(m.shape[0])[:, None], idx] * w, axis=1)


def discount_multiples(emission: np.ndarray, periods: np.ndarray, near: float) -> np.ndarray:
    """Emission (n_centres, n_periods, log-spaced periods) with multiples of a period discounted: where the period
    P / m (m >= 4) scores at least `near` of P's score, P loses that score. A steady repetition correlates as well
    after 17 cycles as after one, and the enhancement (against halves and thirds) cannot see prime multiples; a
    constant 0.33-s stroke was tracked at 5.6 s. Halves (a speed signal's two bursts per cycle) and thirds are
    left to the enhancement."""
    e = np.asarray(emission, np.float64)
    n, j = e.shape
    if n == 0 or j < 2:
        return e
    lp = np.log(periods)
    step = (lp[-1] - lp[0]) / (j - 1)
    pen = np.zeros_like(e)
    m = 4
    while np.log(m) / step < j - 1:
        pos = np.arange(j) - np.log(m) / step  # column of P / m on the grid
        ok = pos >= 0
        lo = np.floor(pos[ok]).astype(np.int64)
        hi = np.minimum(lo + 1, j - 1)
        w = pos[ok] - lo
        frac = np.full_like(e, -np.inf)
        frac[:, ok] = (1 - w) * e[:, lo] + w * e[:, hi]
        pen = np.maximum(pen, np.where(frac >= near * e, frac, 0.0))
        m += 1
    return e - np.where(e > 0, pen, 0.0)


def refine_lags(m: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Per row of a lag map m (n, K+1), the fractional lag of its correlation peak nearest `lags` (one per row):
    the best of the three integer lags nearest it, then the vertex of the parabola through that lag and its two
    neighbours, kept within +-1 lag of the given one. Rows without a clear peak there keep their lag. At a 20-Hz
    grid, lags 8 and 9 are 0.40 and 0.45 s apart (12 %): over 30 fast strokes that is 3-4 repetitions."""
    lags = np.asarray(lags, np.float64)
    out = lags.copy()
    n, k = m.shape
    if n == 0 or k < 3:
        return out
    rows = np.arange(n)
    base = np.clip(np.round(lags).astype(np.int64), 2, k - 3)
    cand = base[:, None] + np.arange(-1, 2)[None, :]
    vals = np.nan_to_num(m[rows[:, None], cand], nan=-np.inf)
    top = cand[rows, np.argmax(vals, axis=1)]
    y0, y1, y2 = (m[rows, top + d] for d in (-1, 0, 1))
    curv = y0 - 2 * y1 + y2
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = np.clip(0.5 * (y0 - y2) / curv, -0.5, 0.5)
    ok = np.isfinite(delta) & (curv < 0) & (lags >= 2) & (lags <= k - 3)
    refined = np.clip(top + delta, lags - 1.0, lags + 1.0)
    out[ok] = refined[ok]
    return out


def track_period(emission: np.ndarray, periods: np.ndarray, threshold: float, octave_cost: float,
                 switch_cost: float) -> np.ndarray:
    """Viterbi over (n_centres, n_periods) emission scores; returns the period index per centre, -1 where the
    aperiodic state (constant score `threshold`) wins."""
    n, j = emission.shape
    if n == 0 or j == 0:
        return np.full(n, -1, np.int64)
    lp = np.log2(periods)
    trans = -octave_cost * np.abs(lp[:, None] - lp[None, :])  # from row to column
    score = np.append(emission[0], threshold)
    back = np.zeros((n, j + 1), np.int64)
    for i in range(1, n):
        per = score[:j, None] + trans  # (from, to)
        best_from = np.argmax(per, axis=0)
        stay = per[best_from, np.arange(j)]
        from_ap = score[j] - switch_cost
        new = np.where(stay >= from_ap, stay, from_ap) + emission[i]
        back[i, :j] = np.where(stay >= from_ap, best_from, j)
        to_ap_from = int(np.argmax(score[:j]))
        ap_from_per = score[to_ap_from] - switch_cost
        ap_stay = score[j]
        back[i, j] = j if ap_stay >= ap_from_per else to_ap_from
        score = np.append(new, max(ap_stay, ap_from_per) + threshold)
    path = np.empty(n, np.int64)
    path[-1] = int(np.argmax(score))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return np.where(path == j, -1, path)


# ---------------------------------------------------------------- the public entry point


def _spans_frame(spans: pl.DataFrame | None, duration_s: float) -> list[tuple[int, int | None, float, float]]:
    if spans is None or spans.height == 0:
        return []
    rows = []
    for i, r in enumerate(spans.sort("start_s").iter_rows(named=True)):
        a, b = max(0.0, float(r["start_s"])), min(duration_s, float(r["end_s"]))
        if b > a:
            act = r.get("activity")
            rows.append((i, None if act is None else int(act), a, b))
    return rows


def count_repetitions(signals: Sequence[RhythmSignal], duration_s: float, spans: pl.DataFrame | None = None,
                      params: CountingParams | None = None) -> RepetitionCounts:
    """Count repetitions for the whole clip and for every span (columns start_s, end_s, optional activity).
    Returns a `RepetitionCounts`: `counts` (SPAN_COUNT_SCHEMA, clip row first) and `curve` (PERIOD_CURVE_SCHEMA).
    The same as `track_periods` (the expensive part, once per clip) then `count_spans` (cheap, per span set)."""
    p = params or CountingParams()
    track = track_periods(signals, duration_s, p)
    counts = count_spans(track, spans, p)
    return RepetitionCounts(counts, period_curve(track), {"signals": track.available, "n_centres": len(track.t)})


def count_spans(track: PeriodTrack, spans: pl.DataFrame | None = None, params: CountingParams | None = None
                ) -> pl.DataFrame:
    """Counts (SPAN_COUNT_SCHEMA) from a period track: the whole clip first, then every span (columns start_s,
    end_s, optional activity) clipped to the track's duration."""
    p = params or CountingParams()
    duration_s = track.duration_s
    rows = [_span_row("clip", -1, None, 0.0, duration_s, track, p)]
    for i, act, a, b in _spans_frame(spans, duration_s):
        rows.append(_span_row("span", i, act, a, b, track, p))
    # a number not given is null, never NaN: `count IS NULL` (DuckDB) and `is_null()` (polars) find the declines
    return pl.DataFrame(rows, schema=SPAN_COUNT_SCHEMA, orient="row").with_columns(
        pl.col(c).fill_nan(None) for c in NULL_WHEN_NOT_GIVEN)


@dataclass
class PeriodTrack:
    """The per-time state of counting: the consensus period curve and each signal's view of it, on analysis
    centres every `hop_s` seconds. `track_periods` builds it; `count_spans` counts any span set from it;
    `track_frame` / `track_from_frame` store it as a table (TRACK_SCHEMA)."""

    t: np.ndarray  # centre times (s)
    hop_s: float
    period: np.ndarray  # NaN where aperiodic
    strength: np.ndarray  # consensus enhanced correlation at the chosen period (0 where aperiodic)
    support: dict[str, np.ndarray]  # per signal: correlation at the consensus period (NaN: abstains)
    sig_strength: dict[str, np.ndarray]
    sig_period: dict[str, np.ndarray]
    best_free: np.ndarray  # the consensus path's period even where aperiodic won (for "no agreement")
    available: list[str]
    kinds: dict[str, str] = field(default_factory=dict)
    support_half: dict[str, np.ndarray] = field(default_factory=dict)  # correlation at half the period
    still: np.ndarray | None = None  # pauses: nothing moves, or a quiet gap between periodic stretches (a rest)
    duration_s: float = 0.0


def _empty_track(duration_s: float, p: CountingParams, available: list[str]) -> PeriodTrack:
    n = max(0, int(np.floor(duration_s / p.hop_s)))
    t = (np.arange(n) + 0.5) * p.hop_s
    z = np.full(n, np.nan)
    return PeriodTrack(t, p.hop_s, z, np.zeros(n), {}, {}, {}, z.copy(), available, still=np.zeros(n, bool),
                       duration_s=duration_s)


def track_periods(signals: Sequence[RhythmSignal], duration_s: float, params: CountingParams | None = None
                  ) -> PeriodTrack:
    """The expensive part of counting, once per clip: per-signal lag maps on the rhythm grid, their consensus,
    and the Viterbi period path (see the module doc).

    With `rest_cut_ratio` > 0, the actor's rests found from the picture's change (`rests.find_rests`) are also cut
    out of every signal's time axis and the joined signals tracked again (a rest shifts the phase of every stroke
    after it, so the four-cycle windows around it stop matching themselves a period later). The cut track is kept
    when it is more periodic (`track_score`) than the track through the rests; its centres are put back on the
    clip's time axis, the rests marked still (not counted); "more periodic" means by more than `rest_cut_margin`."""
    p = params or CountingParams()
    track = _track_periods(signals, duration_s, p)
    rests = _rests_to_cut(signals, duration_s, p)
    if not rests:
        return track
    removed = float(sum(b - a for a, b in rests))
    joined = []
    for sig in signals:
        t_cut, inside = without_rests(sig.t_s, rests)
        joined.append(replace(sig, t_s=t_cut[~inside], values=np.asarray(sig.values)[~inside]))
    cut = _track_periods(joined, duration_s - removed, p)
    if not len(cut.t) or track_score(cut) <= track_score(track) + p.rest_cut_margin:
        return track
    if p.rest_cut_min_cycles > 0 and np.isfinite(cut.period).any() and (
            duration_s - removed) < p.rest_cut_min_cycles * float(np.nanmedian(cut.period)):
        return track
    return _with_rests(cut, rests, track.t, duration_s)


def _rests_to_cut(signals: Sequence[RhythmSignal], duration_s: float, p: CountingParams
                  ) -> list[tuple[float, float]]:
    """The rests `track_periods` cuts out (`rests.find_rests` on `_picture_change`); none when they add up to less
    than `rest_cut_min_share` of the clip, or without the picture's change."""
    got = _picture_change(signals) if p.rest_cut_ratio > 0 and duration_s > 0 else None
    if got is None:
        return []
    rests = find_rests(*got, p.rest_cut_ratio, p.rest_cut_min_s, p.rest_cut_ref_s, p.rest_cut_smooth_s)
    return rests if sum(b - a for a, b in rests) >= p.rest_cut_min_share * duration_s else []


def _with_rests(cut: PeriodTrack, rests: list[tuple[float, float]], t: np.ndarray, duration_s: float
                ) -> PeriodTrack:
    """A track made on the time axis without `rests` put back on the clip's centres `t`: each centre takes the
    values of the cut track's centre nearest its place on the cut axis; centres inside a rest are still."""
    t_cut, inside = without_rests(t, rests)
    j = np.clip(np.round(t_cut / cut.hop_s - 0.5).astype(np.int64), 0, len(cut.t) - 1)
    at = lambda v: np.asarray(v)[j]  # noqa: E731
    each = lambda d: {k: at(v) for k, v in d.items()}  # noqa: E731
    still = (at(cut.still) if cut.still is not None else np.zeros(len(t), bool)) | inside
    return PeriodTrack(np.asarray(t, np.float64), cut.hop_s, at(cut.period), at(cut.strength), each(cut.support),
                       each(cut.sig_strength), each(cut.sig_period), at(cut.best_free), cut.available, cut.kinds,
                       each(cut.support_half), still, duration_s)


def _track_periods(signals: Sequence[RhythmSignal], duration_s: float, p: CountingParams) -> PeriodTrack:
    """`track_periods` on the signals' own time axis."""
    duration_s = float(max(duration_s, 0.0))
    n_grid = int(np.floor(duration_s * p.fs)) + 1
    n_c = max(0, int(np.floor(duration_s / p.hop_s)))
    if n_grid < 8 or n_c == 0:
        return _empty_track(duration_s, p, [s.name for s in signals])
    grid_t = np.arange(n_grid) / p.fs
    t_c = (np.arange(n_c) + 0.5) * p.hop_s
    centres = np.clip(np.round(t_c * p.fs).astype(np.int64), 0, n_grid - 1)
    max_period = min(p.max_period_s, duration_s / p.min_cycles)
    max_lag = int(np.ceil(max_period * p.fs)) + 1
    maps = [m for m in _signal_maps(signals, grid_t, centres, max_lag, p) if m is not None]
    available = [m.name for m in maps]
    if not maps or max_period <= p.min_period_s:
        return _empty_track(duration_s, p, available)
    n_per = max(2, int(np.ceil(np.log2(max_period / p.min_period_s) * p.periods_per_octave)) + 1)
    periods = np.geomspace(p.min_period_s, max_period, n_per)
    own = {m.name: _own_period(m, periods, p.fs) for m in maps}  # the drift rule and the stored track read it
    maps = _discount_drift(maps, own, p)
    cons, enh = _consensus(maps, max_lag + 1)
    emission = _interp_lags(enh, periods * p.fs)
    if p.multiple_near > 0:
        emission = discount_multiples(emission, periods, p.multiple_near)
    if p.full_cycles > 0:  # few cycles in view: weak evidence (a slow sway looks periodic over two turns)
        seen = np.minimum(cycle_window(periods, p.n_cycles, None, p.max_window_s, p.min_window_cycles),
                          duration_s) / periods
        emission = emission * np.clip(seen / p.full_cycles, 0.0, 1.0)[None, :]
    still, level = _still_centres(signals, t_c, p)
    emission[still] = -1.0  # no motion, no repetition (pauses shorter than the analysis window)
    free = track_period(emission, periods, -np.inf, p.octave_cost, p.switch_cost)
    path = track_period(emission, periods, p.periodic_threshold, p.octave_cost, p.switch_cost)
    per = np.where(path >= 0, periods[np.maximum(path, 0)], np.nan)
    if p.refine_lag:
        per = np.where(path >= 0, refine_lags(cons, np.nan_to_num(per) * p.fs) / p.fs, np.nan)
    grid, ep = _grid_signals(maps, p), _extent_params(p)
    per = refine_extents(t_c, per, grid, duration_s, ep)
    frozen = _frozen_centres(signals, t_c, per, p)
    gate = p.frozen_unmatched if frozen.any() else 0.0  # inside a stretch, a frozen picture must also not repeat
    rests, unmatched = stretch_rests(t_c, per, grid, gate, ep)  # one similarity pass for both
    if gate > 0:
        frozen &= ~np.isfinite(per) | unmatched
    still = still & ~_regular_pauses(still, t_c, per, p)
    still = still | _quiet_gaps(per, level, p.quiet_gap_ratio) | rests | frozen | _dwells(signals, t_c, per, p)
    step = np.log(periods[-1] / periods[0]) / (len(periods) - 1)  # log-spaced grid: the nearest column directly
    col = np.round(np.log(np.nan_to_num(per, nan=1.0) / periods[0]) / step)
    col = np.clip(col, 0, len(periods) - 1).astype(np.int64)
    strength = np.where(np.isfinite(per), emission[np.arange(n_c), col], 0.0)
    support, half, sstr, sper = {}, {}, {}, {}
    lag_free = np.where(np.isfinite(per), per, periods[np.maximum(free, 0)]) * p.fs
    for m in maps:
        r_at = _interp_lag_per_row(m.lag_map.r, lag_free)
        r_at[lag_free < m.min_lag] = np.nan
        support[m.name] = r_at
        half[m.name] = _interp_lag_per_row(m.lag_map.r, lag_free / 2)
        sstr[m.name] = m.lag_map.strength
        sper[m.name] = own[m.name]
    return PeriodTrack(t_c, p.hop_s, per, np.clip(strength, 0, 1), support, sstr, sper, periods[free], available,
                       {m.name: m.kind for m in maps}, half, still, duration_s)


def _discount_drift(maps: list[_SignalMap], own: dict[str, np.ndarray], p: CountingParams) -> list[_SignalMap]:
    """Maps with a drifting position signal's prior scaled by `drift_weight`: one whose own period (`own`: per
    signal name, from `_own_period`), as a median over the clip, is at least `drift_ratio` times its velocity's
    (`DERIVED_FROM`). Slow camera sway, zoom or
    lighting drift outweigh a small repetition in where things are, and then repeat (if at all) at some long
    period; the velocity, which shrinks slow changes to nearly nothing, still turns once per stroke. On the dev
    set's 204 train clips, where the appearance's period was 1.4 x its velocity's or more, the velocity's was the
    true one (within 15 %) in 33 of 46 clips and the appearance's in none. The signal's own lag map stays: its
    support and own period are still reported, and it may still agree."""
    if p.drift_ratio <= 0:
        return maps
    out = []
    for m in maps:
        vel = next((d for d, src in DERIVED_FROM.items() if src == m.name and d in own), None)
        if vel is not None:
            mine, theirs = own[m.name], own[vel]
            if np.isfinite(mine).any() and np.isfinite(theirs).any() and (
                    np.nanmedian(mine) >= p.drift_ratio * np.nanmedian(theirs)):
                m = replace(m, prior=m.prior * p.drift_weight)
        out.append(m)
    return out


def _own_period(m: _SignalMap, periods: np.ndarray, fs: float, near_best: float = 0.85) -> np.ndarray:
    """A signal's own period per centre: the shortest candidate whose enhanced value reaches `near_best` of its
    best (a period and its multiples tie in a clean signal; the fundamental is the shortest)."""
    own = _interp_lags(m.lag_map.enhanced, periods * fs)
    own[:, periods * fs < m.min_lag] = -np.inf
    best = own.max(axis=1, initial=-np.inf)
    first = np.argmax(own >= near_best * best[:, None], axis=1)
    return np.where((m.lag_map.strength > 0) & (best > 0), periods[first], np.nan)


def _compatible(own: np.ndarray, period: np.ndarray, kind: str, tol: float) -> np.ndarray:
    """Own period matches the consensus period, or half of it for a speed signal (two bursts per cycle), or
    twice it for a position signal (alternating sides repeat every second cycle)."""
    ratios = (1.0, 0.5) if kind == SPEED else (1.0, 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        lr = np.log(own / period)
        return np.any([np.abs(lr - np.log(q)) <= np.log(tol) for q in ratios], axis=0)


def _still_centres(signals: Sequence[RhythmSignal], t_c: np.ndarray, p: CountingParams
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Centres where the frame-difference energy (summed over cells, noise floor removed) stays below
    `still_ratio` of its typical moving level for the whole +-still_window_s / 2: the actor pauses. Also returns
    that windowed level per centre (1 = the clip's typical moving level; NaN without a motion-energy signal)."""
    sig = next((s for s in signals if s.name == "motion_energy" and len(s.t_s) >= 8), None)
    out, level = np.zeros(len(t_c), bool), np.full(len(t_c), np.nan)
    if sig is None:
        return out, level
    v = np.asarray(sig.values, np.float64).reshape(len(sig.t_s), -1)
    seen = np.isfinite(v).sum(axis=1)
    e = np.where(seen > 0, np.nansum(v, axis=1) / np.maximum(seen, 1), np.nan)  # NaN where nothing was seen
    ok = np.isfinite(e)
    if ok.sum() < 8:
        return out, level
    floor, moving = np.percentile(e[ok], [5, 75])
    if moving - floor <= 1e-9:
        return out, level
    level = windowed_mean(np.asarray(sig.t_s, np.float64)[ok], (e[ok] - floor) / (moving - floor), t_c,
                          p.still_window_s)
    return np.isfinite(level) & (level < p.still_ratio), level


def _frozen_centres(signals: Sequence[RhythmSignal], t_c: np.ndarray, period: np.ndarray, p: CountingParams
                    ) -> np.ndarray:
    """Centres from the first periodic centre to the last where the picture barely changes for a whole period:
    the actor rests. The change is the `appearance_velocity` signal's root mean square over its channels (less
    its 5th percentile, the noise floor), averaged over one tracked period around each centre (the period
    interpolated in log across gaps; at least `frozen_min_window_s`); a rest is where that stays below
    `frozen_ratio` of its median over the periodic centres. A hand-held camera that shakes while the actor rests
    keeps the frame differences up (the pause detector misses the rest), but barely changes the 3 x 3-pooled
    thumbnails. A window of one period always holds a whole stroke, so the slow turn at a stroke's end is never
    a rest. On the dev set's 80 train whole-frame real-cycle clips, 89 % of the centres inside rests fall below
    0.2 of the strokes' median (0.3-s window), against 60 % for the frame differences. The picture's change also
    drops where a busy background behind the strokes calms down, so `track_periods` keeps only the frozen centres
    that, inside a periodic stretch, do not match the next cycle either (`frozen_unmatched`)."""
    out = np.zeros(len(t_c), bool)
    periodic = np.isfinite(period)
    got = _picture_change(signals) if p.frozen_ratio > 0 and periodic.any() else None
    if got is None:
        return out
    t, change = got
    idx = np.flatnonzero(periodic)
    inside = np.arange(idx[0], idx[-1] + 1)
    window = np.maximum(np.exp(np.interp(inside, idx, np.log(period[idx]))), p.frozen_min_window_s)
    level = np.full(len(t_c), np.nan)
    level[inside] = windowed_mean(t, change, t_c[inside], window)
    ref = np.nanmedian(level[periodic]) if np.isfinite(level[periodic]).any() else np.nan
    if not ref > 0:
        return out
    with np.errstate(invalid="ignore"):
        return np.isfinite(level) & (level < p.frozen_ratio * ref)


def _picture_change(signals: Sequence[RhythmSignal]) -> tuple[np.ndarray, np.ndarray] | None:
    """(times, change): the `appearance_velocity` signal's root mean square over its channels, less its 5th
    percentile (the noise floor), where it was seen; None without that signal."""
    sig = next((s for s in signals if s.name == "appearance_velocity" and len(s.t_s) >= 8), None)
    if sig is None:
        return None
    v = np.asarray(sig.values, np.float64).reshape(len(sig.t_s), -1)
    with np.errstate(invalid="ignore"):
        seen = np.isfinite(v).any(axis=1)
        change = np.sqrt(np.nanmean(np.where(seen[:, None], v, 0.0) ** 2, axis=1))
    if seen.sum() < 8:
        return None
    change = change[seen] - np.percentile(change[seen], 5)
    return np.asarray(sig.t_s, np.float64)[seen], change


def _dwells(signals: Sequence[RhythmSignal], t_c: np.ndarray, period: np.ndarray, p: CountingParams
            ) -> np.ndarray:
    """Centres inside a rest between strokes, found stroke by stroke. A one-period window (`_frozen_centres`)
    cannot see a rest shorter than a period, and each such rest adds rest / period to the count.

    From the first periodic centre to the last, a run where the picture's change (`_picture_change`, averaged over
    0.1 s) stays below `dwell_ratio` of its running median (over `dwell_ref_periods` periods, at least 3 s: a busy
    background that calms down behind the strokes lowers the reference with them) for `dwell_periods` to
    `dwell_max_periods` of the tracked period there (interpolated in log across gaps) is a rest; its middle, all
    but `dwell_allowance` periods (the slow turn at a stroke's ends), is marked. Where such runs come in
    `dwell_regular` or more of the cycles, they are part of every stroke (a hold at each press, already inside the
    tracked period) and none is marked.

    Limits: longer stillness is left to `_frozen_centres`, which also checks that the strokes do not go on (a rest
    of more than ~2 periods fills a third of the reference's window and lowers it itself). The change is taken
    over +-0.07 s, so a slow stroke (periods of 1.5 s and more) under sensor noise changes the picture barely more
    than a rest does: there rests stay to the one-period rules. (A change across a share of the period sees slow
    strokes better, but on the dev set it also took out time where nobody rested.)"""
    out = np.zeros(len(t_c), bool)
    periodic = np.isfinite(period)
    got = _picture_change(signals) if p.dwell_ratio > 0 and periodic.sum() >= 2 else None
    if got is None:
        return out
    t, change = got
    dt = float(np.median(np.diff(t)))
    if not dt > 0:
        return out
    change = windowed_mean(t, change, t, 0.1)
    idx = np.flatnonzero(periodic)
    within = (t >= t_c[idx[0]]) & (t <= t_c[idx[-1]])
    per_t = np.exp(np.interp(t, t_c[idx], np.log(period[idx])))
    on_periodic = within & periodic[np.clip(np.searchsorted(t_c, t), 0, len(t_c) - 1)]
    if on_periodic.sum() < 8 or not np.median(change[on_periodic]) > 0:
        return out
    # the strokes' typical change nearby: a busy background that calms down behind them lowers it with them
    from scipy.ndimage import median_filter

    span = max(3.0, p.dwell_ref_periods * float(np.median(per_t)))
    ref = median_filter(change, size=max(3, int(round(span / dt)) | 1), mode="nearest")
    runs = []
    for a, last in periodic_runs(within & (change < p.dwell_ratio * ref)):  # samples a..last
        per_run = float(np.median(per_t[a:last + 1]))
        if p.dwell_periods * per_run <= t[last] - t[a] + dt <= p.dwell_max_periods * per_run:
            runs.append((t[a], t[last] + dt, per_run))
    cycles = float(np.sum(dt / per_t[within]))
    if not runs or len(runs) >= p.dwell_regular * max(cycles, 1.0):
        return out
    for a, b, per_run in runs:
        margin = 0.5 * p.dwell_allowance * per_run
        out |= (t_c >= a + margin) & (t_c < b - margin)
    return out


def _regular_pauses(pause: np.ndarray, t_c: np.ndarray, period: np.ndarray, p: CountingParams) -> np.ndarray:
    """The pause detector's runs (`_still_centres`) that are part of every stroke, not rests between strokes: from
    the first periodic centre to the last, runs of at most `pause_max_periods` of the tracked period there
    (interpolated in log across gaps) that come in `pause_regular` or more of the cycles (a slow turn or a hold at
    each end of a slow stroke, whose time is inside the tracked period). Rests come after some cycles, not most."""
    out = np.zeros(len(t_c), bool)
    periodic = np.isfinite(period)
    if p.pause_regular <= 0 or periodic.sum() < 2 or not pause.any():
        return out
    idx = np.flatnonzero(periodic)
    within = np.zeros(len(t_c), bool)
    within[idx[0] : idx[-1] + 1] = True
    per_c = np.exp(np.interp(np.arange(len(t_c)), idx, np.log(period[idx])))
    short = [(a, last) for a, last in periodic_runs(pause & within)
             if (last - a + 1) * p.hop_s <= p.pause_max_periods * float(np.median(per_c[a : last + 1]))]
    cycles = float(np.sum(p.hop_s / per_c[within]))
    if len(short) >= 3 and len(short) >= p.pause_regular * cycles:  # a rhythm of pauses needs three at least
        for a, last in short:
            out[a : last + 1] = True
    return out


def _quiet_gaps(period: np.ndarray, level: np.ndarray, ratio: float) -> np.ndarray:
    """Centres of aperiodic gaps between two periodic stretches whose mean motion level is below `ratio` of the
    periodic centres' median: the actor rests between strokes (a rest the pause detector's clip-wide threshold
    misses: shaking, or a busy clip), as opposed to a gap where the motion goes on and only the tracker was
    unsure, which `_moving_count` counts through."""
    out = np.zeros(len(period), bool)
    periodic = np.isfinite(period)
    ref = np.nanmedian(level[periodic]) if ratio > 0 and np.isfinite(level[periodic]).any() else np.nan
    if not ref > 0:
        return out
    runs = periodic_runs(periodic)
    for (_, last), (first, _) in zip(runs[:-1], runs[1:]):  # the gap [last + 1, first) between two stretches
        gap = level[last + 1 : first]
        if np.isfinite(gap).any() and np.nanmean(gap) < ratio * ref:
            out[last + 1 : first] = True
    return out


def _running_median(v: np.ndarray, window: int) -> np.ndarray:
    """Centred running median (window clipped at the ends): octave blips of a few centres do not survive it."""
    if window <= 1 or len(v) <= 2:
        return v
    from scipy.ndimage import median_filter

    return median_filter(v, size=min(window, len(v) | 1), mode="nearest")


def _octave_consistent(tr: PeriodTrack, idx: np.ndarray, tol: float, share: float) -> np.ndarray:
    """The log periods of the periodic centres `idx` (one span's), where a stretch tracked at about half or twice the
    span's typical period (the median over `idx`; within `tol` in log of the octave) while some signal's own period
    there still reads the typical one is taken at the typical period: the tracker followed the out-and-back of a
    stroke as two, or two strokes as one, not a change of tempo (then no signal sees the old period). Only when at
    least `share` of the centres are within `tol` of the median (one tempo holds the span; two activities at
    different tempos are left as tracked); `tol` 0: as tracked."""
    lp = np.log(tr.period[idx])
    if tol <= 0 or len(idx) < 2:
        return lp
    med = float(np.median(lp))
    octave = np.abs(np.abs(lp - med) - np.log(2.0)) < tol
    if not octave.any() or np.mean(np.abs(lp - med) < tol) < share:
        return lp
    seen = np.zeros(len(idx), bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        for own in tr.sig_period.values():
            seen |= np.abs(np.log(np.asarray(own, np.float64)[idx]) - med) < tol  # NaN: not seen
    return np.where(octave & seen, med, lp)


def _moving_count(tr: PeriodTrack, inside: np.ndarray, periodic: np.ndarray, p_window: int = 1,
                  to_edges: bool = False, octave_tol: float = 0.0, octave_share: float = 0.5
                  ) -> tuple[float, float]:
    """(count, moving seconds) of a span: 1 / period integrated over the time that moves (pauses excluded) from the
    first periodic centre to the last (the track's periodic stretches already end where the repetition does:
    `extent`), or over the whole span with `to_edges`; the period taken where the consensus is periodic (running
    median over `p_window` periodic centres; octave stretches of the span's typical period taken at it,
    `_octave_consistent`), interpolated (in log) across stretches where it was unsure and held at its nearest value
    beyond them; no periodic centre -> NaN."""
    idx = np.flatnonzero(periodic)
    if not len(idx):
        return float("nan"), 0.0
    pos = np.flatnonzero(inside if to_edges else inside & (tr.t >= tr.t[idx[0]]) & (tr.t <= tr.t[idx[-1]]))
    log_period = np.interp(pos, idx, _running_median(_octave_consistent(tr, idx, octave_tol, octave_share), p_window))
    moving = ~tr.still[pos] if tr.still is not None and len(tr.still) == len(tr.t) else np.ones(len(pos), bool)
    return float(np.sum(tr.hop_s / np.exp(log_period[moving]))), float(moving.sum() * tr.hop_s)


def _grid_signals(maps: list[_SignalMap], p: CountingParams) -> list[GridSignal]:
    """The signals as the extent and rest searches read them (weights: prior x strength^2); none with
    `extent_level` 0, which leaves every stretch the tracker's edges +- `extent_fallback_periods` periods."""
    return [GridSignal(m.values, m.valid, m.min_lag, m.prior * m.lag_map.strength ** 2) for m in maps
            ] if p.extent_level > 0 else []


def _extent_params(p: CountingParams) -> ExtentParams:
    return ExtentParams(fs=p.fs, n_cycles=p.n_cycles, min_window_s=p.min_window_s, max_window_s=p.max_window_s,
                        min_window_cycles=p.min_window_cycles,
                        level=p.extent_level, min_level=p.extent_min_level,
                        fallback_periods=p.extent_fallback_periods,
                        median_centres=int(round(2 * p.period_median_s / p.hop_s)) | 1,
                        rest_level=p.rest_level, rest_periods=p.rest_periods)


def _span_row(scope: str, idx: int, activity: int | None, a: float, b: float, tr: PeriodTrack,
              p: CountingParams) -> tuple:
    inside = (tr.t >= a) & (tr.t < b)
    length = b - a
    periodic = inside & np.isfinite(tr.period)
    periodic_s = float(periodic.sum() * tr.hop_s)
    coverage = periodic_s / length if length > 0 else 0.0
    p_window = int(round(p.period_median_s / tr.hop_s)) | 1
    octave = (p.octave_snap_tol, p.octave_snap_share)
    count_est, moving_s = _moving_count(tr, inside, periodic, p_window, False, *octave)
    # turns where the repetition was found: counting to the edges stretches a span's count, not its evidence (a
    # second of chance periodicity in a clip where nothing repeats must not become the clip's duration / period),
    # and only a span found periodic on `min_coverage` of its time is stretched (a quicker rhythm found in a few
    # seconds of a slow repetition is not the span's: counted to the edges it read 52 for 4 slow cycles)
    found_est = count_est
    if p.count_to_edges and coverage >= p.min_coverage:
        count_est, moving_s = _moving_count(tr, inside, periodic, p_window, True, *octave)
    mean_period = float(moving_s / count_est) if count_est > 0 else float("nan")
    judged = periodic if periodic.any() else inside
    agreeing = []
    ref = np.where(np.isfinite(tr.period), tr.period, tr.best_free)[judged]
    for name, sup in tr.support.items():
        seen = np.isfinite(sup[judged])
        ok = seen & (tr.sig_strength[name][judged] >= p.signal_threshold) & _compatible(
            tr.sig_period[name][judged], ref, tr.kinds[name], p.agree_tol)
        if tr.kinds[name] == SPEED:  # two bursts per cycle, maybe faster than its own period search reaches
            ok |= seen & (sup[judged] >= p.agree_r) & (tr.support_half[name][judged] >= p.agree_r)
        if seen.any() and ok.sum() >= 0.5 * seen.sum():
            agreeing.append(name)
    any_periodic = any(float(np.mean(v[inside] >= p.signal_threshold)) >= p.min_coverage
                       for v in tr.sig_strength.values()) if inside.any() else False
    n_avail = len({DERIVED_FROM.get(n, n) for n, s in tr.support.items() if np.isfinite(s[judged]).any()}
                  ) if judged.any() else 0
    n_agree = len({DERIVED_FROM.get(n, n) for n in agreeing})
    need = max(1, min(p.min_agree, n_avail))
    agreed = n_agree >= need
    if coverage < p.min_coverage:  # the signals may agree, but on too little of the span to count it
        status = (BRIEF if agreed else NO_AGREEMENT) if any_periodic else APERIODIC
        count_est = float("nan") if status == APERIODIC else count_est
    else:
        status = COUNTED if agreed else NO_AGREEMENT
    if not (count_est >= p.min_reps and found_est >= p.min_reps):  # fewer turns than a repetition needs (NaN too)
        status, count_est = APERIODIC, float("nan")
    if status == APERIODIC:
        mean_period = float("nan")
    strength = float(np.mean(tr.strength[periodic])) if periodic.any() else 0.0
    conf = strength * min(1.0, coverage) * (n_agree / max(1, n_avail)) if status == COUNTED else 0.0
    count = count_est if status == COUNTED else float("nan")
    return (scope, idx, activity, a, b, count, count_est, mean_period, periodic_s, float(np.clip(conf, 0, 1)),
            agreeing, list(tr.support), status)


def period_curve(tr: PeriodTrack) -> pl.DataFrame:
    """The period curve (PERIOD_CURVE_SCHEMA): the consensus first, then each signal's own period."""
    parts = [pl.DataFrame({"t_s": tr.t, "period_s": tr.period, "strength": tr.strength,
                           "signal": [CONSENSUS] * len(tr.t)}, schema=PERIOD_CURVE_SCHEMA)]
    for name in tr.sig_period:
        parts.append(pl.DataFrame({"t_s": tr.t, "period_s": tr.sig_period[name],
                                   "strength": np.clip(tr.sig_strength[name], 0, 1), "signal": [name] * len(tr.t)},
                                  schema=PERIOD_CURVE_SCHEMA))
    return pl.concat(parts) if parts else pl.DataFrame(schema=PERIOD_CURVE_SCHEMA)


def track_frame(tr: PeriodTrack) -> pl.DataFrame:
    """A period track as a table (TRACK_SCHEMA): consensus rows first, then each signal's, in `available` order."""
    n = len(tr.t)
    still = tr.still if tr.still is not None else np.zeros(n, bool)
    nan = np.full(n, np.nan)
    parts = [pl.DataFrame({"t_s": tr.t, "signal": [CONSENSUS] * n, "kind": [CONSENSUS] * n, "period_s": tr.period,
                           "strength": tr.strength, "free_period_s": tr.best_free, "support": nan,
                           "support_half": nan, "still": still, "duration_s": np.full(n, tr.duration_s)},
                          schema=TRACK_SCHEMA)]
    for name in tr.available:
        if name not in tr.sig_period:
            continue
        parts.append(pl.DataFrame({
            "t_s": tr.t, "signal": [name] * n, "kind": [tr.kinds.get(name, POSITION)] * n,
            "period_s": tr.sig_period[name], "strength": tr.sig_strength[name], "free_period_s": nan,
            "support": tr.support[name], "support_half": tr.support_half.get(name, nan), "still": still,
            "duration_s": np.full(n, tr.duration_s)}, schema=TRACK_SCHEMA))
    return pl.concat(parts)


def track_from_frame(df: pl.DataFrame, hop_s: float | None = None) -> PeriodTrack:
    """The inverse of `track_frame` (extra columns such as `clip` are ignored; one clip's rows only)."""
    cons = df.filter(pl.col("signal") == CONSENSUS).sort("t_s")
    t = cons["t_s"].to_numpy().astype(np.float64)
    hop = hop_s if hop_s is not None else (round(float(np.median(np.diff(t))), 9) if len(t) > 1
                                           else CountingParams().hop_s)
    duration = float(cons["duration_s"][0]) if cons.height else 0.0
    f = lambda d, c: d[c].fill_null(float("nan")).to_numpy().astype(np.float64)  # noqa: E731
    support, half, sstr, sper, kinds, available = {}, {}, {}, {}, {}, []
    for name in df.filter(pl.col("signal") != CONSENSUS)["signal"].unique(maintain_order=True).to_list():
        g = df.filter(pl.col("signal") == name).sort("t_s")
        if g.height != len(t):
            raise ValueError(f"period track: signal {name!r} has {g.height} rows, the consensus {len(t)}")
        available.append(name)
        kinds[name] = str(g["kind"][0])
        support[name], half[name] = f(g, "support"), f(g, "support_half")
        sstr[name], sper[name] = f(g, "strength"), f(g, "period_s")
    return PeriodTrack(t, hop, f(cons, "period_s"), f(cons, "strength"), support, sstr, sper,
                       f(cons, "free_period_s"), available, kinds, half,
                       cons["still"].fill_null(False).to_numpy().astype(bool), duration)


def track_score(tr: PeriodTrack) -> float:
    """How periodic a track is through the clip: the consensus strength averaged over every centre (0 where
    aperiodic), i.e. strength x periodic coverage."""
    return float(np.mean(np.nan_to_num(tr.strength))) if len(tr.t) else 0.0


def track_located(t_s: np.ndarray, energy: np.ndarray | None, intensity: np.ndarray | None,
                  camera: np.ndarray | None, energy_raw: np.ndarray | None, duration_s: float,
                  params: CountingParams | None = None, path: np.ndarray | None = None
                  ) -> tuple[PeriodTrack, tuple[float, float, float]]:
    """`track_periods` on the whole frame's source-rate signals (`motion_signals`) and on the most periodic box
    of the picture (`localize.best_box`); returns the more periodic track (`track_score`) and its box
    ((top, left, side) shares of the frame; (0, 0, 1) = the whole frame). The thumbnails are first shifted back by
    the picture's `path` (the motion track's, `camera_shift`, with `align_camera`) and steadied
    (`steady_thumbnails`), block by block."""
    p = params or CountingParams()
    t = np.asarray(t_s, np.float64)
    thumbs = intensity is not None and np.asarray(intensity).ndim == 3  # (T, h, w) images, not cells
    moved = None  # the path about its moving mean, in thumbnail px, where it leaves the sway fit's reach
    if (p.align_camera or p.discount_camera_speed) and p.unsway_s > 0 and path is not None and thumbs:
        moved = camera_shift(path, len(intensity), np.asarray(intensity).shape[2], t, p.unsway_s)
    if moved is not None and p.discount_camera_speed:  # the camera moved far: its speed leaves the energy
        speed = camera_speed(path, t)
        energy = None if energy is None else without_camera_speed(energy, path, t, speed=speed)
        energy_raw = None if energy_raw is None else without_camera_speed(energy_raw, path, t, speed=speed)
    if p.deflicker and thumbs and energy is not None and np.ndim(energy) == 3:  # a change of light (a flickering
        # lamp, an exposure swing) is not motion; the compensated and the raw energy share one reading of it
        light = photometric_change(intensity, (np.shape(energy)[1], np.shape(energy)[2]))
        energy = without_flicker(energy, intensity, light=light)
        energy_raw = None if energy_raw is None else without_flicker(energy_raw, intensity, light=light)
    shift = moved if p.align_camera else None
    if p.unsway_s > 0 and camera is not None and thumbs:
        # the picture's global motion leaves the appearance; a camera that itself repeats (a head bobbing with each
        # step) still votes through `camera_motion`, so without a camera track the thumbnails are left as they are
        intensity = steady_thumbnails(intensity, t, p.unsway_s, p.unsway_modes, p.unsway_blur, p.unsway_photometric,
                                      shift=shift)
    elif shift is not None:
        intensity = shifted_back(intensity, shift)
    full = track_periods(motion_signals(t_s, energy, intensity, camera, energy_raw), duration_s, params)
    if intensity is None or np.asarray(intensity).ndim != 3 or len(intensity) < 8:
        return full, FULL_FRAME
    raw = energy_raw if energy_raw is not None else energy
    found = best_box(t_s, np.asarray(intensity), None if raw is None else np.asarray(raw),
                     min_change=p.box_min_change, fs=p.fs, min_period_s=p.min_period_s,
                     max_period_s=p.max_period_s, min_cycles=p.min_cycles, n_cycles=p.n_cycles,
                     min_window_s=p.min_window_s, max_window_s=p.max_window_s)
    if found.score <= 0:
        return full, FULL_FRAME
    b = found.box
    sub = lambda a: None if a is None or np.asarray(a).ndim != 3 else crop_box(np.asarray(a), b)  # noqa: E731
    roi = track_periods(motion_signals(t_s, sub(energy), sub(intensity), camera, sub(energy_raw)), duration_s,
                        params)
    return (roi, b) if track_score(roi) > track_score(full) else (full, FULL_FRAME)
