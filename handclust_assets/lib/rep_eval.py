"""Repetition counting against labelled footage: LABELS.csv, scores (MAE, off-by-one), and a single-video
counter that needs no Dagster (decode -> rhythm signals -> count), for development and for eval scripts.

LABELS.csv columns: `file` (a name inside the videos folder), `count` (ground-truth repetitions) and optionally
`cycle_end_frames` (frame indices where each repetition ends, separated by spaces, `;` or `|`).

Scores (the RepNet / Runia et al. conventions):
    MAE = mean over clips of |pred - gt| / gt           OBO = share of clips with |pred - gt| <= 1
`pred` is the clip's count rounded to the nearest integer: the count where the signals agreed ("counted"), the
counter's estimate where they did not ("no agreement": periodic evidence, but not confirmed; "brief": confirmed on
too little of the clip), 0 where the clip was judged aperiodic. The `*_strict` numbers score every clip that is not
"counted" as 0 (what declining costs).
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from handclust_assets.science.counting import CountingParams, RepetitionCounts, count_repetitions
from handclust_assets.science.rhythm_signals import RhythmSignal, flow_signal, motion_signals

LABEL_SCHEMA = {"file": pl.Utf8, "count": pl.Float64, "cycle_end_frames": pl.List(pl.Int64)}
CLIP_SCORE_SCHEMA = {
    "file": pl.Utf8,
    "gt": pl.Float64,
    "pred": pl.Float64,  # the rounded count scored (`clip_prediction`)
    "count": pl.Float64,  # the counter's count (null when declined)
    "count_estimate": pl.Float64,
    "abs_rel_error": pl.Float64,
    "off_by_one": pl.Boolean,
    "mean_period_s": pl.Float64,
    "confidence": pl.Float64,
    "status": pl.Utf8,
    "agreeing_signals": pl.Utf8,
    "seconds": pl.Float64,  # wall time of the counter on this clip
    "gt_period_s": pl.Float64,  # median labelled cycle (from cycle_end_frames and the clip's fps; null without them)
    "period_ratio": pl.Float64,  # mean_period_s / gt_period_s: ~1 right, ~2 or ~0.5 an octave error
}
PERIOD_TOL = 0.1  # a period within 10 % of the labelled one is "right" in the summary


def _delimiter(header: str) -> str:
    """The header's field separator: ',' unless only ';' (spreadsheets in many locales) or a tab splits it."""
    for sep in (",", ";", "\t"):
        if sep in header:
            return sep
    return ","


