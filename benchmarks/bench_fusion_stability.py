"""How stable the pooled activity clustering is: the same run's descriptors, nudged a little, clustered again.

    python benchmarks/bench_fusion_stability.py [--root DIR] [--noise 0.003 0.01 0.03] [--repeats 4]
                                                [--drop 0.05]

Reads a finished run's `segment_features`, `segments` and `ground_truth` tables from the storage root (e.g. after
`handclust demo`), then runs the pooled clustering stage (`crossclip.cluster_all`, exactly as the
`cross_clip_clusters` asset does) on:
  - the stored descriptors, twice (the baseline, and a check that the stage is deterministic);
  - the descriptors with Gaussian noise of `noise` x each dimension's s.d. (per modality) added, `repeats` seeds per
    level: the size of change a decoder or library version makes (OpenCV 4.14 -> 5.1 moved every motion descriptor
    a little and the demo's fusion MoF from 0.84 to 0.64);
  - `drop` of the segments left out at random, `repeats` seeds (is the clustering a property of the data or of
    these exact rows?).
Printed: per run the fusion's k, noise share, MoF and NMI against the ground truth, its weights, and every modality's
MoF; then per condition the spread (min / median / max) and the baseline's ratio to it. Nothing is written.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import polars as pl

from handclust_assets.lib.tables import read_table
from handclust_assets.science.crossclip import cluster_all, ground_truth_table
from handclust_assets.science.metrics import quality_row


def perturb(features: pl.DataFrame, noise: float, seed: int) -> pl.DataFrame:
    """Every modality's vectors + N(0, (noise x that dimension's s.d.)^2); NaN entries stay NaN."""
    rng = np.random.default_rng(seed)
    parts = []
    for _, g in features.group_by(["modality"], maintain_order=True):
        x = np.asarray(g["vector"].to_list(), np.float64)
        sd = np.nanstd(x, axis=0) if len(x) > 1 else np.zeros(x.shape[1])
        y = x + rng.normal(0.0, 1.0, x.shape) * noise * np.nan_to_num(sd)[None, :]
        parts.append(g.with_columns(pl.Series("vector", y.astype(np.float32)).cast(g.schema["vector"])))
    return pl.concat(parts).select(features.columns)


def drop_segments(features: pl.DataFrame, segments: pl.DataFrame, share: float, seed: int
                  ) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    keep = segments.select("clip", "segment_idx").filter(pl.Series(rng.random(segments.height) >= share))
    return features.join(keep, on=["clip", "segment_idx"]), segments.join(keep, on=["clip", "segment_idx"])


def score(features: pl.DataFrame, segments: pl.DataFrame, gt: pl.DataFrame) -> dict:
    clusters, info = cluster_all(features, segments, per_clip=False)
    table = ground_truth_table(clusters, segments, gt)
    q = quality_row(clusters.filter(pl.col("modality") == "fusion")["cluster"].to_numpy())
    row = {"k": q["k"], "noise": q["noise_rate"], "weights": {m: round(float(w), 3) for m, w in info.get("weights", {}).items()}}
    for r in table.iter_rows(named=True):
        row[f"mof_{r['modality']}"] = r["mof"]
        row[f"nmi_{r['modality']}"] = r["nmi"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("storage"), help="the storage root of a finished run")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.003, 0.01, 0.03])
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--drop", type=float, default=0.05)
    a = ap.parse_args()
    features = read_table(a.root, "segment_features")
    segments = read_table(a.root, "segments")
    gt = read_table(a.root, "ground_truth")
    print(f"{segments.height} segments, {features['modality'].n_unique()} modalities, ground truth for "
          f"{gt['clip'].n_unique()} clips")
    runs: dict[str, list[dict]] = {}  # condition -> its runs' scores

    def run(condition: str, name: str, f: pl.DataFrame, s: pl.DataFrame) -> None:
        t0 = time.perf_counter()
        r = score(f, s, gt)
        runs.setdefault(condition, []).append(r)
        mods = " ".join(f"{k[4:]}={v:.2f}" for k, v in sorted(r.items()) if k.startswith("mof_") and k != "mof_fusion")
        print(f"{name:18s} fusion k={r['k']:2d} noise={r['noise']:.2f} MoF={r.get('mof_fusion', float('nan')):.3f} "
              f"NMI={r.get('nmi_fusion', float('nan')):.3f} ({time.perf_counter() - t0:.0f}s) | {mods} | "
              f"weights {r['weights']}", flush=True)

    run("stored", "stored", features, segments)
    run("stored", "stored again", features, segments)
    for eps in a.noise:
        for seed in range(a.repeats):
            run(f"noise {eps:g}", f"noise {eps:g} s{seed}", perturb(features, eps, seed), segments)
    for seed in range(a.repeats):
        run(f"drop {a.drop:g}", f"drop {a.drop:g} s{seed}", *drop_segments(features, segments, a.drop, seed))

    print("\ncondition          runs  fusion MoF min / median / max   k min-max   NMI median")
    base = runs["stored"][0].get("mof_fusion", float("nan"))
    for c, rs in runs.items():
        mof = np.array([r.get("mof_fusion", np.nan) for r in rs])
        ks = [r["k"] for r in rs]
        nmi = np.array([r.get("nmi_fusion", np.nan) for r in rs])
        print(f"{c:18s} {len(rs):4d}  {np.nanmin(mof):.3f} / {np.nanmedian(mof):.3f} / {np.nanmax(mof):.3f}"
              f"            {min(ks)}-{max(ks)}        {np.nanmedian(nmi):.3f}   (baseline / median "
              f"{base / np.nanmedian(mof):.2f})")


if __name__ == "__main__":
    main()
