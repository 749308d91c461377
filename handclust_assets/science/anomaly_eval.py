"""Anomaly spans vs ground truth (EgoClean's table: clip, ground truth, activity, detected).

Ground truth comes from a sidecar `<clip stem>.anomalies.csv` beside the video (or inside its tar shard):

    start_s,end_s,label
    208,262,material handling
    07:00,07:13,ending work          # mm:ss (or h:mm:ss, fractions allowed) works too

A header-only file says "checked: no anomaly". Rows with end <= start, negative or non-finite times, or missing
fields are errors naming the file and line.

Matching (documented choice): detected and ground-truth spans are paired one-to-one by temporal IoU
(|intersection| / |union|), maximising the summed IoU (Hungarian assignment) over pairs with IoU >= `min_iou`
(default 0.2: a detection may be up to 5x longer than its anomaly, or cover a fifth of a long one, and still
count). A GT span with no partner is *missed*; a detection with no partner is a *false positive* (including a
second detection inside one anomaly: a fragmented span costs precision). Start/end errors are signed
(detected - ground truth, s). Per clip: precision = hits / detections, recall = hits / GT spans (NaN when the
denominator is 0), F1, mean IoU over hits, and `time_iou`, the IoU of the union of all GT time with the union of
all detected time (a matching-free check). Overall numbers are micro-averaged (summed counts).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment

from handclust_assets.lib.errors import ClipError

DEFAULT_MIN_IOU = 0.2
SIDECAR_SUFFIX = ".anomalies.csv"
GT_SPAN_SCHEMA = {"start_s": pl.Float64, "end_s": pl.Float64, "label": pl.Utf8}
MATCH_SCHEMA = {
    "clip": pl.Utf8,
    "outcome": pl.Utf8,  # "detected" | "missed" | "false_positive"
    "gt_idx": pl.Int64,
    "gt_start_s": pl.Float64,
    "gt_end_s": pl.Float64,
    "label": pl.Utf8,
    "det_idx": pl.Int64,
    "det_start_s": pl.Float64,
    "det_end_s": pl.Float64,
    "iou": pl.Float64,
    "start_error_s": pl.Float64,
    "end_error_s": pl.Float64,
}
CLIP_SCORE_SCHEMA = {
    "clip": pl.Utf8,
    "n_gt": pl.Int64,
    "n_detected": pl.Int64,
    "n_hit": pl.Int64,
    "n_missed": pl.Int64,
    "n_false_positive": pl.Int64,
    "precision": pl.Float64,
    "recall": pl.Float64,
    "f1": pl.Float64,
    "mean_iou": pl.Float64,
    "time_iou": pl.Float64,
    "mean_abs_start_error_s": pl.Float64,
    "mean_abs_end_error_s": pl.Float64,
}
SEED_TABLE_SCHEMA = {"clip": pl.Utf8, "ground_truth": pl.Utf8, "activity": pl.Utf8, "detected": pl.Utf8}
_TIME = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


# ---------------------------------------------------------------- sidecar ----------------------------------------

def parse_time(text: str) -> float:
    """Seconds from '12.5', '03:28' (mm:ss) or '1:03:28.5' (h:mm:ss); ValueError otherwise."""
    t = text.strip()
    m = _TIME.match(t)
    if m:
        h, mm, ss = int(m[1] or 0), int(m[2]), float(m[3])
        if (m[1] is not None and mm >= 60) or ss >= 60:
            raise ValueError(f"{t!r}: minutes/seconds must be below 60")
        return h * 3600.0 + mm * 60.0 + ss
    v = float(t)
    if not math.isfinite(v):
        raise ValueError(f"{t!r} is not finite")
    return v


def _rows(text: str, source: str | Path) -> list[tuple[int, list[str]]]:
    rows = [(i + 1, [c.strip() for c in r]) for i, r in enumerate(csv.reader(io.StringIO(text)))]
    rows = [(n, r) for n, r in rows if any(r) and not r[0].startswith("#")]
    if rows and rows[0][1][0].lower() in ("start_s", "start"):
        header = [c.lower() for c in rows[0][1]]
        if header[:2] not in (["start_s", "end_s"], ["start", "end"]):
            raise ClipError(source, f"anomaly sidecar line {rows[0][0]}: header must be start_s,end_s,label")
        rows = rows[1:]
    return rows


def parse_anomaly_csv(text: str, source: str | Path) -> pl.DataFrame:
    """Ground-truth spans (GT_SPAN_SCHEMA, sorted by start) from sidecar text; ClipError names source and line."""
    out = []
    for line, r in _rows(text, source):
        if len(r) < 2:
            raise ClipError(source, f"anomaly sidecar line {line}: need start_s,end_s[,label], got {','.join(r)!r}")
        try:
            a, b = parse_time(r[0]), parse_time(r[1])
        except ValueError as e:
            raise ClipError(source, f"anomaly sidecar line {line}: bad time ({e})") from e
        if a < 0 or b <= a:
            raise ClipError(source, f"anomaly sidecar line {line}: need 0 <= start < end, got {a:g}..{b:g}")
        label = ",".join(r[2:]).strip() if len(r) > 2 else ""
        out.append((a, b, label or "anomaly"))
    return pl.DataFrame(out, schema=GT_SPAN_SCHEMA, orient="row").sort("start_s")


def anomaly_sidecar_path(video_path: str | Path) -> Path:
    p = Path(video_path)
    return p.with_name(p.stem + SIDECAR_SUFFIX)


def read_anomaly_sidecar(path: str | Path) -> pl.DataFrame:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ClipError(p, f"anomaly sidecar cannot be read ({e})") from e
    return parse_anomaly_csv(text, p)


def load_anomaly_ground_truth(video_path: str | Path) -> pl.DataFrame | None:
    """The clip's GT spans from `<stem>.anomalies.csv` beside it, or None when there is no sidecar."""
    side = anomaly_sidecar_path(video_path)
    return read_anomaly_sidecar(side) if side.is_file() else None