def read_labels(path: str | Path) -> pl.DataFrame:
    """LABELS.csv -> (file, count, cycle_end_frames) with a fixed schema. Empty rows and rows whose file starts
    with '#' are skipped; a count without a file, a file labelled twice, or a negative or unparsable count or cycle
    end raise ValueError naming the line. Spreadsheet exports read as
    they are: a UTF-8 byte-order mark, CRLF line ends, ';' or tab separators, any case of the column names, frame
    numbers written as floats or as a bracketed list.

    Two benchmarks' own label files read as they ship: a folder of `.npy` arrays, one per video, of the frames
    where each cycle ends (QUVA Repetition's `annotations/`: `read_cycle_end_arrays`), and a CSV whose file column
    is `name` with each repetition's start and end frames in `L1, L2, ...` (RepCount-A's `test.csv`: the ends,
    L2, L4, ..., are its cycle ends)."""
    if Path(path).is_dir():
        return read_cycle_end_arrays(path)
    rows = []
    with Path(path).open(newline="", encoding="utf-8-sig") as f:
        header = f.readline()
        f.seek(0)
        reader = csv.DictReader(f, delimiter=_delimiter(header))
        cols = {c.strip().lower(): c for c in (reader.fieldnames or []) if c is not None}
        if "file" not in cols and "name" in cols:  # RepCount-A names its videos in `name`
            cols["file"] = cols["name"]
        if "file" not in cols or "count" not in cols:
            raise ValueError(f"{path}: needs columns file, count (has {reader.fieldnames})")
        spans = sorted((int(c[1:]), orig) for c, orig in cols.items() if re.fullmatch(r"l[0-9]+", c))
        seen: dict[str, int] = {}
        for i, r in enumerate(reader, start=2):
            name = (r.get(cols["file"]) or "").strip()
            if name.startswith("#") or not any((v or "").strip() for v in r.values() if isinstance(v, str)):
                continue
            if not name:
                raise ValueError(f"{path}:{i}: a count ({r.get(cols['count'])!r}) without a file")
            if name in seen:
                raise ValueError(f"{path}:{i}: {name!r} is labelled again (first on line {seen[name]})")
            seen[name] = i
            try:
                count = float(r[cols["count"]])
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}:{i}: count {r.get(cols['count'])!r} is not a number") from e
            if not np.isfinite(count) or count < 0:
                raise ValueError(f"{path}:{i}: count must be >= 0, got {count}")
            ends_raw = (r.get(cols["cycle_end_frames"]) or "") if "cycle_end_frames" in cols else ""
            try:  # frame numbers, maybe written as floats ("12.0") by a spreadsheet or numpy
                ends = [int(round(float(x))) for x in re.split(r"[\s;|,\[\]]+", ends_raw.strip()) if x]
            except (ValueError, OverflowError) as e:  # NaN / inf included
                raise ValueError(f"{path}:{i}: cycle_end_frames {ends_raw!r} are not frame numbers") from e
            if spans and not ends:
                ends = _span_ends(path, i, [(r.get(orig) or "").strip() for _, orig in spans])
            if any(e < 0 for e in ends):
                raise ValueError(f"{path}:{i}: cycle_end_frames must be >= 0, got {min(ends)}")
            rows.append((name, count, ends))
    return pl.DataFrame(rows, schema=LABEL_SCHEMA, orient="row")


def _span_ends(path: str | Path, line: int, cells: list[str]) -> list[int]:
    """The end frames of repetitions given as start, end, start, end, ... cells (RepCount-A's L1, L2, ...; the
    cells after the last repetition are empty, or NaN as pandas writes them)."""
    vals = []
    for c in cells:
        if not c or c.lower() == "nan":
            continue
        try:
            v = float(c)
        except ValueError as e:
            raise ValueError(f"{path}:{line}: repetition frame {c!r} is not a frame number") from e
        if not np.isfinite(v):
            raise ValueError(f"{path}:{line}: repetition frame {c!r} is not a frame number")
        vals.append(int(round(v)))
    if len(vals) % 2:
        raise ValueError(f"{path}:{line}: {len(vals)} repetition frames: starts and ends should pair up")
    return vals[1::2]


def read_cycle_end_arrays(folder: str | Path) -> pl.DataFrame:
    """A folder of `<video stem>.npy` label files, each a 1-D array of the frames where the video's cycles end (QUVA
    Repetition's `annotations/`: "the frame indices for the end of each cycle; the total repetition count is the
    number of cycles") -> the labels, `file` the stem (matched to its video as a label without its extension is).
    A file that is no numeric array (a pickle is not loaded), holds a negative or non-finite frame, or is not
    1-D raises ValueError naming it; no .npy file at all too."""
    files = sorted(Path(folder).glob("*.npy"))
    if not files:
        raise ValueError(f"{folder}: a labels folder needs one <video>.npy of cycle-end frames per video (none found)")
    rows = []
    for f in files:
        try:
            arr = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"{f}: not a numpy array of frame numbers ({e})") from e
        if arr.dtype.kind not in "iuf" or arr.ndim > 1:
            raise ValueError(f"{f}: expected a 1-D array of frame numbers, got {arr.dtype} of shape {arr.shape}")
        arr = np.atleast_1d(arr).astype(np.float64)
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise ValueError(f"{f}: frame numbers must be finite and >= 0")
        rows.append((f.stem, float(len(arr)), [int(round(v)) for v in arr]))
    return pl.DataFrame(rows, schema=LABEL_SCHEMA, orient="row")


def _pred(count: float | None) -> float:
    return float(np.round(count)) if count is not None and np.isfinite(count) else 0.0


def clip_prediction(count: float | None, estimate: float | None, status: str | None) -> float:
    """The scored count: the count if there is one, else the estimate unless the clip was judged aperiodic."""
    if count is not None and np.isfinite(count):
        return _pred(count)
    if status != "aperiodic" and estimate is not None and np.isfinite(estimate):
        return _pred(estimate)
    return 0.0


