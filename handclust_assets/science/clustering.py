"""HDBSCAN clustering per modality and late fusion, with stable ids and classification of new segments."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

MAX_DIM = 32


def min_cluster_size_rule(n: int) -> int:
    """Minimum cluster size that grows with the data: max(3, round(sqrt(n) / 2)).

    600 segments (the seed's 5 clips) -> 12, 10k -> 50, 100k -> 158: an activity must recur a few dozen
    times before it is a cluster in a large corpus, while a small lab set still resolves short activities.
    min_samples = max(2, min_cluster_size // 3) keeps HDBSCAN from calling most of a small set noise.
    """
    return max(3, int(round(np.sqrt(max(n, 1)) / 2)))


def min_samples_rule(mcs: int) -> int:
    return max(2, mcs // 3)


def l2n(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def reduce_dim(x: np.ndarray, max_dim: int = MAX_DIM, seed: int = 0) -> np.ndarray:
    """PCA to at most `max_dim` dims (HDBSCAN's trees are fast in low dimension)."""
    x = np.asarray(x, np.float64)
    if x.shape[1] <= max_dim or len(x) <= max_dim:
        return x
    from sklearn.decomposition import PCA

    return PCA(n_components=max_dim, random_state=seed, svd_solver="randomized").fit_transform(x)


@dataclass
class ClusterResult:
    labels: np.ndarray
    probabilities: np.ndarray
    k: int
    noise: int
    min_cluster_size: int


def cluster_hdbscan(x: np.ndarray, metric: str = "cosine", min_cluster_size: int | None = None,
                    min_samples: int | None = None) -> ClusterResult:
    """HDBSCAN; cosine = euclidean on L2-normalised rows (same neighbour order, tree-accelerated)."""
    import hdbscan

    x = np.nan_to_num(np.asarray(x, np.float64))
    n = len(x)
    mcs = min_cluster_size or min_cluster_size_rule(n)
    if n < max(mcs, 3):
        return ClusterResult(np.full(n, -1), np.zeros(n), 0, n, mcs)
    if metric == "cosine":
        x = l2n(x)
    d0 = x.shape[1]
    x = reduce_dim(x)
    if metric == "cosine" and x.shape[1] < d0:
        x = l2n(x)
    ms = min_samples or min_samples_rule(mcs)
    algo = "boruvka_kdtree" if x.shape[1] <= 40 else "best"
    cl = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=min(ms, n - 1), metric="euclidean", algorithm=algo,
                         core_dist_n_jobs=2, cluster_selection_method="eom")
    labels = cl.fit_predict(x)
    labels = canonical_labels(labels)
    return ClusterResult(labels, np.asarray(cl.probabilities_), int(labels.max() + 1), int((labels < 0).sum()), mcs)


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
    if previous_centroids is None or len(previous_centroids) == 0 or labels.max() < 0:
        return labels
    cur = l2n(centroids(x, labels))
    prev = l2n(previous_centroids)
    cost = 1.0 - cur @ prev.T
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
    z = l2n(x) if metric == "cosine" else np.asarray(x, np.float64)
    ids = np.unique(labels[labels >= 0])
    cen = np.stack([z[labels == c].mean(axis=0) for c in ids])
    noise = labels < 0
    d = ((z[noise][:, None, :] - cen[None]) ** 2).sum(-1)
    labels[noise] = ids[d.argmin(axis=1)]
    return labels


def medoids(x: np.ndarray, labels: np.ndarray, metric: str = "cosine") -> dict[int, int]:
    """Row index of each cluster's medoid (the member closest to the cluster centroid)."""
    z = l2n(x) if metric == "cosine" else np.asarray(x, np.float64)
    out = {}
    for c in np.unique(labels[labels >= 0]):
        idx = np.flatnonzero(labels == c)
        cen = z[idx].mean(axis=0)
        out[int(c)] = int(idx[np.argmin(((z[idx] - cen) ** 2).sum(1))])
    return out


def standardise_block(x: np.ndarray, mean: np.ndarray | None = None, std: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.nan_to_num(np.asarray(x, np.float64))
    mean = x.mean(axis=0) if mean is None else mean
    std = x.std(axis=0) if std is None else std
    z = (x - mean) / np.where(std > 1e-9, std, 1.0)
    return l2n(z), mean, std


def confidence_weights(blocks: dict[str, np.ndarray], sample: int = 3000, seed: int = 0) -> dict[str, float]:
    """Weight per modality = (1 - noise rate) x max(silhouette of its own clusters, 0) + 0.05.

    A modality that forms confident, well-separated clusters on its own (low noise, high silhouette) gets a
    large weight; one that sees no structure (all noise or overlapping clusters) gets the 0.05 floor, so it
    can still break ties but cannot drown the others. Weights are normalised to sum to 1.
    """
    from sklearn.metrics import silhouette_score

    w = {}
    for name, x in blocks.items():
        z, _, _ = standardise_block(x)
        r = cluster_hdbscan(z, "cosine")
        m = r.labels >= 0
        sil = 0.0
        if r.k >= 2 and m.sum() > r.k:
            sil = float(silhouette_score(z[m], r.labels[m], metric="cosine",
                                         sample_size=min(sample, int(m.sum())), random_state=seed))
        w[name] = (1.0 - r.noise / max(len(z), 1)) * max(sil, 0.0) + 0.05
    s = sum(w.values())
    return {k: v / s for k, v in w.items()}


def fuse_modalities(blocks: dict[str, np.ndarray], weights: dict[str, float] | None = None
                    ) -> tuple[np.ndarray, dict[str, float], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Late fusion: per-modality z-score, L2-normalise, weighted concat (sqrt(w) so weights act on squared
    distances), then L2-normalise the fused rows for cosine HDBSCAN. Returns (X, weights, z-score stats)."""
    names = sorted(blocks)
    if not names:
        raise ValueError("no modality to fuse")
    weights = weights or confidence_weights(blocks)
    parts, stats = [], {}
    for name in names:
        z, mu, sd = standardise_block(blocks[name])
        z = reduce_dim(z, MAX_DIM)
        z = l2n(z)
        stats[name] = (mu, sd)
        parts.append(np.sqrt(max(weights.get(name, 0.0), 0.0)) * z)
    return l2n(np.hstack(parts)), {k: float(weights.get(k, 0.0)) for k in names}, stats


@dataclass
class ClusterModel:
    """Centroids + acceptance radii: classify new segments without re-clustering."""

    ids: list[int]
    centroids: list[list[float]]
    radii: list[float]
    metric: str = "cosine"
    extra: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, x: np.ndarray, labels: np.ndarray, metric: str = "cosine", quantile: float = 0.95) -> ClusterModel:
        z = l2n(x) if metric == "cosine" else np.asarray(x, np.float64)
        ids, cens, radii = [], [], []
        for c in np.unique(labels[labels >= 0]):
            m = z[labels == c]
            cen = m.mean(axis=0)
            d = np.sqrt(((m - cen) ** 2).sum(1))
            ids.append(int(c))
            cens.append(cen.tolist())
            radii.append(float(np.quantile(d, quantile)) * 1.25 + 1e-6)
        return cls(ids, cens, radii, metric)

    def classify(self, x: np.ndarray) -> np.ndarray:
        if not self.ids:
            return np.full(len(x), -1)
        z = l2n(x) if self.metric == "cosine" else np.asarray(x, np.float64)
        cen = np.asarray(self.centroids)
        d = np.sqrt(((z[:, None, :] - cen[None]) ** 2).sum(-1))
        j = d.argmin(axis=1)
        ok = d[np.arange(len(z)), j] <= np.asarray(self.radii)[j]
        return np.where(ok, np.asarray(self.ids)[j], -1)

    def to_dict(self) -> dict:
        return {"ids": self.ids, "centroids": self.centroids, "radii": self.radii, "metric": self.metric}

    @classmethod
    def from_dict(cls, d: dict) -> ClusterModel:
        return cls(list(d["ids"]), list(d["centroids"]), list(d["radii"]), d.get("metric", "cosine"))


def umap_2d(x: np.ndarray, metric: str = "cosine", seed: int = 0) -> np.ndarray:
    """2-D map of all segments: UMAP (cosine), PCA for fewer than 15 rows."""
    x = np.nan_to_num(np.asarray(x, np.float64))
    if len(x) < 15:
        from sklearn.decomposition import PCA

        if len(x) < 2:
            return np.zeros((len(x), 2))
        return PCA(n_components=2).fit_transform(x if x.shape[1] >= 2 else np.hstack([x, x]))
    import umap

    return umap.UMAP(n_components=2, metric=metric, random_state=seed, n_neighbors=min(15, len(x) - 1),
                     n_jobs=1).fit_transform(reduce_dim(x, 50))
