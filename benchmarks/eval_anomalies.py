"""EgoClean anomaly detection on synthetic clips with injected anomalies, scored against their exact spans.

    python benchmarks/eval_anomalies.py [--clips 6] [--duration 150] [--per-clip 2] [--seed 300] [--work DIR]
                                        [--alpha 0.3] [--min-contrast 0.05] [--sweep]

Per clip, the plain-code path the assets take (no Dagster): generate (`generate_demo_set(anomalies_per_clip=…)`),
frame cache at 5 fps / 480 px, offline scene embeddings (`load_scene_encoder(ModelSpec("facebook/dinov2-small"),
fallback=True)`: EfficientNet-Lite0 here), pooled to 1-s windows as the anomaly_detection asset does,
`science.anomaly.detect_anomalies`, then `science.anomaly_eval.score_anomalies` against `<clip>.anomalies.csv`.
Each stage is measured with `lib.cost.CostMeter`; the cost report per footage hour is printed. Diagnostics and
detection PNGs are written to <work>/figures. `--sweep` also scores a small grid of detector parameters.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl

from handclust_assets.lib.cost import MEASUREMENT_SCHEMA, CostMeter, Prices, cost_report
from handclust_assets.lib.synthetic import generate_demo_set
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

pl.Config.set_tbl_rows(60)
pl.Config.set_tbl_cols(20)
pl.Config.set_tbl_width_chars(160)
pl.Config.set_fmt_str_lengths(60)


@contextmanager
def measured(rows: list[dict], asset: str, clip: str | None) -> Iterator[None]:
    with CostMeter() as meter:
        yield
    r = meter.result
    rows.append({"asset": asset, "clip": clip, "wall_s": r.wall_s, "cpu_s": r.cpu_s, "gpu_s": r.gpu_s,
                 "peak_rss_bytes": r.peak_rss_bytes})


def embed_clips(work: Path, paths: list[Path], cost_rows: list[dict]) -> dict[str, tuple]:
    enc = load_scene_encoder(ModelSpec("facebook/dinov2-small"), fallback=True)
    print(f"scene encoder: {enc.name} ({enc.version()})")
    out = {}
    for p in paths:
        clip = p.stem
        saved = work / "embeddings" / f"{clip}.npz"
        if saved.exists():  # a re-run (e.g. another --alpha) reuses the measured embeddings; costs not re-measured
            z = np.load(saved)
            out[clip] = (z["emb"], z["t"], float(z["duration"]))
            continue
        with measured(cost_rows, "frame_cache", clip):
            build_frame_cache(p, work / "frames" / clip, sample_fps=5.0, max_side=480)
        fc = FrameCache(work / "frames" / clip)
        with measured(cost_rows, "scene_embeddings", clip):
            emb = enc.embed(fc.all_frames())
        out[clip] = (emb, fc.timestamps, float(fc.timestamps[-1] + 1 / fc.fps))
        saved.parent.mkdir(parents=True, exist_ok=True)
        np.savez(saved, emb=emb, t=fc.timestamps, duration=out[clip][2])
    return out


def detect_all(emb: dict[str, tuple], alpha: float, min_contrast: float, cost_rows: list[dict] | None = None
               ) -> tuple[dict, pl.DataFrame]:
    per_clip, spans = {}, []
    for clip, (e, t, _) in emb.items():
        if cost_rows is not None:
            with measured(cost_rows, "anomaly_detection", clip):
                w, ts, te = pool_windows(e, t, 1.0)
                sc, sp = detect_anomalies(w, ts, te, alpha=alpha, min_contrast=min_contrast)
        else:
            w, ts, te = pool_windows(e, t, 1.0)
            sc, sp = detect_anomalies(w, ts, te, alpha=alpha, min_contrast=min_contrast)
        per_clip[clip] = (w, ts, sc, sp)
        spans.append(sp.with_columns(pl.lit(clip).alias("clip")))
    return per_clip, pl.concat(spans)


def iterated_otsu_spans(emb: np.ndarray, t: np.ndarray, alpha: float, min_contrast: float, rounds: int = 3
                        ) -> pl.DataFrame:
    """A PROPOSAL (not what science/anomaly.py does): after each Otsu + hysteresis pass, take the found spans out
    and threshold the remaining windows again, while Otsu still stands `min_contrast` above their median. One
    strong anomaly then no longer hides a weaker one in the same clip."""
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
    rows = [(i, a, b, p, m) for i, (a, b, p, m) in enumerate(sorted(found))]
    return pl.DataFrame(rows, schema=SPAN_SCHEMA, orient="row")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--duration", type=float, default=150.0)
    ap.add_argument("--per-clip", type=int, default=2)
    ap.add_argument("--seed", type=int, default=300)
    ap.add_argument("--alpha", type=float, default=0.3)
    ap.add_argument("--min-contrast", type=float, default=0.05)
    ap.add_argument("--min-iou", type=float, default=0.2)
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="eval_anomalies_"))
    cost_rows: list[dict] = []
    with measured(cost_rows, "synthetic_generation", None):
        paths = generate_demo_set(work / "videos", n_clips=a.clips, duration_s=a.duration, seed=a.seed,
                                  anomalies_per_clip=a.per_clip)
    gt = pl.concat([load_anomaly_ground_truth(p).with_columns(pl.lit(p.stem).alias("clip")) for p in paths])
    emb = embed_clips(work, paths, cost_rows)
    per_clip, det = detect_all(emb, a.alpha, a.min_contrast, cost_rows)
    ev = score_anomalies(gt, det, clips=[p.stem for p in paths], min_iou=a.min_iou)
    print(f"\nwork dir: {work}\n\nEgoClean table (alpha={a.alpha}, min_contrast={a.min_contrast}, "
          f"min_iou={a.min_iou}):")
    print(seed_table(ev.matches))
    print(ev.matches.select("clip", "outcome", "label", "iou", "start_error_s", "end_error_s"))
    print(ev.per_clip.select("clip", "n_gt", "n_detected", "n_hit", "n_false_positive", "precision", "recall",
                             "mean_iou", "time_iou"))
    o = ev.overall
    print(f"OVERALL: GT {o['n_gt']}, detected {o['n_detected']}, hits {o['n_hit']}, missed {o['n_missed']}, "
          f"false positives {o['n_false_positive']}, precision {o['precision']:.2f}, recall {o['recall']:.2f}, "
          f"mean IoU {o['mean_iou']:.2f}, time IoU {o['time_iou']:.2f}")
    for lab, g in ev.matches.filter(pl.col("label").is_not_null()).group_by("label"):
        print(f"  {lab[0]:18s} detected {int((g['outcome'] == 'detected').sum())}/{g.height}")
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
        print("\nparameter sweep (alpha, min_contrast) -> hits / false positives / recall / precision:")
        for alpha in (0.1, 0.2, 0.3, 0.5):
            for mc in (0.0, 0.02, 0.05, 0.1):
                _, d = detect_all(emb, alpha, mc)
                o = score_anomalies(gt, d, clips=[p.stem for p in paths], min_iou=a.min_iou).overall
                print(f"  alpha={alpha:.1f} min_contrast={mc:.2f}: hits {o['n_hit']}/{o['n_gt']}, "
                      f"FP {o['n_false_positive']}, recall {o['recall']:.2f}, precision {o['precision']:.2f}, "
                      f"mean IoU {o['mean_iou']:.2f}")
        print("\nPROPOSAL iterated Otsu (a span found takes its windows out; threshold the rest again):")
        clips = [p.stem for p in paths]
        for alpha in (0.3, 0.5):
            for mc in (0.02, 0.05, 0.08):
                d = []
                for clip, (e, t, _) in emb.items():
                    w, ts, _ = pool_windows(e, t, 1.0)
                    d.append(iterated_otsu_spans(w, ts, alpha, mc).with_columns(pl.lit(clip).alias("clip")))
                o = score_anomalies(gt, pl.concat(d), clips=clips, min_iou=a.min_iou).overall
                print(f"  alpha={alpha:.1f} min_contrast={mc:.2f}: hits {o['n_hit']}/{o['n_gt']}, "
                      f"FP {o['n_false_positive']}, recall {o['recall']:.2f}, precision {o['precision']:.2f}, "
                      f"mean IoU {o['mean_iou']:.2f}")


if __name__ == "__main__":
    main()
