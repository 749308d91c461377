"""EgoClean anomaly detection on synthetic clips with injected anomalies, scored against their exact spans.

Two modes.

Honest evaluation (`--split train|heldout|both`): two disjoint sets of synthetic clips, drawn from different seeds
(`SPLITS`). Clip lengths 60-180 s, 0-3 injected anomalies per clip (a quarter of the clips have none: the
false-positive control), kinds assigned round-robin so that every kind appears about equally often. Detector
parameters are chosen on `train` only (`--tune` prints a grid there); `heldout` is scored with the defaults of
`science.anomaly.detect_anomalies`, next to the seed's detector (`seed_detector`, the algorithm as it was before)
and the iterated-Otsu proposal, so "before" and "after" come from the same embeddings in the same run.

    python benchmarks/eval_anomalies.py --split both [--work DIR] [--tune] [--figures]

Demo set (the earlier mode: `generate_demo_set(anomalies_per_clip=…)`, also the cost report):

    python benchmarks/eval_anomalies.py [--clips 6] [--duration 150] [--per-clip 2] [--seed 300] [--work DIR]
                                        [--alpha 0.3] [--min-contrast 0.05] [--sweep]

Per clip, the plain-code path the assets take (no Dagster): generate, frame cache at 5 fps / 480 px, offline scene
embeddings (`load_scene_encoder(ModelSpec("facebook/dinov2-small"), fallback=True)`: EfficientNet-Lite0 here),
pooled to 1-s windows as the anomaly_detection asset does, a detector, then `science.anomaly_eval.score_anomalies`
(IoU >= 0.2, one-to-one) against `<clip>.anomalies.csv`. Embeddings are cached under <work>/embeddings, so a
re-run only re-scores. Diagnostics and detection PNGs are written to <work>/figures (`--figures` in split mode).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from handclust_assets.lib.cost import MEASUREMENT_SCHEMA, CostMeter, Prices, cost_report
from handclust_assets.lib.synthetic import (
    ANOMALY_KINDS,
    PHASE_MIX,
    generate_clip,
    generate_demo_set,
    random_anomaly_spans,
)
from handclust_assets.models.scene import load_scene_encoder
from handclust_assets.models.spec import ModelSpec
from handclust_assets.report.diagnostics import SCENE_LABEL, detection_png, diagnostics_png
from handclust_assets.science.anomaly import (
    SPAN_SCHEMA,
    detect_anomalies,
    ema,
    hysteresis_spans,
    otsu_threshold,
    typicality,
)
from handclust_assets.science.anomaly_diagnostics import compute_diagnostics, pool_windows
from handclust_assets.science.anomaly_eval import load_anomaly_ground_truth, score_anomalies, seed_table
from handclust_assets.video.frame_cache import FrameCache, build_frame_cache

pl.Config.set_tbl_rows(80)
pl.Config.set_tbl_cols(20)
pl.Config.set_tbl_width_chars(160)
pl.Config.set_fmt_str_lengths(60)

Detector = Callable[[np.ndarray, np.ndarray, np.ndarray], pl.DataFrame]  # (windows, start s, end s) -> spans


@contextmanager
def measured(rows: list[dict], asset: str, clip: str | None) -> Iterator[None]:
    with CostMeter() as meter:
        yield
    r = meter.result
    rows.append({"asset": asset, "clip": clip, "wall_s": r.wall_s, "cpu_s": r.cpu_s, "gpu_s": r.gpu_s,
                 "peak_rss_bytes": r.peak_rss_bytes})


# ---------------------------------------------------------------- the data -------------------------------------

@dataclass(frozen=True)
class Split:
    seed: int  # clip seeds are seed + i: the splits share none
    n_clips: int


SPLITS = {"train": Split(seed=7100, n_clips=16), "heldout": Split(seed=9100, n_clips=16)}
DURATIONS_S = (60.0, 90.0, 120.0, 150.0, 180.0)
KIND_ORDER = tuple(ANOMALY_KINDS)


@dataclass(frozen=True)
class ClipPlan:
    name: str
    seed: int
    duration_s: float
    phase: str
    anomalies: tuple[tuple[str, float, float], ...]  # (kind, start_s, end_s); empty: a clean clip


def plan_split(split: Split) -> list[ClipPlan]:
    """Clip i: a length drawn from DURATIONS_S, i % 4 anomalies requested (0: the false-positive control; a
    60-s clip may hold fewer), the phases in turn, and the kinds round-robin over the whole split."""
    rng = np.random.default_rng(split.seed)
    phases = list(PHASE_MIX)
    plans, k = [], split.seed % len(KIND_ORDER)
    for i in range(split.n_clips):
        seed = split.seed + i
        duration = float(rng.choice(DURATIONS_S))
        spans = random_anomaly_spans(seed, duration, i % 4) if i % 4 else []
        anomalies = []
        for _, a, b in spans:
            anomalies.append((KIND_ORDER[k % len(KIND_ORDER)], a, b))
            k += 1
        phase = phases[i % len(phases)]
        plans.append(ClipPlan(f"c{seed}_{phase}_{int(duration)}s", seed, duration, phase, tuple(anomalies)))
    return plans


def generate_split(videos: Path, plans: list[ClipPlan]) -> list[Path]:
    """The clips (640x360, 15 fps, as the demo set) and their sidecars; a clip already there with the same
    parameters is kept. A clean clip gets a header-only sidecar: checked, no anomaly."""
    videos.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in plans:
        p = videos / f"{c.name}.mp4"
        params = {"seed": c.seed, "duration_s": c.duration_s, "phase": c.phase, "anomalies": [list(a) for a in
                                                                                           c.anomalies]}
        side = p.with_name(p.stem + ".params.json")
        if not (p.exists() and side.exists() and json.loads(side.read_text()) == params):
            generate_clip(p, seed=c.seed, duration_s=c.duration_s, phase=c.phase, anomalies=list(c.anomalies))
            side.write_text(json.dumps(params))
        paths.append(p)
    return paths


def embed_clips(work: Path, paths: list[Path], cost_rows: list[dict], sample_fps: float = 5.0
                ) -> dict[str, tuple]:
    """clip -> (frame embeddings, frame times, duration s): frame cache at `sample_fps` (the graph's default 5) /
    480 px, offline scene encoder; cached under <work>/embeddings (embeddings_<fps>fps for another rate)."""
    enc = None
    out = {}
    tag = "" if sample_fps == 5.0 else f"_{sample_fps:g}fps"
    for p in paths:
        clip = p.stem
        saved = work / f"embeddings{tag}" / f"{clip}.npz"
        if saved.exists():  # a re-run reuses the measured embeddings; costs not re-measured
            z = np.load(saved)
            out[clip] = (z["emb"], z["t"], float(z["duration"]))
            continue
        if enc is None:
            enc = load_scene_encoder(ModelSpec("facebook/dinov2-small"), fallback=True)
            print(f"scene encoder: {enc.name} ({enc.version()})", flush=True)
        with measured(cost_rows, "frame_cache", clip):
            build_frame_cache(p, work / f"frames{tag}" / clip, sample_fps=sample_fps, max_side=480)
        fc = FrameCache(work / f"frames{tag}" / clip)
        with measured(cost_rows, "scene_embeddings", clip):
            emb = enc.embed(fc.all_frames())
        out[clip] = (emb, fc.timestamps, float(fc.timestamps[-1] + 1 / fc.fps))
        saved.parent.mkdir(parents=True, exist_ok=True)
        np.savez(saved, emb=emb, t=fc.timestamps, duration=out[clip][2])
        print(f"  embedded {clip}: {len(emb)} frames", flush=True)
    return out


def ground_truth(paths: list[Path]) -> pl.DataFrame:
    return pl.concat([load_anomaly_ground_truth(p).with_columns(pl.lit(p.stem).alias("clip")) for p in paths])


# ---------------------------------------------------------------- detectors ------------------------------------

def _span_table(spans: list[tuple[float, float, float, float]]) -> pl.DataFrame:
    rows = [(i, a, b, p, m) for i, (a, b, p, m) in enumerate(sorted(spans))]
    return pl.DataFrame(rows, schema=SPAN_SCHEMA, orient="row")


def seed_detector(emb: np.ndarray, t: np.ndarray, alpha: float = 0.3, min_contrast: float = 0.05) -> pl.DataFrame:
    """The seed's detector as science/anomaly.py had it before (the "before" numbers): row-mean typicality,
    EMA, one Otsu threshold per clip, theta_off midway to the median, spans only when Otsu stands
    `min_contrast` above the median."""
    sm = ema(1.0 - typicality(emb), alpha)
    fin = sm[np.isfinite(sm)]
    if len(fin) == 0:
        return _span_table([])
    on, med = otsu_threshold(sm), float(np.median(fin))
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    return _span_table(hysteresis_spans(sm, t, on, (on + med) / 2, step_s=step) if on - med >= min_contrast else [])


def iterated_otsu_spans(emb: np.ndarray, t: np.ndarray, alpha: float, min_contrast: float, rounds: int = 3
                        ) -> pl.DataFrame:
    """A PROPOSAL from an earlier run: after each Otsu + hysteresis pass, take the found spans out and threshold
    the remaining windows again, while Otsu still stands `min_contrast` above their median."""
    sm = ema(1.0 - typicality(emb), alpha)
    free = np.ones(len(sm), bool)
    found: list[tuple[float, float, float, float]] = []
    for _ in range(rounds):
        if free.sum() < 3:
            break
        on, med = otsu_threshold(sm[free]), float(np.median(sm[free]))
        if on - med < min_contrast:
            break
        new = hysteresis_spans(np.where(free, sm, -np.inf), t, on, (on + med) / 2, step_s=1.0)
        if not new:
            break
        found += new
        for a, b, _, _ in new:
            free &= ~((t >= a) & (t < b))
    return _span_table(found)


def detectors(**current_kwargs: float) -> dict[str, Detector]:
    return {
        "seed (before)": lambda w, ts, te: seed_detector(w, ts),
        "iterated Otsu 0.05": lambda w, ts, te: iterated_otsu_spans(w, ts, 0.3, 0.05),
        "current (after)": lambda w, ts, te: detect_anomalies(w, ts, te, **current_kwargs)[1],
    }


def windows_of(emb: dict[str, tuple]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """clip -> 1-s windows (embeddings, start s, end s), pooled as the anomaly_detection asset pools."""
    return {clip: pool_windows(e, t, 1.0) for clip, (e, t, _) in emb.items()}


def run_detector(windows: dict[str, tuple], detector: Detector) -> pl.DataFrame:
    return pl.concat([detector(w, ts, te).with_columns(pl.lit(clip).alias("clip"))
                      for clip, (w, ts, te) in windows.items()])


# ---------------------------------------------------------------- scoring --------------------------------------

def score_summary(gt: pl.DataFrame, det: pl.DataFrame, clips: list[str]) -> dict:
    """Overall numbers, hits per kind, and false positives on clips without anomalies."""
    ev = score_anomalies(gt, det, clips=clips)
    o = dict(ev.overall)
    m = ev.matches
    o["by_kind"] = {lab: (int((g["outcome"] == "detected").sum()), g.height)
                    for (lab,), g in m.filter(pl.col("label").is_not_null()).group_by("label")}
    clean = sorted(set(clips) - set(gt["clip"].to_list()))
    fp = m.filter(pl.col("outcome") == "false_positive")
    o["n_clean"] = len(clean)
    o["fp_clean"] = fp.filter(pl.col("clip").is_in(clean)).height
    o["clean_clips_with_fp"] = fp.filter(pl.col("clip").is_in(clean))["clip"].n_unique()
    o["evaluation"] = ev
    return o


def summary_line(name: str, o: dict) -> str:
    kinds = ", ".join(f"{k} {h}/{n}" for k, (h, n) in sorted(o["by_kind"].items()))
    return (f"  {name:20s} hits {o['n_hit']:2d}/{o['n_gt']:2d}  FP {o['n_false_positive']:2d} "
            f"(on the {o['n_clean']} clips without anomalies: {o['fp_clean']})  recall {o['recall']:.2f}  "
            f"precision {o['precision']:.2f}  mean IoU {o['mean_iou']:.2f}\n      by kind: {kinds}")


def kind_table(results: dict[str, dict]) -> pl.DataFrame:
    """One row per detector and kind (and 'all'): detected / GT, recall; false positives are not of a kind, so
    they appear on the 'all' row with the precision."""
    rows = []
    for det_name, o in results.items():
        for kind, (h, n) in sorted(o["by_kind"].items()):
            rows.append((det_name, kind, h, n, h / n if n else float("nan"), None, None))
        rows.append((det_name, "all", o["n_hit"], o["n_gt"], o["recall"], o["n_false_positive"], o["precision"]))
    return pl.DataFrame(rows, schema={"detector": pl.Utf8, "kind": pl.Utf8, "detected": pl.Int64, "n_gt": pl.Int64,
                                      "recall": pl.Float64, "false_positives": pl.Int64, "precision": pl.Float64},
                        orient="row")


def evaluate_split(name: str, work: Path, sample_fps: float, figures: bool, tune: bool) -> dict[str, dict]:
    plans = plan_split(SPLITS[name])
    paths = generate_split(work / name / "videos", plans)
    emb = embed_clips(work / name, paths, [], sample_fps)
    gt = ground_truth(paths)
    clips = [p.stem for p in paths]
    windows = windows_of(emb)
    secs = sum(d for _, _, d in emb.values())
    print(f"\n=== {name} (seeds {SPLITS[name].seed}..{SPLITS[name].seed + SPLITS[name].n_clips - 1}, "
          f"{sample_fps:g} fps): {len(clips)} clips, {secs / 60:.1f} min, {gt.height} anomalies, "
          f"{sum(not c.anomalies for c in plans)} clips without ===")
    results = {}
    for det_name, det in detectors().items():
        results[det_name] = score_summary(gt, run_detector(windows, det), clips)
        print(summary_line(det_name, results[det_name]))
    print(kind_table(results))
    ev = results["current (after)"]["evaluation"]
    print("current (after): every miss and false positive")
    print(seed_table(ev.matches).filter(pl.col("detected").eq("missed") | pl.col("activity").eq("false positive")))
    if tune:
        tune_grid(gt, windows, clips)
    if figures:
        write_figures(work / name / "figures", windows, gt)
    return results


def tune_grid(gt: pl.DataFrame, windows: dict[str, tuple], clips: list[str]) -> None:
    """The detector's parameters (run on train only): hits/false positives per min_contrast, for a few
    (share, exclude_s, alpha)."""
    contrasts = (0.06, 0.08, 0.09, 0.10, 0.11, 0.12, 0.13, 0.14, 0.16)
    print("\n  grid on this split: hits/false positives per min_contrast")
    print("  share exclude_s alpha | " + " ".join(f"{c:>6.2f}" for c in contrasts))
    for share, exclude_s in ((0.1, 20.0), (0.15, 10.0), (0.15, 15.0), (0.15, 20.0), (0.25, 20.0)):
        for alpha in (0.3, 0.5):
            cells = []
            for mc in contrasts:
                kw = {"share": share, "exclude_s": exclude_s, "alpha": alpha, "min_contrast": mc}
                o = score_summary(gt, run_detector(windows, lambda w, ts, te, kw=kw: detect_anomalies(
                    w, ts, te, **kw)[1]), clips)
                cells.append(f"{o['n_hit']:>3d}/{o['n_false_positive']:<2d}")
            print(f"  {share:5.2f} {exclude_s:9.0f} {alpha:5.1f} | " + " ".join(cells), flush=True)


def write_figures(figs: Path, windows: dict[str, tuple], gt: pl.DataFrame) -> None:
    for clip, (w, ts, te) in windows.items():
        sc, sp = detect_anomalies(w, ts, te)
        detection_png(sc, sp, figs / f"detect_{clip}.png", SCENE_LABEL, gt=gt.filter(pl.col("clip") == clip),
                      clip=clip)
    print(f"figures: {figs}")


# ---------------------------------------------------------------- demo-set mode -------------------------------

def detect_all(windows: dict[str, tuple], kwargs: dict, cost_rows: list[dict] | None = None
               ) -> tuple[dict, pl.DataFrame]:
    per_clip, spans = {}, []
    for clip, (w, ts, te) in windows.items():
        with measured(cost_rows, "anomaly_detection", clip) if cost_rows is not None else _nothing():
            sc, sp = detect_anomalies(w, ts, te, **kwargs)
        per_clip[clip] = (w, ts, sc, sp)
        spans.append(sp.with_columns(pl.lit(clip).alias("clip")))
    return per_clip, pl.concat(spans)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def demo_mode(a: argparse.Namespace, work: Path) -> None:
    cost_rows: list[dict] = []
    with measured(cost_rows, "synthetic_generation", None):
        paths = generate_demo_set(work / "videos", n_clips=a.clips, duration_s=a.duration, seed=a.seed,
                                  anomalies_per_clip=a.per_clip)
    gt = ground_truth(paths)
    clips = [p.stem for p in paths]
    emb = embed_clips(work, paths, cost_rows, a.sample_fps)
    windows = windows_of(emb)
    kwargs = {k: v for k, v in (("alpha", a.alpha), ("min_contrast", a.min_contrast)) if v is not None}
    per_clip, det = detect_all(windows, kwargs, cost_rows)
    ev = score_anomalies(gt, det, clips=clips, min_iou=a.min_iou)
    print(f"\nEgoClean table (detector defaults, overridden: {kwargs or 'none'}; min_iou={a.min_iou}):")
    print(seed_table(ev.matches))
    print(ev.per_clip.select("clip", "n_gt", "n_detected", "n_hit", "n_false_positive", "precision", "recall",
                             "mean_iou", "time_iou"))
    results = {n: score_summary(gt, run_detector(windows, d), clips) for n, d in detectors(**kwargs).items()}
    for det_name, o in results.items():
        print(summary_line(det_name, o))
    print(kind_table(results))
    figs = work / "figures"
    for clip, (w, ts, sc, sp) in per_clip.items():
        diagnostics_png(compute_diagnostics(w, ts), figs / f"diag_{clip}.png", SCENE_LABEL, clip)
        detection_png(sc, sp, figs / f"detect_{clip}.png", SCENE_LABEL, gt=gt.filter(pl.col("clip") == clip),
                      clip=clip)
    print(f"figures: {figs}")
    footage = pl.DataFrame([(c, d) for c, (_, _, d) in emb.items()], schema={"clip": pl.Utf8, "duration_s": pl.Float64},
                           orient="row")
    m = pl.DataFrame(cost_rows, schema=MEASUREMENT_SCHEMA)
    print("\ncost per footage hour (prices: defaults of lib.cost.Prices):")
    print(cost_report(m, footage, Prices()).select("row_kind", "asset", "footage_s", "wall_s", "cpu_s",
                                                    "x_realtime", "cpu_s_per_footage_h", "usd_per_footage_h"))
    if a.sweep:
        tune_grid(gt, windows, clips)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("train", "heldout", "both"), default=None,
                    help="the honest evaluation (train / held-out seeds); without it: the demo set")
    ap.add_argument("--tune", action="store_true", help="split mode: a parameter grid on the train split")
    ap.add_argument("--figures", action="store_true", help="split mode: detection PNGs per clip")
    ap.add_argument("--sample-fps", type=float, default=5.0, help="frame-cache rate (the graph's default: 5)")
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--duration", type=float, default=150.0)
    ap.add_argument("--per-clip", type=int, default=2)
    ap.add_argument("--seed", type=int, default=300)
    ap.add_argument("--alpha", type=float, default=None, help="demo mode: override the detector's EMA alpha")
    ap.add_argument("--min-contrast", type=float, default=None, help="demo mode: override min_contrast")
    ap.add_argument("--min-iou", type=float, default=0.2)
    ap.add_argument("--sweep", action="store_true", help="demo mode: the parameter grid on the demo set")
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="eval_anomalies_"))
    print(f"work dir: {work}")
    if a.split is None:
        demo_mode(a, work)
        return
    for name in ("train", "heldout") if a.split == "both" else (a.split,):
        evaluate_split(name, work, a.sample_fps, a.figures, a.tune and name == "train")


if __name__ == "__main__":
    main()
