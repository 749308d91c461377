"""Held-out evaluation on fresh synthetic sets: does the late fusion beat every single modality?

    python benchmarks/eval_synthetic.py [--sets 3] [--clips 6] [--duration 90] [--seed 100] [--work DIR]

Each set is generated with its own seed (never one used while developing the method), run through the real asset
graph in-process (`handclust_assets.cli.session.run_in_process`: the offline modalities flow, flow rhythm,
ego-motion, scene backbone, pose, hands; a model that cannot be loaded here is skipped, named, as everywhere),
pooled-clustered, and scored against the
per-frame ground truth. Printed per set and as mean +- sd over sets: MoF (Hungarian), NMI, ARI, edit score and k
per modality, the fusion weights, how often the fusion beats the best single modality, and repetition counting.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import polars as pl


def run_set(root: Path, seed: int, clips: int, duration: float) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """One held-out set through the real graph (every clip's run, then the cross-clip job) on its own home."""
    from handclust_assets.cli.session import run_in_process
    from handclust_assets.lib.synthetic import generate_demo_set
    from handclust_assets.lib.tables import connect

    generate_demo_set(root / "videos", n_clips=clips, duration_s=duration, seed=seed)
    failed = run_in_process(root)
    for k in failed["failed_clips"]:
        print(f"  warning: {k} partly failed")
    con = connect(root)
    gt = con.sql("select * from ground_truth_scores").pl()
    k = con.sql("select modality, count(distinct cluster) filter (where cluster >= 0) k from cross_clip_clusters "
                "group by 1").pl()
    reps = con.sql("select * from repetition_scores").pl()
    weights = (con.store.load_cluster_model() or {}).get("weights", {})
    return gt.join(k, on="modality", how="left"), reps, weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", type=int, default=3)
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--duration", type=float, default=90.0)
    ap.add_argument("--seed", type=int, default=100, help="first set's seed (sets use seed, seed+1, ...)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "handclust_eval")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pl.Config.set_tbl_hide_dataframe_shape(True)
    pl.Config.set_float_precision(3)
    all_gt, all_reps, wins = [], [], 0
    for i in range(a.sets):
        seed = a.seed + i
        t0 = time.perf_counter()
        gt, reps, weights = run_set(a.work / f"set_{seed}", seed, a.clips, a.duration)
        fusion = gt.filter(pl.col("modality") == "fusion")["mof"][0]
        single = gt.filter(pl.col("modality") != "fusion").sort("mof", descending=True)
        win = fusion > single["mof"][0]
        wins += int(win)
        print(f"\nset seed={seed} ({a.clips} clips x {a.duration:.0f}s, {time.perf_counter() - t0:.0f}s): fusion MoF "
              f"{fusion:.3f} vs best single {single['modality'][0]} {single['mof'][0]:.3f} -> "
              f"{'fusion wins' if win else 'fusion does NOT win'}")
        print("weights: " + ", ".join(f"{m} {w:.2f}" for m, w in weights.items()))
        print(gt.select("modality", "mof", "nmi", "ari", "edit", "k"))
        all_gt.append(gt.with_columns(pl.lit(seed).alias("set")))
        all_reps.append(reps.with_columns(pl.lit(seed).alias("set")))
    g = pl.concat(all_gt)
    summary = g.group_by("modality").agg(*[pl.col(c).mean().alias(c) for c in ("mof", "nmi", "ari", "edit")],
                                         pl.col("mof").std().alias("mof_sd"), pl.col("k").mean().alias("k"))
    print(f"\nover {a.sets} held-out sets (mean; mof_sd = sd over sets):")
    print(summary.sort("mof", descending=True))
    print(f"fusion beats the best single modality (MoF) in {wins} of {a.sets} sets")
    r = pl.concat(all_reps).filter(pl.col("activity") == "all periodic")
    if r.height:
        print(f"repetition counting (periodic segments): accepted {r['accepted_share'].mean():.2f}, median count "
              f"error {r['median_count_error'].mean():.3f}, within 10 % {r['within_10pct'].mean():.2f} (mean over sets)")


if __name__ == "__main__":
    main()
