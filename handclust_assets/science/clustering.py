"""HDBSCAN clustering per modality and late fusion, with stable ids and classification of new segments."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import PCA
from sklearn.metrics import pairwise_distances_argmin_min
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

MAX_DIM = 16  # clustering space per modality: PCA to <= 16 dims (KD-trees stay fast; activity structure survives)
FUSED_DIM = 32  # the fused concatenation keeps up to 32 dims (16 lost activity structure on a synthetic set)
MAX_FIT_ROWS = 20_000  # HDBSCAN is fitted on at most this many rows; the rest join by mutual reachability


def min_cluster_size_rule(n: int) -> int:
    """Minimum cluster size that grows with the data: max(3, round(sqrt(n) / 2)).

    600 segments (the seed's 5 clips) -> 12, 10k -> 50, 100k -> 158: an activity must recur a few dozen
    times before it is a cluster in a large corpus, while a small lab set still resolves short activities.
    min_samples = max(2, min_cluster_size // 3) keeps HDBSCAN from calling most of a small set noise.
    """
    return max(3, int(round(np.sqrt(max(n, 1)) / 2)))


def min_samples_rule(mcs: int) -> int:
    return max(2, mcs // 3)


def finite(x: np.ndarray) -> np.ndarray:
    """float64 copy with NaN and +-inf set to 0 (an unmeasured value carries no evidence either way)."""
    return np.nan_to_num(np.asarray(x, np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def l2n(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; a row of norm <= 1e-12 (no direction) becomes zero."""
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norm > 1e-12, x / np.maximum(norm, 1e-12), 0.0)


def _spread_scale(x: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Per-column divisor for z-scoring: the std, or 1 for a column that does not vary beyond float32 noise
    (std <= 1e-9, or <= 1e-6 of the column's magnitude): its jitter must not become unit-variance noise."""
    mag = np.abs(x).max(axis=0, initial=0.0)
    return np.where(std > np.maximum(1e-9, 1e-6 * mag), std, 1.0)


def reduce_dim(x: np.ndarray, max_dim: int | None = None, seed: int = 0) -> np.ndarray:
    """PCA to at most `max_dim` (default MAX_DIM) dims (HDBSCAN's trees are fast in low dimension)."""
    max_dim = MAX_DIM if max_dim is None else max_dim
    x = np.asarray(x, np.float64)
    if x.shape[1] <= max_dim or len(x) <= max_dim:
        return x
    return PCA(n_components=max_dim, random_state=seed, svd_solver="randomized").fit_transform(x)


@dataclass
class ClusterResult:
    labels: np.ndarray
    probabilities: np.ndarray
    k: int
    noise: int
    min_cluster_size: int


def cluster_hdbscan(x: np.ndarray, metric: str = "cosine", min_cluster_size: int | None = None,
                    min_samples: int | None = None, max_fit_rows: int = MAX_FIT_ROWS, seed: int = 0,
                    max_dim: int | None = None) -> ClusterResult:
    """HDBSCAN; cosine = euclidean on L2-normalised rows (same neighbour order, tree-accelerated).

    Up to `max_fit_rows` rows (every realistic lab set: 5 h of footage is ~4k segments) HDBSCAN sees all of
    them. Beyond, it is fitted on a seeded uniform sample of `max_fit_rows` rows (min cluster size from the
    rule for the sample) and every other row is placed by `hdbscan.approximate_predict` (the library's own
    prediction on the fitted condensed tree; noise where it belongs to no cluster). This keeps 100k segments
    to seconds per modality instead of minutes.
    """
    import hdbscan

    x = finite(x)
    n = len(x)
    fit_n = min(n, max_fit_rows)
    mcs = max(2, min_cluster_size or min_cluster_size_rule(fit_n))  # HDBSCAN rejects a minimum size of 1
    if n < max(mcs, 3):
        return ClusterResult(np.full(n, -1), np.zeros(n), 0, n, mcs)
    if metric == "cosine":
        x = l2n(x)
    d0 = x.shape[1]
    x = reduce_dim(x, max_dim)
    if metric == "cosine" and x.shape[1] < d0:
        x = l2n(x)
    if np.ptp(x, axis=0).max(initial=0.0) <= 1e-12:  # every row the same point: one activity (HDBSCAN never
        return ClusterResult(np.zeros(n, np.int64), np.ones(n), 1, 0, mcs)  # returns a single cluster: all noise)
    ms = min(min_samples or min_samples_rule(mcs), fit_n - 1)
    algo = "boruvka_kdtree" if x.shape[1] <= 40 else "best"
    cl = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=ms, metric="euclidean", algorithm=algo,
                         core_dist_n_jobs=2, cluster_selection_method="eom", prediction_data=n > max_fit_rows)
    if n <= max_fit_rows:
        labels = cl.fit_predict(x)
        probs = np.asarray(cl.probabilities_)
    else:  # fit on a seeded sample; every other row is placed by HDBSCAN's own approximate_predict
        fit_idx = np.sort(np.random.default_rng(seed).choice(n, fit_n, replace=False))
        cl.fit(x[fit_idx])
        labels, probs = hdbscan.approximate_predict(cl, x)
        labels, probs = np.asarray(labels), np.asarray(probs, np.float64)
        labels[fit_idx], probs[fit_idx] = cl.labels_, cl.probabilities_
    labels = canonical_labels(labels)
    return ClusterResult(labels, probs, int(labels.max() + 1), int((labels < 0).sum()), mcs)


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters by size (desc), ties by first occurrence: the same partition -> the same ids."""
    labels = np.asarray(labels)
    ids = [c for c in np.unique(labels) if c >= 0]
    order = sorted(ids, key=lambda c: (-(labels == c).sum(), int(np.argmax(labels == c))))
    out = np.full_like(labels, -1)
    for new, old in enumerate(order):
        out[labels == old] = new
    return out


def centroids(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    k = int(labels.max() + 1) if len(labels) and labels.max() >= 0 else 0
    return np.stack([x[labels == c].mean(axis=0) for c in range(k)]) if k else np.zeros((0, x.shape[1]))


def stable_relabel(labels: np.ndarray, x: np.ndarray, previous_centroids: np.ndarray | None) -> np.ndarray:
    """Match this run's clusters to the previous run's centroids (Hungarian on cosine distance) so cluster ids
    stay the same across re-runs; unmatched clusters get fresh ids after the previous ones."""
    labels = canonical_labels(labels)
    if previous_centroids is None or len(previous_centroids) == 0 or labels.max(initial=-1) < 0:
        return labels
    if np.asarray(previous_centroids).shape[1] != np.asarray(x).shape[1]:
        return labels  # another space (a descriptor changed): ids cannot be matched
    cur = l2n(centroids(x, labels))
    prev = l2n(previous_centroids)
    cost = np.nan_to_num(1.0 - cur @ prev.T, nan=2.0, posinf=2.0, neginf=2.0)  # a broken centroid matches nothing
    r, c = linear_sum_assignment(cost)
    mapping = {int(i): int(j) for i, j in zip(r, c) if cost[i, j] < 0.5}
    nxt = len(prev)
    out = np.full_like(labels, -1)
    for i in range(len(cur)):
        if i not in mapping:
            mapping[i] = nxt
            nxt += 1
        out[labels == i] = mapping[i]
    return out


def assign_noise_to_nearest(x: np.ndarray, labels: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Give each noise row the cluster of the nearest centroid, so every moment of a clip has an activity."""
    labels = np.asarray(labels).copy()
    if labels.max(initial=-1) < 0 or not (labels < 0).any():
        return labels
    z = l2n(finite(x)) if metric == "cosine" else finite(x)
    ids = np.unique(labels[labels >= 0])
    cen = np.stack([z[labels == c].mean(axis=0) for c in ids])
    noise = labels < 0
    d = ((z[noise][:, None, :] - cen[None]) ** 2).sum(-1)
    labels[noise] = ids[d.argmin(axis=1)]
    return labels


def medoids(x: np.ndarray, labels: np.ndarray, metric: str = "cosine") -> dict[int, int]:
    """Row index of each cluster's medoid (the member closest to the cluster centroid)."""
    z = l2n(finite(x)) if metric == "cosine" else finite(x)
    out = {}
    for c in np.unique(labels[labels >= 0]):
        idx = np.flatnonzero(labels == c)
        cen = z[idx].mean(axis=0)
        out[int(c)] = int(idx[np.argmin(((z[idx] - cen) ** 2).sum(1))])
    return out


def standardise_block(x: np.ndarray, mean: np.ndarray | None = None, std: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = finite(x)
    mean = (x.mean(axis=0) if len(x) else np.zeros(x.shape[1])) if mean is None else mean
    std = (x.std(axis=0) if len(x) else np.ones(x.shape[1])) if std is None else std
    z = (x - mean) / _spread_scale(x, std)
    return l2n(z), mean, std


def _arr(v: object) -> np.ndarray | None:
    return None if v is None else np.asarray(v, np.float64)


def _spread_scaler(x: np.ndarray) -> StandardScaler:
    """A fitted StandardScaler whose scale guards near-constant columns (see `_spread_scale`)."""
    sc = StandardScaler().fit(x)
    sc.scale_ = _spread_scale(x, x.std(axis=0))
    return sc


def _set_scaler(mean: np.ndarray, scale: np.ndarray) -> StandardScaler:
    sc = StandardScaler()
    sc.mean_, sc.scale_, sc.var_ = mean, scale, scale**2
    sc.n_features_in_, sc.n_samples_seen_ = len(mean), 1
    return sc


def _set_pca(mean: np.ndarray, components: np.ndarray) -> PCA:
    pca = PCA(n_components=len(components))
    pca.mean_, pca.components_ = mean, components
    pca.n_components_, pca.n_features_in_ = len(components), components.shape[1]
    pca.whiten = False
    return pca


@dataclass
class BlockTransform:
    """One modality's vectors -> its clustering space, an sklearn Pipeline: finite -> z-score -> L2 -> PCA to
    <= `max_dim` dims -> L2 (the PCA steps only when the vectors are wider than that).

    Fitted once on the pooled segments and saved with the cluster model (`to_dict`: its fitted parameters), so a
    new clip's segments land in exactly the same space (classification without re-clustering) and re-runs can be
    compared.
    """

    pipeline: Pipeline

    @property
    def in_dim(self) -> int:
        return int(self.pipeline.named_steps["zscore"].n_features_in_)

    @staticmethod
    def _make(scaler: StandardScaler, pca: PCA | None) -> Pipeline:
        steps = [("finite", FunctionTransformer(finite)), ("zscore", scaler), ("l2", FunctionTransformer(l2n))]
        if pca is not None:
            steps += [("pca", pca), ("l2_pca", FunctionTransformer(l2n))]
        return Pipeline(steps)

    @classmethod
    def fit(cls, x: np.ndarray, max_dim: int | None = None, seed: int = 0, max_fit_rows: int = 20_000
            ) -> BlockTransform:
        max_dim = MAX_DIM if max_dim is None else max_dim
        x = finite(x)
        if len(x) == 0:
            return cls(cls._make(_set_scaler(np.zeros(x.shape[1]), np.ones(x.shape[1])), None))
        scaler = _spread_scaler(x)
        z = l2n(scaler.transform(x))
        pca = None
        if z.shape[1] > max_dim and len(z) > max_dim:
            rows = z
            if len(z) > max_fit_rows:  # the basis from a large sample is as good and keeps 100k-row fits fast
                rows = z[np.random.default_rng(seed).choice(len(z), max_fit_rows, replace=False)]
            pca = PCA(n_components=max_dim, random_state=seed, svd_solver="randomized").fit(rows)
        return cls(cls._make(scaler, pca))

    @property
    def out_dim(self) -> int:
        pca = self.pipeline.named_steps.get("pca")
        return self.in_dim if pca is None else int(pca.n_components_)

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if len(x) == 0:  # sklearn refuses zero rows; the space has a known width
            return np.zeros((0, self.out_dim))
        return np.asarray(self.pipeline.transform(x), np.float64)

    def to_dict(self) -> dict:
        steps = self.pipeline.named_steps
        pca = steps.get("pca")
        return {"mean": steps["zscore"].mean_.tolist(), "std": steps["zscore"].scale_.tolist(),
                "pca_mean": None if pca is None else pca.mean_.tolist(),
                "components": None if pca is None else pca.components_.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> BlockTransform:
        pca = None if d.get("components") is None else _set_pca(_arr(d["pca_mean"]), _arr(d["components"]))
        return cls(cls._make(_set_scaler(_arr(d["mean"]), _arr(d["std"])), pca))


def _weight(w: float) -> float:
    """A usable fusion weight: finite and >= 0 (NaN, inf or negative -> 0)."""
    w = float(w)
    return w if np.isfinite(w) and w > 0 else 0.0


@dataclass
class FusionSpace:
    """Late fusion: each block through its BlockTransform, times sqrt(weight) (weights act on squared
    distances), concatenated and L2-normalised for cosine HDBSCAN. One block with weight 1 is a single
    modality's space. A segment missing a modality (a row with NaN/inf) gets zeros for that block: no evidence,
    not evidence of "zero". Weights that are NaN, inf or negative count as 0."""

    names: list[str]
    weights: dict[str, float]
    blocks: dict[str, BlockTransform]

    @classmethod
    def fit(cls, blocks: dict[str, np.ndarray], weights: dict[str, float] | None = None, max_dim: int | None = None
            ) -> FusionSpace:
        names = sorted(blocks)
        if not names:
            raise ValueError("no modality to fuse")
        weights = weights or ({names[0]: 1.0} if len(names) == 1 else confidence_weights(blocks))
        fitted = {}
        for n in names:
            x = np.asarray(blocks[n], np.float64)
            ok = np.isfinite(x).all(axis=1)
            fitted[n] = BlockTransform.fit(x[ok] if ok.any() else np.zeros((1, x.shape[1])), max_dim)
        return cls(names, {n: _weight(weights.get(n, 0.0)) for n in names}, fitted)

    def compatible(self, blocks: dict[str, np.ndarray]) -> bool:
        return sorted(blocks) == self.names and all(
            np.asarray(blocks[n]).shape[1] == self.blocks[n].in_dim for n in self.names)

    def transform(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        parts = []
        for n in self.names:
            x = np.asarray(blocks[n], np.float64)
            missing = ~np.isfinite(x).all(axis=1)
            z = self.blocks[n].transform(np.where(missing[:, None], 0.0, x))
            z[missing] = 0.0
            parts.append(np.sqrt(self.weights[n]) * z)
        return l2n(np.hstack(parts))

    def to_dict(self) -> dict:
        return {"names": self.names, "weights": self.weights,
                "blocks": {n: b.to_dict() for n, b in self.blocks.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> FusionSpace:
        return cls(list(d["names"]), {k: float(v) for k, v in d["weights"].items()},
                   {n: BlockTransform.from_dict(b) for n, b in d["blocks"].items()})


def clustering_confidence(x: np.ndarray, labels: np.ndarray, sample: int = 3000, seed: int = 0) -> float:
    """(1 - noise rate) x max(silhouette of the clusters, 0) + 0.05 (cosine; silhouette on a sample)."""
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    m = labels >= 0
    k = len(np.unique(labels[m]))
    sil = 0.0
    if k >= 2 and m.sum() > k:
        sil = float(silhouette_score(finite(x)[m], labels[m], metric="cosine",
                                     sample_size=min(sample, int(m.sum())), random_state=seed))
    return (1.0 - float((~m).mean()) if len(labels) else 0.0) * max(sil, 0.0) + 0.05


def cluster_stability(x: np.ndarray, labels: np.ndarray, n_boot: int = 6, frac: float = 0.8, max_n: int = 4000,
                      seed: int = 0) -> float:
    """Bootstrap stability of a clustering (Ben-Hur et al. 2002): mean ARI between the clustering restricted
    to a random `frac` subsample and HDBSCAN re-run on that subsample (same minimum cluster size). Real
    structure survives resampling; ambiguous structure does not. Large sets are estimated on `max_n` rows."""
    from sklearn.metrics import adjusted_rand_score

    x, labels = np.asarray(x), np.asarray(labels)
    n = len(x)
    if n < 10 or labels.max(initial=-1) < 0:
        return 0.0
    rng = np.random.default_rng(seed)
    mcs = min_cluster_size_rule(n)
    base = np.arange(n) if n <= max_n else np.sort(rng.choice(n, max_n, replace=False))
    scale = len(base) / n
    scores = []
    for _ in range(n_boot):
        idx = np.sort(rng.choice(base, int(frac * len(base)), replace=False))
        lb = cluster_hdbscan(x[idx], "cosine", min_cluster_size=max(3, int(round(mcs * scale)))).labels
        scores.append(adjusted_rand_score(labels[idx], lb))
    return float(max(np.mean(scores), 0.0))


def modality_confidence(x: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Label-free confidence of one modality's clustering: bootstrap stability x ((1 - noise) x silhouette
    + 0.05). High for clusters that are both well separated and reproducible."""
    return cluster_stability(x, labels, seed=seed) * clustering_confidence(x, labels, seed=seed)


def confidence_weights(blocks: dict[str, np.ndarray], sample: int = 3000, seed: int = 0) -> dict[str, float]:
    """Weight per modality = its `modality_confidence` (+ a 0.01 floor), normalised to sum to 1.

    A modality that forms confident, well-separated, reproducible clusters on its own gets a large weight;
    one that sees no structure (all noise, overlapping or unstable clusters) keeps only the floor, so it can
    still break ties but cannot drown the others.
    """
    w = {}
    for name, x in blocks.items():
        z = BlockTransform.fit(x).transform(x)
        w[name] = modality_confidence(z, cluster_hdbscan(z, "cosine").labels, seed) + 0.01
    s = sum(w.values())
    return {k: v / s for k, v in w.items()}


def fuse_modalities(blocks: dict[str, np.ndarray], weights: dict[str, float] | None = None
                    ) -> tuple[np.ndarray, dict[str, float], FusionSpace]:
    """Fit a FusionSpace on `blocks` and return (fused rows, the weights used, the space)."""
    space = FusionSpace.fit(blocks, weights)
    return space.transform(blocks), dict(space.weights), space


@dataclass
class ClusterModel:
    """Centroids + acceptance radii: classify new segments without re-clustering."""

    ids: list[int]
    centroids: list[list[float]]
    radii: list[float]
    metric: str = "cosine"

    @classmethod
    def fit(cls, x: np.ndarray, labels: np.ndarray, metric: str = "cosine", quantile: float = 0.95) -> ClusterModel:
        z = l2n(finite(x)) if metric == "cosine" else finite(x)
        ids, cens, radii = [], [], []
        for c in np.unique(labels[labels >= 0]):
            m = z[labels == c]
            cen = m.mean(axis=0)
            d = np.sqrt(((m - cen) ** 2).sum(1))
            ids.append(int(c))
            cens.append(cen.tolist())
            radii.append(float(np.quantile(d, quantile)) * 1.25 + 1e-6)
        return cls(ids, cens, radii, metric)

    def nearest(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(nearest cluster id, distance to its centroid, inside its acceptance radius) per row."""
        n = len(x)
        if not self.ids or n == 0:
            return np.full(n, -1), np.full(n, np.inf), np.zeros(n, bool)
        z = l2n(finite(x)) if self.metric == "cosine" else finite(x)
        j, d = pairwise_distances_argmin_min(z, np.asarray(self.centroids), metric="euclidean")
        return np.asarray(self.ids)[j], d, d <= np.asarray(self.radii)[j]

    def classify(self, x: np.ndarray) -> np.ndarray:
        """Cluster id per row, -1 where the row lies outside every cluster's acceptance radius (novel)."""
        ids, _, ok = self.nearest(x)
        return np.where(ok, ids, -1)

    def to_dict(self) -> dict:
        return {"ids": self.ids, "centroids": self.centroids, "radii": self.radii, "metric": self.metric}

    @classmethod
    def from_dict(cls, d: dict) -> ClusterModel:
        return cls(list(d["ids"]), list(d["centroids"]), list(d["radii"]), d.get("metric", "cosine"))


def umap_2d(x: np.ndarray, metric: str = "cosine", seed: int = 0) -> np.ndarray:
    """2-D map of all segments: UMAP (cosine), PCA for fewer than 15 rows."""
    x = finite(x)
    if len(x) < 15:
        if len(x) < 2:
            return np.zeros((len(x), 2))
        return PCA(n_components=2).fit_transform(x if x.shape[1] >= 2 else np.hstack([x, x]))
    import umap

    return umap.UMAP(n_components=2, metric=metric, random_state=seed, n_neighbors=min(15, len(x) - 1),
                     n_jobs=1).fit_transform(reduce_dim(x, 50))
