"""Property-based tests for clustering and the cross-clip stage: HDBSCAN on all-noise, one-cluster, duplicate,
zero and NaN rows, n < min_cluster_size, PCA with fewer rows than dims; fusion with missing modalities; the
whole cross-clip run on one clip, one segment, constant descriptors (the issue-9 footage)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handclust_assets.science import clustering, crossclip
from handclust_assets_tests.science_strategies import examples, labels, matrices, partitions

FAST = examples(40)
SLOW = examples(10)


def check_labels(lab: np.ndarray, n: int) -> None:
    """Canonical labels: -1 noise, clusters 0..k-1 numbered by size (largest first)."""
    assert lab.shape == (n,) and np.issubdtype(lab.dtype, np.integer)
    ids = np.unique(lab[lab >= 0])
    assert np.array_equal(ids, np.arange(len(ids)))
    sizes = [(lab == c).sum() for c in ids]
    assert sizes == sorted(sizes, reverse=True)


def unit_or_zero_rows(z: np.ndarray) -> bool:
    norms = np.linalg.norm(z, axis=1)
    return bool(np.all((np.abs(norms - 1) < 1e-6) | (norms == 0)))


# ---------------------------------------------------------------- HDBSCAN and friends


@FAST
@given(matrices(max_rows=45, max_cols=24), st.sampled_from(("cosine", "euclidean")),
       st.sampled_from((None, 1, 2, 5, 60)), st.sampled_from((20_000, 12)))
def test_cluster_hdbscan_contract(x: np.ndarray, metric: str, mcs: int | None, max_fit_rows: int) -> None:
    n = len(x)
    res = clustering.cluster_hdbscan(x, metric, min_cluster_size=mcs, max_fit_rows=max_fit_rows)
    check_labels(res.labels, n)
    assert res.k == len(np.unique(res.labels[res.labels >= 0])) and res.noise == int((res.labels < 0).sum())
    assert res.probabilities.shape == (n,) and np.all((res.probabilities >= 0) & (res.probabilities <= 1))
    assert res.min_cluster_size >= 2
    if res.k:
        assert min((res.labels == c).sum() for c in range(res.k)) >= min(res.min_cluster_size, n) or \
            max_fit_rows < n  # rows joining a sampled fit may leave a cluster smaller than its fit


@pytest.mark.timeout(60)
def test_hdbscan_with_infinite_values_returns() -> None:
    """inf used to become 1.8e308 (nan_to_num): HDBSCAN's euclidean tree then never returned (> 100 s on 30 rows)."""
    x = np.random.default_rng(0).normal(size=(30, 4))
    x[np.random.default_rng(1).random((30, 4)) < 0.3] = np.inf
    for metric in ("euclidean", "cosine"):
        check_labels(clustering.cluster_hdbscan(x, metric).labels, 30)


@FAST
@given(st.integers(3, 40), st.integers(1, 20), st.sampled_from(("cosine", "euclidean")), st.integers(0, 2**32 - 1))
def test_identical_rows_form_one_cluster(n: int, d: int, metric: str, seed: int) -> None:
    """A clip whose every segment looks the same is one activity, not noise and not a crash."""
    x = np.tile(np.random.default_rng(seed).normal(size=d), (n, 1))
    res = clustering.cluster_hdbscan(x, metric)
    if n >= res.min_cluster_size:
        assert res.k == 1 and res.noise == 0


@FAST
@given(st.data(), st.integers(0, 30))
def test_canonical_and_stable_relabel_keep_the_partition(data: st.DataObject, n: int) -> None:
    lab = data.draw(labels(n))
    x = data.draw(matrices(min_rows=n, max_rows=n, min_cols=3, max_cols=3))
    can = clustering.canonical_labels(lab)
    check_labels(can, n)
    assert np.array_equal(clustering.canonical_labels(can), can)
    same = lab[:, None] == lab[None, :]
    assert np.array_equal(can[:, None] == can[None, :], same) and np.array_equal(can < 0, lab < 0)
    prev = data.draw(st.none() | matrices(max_rows=4, min_cols=3, max_cols=3))
    rel = clustering.stable_relabel(lab, x, prev)
    assert np.array_equal(rel[:, None] == rel[None, :], same) and np.array_equal(rel < 0, lab < 0)