def write_anomaly_sidecar(path: str | Path, spans: Sequence[tuple[float, float, str]]) -> Path:
    p = Path(path)
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["start_s", "end_s", "label"])
        for a, b, label in spans:
            w.writerow([f"{a:.3f}", f"{b:.3f}", label])
    return p


# ---------------------------------------------------------------- matching ---------------------------------------

def span_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal IoU of two spans; 0 when either has no length."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    if a[1] <= a[0] or b[1] <= b[0] or union <= 0:
        return 0.0
    return inter / union


def match_spans(gt: Sequence[tuple[float, float]], det: Sequence[tuple[float, float]],
                min_iou: float = DEFAULT_MIN_IOU) -> list[tuple[int, int, float]]:
    """One-to-one (gt index, det index, IoU) pairs maximising summed IoU, each with IoU >= min_iou."""
    if not len(gt) or not len(det):
        return []
    iou = np.array([[span_iou(g, d) for d in det] for g in gt])
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c), float(iou[r, c])) for r, c in zip(rows, cols) if iou[r, c] >= max(min_iou, 1e-12)]


def _union_length(spans: Sequence[tuple[float, float]]) -> tuple[float, list[tuple[float, float]]]:
    merged: list[list[float]] = []
    for a, b in sorted((a, b) for a, b in spans if b > a):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return float(sum(b - a for a, b in merged)), [(a, b) for a, b in merged]


