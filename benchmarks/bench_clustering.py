"""Cross-clip clustering time for 1k, 10k and 100k segments (issue 4's target: 100k in under 2 minutes on 2 cores).

    python benchmarks/bench_clustering.py [--sizes 1000 10000 100000] [--clips 60] [--activities 12]

Segment descriptors are synthetic but shaped like the real ones (scene 384-D, video 1024-D, tools 19, flow 11,
flow rhythm 4, ego-motion 18, pose 18, hands 16): each segment = its activity's centre + its clip's offset (the
fingerprint trap) + noise. Timed: the whole pooled stage `cluster_all` (per modality: space fit, HDBSCAN, bootstrap
stability, silhouette; then the weighted fusion and its HDBSCAN), and, as the baseline measured in the same run on the
same data, one bare HDBSCAN on the 32-D fused vectors. Printed: wall seconds, segments/s, the ratio to the baseline,
the scaling exponent between sizes, peak RSS, and fusion NMI against the generating activities.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import polars as pl
from sklearn.metrics import normalized_mutual_info_score

from handclust_assets.science import clustering
from handclust_assets.science.crossclip import blocks_of, cluster_all

DIMS = {"scene": 384, "video": 1024, "tools": 19, "flow": 11, "flow_rhythm": 4, "egomotion": 18, "pose": 18,
        "hands": 16}
# how much of each modality is activity signal vs clip fingerprint (scene/video mostly fingerprint, as in seed 000)
SIGNAL = {"scene": 0.3, "video": 0.6, "tools": 0.8, "flow": 1.0, "flow_rhythm": 0.6, "egomotion": 1.0, "pose": 0.7,
          "hands": 0.5}


def make_features(n: int, n_clips: int, n_act: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    clip = rng.integers(0, n_clips, n)
    act = rng.integers(0, n_act, n)
    order = np.lexsort((act, clip))
    clip, act = clip[order], act[order]
    seg_idx = np.concatenate([np.arange((clip == c).sum()) for c in range(n_clips)])
    clips = np.array([f"clip_{c:03d}" for c in clip])
    frames = []
    for m, d in DIMS.items():
        a_cent = rng.normal(0, 1, (n_act, d))
        c_cent = rng.normal(0, 1, (n_clips, d))
        s = SIGNAL[m]
        x = (s * a_cent[act] + (1 - s) * c_cent[clip] + rng.normal(0, 0.35, (n, d))).astype(np.float32)
        frames.append(pl.DataFrame({"clip": clips, "segment_idx": seg_idx, "modality": m,
                                    "vector": pl.Series("vector", x).cast(pl.List(pl.Float32))}))
    feats = pl.concat(frames)
    segs = pl.DataFrame({"clip": clips, "segment_idx": seg_idx, "start_s": seg_idx * 5.0, "end_s": seg_idx * 5.0 + 5})
    return feats, segs, act


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--activities", type=int, default=12)
    a = ap.parse_args()
    rows = []
    for n in a.sizes:
        feats, segs, act = make_features(n, a.clips, a.activities)
        t0 = time.perf_counter()
        df, info = cluster_all(feats, segs, per_clip=False)
        t_all = time.perf_counter() - t0
        keys, x = info["fusion_x"]
        t1 = time.perf_counter()
        clustering.cluster_hdbscan(x, "cosine", max_dim=clustering.FUSED_DIM)
        t_base = time.perf_counter() - t1
        fus = df.filter(pl.col("modality") == "fusion").sort("clip", "segment_idx")
        truth = keys.with_columns(pl.Series("act", act)).join(fus, on=["clip", "segment_idx"])
        nmi = normalized_mutual_info_score(truth["act"].to_numpy(), truth["cluster_full"].to_numpy())
        k = int(fus.filter(pl.col("cluster") >= 0)["cluster"].n_unique())
        rows.append((n, t_all, t_base, nmi, k, peak_rss_mb()))
        w = " ".join(f"{m}:{v:.2f}" for m, v in info["weights"].items())
        print(f"n={n:>7d}  cross-clip clustering {t_all:7.1f}s  ({n / t_all:8.0f} segments/s)  bare fused HDBSCAN "
              f"{t_base:6.1f}s  ratio {t_all / max(t_base, 1e-9):5.1f}x  fusion k={k} NMI={nmi:.3f}  "
              f"peak RSS {peak_rss_mb():.0f} MB\n          weights {w}", flush=True)
        del feats, segs, df, info, keys, x
        _ = blocks_of  # (imported for readers: how blocks are aligned)
    print(f"\n{'segments':>9s} {'wall s':>8s} {'baseline s':>11s} {'ratio':>6s} {'NMI':>6s} {'k':>4s} {'RSS MB':>8s}")
    for n, t, tb, nmi, k, rss in rows:
        print(f"{n:>9d} {t:8.1f} {tb:11.1f} {t / max(tb, 1e-9):6.1f} {nmi:6.3f} {k:>4d} {rss:8.0f}")
    for (n0, t0, *_), (n1, t1, *_) in zip(rows, rows[1:]):
        print(f"scaling {n0} -> {n1}: time x{t1 / t0:.1f} for data x{n1 / n0:.0f} "
              f"(exponent {np.log(t1 / t0) / np.log(n1 / n0):.2f})")
    big = [r for r in rows if r[0] >= 100_000]
    if big:
        t = big[0][1]
        print(f"\n100k segments: {t:.1f}s (target < 120 s on 2 cores): {'PASS' if t < 120 else 'MISS'}")


if __name__ == "__main__":
    main()