@FAST
@given(st.data(), st.integers(0, 30), st.sampled_from(("cosine", "euclidean")))
def test_noise_assignment_medoids_and_centroids(data: st.DataObject, n: int, metric: str) -> None:
    lab = clustering.canonical_labels(data.draw(labels(n)))
    x = data.draw(matrices(min_rows=n, max_rows=n, min_cols=1, max_cols=5))
    full = clustering.assign_noise_to_nearest(x, lab, metric)
    assert np.array_equal(full[lab >= 0], lab[lab >= 0])
    assert (full >= 0).all() if (lab >= 0).any() else np.array_equal(full, lab)
    meds = clustering.medoids(x, lab, metric)
    assert set(meds) == set(np.unique(lab[lab >= 0]).tolist()) and all(lab[i] == c for c, i in meds.items())
    cen = clustering.centroids(np.nan_to_num(x), lab)
    assert cen.shape == (len(meds), x.shape[1])


@FAST
@given(matrices(max_rows=30, max_cols=40), st.sampled_from((None, 2, 16)))
def test_reduce_dim_keeps_rows_and_caps_dims(x: np.ndarray, max_dim: int | None) -> None:
    x = np.nan_to_num(x, posinf=0.0, neginf=0.0)  # callers hand over finite rows (see cluster_hdbscan)
    z = clustering.reduce_dim(x, max_dim)
    cap = clustering.MAX_DIM if max_dim is None else max_dim
    assert len(z) == len(x) and np.isfinite(z).all()
    assert z.shape[1] == x.shape[1] or z.shape[1] == cap


@FAST
@given(matrices(max_rows=30, max_cols=40), st.sampled_from((None, 2, 16)))
def test_block_transform_unit_rows_and_round_trip(x: np.ndarray, max_dim: int | None) -> None:
    t = clustering.BlockTransform.fit(x, max_dim)
    z = t.transform(x)
    cap = clustering.MAX_DIM if max_dim is None else max_dim
    assert z.shape[0] == len(x) and z.shape[1] <= max(cap, x.shape[1]) and np.isfinite(z).all()
    assert unit_or_zero_rows(z)
    assert np.allclose(clustering.BlockTransform.from_dict(t.to_dict()).transform(x), z)
    assert np.isfinite(clustering.standardise_block(x)[0]).all()


@st.composite
def modality_blocks(draw: st.DrawFn, max_rows: int = 30) -> dict[str, np.ndarray]:
    n = draw(st.integers(1, max_rows))
    names = draw(st.sets(st.sampled_from(("scene", "flow", "pose")), min_size=1))
    blocks = {}
    for name in sorted(names):
        x = draw(matrices(min_rows=n, max_rows=n, min_cols=1, max_cols=20))
        if draw(st.booleans()):  # a modality missing on some segments: whole NaN rows (no evidence)
            x[np.random.default_rng(n).random(n) < 0.3] = np.nan
        blocks[name] = x
    return blocks


@SLOW
@given(modality_blocks(), st.booleans())
def test_fusion_space_unit_rows_and_weights(blocks: dict[str, np.ndarray], given_weights: bool) -> None:
    weights = {m: w for m, w in zip(blocks, (0.0, float("nan"), 2.0))} if given_weights else None
    z, w, space = clustering.fuse_modalities(blocks, weights)
    n = len(next(iter(blocks.values())))
    assert z.shape[0] == n and np.isfinite(z).all() and unit_or_zero_rows(z)
    assert set(w) == set(blocks) and all(np.isfinite(v) and v >= 0 for v in w.values())
    if weights is None:
        assert sum(w.values()) == pytest.approx(1.0)
    again = clustering.FusionSpace.from_dict(space.to_dict())
    assert again.compatible(blocks) and np.allclose(again.transform(blocks), z)


