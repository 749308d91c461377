"""Segmentation, clustering and fusion on signals with known structure."""

from __future__ import annotations

import numpy as np
import polars as pl

from handclust_assets.science import clustering
from handclust_assets.science.segmentation import check_coverage, fuse_boundaries, segment_clip

FPS = 5.0


def _piecewise(change_s: list[float], total_s: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(total_s * FPS)
    t = np.arange(n) / FPS
    seg = np.searchsorted(change_s, t, side="right")
    levels = rng.uniform(0.5, 3.0, len(change_s) + 1) * [1 if i % 2 else 3 for i in range(len(change_s) + 1)]
    mag = (levels[seg] + rng.normal(0, 0.1, n)) / 1000
    dirs = np.zeros((n, 8))
    dirs[np.arange(n), seg % 8] = 1.0
    emb = rng.normal(0, 0.05, (n, 16)) + np.eye(16)[seg % 16]
    return mag, dirs, emb


def test_segments_recover_change_points_and_cover_exactly() -> None:
    changes = [10.0, 22.0, 31.0, 45.0]
    mag, dirs, emb = _piecewise(changes, 60.0)
    segs = segment_clip(mag, dirs, emb, FPS, min_len_s=2, max_len_s=30)
    assert check_coverage(segs, len(mag)) == []
    assert segs.columns == ["segment_idx", "start_frame", "end_frame", "start_s", "end_s", "n_frames", "votes",
                            "detectors"]
    found = segs["start_s"].to_numpy()[1:]
    for c in changes:
        assert np.min(np.abs(found - c)) <= 1.0, (c, found)


def test_min_and_max_segment_length() -> None:
    mag, dirs, emb = _piecewise([10.0, 11.0, 40.0], 80.0)
    segs = segment_clip(mag, dirs, emb, FPS, min_len_s=2.0, max_len_s=12.0)
    lens = (segs["end_s"] - segs["start_s"]).to_numpy()
    assert lens.min() >= 2.0 - 1e-9 and lens.max() <= 12.0 + 0.2
    assert check_coverage(segs, len(mag)) == []


def test_fusion_of_boundaries_needs_agreement_or_strength() -> None:
    cands = {"motion": (np.array([50, 120]), np.array([2.0, 2.0])), "appearance": (np.array([52]), np.array([2.0])),
             "statistical": (np.array([200]), np.array([6.0]))}
    b, _, names = fuse_boundaries(cands, 400, FPS, max_len_s=1000)
    assert list(b) == [51, 200]  # 120 (one weak detector) dropped; 200 (one strong) kept
    assert names[0] == "appearance+motion"


def test_check_coverage_reports_gaps() -> None:
    bad = pl.DataFrame({"start_frame": [0, 12], "end_frame": [10, 20], "n_frames": [10, 8]})
    assert any("gaps" in p for p in check_coverage(bad, 20))


def _blobs(n_per: int = 60, k: int = 4, d: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (k, d))
    x = np.vstack([c + rng.normal(0, 0.08, (n_per, d)) for c in centres])
    return x, np.repeat(np.arange(k), n_per)


def test_hdbscan_recovers_blobs_and_noise_assignment() -> None:
    from sklearn.metrics import adjusted_rand_score

    x, y = _blobs()
    r = clustering.cluster_hdbscan(x, "cosine")
    m = r.labels >= 0
    assert r.k == 4 and adjusted_rand_score(y[m], r.labels[m]) > 0.9
    full = clustering.assign_noise_to_nearest(x, np.where(np.arange(len(y)) % 7 == 0, -1, r.labels))
    assert (full >= 0).all() and adjusted_rand_score(y, full) > 0.9


def test_ids_are_stable_and_deterministic() -> None:
    x, _ = _blobs(seed=1)
    a = clustering.cluster_hdbscan(x, "cosine").labels
    assert np.array_equal(a, clustering.cluster_hdbscan(x, "cosine").labels)
    cen = clustering.centroids(clustering.l2n(x), a)
    perm = np.random.default_rng(0).permutation(len(x))
    b = clustering.stable_relabel(clustering.cluster_hdbscan(x[perm], "cosine").labels, clustering.l2n(x[perm]), cen)
    assert np.array_equal(b, a[perm])


def test_classify_new_points_without_reclustering() -> None:
    x, y = _blobs(seed=2)
    r = clustering.cluster_hdbscan(x, "cosine")
    model = clustering.ClusterModel.from_dict(clustering.ClusterModel.fit(x, r.labels).to_dict())
    rng = np.random.default_rng(5)
    blob = int(r.labels[y == 1][0])
    new = x[y == 1][:5] + rng.normal(0, 0.02, (5, x.shape[1]))
    assert (model.classify(new) == blob).all()
    far = rng.normal(0, 1, (5, x.shape[1])) * 10
    assert (model.classify(far) == -1).mean() >= 0.8


def test_confidence_weights_prefer_structure_over_noise() -> None:
    x, _ = _blobs(seed=3)
    noise = np.random.default_rng(0).normal(0, 1, x.shape)
    w = clustering.confidence_weights({"clean": x, "noise": noise})
    assert w["clean"] > 3 * w["noise"] and abs(sum(w.values()) - 1) < 1e-9
    fused, used, _ = clustering.fuse_modalities({"clean": x, "noise": noise}, w)
    assert np.allclose(np.linalg.norm(fused, axis=1), 1) and used == w


def test_min_cluster_size_grows_with_data() -> None:
    sizes = [clustering.min_cluster_size_rule(n) for n in (50, 600, 10_000, 100_000)]
    assert sizes == sorted(sizes) and sizes[0] >= 3 and sizes[-1] > 100
