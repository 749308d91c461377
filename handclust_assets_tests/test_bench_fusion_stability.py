"""The fusion-stability benchmark's perturbations do what its report says (the benchmark itself prints numbers)."""

from __future__ import annotations

import numpy as np
import polars as pl

from handclust_assets_tests.support import load_benchmark


def _bench():
    return load_benchmark("bench_fusion_stability")


def _features(n: int = 400) -> pl.DataFrame:
    rng = np.random.default_rng(1)
    frames = []
    for m, d, scale in (("flow", 3, 1.0), ("scene", 5, 100.0)):
        x = rng.normal(0, scale, (n, d))
        x[::7, 0] = np.nan  # a descriptor with a missing entry stays missing
        frames.append(pl.DataFrame({"clip": [f"c{i % 4}" for i in range(n)], "segment_idx": np.arange(n) // 4,
                                    "modality": m, "vector": pl.Series(x.astype(np.float32)).cast(
                                        pl.List(pl.Float32))}))
    return pl.concat(frames)


def test_noise_is_scaled_per_dimension_and_keeps_rows_columns_and_nans() -> None:
    bench = _bench()
    f = _features()
    g = bench.perturb(f, 0.01, seed=0)
    assert g.columns == f.columns and g.height == f.height
    assert g.select("clip", "segment_idx", "modality").equals(f.select("clip", "segment_idx", "modality"))
    for m in ("flow", "scene"):
        a = np.asarray(f.filter(pl.col("modality") == m)["vector"].to_list(), np.float64)
        b = np.asarray(g.filter(pl.col("modality") == m)["vector"].to_list(), np.float64)
        assert np.array_equal(np.isnan(a), np.isnan(b))
        ratio = np.nanstd(b - a, axis=0) / np.nanstd(a, axis=0)
        assert np.all((ratio > 0.008) & (ratio < 0.012)), (m, ratio)  # 1 % of each dimension's s.d., any scale
    assert bench.perturb(f, 0.01, seed=0).equals(g)  # seeded
    assert not bench.perturb(f, 0.01, seed=1).equals(g)


def test_dropping_segments_drops_them_from_features_and_segments_alike() -> None:
    bench = _bench()
    f = _features()
    segs = f.filter(pl.col("modality") == "flow").select("clip", "segment_idx")
    f2, s2 = bench.drop_segments(f, segs, 0.2, seed=3)
    assert 0.1 * segs.height < segs.height - s2.height < 0.3 * segs.height
    kept = set(s2.iter_rows())
    assert set(f2.select("clip", "segment_idx").unique().iter_rows()) == kept
    assert f2.height == 2 * len(kept)  # both modalities of every kept segment