def _time_overlap(gt: Sequence[tuple[float, float]], det: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(|GT time ∩ detected time|, |GT time ∪ detected time|) in seconds."""
    lg, mg = _union_length(gt)
    ld, md = _union_length(det)
    inter = sum(max(0.0, min(b, d) - max(a, c)) for a, b in mg for c, d in md)
    return inter, lg + ld - inter


def time_iou(gt: Sequence[tuple[float, float]], det: Sequence[tuple[float, float]]) -> float:
    """IoU of the union of GT time and the union of detected time; NaN when both are empty."""
    inter, union = _time_overlap(gt, det)
    return inter / union if union > 0 else float("nan")


def _spans(df: pl.DataFrame | None) -> list[tuple[float, float]]:
    if df is None or df.height == 0:
        return []
    return list(zip(df["start_s"].to_list(), df["end_s"].to_list()))


def match_clip(clip: str, gt: pl.DataFrame | None, detected: pl.DataFrame | None,
               min_iou: float = DEFAULT_MIN_IOU) -> pl.DataFrame:
    """One row per GT span (detected / missed) and per unmatched detection (false_positive), MATCH_SCHEMA."""
    gs, ds = _spans(gt), _spans(detected)
    labels = gt["label"].to_list() if gt is not None and gt.height and "label" in gt.columns else ["anomaly"] * len(gs)
    pairs = {g: (d, v) for g, d, v in match_spans(gs, ds, min_iou)}
    rows = []
    for gi, (a, b) in enumerate(gs):
        if gi in pairs:
            di, v = pairs[gi]
            c, d = ds[di]
            rows.append((clip, "detected", gi, a, b, labels[gi], di, c, d, v, c - a, d - b))
        else:
            rows.append((clip, "missed", gi, a, b, labels[gi], None, None, None, 0.0, None, None))
    used = {d for d, _ in pairs.values()}
    for di, (c, d) in enumerate(ds):
        if di not in used:
            rows.append((clip, "false_positive", None, None, None, None, di, c, d, None, None, None))
    return pl.DataFrame(rows, schema=MATCH_SCHEMA, orient="row")


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def _nanmean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _score_row(clip: str, m: pl.DataFrame, t_iou: float) -> dict:
    hits = m.filter(pl.col("outcome") == "detected")
    n_gt = int(m["gt_idx"].drop_nulls().len())
    n_det = int(m["det_idx"].drop_nulls().len())
    p, r = _ratio(hits.height, n_det), _ratio(hits.height, n_gt)
    f1 = 2 * p * r / (p + r) if (p + r) > 0 else (0.0 if n_gt and n_det else float("nan"))
    return {"clip": clip, "n_gt": n_gt, "n_detected": n_det, "n_hit": hits.height, "n_missed": n_gt - hits.height,
            "n_false_positive": n_det - hits.height, "precision": p, "recall": r, "f1": f1,
            "mean_iou": _nanmean(hits["iou"].to_list()), "time_iou": t_iou,
            "mean_abs_start_error_s": _nanmean([abs(v) for v in hits["start_error_s"].to_list()]),
            "mean_abs_end_error_s": _nanmean([abs(v) for v in hits["end_error_s"].to_list()])}


@dataclass
class AnomalyEvaluation:
    matches: pl.DataFrame  # MATCH_SCHEMA
    per_clip: pl.DataFrame  # CLIP_SCORE_SCHEMA, one row per clip
    overall: dict  # CLIP_SCORE_SCHEMA keys (clip="all"), micro-averaged


def score_anomalies(gt: pl.DataFrame, detected: pl.DataFrame, clips: Sequence[str] | None = None,
                    min_iou: float = DEFAULT_MIN_IOU) -> AnomalyEvaluation:
    """Score detected spans (with a `clip` column; anomaly.SPAN_SCHEMA columns) against GT spans (`clip` +
    GT_SPAN_SCHEMA). `clips`: the clips that have ground truth (default: the clips in `gt`); detections in other
    clips are not scored (no ground truth to judge them by)."""
    clips = sorted(set(gt["clip"].to_list())) if clips is None else list(clips)
    parts, rows = [], []
    for clip in clips:
        g = gt.filter(pl.col("clip") == clip).sort("start_s")
        d = detected.filter(pl.col("clip") == clip).sort("start_s")
        m = match_clip(clip, g, d, min_iou)
        parts.append(m)
        rows.append(_score_row(clip, m, time_iou(_spans(g), _spans(d))))
    matches = pl.concat(parts) if parts else pl.DataFrame(schema=MATCH_SCHEMA)
    per_clip = pl.DataFrame(rows, schema=CLIP_SCORE_SCHEMA) if rows else pl.DataFrame(schema=CLIP_SCORE_SCHEMA)
    overall = _score_row("all", matches, _pooled_time_iou(gt, detected, clips))
    return AnomalyEvaluation(matches=matches, per_clip=per_clip, overall=overall)


def _pooled_time_iou(gt: pl.DataFrame, detected: pl.DataFrame, clips: Sequence[str]) -> float:
    inter = union = 0.0
    for clip in clips:
        i, u = _time_overlap(_spans(gt.filter(pl.col("clip") == clip)),
                             _spans(detected.filter(pl.col("clip") == clip)))
        inter, union = inter + i, union + u
    return inter / union if union > 0 else float("nan")


# ---------------------------------------------------------------- the seed's table -------------------------------

def fmt_time(seconds: float) -> str:
    """mm:ss (h:mm:ss past an hour), rounded to the second, as in the seed's table."""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60:02d}:{rem % 60:02d}"


def seed_table(matches: pl.DataFrame) -> pl.DataFrame:
    """EgoClean's layout, one row per GT span and per false positive, in time order per clip (a GT span before a
    false positive starting at the same time):
    clip | ground truth ('03:28–04:22', '—' for a false positive) | activity (the GT label, 'false positive') |
    detected ('03:29–04:24', 'missed')."""
    rows = []
    order = matches.with_columns(pl.coalesce("gt_start_s", "det_start_s").alias("_t"))
    for r in order.sort("clip", "_t", maintain_order=True).iter_rows(named=True):
        gt = f"{fmt_time(r['gt_start_s'])}–{fmt_time(r['gt_end_s'])}" if r["gt_idx"] is not None else "—"
        det = f"{fmt_time(r['det_start_s'])}–{fmt_time(r['det_end_s'])}" if r["det_idx"] is not None else "missed"
        act = r["label"] if r["outcome"] != "false_positive" else "false positive"
        rows.append((r["clip"], gt, act, det))
    return pl.DataFrame(rows, schema=SEED_TABLE_SCHEMA, orient="row")