def test_fusion_space_needs_a_modality() -> None:
    with pytest.raises(ValueError, match="no modality"):
        clustering.FusionSpace.fit({})


@SLOW
@given(matrices(max_rows=40, max_cols=10), st.data())
def test_confidences_in_range(x: np.ndarray, data: st.DataObject) -> None:
    lab = data.draw(labels(len(x)))
    z = clustering.BlockTransform.fit(x).transform(x)
    conf = clustering.clustering_confidence(z, lab)
    assert 0.05 - 1e-12 <= conf <= 1.05 + 1e-12
    stab = clustering.cluster_stability(z, lab, n_boot=2)
    assert 0 <= stab <= 1
    assert 0 <= clustering.modality_confidence(z, clustering.cluster_hdbscan(z).labels) <= 1.05


@FAST
@given(st.data(), st.integers(0, 25), st.sampled_from(("cosine", "euclidean")))
def test_cluster_model_classifies_inside_its_clusters(data: st.DataObject, n: int, metric: str) -> None:
    lab = clustering.canonical_labels(data.draw(labels(n)))
    x = data.draw(matrices(min_rows=n, max_rows=n, min_cols=1, max_cols=6, nonfinite=False))
    model = clustering.ClusterModel.fit(x, lab, metric)
    model = clustering.ClusterModel.from_dict(model.to_dict())
    q = data.draw(matrices(max_rows=10, min_cols=x.shape[1], max_cols=x.shape[1], nonfinite=False))
    ids, dist, inside = model.nearest(q)
    assert ids.shape == dist.shape == inside.shape == (len(q),)
    if model.ids:
        assert set(ids.tolist()) <= set(model.ids) and np.isfinite(dist).all() and (dist >= 0).all()
        assert np.isfinite(model.radii).all() and min(model.radii) > 0
        assert np.isfinite(np.asarray(model.centroids)).all()
    else:
        assert (ids == -1).all() and not inside.any()
    assert set(model.classify(q).tolist()) <= set(model.ids) | {-1}


@SLOW
@given(matrices(max_rows=14, max_cols=6))
def test_umap_2d_small_sets_are_finite(x: np.ndarray) -> None:
    xy = clustering.umap_2d(x)
    assert xy.shape == (len(x), 2) and np.isfinite(xy).all()


# ---------------------------------------------------------------- cross-clip: descriptors -> clustering -> tables


