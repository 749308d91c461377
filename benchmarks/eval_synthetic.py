"""Held-out evaluation on fresh synthetic sets: does the late fusion beat every single modality?

    python benchmarks/eval_synthetic.py [--sets 3] [--clips 6] [--duration 90] [--seed 100] [--work DIR]

Each set is generated with its own seed (never one used while developing the method), run through the real asset
graph in-process (the offline modalities: flow, flow rhythm, ego-motion, scene backbone, pose, hands; models that
cannot be loaded here are skipped exactly as in `handclust demo`), pooled-clustered, and scored against the
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
    os.environ["HANDCLUST_STORAGE"] = str(root)
    import json

    import dagster as dg

    from handclust_assets.cli import QUIET, unavailable_model_assets
    from handclust_assets.definitions import cross_clip_assets, defs, per_clip_assets
    from handclust_assets.defs.resources import HandclustSettings
    from handclust_assets.lib.synthetic import generate_demo_set
    from handclust_assets.lib.tables import connect
    from handclust_assets.lib.video_folder import scan_videos

    generate_demo_set(root / "videos", n_clips=clips, duration_s=duration, seed=seed)
    res = {**defs.resources, "settings": HandclustSettings(storage=str(root))}
    from handclust_assets.defs.io_manager import DuckDBParquetIOManager

    res["io_manager"] = DuckDBParquetIOManager(root=str(root))
    inst = dg.DagsterInstance.ephemeral()
    keys = list(scan_videos(root / "videos"))
    inst.add_dynamic_partitions("clips", keys)
    skipped = unavailable_model_assets()
    sel = [k for a in per_clip_assets for k in a.keys if k.to_user_string() not in skipped]
    for k in keys:
        r = dg.materialize(per_clip_assets, selection=sel, partition_key=k, instance=inst, resources=res,
                           raise_on_error=False, run_config=QUIET)
        if not r.success:
            print(f"  warning: {k} partly failed")
    wanted = {"segment_features", "cross_clip_clusters", "ground_truth_scores", "repetition_scores"}
    cross = [a for a in cross_clip_assets if {k.to_user_string() for k in a.keys} & wanted]
    dg.materialize([*cross, *per_clip_assets], selection=[k for a in cross for k in a.keys], instance=inst,
                   resources=res, run_config=QUIET)
    con = connect(root)
    gt = con.sql("select * from ground_truth_scores").pl()
    k = con.sql("select modality, count(distinct cluster) filter (where cluster >= 0) k from cross_clip_clusters "
                "group by 1").pl()
    reps = con.sql("select * from repetition_scores").pl()
    model = json.loads((root / "models" / "cluster_model.json").read_text())
    return gt.join(k, on="modality", how="left"), reps, model["weights"]


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