def labelled_period(cycle_end_frames: list[int] | None, fps: float | None) -> float | None:
    """The median labelled cycle in seconds: the median step between consecutive cycle-end frames / fps (None with
    fewer than two ends, no fps, or no step > 0). The median, so one missed or doubled end does not move it."""
    if not cycle_end_frames or len(cycle_end_frames) < 2 or not fps or not np.isfinite(fps) or fps <= 0:
        return None
    steps = np.diff(np.sort(np.asarray(cycle_end_frames, np.float64)))
    steps = steps[steps > 0]
    return float(np.median(steps) / fps) if len(steps) else None


def score_counts(labels: pl.DataFrame, results: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    """Join labels (file, count, cycle_end_frames) with results (file, count, count_estimate, mean_period_s,
    confidence, status, agreeing_signals, seconds, fps; missing columns are null) -> per-clip table
    (CLIP_SCORE_SCHEMA; with cycle ends and fps also the labelled period and the counted one's ratio to it) and a
    summary:
    n, mae, obo (scored with `clip_prediction`), mae_ci, obo_ci (95 % bootstrap intervals over clips, `bootstrap_ci`),
    mae_strict, obo_strict (only "counted" clips count), declined share. Clips with gt 0 are left out of MAE/OBO
    and reported as `n_negative` / `negative_false_counts` (a count >= 1 where nothing repeats)."""
    res = {r["file"]: r for r in results.iter_rows(named=True)} if results.height else {}
    rows = []
    for lab in labels.iter_rows(named=True):
        r = res.get(lab["file"], {})
        count = r.get("count")
        est = r.get("count_estimate")
        gt = float(lab["count"])
        pred = clip_prediction(count, est, r.get("status"))
        err = abs(pred - gt) / gt if gt > 0 else float("nan")
        agree = r.get("agreeing_signals")
        gt_period = labelled_period(lab.get("cycle_end_frames"), r.get("fps"))
        mean_period = r.get("mean_period_s")
        ratio = mean_period / gt_period if gt_period and mean_period is not None and np.isfinite(mean_period) else None
        rows.append((lab["file"], gt, pred, count, est, err, bool(abs(pred - gt) <= 1),
                     mean_period, r.get("confidence"), r.get("status") or "missing",
                     ",".join(agree) if isinstance(agree, list) else (agree or ""), r.get("seconds"), gt_period,
                     ratio))
    table = pl.DataFrame(rows, schema=CLIP_SCORE_SCHEMA, orient="row")
    return table, summarize(table)


def summarize(table: pl.DataFrame) -> dict:
    pos = table.filter(pl.col("gt") > 0)
    neg = table.filter(pl.col("gt") == 0)
    out: dict = {"n": pos.height, "n_negative": neg.height}
    if pos.height:
        gt = pos["gt"].to_numpy()
        pred = pos["pred"].to_numpy()
        strict = np.array([_pred(c) for c in pos["count"].to_list()])
        err, hit = np.abs(pred - gt) / gt, (np.abs(pred - gt) <= 1).astype(np.float64)
        out.update(mae=float(np.mean(err)), obo=float(np.mean(hit)),
                   mae_strict=float(np.mean(np.abs(strict - gt) / gt)),
                   obo_strict=float(np.mean(np.abs(strict - gt) <= 1)),
                   declined=float(np.mean(pos["status"].to_numpy() != "counted")),
                   mae_ci=bootstrap_ci(err), obo_ci=bootstrap_ci(hit))
    if neg.height:
        out["negative_false_counts"] = float(np.mean(neg["pred"].to_numpy() >= 1))
    if "period_ratio" in table.columns and pos.height:  # where the labels give cycle ends: is the period right?
        ratio = pos.filter(pl.col("gt_period_s").is_not_null())["period_ratio"].to_numpy().astype(np.float64)
        if len(ratio):
            r = np.where(np.isfinite(ratio), ratio, np.nan)
            out.update(period_n=len(r), period_right=float(np.mean(np.abs(r - 1) <= PERIOD_TOL)),
                       period_long=float(np.mean(r >= 1.7)), period_short=float(np.mean(r <= 0.6)),
                       period_missing=float(np.mean(~np.isfinite(r))))
    return out


def bootstrap_ci(values: np.ndarray, level: float = 0.95, n_resamples: int = 2000, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of per-clip values (resampling clips with replacement; a fixed
    seed, so a report is reproducible). How far a score on this many clips could move on other clips of the same
    kind: on 20 clips an OBO of 0.55 spans about 0.35-0.75. NaN values are left out; no values -> (NaN, NaN)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    step = max(1, 2_000_000 // len(v))  # resamples per batch: memory stays bounded for any number of clips
    means = np.concatenate([v[rng.integers(0, len(v), size=(min(step, n_resamples - i), len(v)))].mean(axis=1)
                            for i in range(0, n_resamples, step)])
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def signals_for_video(video_path: str | Path, with_flow: bool = False, flow_fps: float = 5.0
                      ) -> tuple[list[RhythmSignal], float]:
    """Decode once: the source-rate motion track (motion_energy, appearance) and, with `with_flow`, dense-flow
    magnitude + direction on frames sampled at `flow_fps` (as the graph's 5-fps flow asset). Returns the
    signals and the clip duration (s)."""
    from handclust_assets.video.motion_track import motion_track_from_video

    track = motion_track_from_video(video_path)
    if len(track) == 0:
        return [], 0.0
    duration = track.duration_s
    signals = motion_signals(track.t_s, track.energy, track.intensity, track.camera, track.energy_raw)
    if with_flow:
        from handclust_assets.science.flow import compute_flow
        from handclust_assets.video.frame_cache import sample_frames

        frames, times = sample_frames(video_path, flow_fps, max_side=320)
        fr = compute_flow(frames)
        signals.append(flow_signal(times, fr.mag, fr.dir_hist))
    return signals, duration


def count_video(video_path: str | Path, spans: pl.DataFrame | None = None, params: CountingParams | None = None,
                with_flow: bool = False) -> RepetitionCounts:
    """Count one video end to end without Dagster (decode -> motion track -> count), as the graph's period_track
    does: the whole frame or the most periodic box (`track_located`). With `with_flow`, the whole frame's
    source-rate signals plus 5-fps dense flow (an experiment; not what the graph runs)."""
    if with_flow:
        signals, duration = signals_for_video(video_path, with_flow=True)
        return count_repetitions(signals, duration, spans, params)
    from handclust_assets.video.motion_track import motion_track_from_video

    return count_motion_track(motion_track_from_video(video_path), spans, params)


def motion_cache_path(out: str | Path, video_path: str | Path, version: int | None = None) -> Path:
    """Where the dev scripts cache a labelled video's motion track: `out/_motion/v<MOTION_TRACK_VERSION>/`
    `<folder>__<stem>.npz` (keyed by the track's version, so a new track format never reads an old file; `version`:
    an earlier version's cache, to compare tracks)."""
    from handclust_assets.video.motion_track import MOTION_TRACK_VERSION

    video_path = Path(video_path)
    v = MOTION_TRACK_VERSION if version is None else version
    return Path(out) / "_motion" / f"v{v}" / f"{video_path.parent.name}__{video_path.stem}.npz"


def count_motion_track(track: object, spans: pl.DataFrame | None = None, params: CountingParams | None = None
                       ) -> RepetitionCounts:
    """Counts from a `MotionTrack` (the graph's way: `track_located`, then every span)."""
    from handclust_assets.science.counting import count_spans, period_curve, track_located

    if len(track) == 0:
        return count_repetitions([], 0.0, spans, params)
    duration = track.duration_s
    tr, box = track_located(track.t_s, track.energy, track.intensity, track.camera, track.energy_raw, duration,
                            params, path=track.path)
    return RepetitionCounts(count_spans(tr, spans, params), period_curve(tr),
                            {"signals": tr.available, "n_centres": len(tr.t), "box": box, "fps": track.fps})


def result_row(file: str, rc: RepetitionCounts, seconds: float) -> dict:
    clip = rc.counts.filter(pl.col("scope") == "clip").row(0, named=True)
    return {"file": file, "count": clip["count"], "count_estimate": clip["count_estimate"],
            "mean_period_s": clip["mean_period_s"], "confidence": clip["confidence"], "status": clip["status"],
            "agreeing_signals": clip["agreeing_signals"], "seconds": seconds, "fps": rc.diagnostics.get("fps")}


def eval_folder(videos_dir: str | Path, labels_csv: str | Path,
                counter: Callable[[Path], RepetitionCounts] | None = None) -> tuple[pl.DataFrame, dict]:
    """Count every labelled video in `videos_dir` with `counter` (default: `count_video`) and score it.
    A labelled file that is missing or fails to decode scores as declined, with its status saying why."""
    labels = read_labels(labels_csv)
    counter = counter or (lambda p: count_video(p))
    rows = []
    for name in labels["file"].to_list():
        path = Path(videos_dir) / name
        t0 = time.perf_counter()
        try:
            rc = counter(path)
        except Exception as e:  # one bad clip must not stop the evaluation
            rows.append({"file": name, "status": f"failed: {type(e).__name__}: {e}"[:200],
                         "seconds": time.perf_counter() - t0})
            continue
        rows.append(result_row(name, rc, time.perf_counter() - t0))
    results = pl.DataFrame(rows, schema={
        "file": pl.Utf8, "count": pl.Float64, "count_estimate": pl.Float64, "mean_period_s": pl.Float64,
        "confidence": pl.Float64, "status": pl.Utf8, "agreeing_signals": pl.List(pl.Utf8), "seconds": pl.Float64,
        "fps": pl.Float64})
    return score_counts(labels, results)


def format_scores(table: pl.DataFrame, summary: dict) -> str:
    """A plain-text report: summary line and the per-clip table."""
    nan2 = (float("nan"), float("nan"))
    mae_lo, mae_hi = summary.get("mae_ci", nan2)
    obo_lo, obo_hi = summary.get("obo_ci", nan2)
    head = (f"clips {summary.get('n', 0)}  MAE {summary.get('mae', float('nan')):.3f}  "
            f"OBO {summary.get('obo', float('nan')):.3f}  declined {summary.get('declined', float('nan')):.2f}  "
            f"(counted clips only: MAE {summary.get('mae_strict', float('nan')):.3f}  "
            f"OBO {summary.get('obo_strict', float('nan')):.3f})\n"
            f"95% bootstrap interval over clips: MAE {mae_lo:.3f}-{mae_hi:.3f}  OBO {obo_lo:.3f}-{obo_hi:.3f}")
    if summary.get("n_negative"):
        head += f"\nclips without repetition {summary['n_negative']}: false counts {summary['negative_false_counts']:.2f}"
    if summary.get("period_n"):
        head += (f"\nperiod against the labelled cycle ends ({summary['period_n']} clips): within "
                 f"{PERIOD_TOL:.0%} {summary['period_right']:.2f}, >= 1.7x (a multiple) {summary['period_long']:.2f}, "
                 f"<= 0.6x (a fraction) {summary['period_short']:.2f}, none {summary['period_missing']:.2f}")
    with_gt_period = bool(summary.get("period_n"))
    gt_head = f" {'gt_per':>6s}" if with_gt_period else ""
    lines = [head, f"{'file':40s} {'gt':>5s} {'pred':>6s} {'estim':>6s} {'err':>6s} {'period':>7s}{gt_head} "
                   f"{'conf':>5s} status"]
    nan = float("nan")
    for r in table.iter_rows(named=True):
        est = r["count_estimate"]
        per = r["mean_period_s"]
        gt_per = f" {(r.get('gt_period_s') or nan):6.2f}" if with_gt_period else ""
        lines.append(f"{r['file'][:40]:40s} {r['gt']:5.0f} {r['pred']:6.0f} "
                     f"{(est if est is not None else nan):6.1f} {r['abs_rel_error']:6.2f} "
                     f"{(per if per is not None else nan):7.2f}{gt_per} {(r['confidence'] or 0):5.2f} "
                     f"{r['status']} [{r['agreeing_signals']}]")
    return "\n".join(lines)