def _frame_tables(clip: str, n: int, rng: np.random.Generator, kind: str) -> dict[str, pl.DataFrame]:
    """Per-frame modality tables of one clip (the defs' schemas, the columns the cross-clip stage reads)."""

    def vals(shape: tuple[int, ...]) -> np.ndarray:
        if kind == "constant":
            return np.ones(shape, np.float32) * 0.3
        v = rng.random(shape).astype(np.float32)
        if kind == "nan":
            v[rng.random(shape) < 0.2] = np.nan
        return v

    fi = np.arange(n)
    lists = lambda a: pl.Series(a.tolist(), dtype=pl.List(pl.Float32))  # noqa: E731
    tables = {
        "scene_embeddings": pl.DataFrame({"clip": clip, "frame_idx": fi, "embedding": lists(vals((n, 6)))}),
        "flow": pl.DataFrame({"clip": clip, "frame_idx": fi, "flow_mag": vals((n,)), "dir_hist": lists(vals((n, 8)))}),
        "flow_rhythm": pl.DataFrame({"clip": clip, "frame_idx": fi, "period_s": vals((n,)), "strength": vals((n,)),
                                     "mean_flow": vals((n,))}),
        "egomotion": pl.DataFrame({"clip": clip, "frame_idx": fi, "camera_mag": vals((n,)),
                                   "residual_mag": vals((n,)), "ratio": vals((n,)),
                                   "residual_layout": lists(vals((n, 12)))}),
        "tool_scores": pl.DataFrame({"clip": clip, "frame_idx": np.repeat(fi, 2), "prompt": ["shovel", "glove"] * n,
                                     "score": vals((2 * n,))}),
    }
    nw = max(1, n // 10)
    tables["video_embeddings"] = pl.DataFrame({"clip": clip, "window_idx": np.arange(nw), "t_start_s": np.arange(nw) * 2.0,
                                               "t_end_s": np.arange(nw) * 2.0 + 2.0, "embedding": lists(vals((nw, 5)))})
    return tables


@st.composite
def corpora(draw: st.DrawFn) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """1-3 clips of 1-30 frames, each cut into 1-6 segments, with a random subset of the modality tables."""
    n_clips = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mods = draw(st.sets(st.sampled_from(("scene_embeddings", "video_embeddings", "tool_scores", "flow", "flow_rhythm",
                                         "egomotion", "pose_segments")), min_size=1))
    segs, tables = [], {}
    for c in range(n_clips):
        clip = f"clip{c}"
        n = draw(st.integers(1, 30))
        ranges = draw(partitions(n, 6))
        seg = pl.DataFrame({"clip": clip, "segment_idx": np.arange(len(ranges)),
                            "start_frame": [a for a, _ in ranges], "end_frame": [b for _, b in ranges],
                            "start_s": [a / 5.0 for a, _ in ranges], "end_s": [b / 5.0 for _, b in ranges]})
        segs.append(seg)
        kind = draw(st.sampled_from(("random", "constant", "nan")))
        per_clip = _frame_tables(clip, n, rng, kind)
        per_clip["pose_segments"] = pl.DataFrame({
            "clip": clip, "segment_idx": np.arange(len(ranges)),
            "vector": pl.Series((np.ones((len(ranges), 18)) * 0.2 if kind == "constant" else
                                 rng.random((len(ranges), 18))).tolist(), dtype=pl.List(pl.Float32)),
            "coverage": pl.Series(rng.random(len(ranges)), dtype=pl.Float32)})
        for name in mods:
            tables[name] = pl.concat([tables[name], per_clip[name]]) if name in tables else per_clip[name]
    return pl.concat(segs), tables


@SLOW
@given(corpora(), st.booleans())
def test_cross_clip_run_on_small_and_degenerate_corpora(corpus: tuple, per_clip: bool) -> None:
    segments, tables = corpus
    feats = crossclip.segment_features(segments, tables)
    assert feats.schema == pl.Schema(crossclip.FEATURES_SCHEMA)
    assert feats.select("clip", "segment_idx", "modality").is_unique().all()
    assert all(np.isfinite(v).all() for v in feats["vector"].to_list())
    rows, info = crossclip.cluster_all(feats, segments, per_clip=per_clip)
    assert rows.columns == list(crossclip.CLUSTERS_SCHEMA) and rows.schema == pl.Schema(crossclip.CLUSTERS_SCHEMA)
    assert rows.select("clip", "segment_idx", "modality").is_unique().all()
    assert rows["start_s"].null_count() == 0 and rows["end_s"].null_count() == 0
    for (m,), g in rows.group_by(["modality"]):
        if m != "fusion":
            assert g.height == feats.filter(pl.col("modality") == m).height
        cl, full = g["cluster"].to_numpy(), g["cluster_full"].to_numpy()
        assert np.array_equal(full[cl >= 0], cl[cl >= 0])
        if not per_clip:
            assert (full >= 0).all() or (cl < 0).all()
    p = rows["probability"].to_numpy()
    assert np.all((p >= 0) & (p <= 1))
    if feats.height and not per_clip:
        assert "fusion" in info["model"] and sum(info["weights"].values()) == pytest.approx(1.0)
        cls = crossclip.classify_segments(feats, info["model"])
        assert cls.columns == list(crossclip.CLASSIFIED_SCHEMA)
        d = cls["distance"].to_numpy()
        assert np.all((d >= 0) | ~np.isfinite(d)) and np.isfinite(d[cls["nearest_cluster"].to_numpy() >= 0]).all()
        again, _ = crossclip.cluster_all(feats, segments, per_clip=False, previous=info["model"])
        assert again.height == rows.height


@SLOW
@given(corpora())
def test_ablations_and_ground_truth_tables(corpus: tuple) -> None:
    segments, tables = corpus
    feats = crossclip.segment_features(segments, tables)
    clips = pl.DataFrame({"clip": segments["clip"].unique().to_list()}).with_columns(pl.lit("dig").alias("phase"))
    abl = crossclip.ablation_phase_scores(feats, clips)
    assert abl.height == len(crossclip.ABLATIONS)
    rows, _ = crossclip.cluster_all(feats, segments, per_clip=False)
    gt = segments.select("clip", pl.int_ranges("start_frame", "end_frame").alias("frame_idx")).explode("frame_idx")
    gt = gt.drop_nulls().with_columns(pl.lit("dig").alias("activity"), pl.lit(float("nan")).alias("period_s"))
    table = crossclip.ground_truth_table(rows, segments, gt)
    for k in ("mof", "nmi", "ari"):
        v = table[k].to_numpy()
        assert np.all((v >= -1) & (v <= 1))


@FAST
@given(st.dictionaries(st.sampled_from(("scene", "flow", "pose")),
                       st.floats(min_value=-1, max_value=2) | st.just(float("nan")), min_size=1),
       st.booleans())
def test_fusion_weights_are_a_distribution(conf: dict[str, float], with_mixing: bool) -> None:
    mixing = {m: 0.1 for m in conf} if with_mixing else None
    w = crossclip.fusion_weights(conf, mixing)
    assert set(w) == set(conf) and all(np.isfinite(v) and v >= 0 for v in w.values())
    assert sum(w.values()) == pytest.approx(1.0)


@FAST
@given(st.data(), st.integers(0, 30))
def test_mixing_score_in_unit_interval(data: st.DataObject, n: int) -> None:
    lab = data.draw(labels(n))
    clips = np.asarray(data.draw(st.lists(st.sampled_from("abc"), min_size=n, max_size=n)), object)
    assert 0 <= crossclip.mixing_score(lab, clips) <= 1


def test_an_ablation_whose_modalities_never_meet_on_a_segment_says_so() -> None:
    """Found by `test_ablations_and_ground_truth_tables`: video seen only in one clip and pose only in the other
    left the "all" ablation with no segment, and the scaler failed on a 0-column block."""
    rng = np.random.default_rng(0)
    rows = [("clip0", 0, "scene", 6), ("clip1", 0, "scene", 6), ("clip1", 0, "video", 5), ("clip0", 0, "pose", 4),
            ("clip0", 0, "flow", 11), ("clip1", 0, "flow", 11)]
    feats = pl.DataFrame({"clip": [r[0] for r in rows], "segment_idx": [r[1] for r in rows],
                          "modality": [r[2] for r in rows],
                          "vector": pl.Series([rng.random(r[3]).tolist() for r in rows], dtype=pl.List(pl.Float32))})
    clips = pl.DataFrame({"clip": ["clip0", "clip1"], "phase": ["dig", "dig"]})
    abl = crossclip.ablation_phase_scores(feats, clips)
    assert abl.height == len(crossclip.ABLATIONS)
    row = abl.filter(pl.col("ablation") == "all").row(0, named=True)
    assert row["nmi"] is None and row["note"] == "not available: no segment has all of them"
    assert abl.filter(pl.col("ablation") == "scene only")["note"].to_list() == [""]
