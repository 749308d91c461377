"""Label-free and ground-truth metrics for clusterings of segments."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment
from scipy.stats import kendalltau
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

ENTROPY_SCHEMA = {"cluster": pl.Int64, "size": pl.Int64, "n_clips": pl.Int64, "entropy": pl.Float64}


def cross_clip_entropy(labels: np.ndarray, clip_ids: np.ndarray) -> tuple[pl.DataFrame, dict]:
    """Per cluster H(p_clip) / log(n unique clips in it) (0 when it touches one clip), and the modality score:
    size-weighted mean entropy, share of clusters holding >= 2 clips, k, noise count. No cluster -> NaN/0."""
    labels, clip_ids = np.asarray(labels), np.asarray(clip_ids)
    rows = []
    for c in np.unique(labels[labels >= 0]):
        clips = clip_ids[labels == c]
        _, counts = np.unique(clips, return_counts=True)
        p = counts / counts.sum()
        h = min(1.0, float(-(p * np.log(p)).sum() / np.log(len(p)))) if len(p) > 1 else 0.0  # rounding: <= 1
        rows.append({"cluster": int(c), "size": int(counts.sum()), "n_clips": len(p), "entropy": h})
    df = pl.DataFrame(rows, schema=ENTROPY_SCHEMA) if rows else pl.DataFrame(schema=ENTROPY_SCHEMA)
    k = df.height
    summary = {
        "mean_entropy": float(np.average(df["entropy"], weights=df["size"])) if k else float("nan"),
        "multi_clip_share": float((df["n_clips"] >= 2).mean()) if k else 0.0,
        "k": k,
        "noise": int((labels < 0).sum()),
        "n": len(labels),
    }
    return df, summary


def quality_row(labels: np.ndarray) -> dict:
    labels = np.asarray(labels)
    n = len(labels)
    return {"noise_rate": float((labels < 0).mean()) if n else float("nan"),
            "k": int(len(np.unique(labels[labels >= 0]))), "n": n}


def phase_scores(labels: np.ndarray, phases: np.ndarray, include_noise: bool = True) -> dict:
    """NMI and ARI of clusters vs the file-name phase. Noise counts as its own label by default (a method that
    calls everything noise must not look good); `include_noise=False` scores only clustered segments."""
    labels, phases = np.asarray(labels), np.asarray(phases)
    if not include_noise:
        m = labels >= 0
        labels, phases = labels[m], phases[m]
    if len(labels) == 0:
        return {"nmi": float("nan"), "ari": float("nan")}
    return {"nmi": float(normalized_mutual_info_score(phases, labels)), "ari": float(adjusted_rand_score(phases, labels))}


def mof_hungarian(pred: np.ndarray, gt: np.ndarray) -> tuple[float, dict]:
    """Mean over frames after one-to-one Hungarian matching of predicted clusters to ground-truth classes;
    unmatched clusters (and noise) count as wrong. Returns (MoF, {pred cluster: gt class})."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    pc, pi = np.unique(pred, return_inverse=True)
    gc, gi = np.unique(gt, return_inverse=True)
    conf = np.zeros((len(pc), len(gc)))
    np.add.at(conf, (pi, gi), 1)
    valid = np.array([not (isinstance(p, (int, np.integer)) and p < 0) for p in pc], dtype=bool)
    conf[~valid] = 0
    r, c = linear_sum_assignment(-conf)
    mapping = {pc[i].item() if hasattr(pc[i], "item") else pc[i]: gc[j] for i, j in zip(r, c) if valid[i]}
    return float(conf[r, c].sum() / max(len(pred), 1)), mapping


def _runs(seq: np.ndarray) -> list:
    seq = list(seq)
    return [x for i, x in enumerate(seq) if i == 0 or x != seq[i - 1]]


def edit_score(pred: np.ndarray, gt: np.ndarray) -> float:
    """Segmental edit score: 100 * (1 - Levenshtein(run-collapsed pred, run-collapsed gt) / max(len))."""
    a, b = _runs(pred), _runs(gt)
    if not a and not b:
        return 100.0
    d = np.arange(len(b) + 1, dtype=np.float64)
    for i in range(1, len(a) + 1):
        prev, d[0] = d.copy(), i
        for j in range(1, len(b) + 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
    return float(100.0 * (1.0 - d[len(b)] / max(len(a), len(b))))


def gt_scores(pred: np.ndarray, gt: np.ndarray, sequences: np.ndarray | None = None) -> dict:
    """MoF (Hungarian), NMI, ARI, and edit score (per sequence, after mapping; mean over sequences)."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    mof, mapping = mof_hungarian(pred, gt)
    mapped = np.array([mapping.get(p.item() if hasattr(p, "item") else p, "__unmatched__") for p in pred], dtype=object)
    seqs = np.zeros(len(pred)) if sequences is None else np.asarray(sequences)
    edits = [edit_score(mapped[seqs == s], gt[seqs == s]) for s in np.unique(seqs)]
    return {"mof": mof, "nmi": float(normalized_mutual_info_score(gt, pred)),
            "ari": float(adjusted_rand_score(gt, pred)), "edit": float(np.mean(edits)) if edits else float("nan")}


def _finite_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    return x[np.isfinite(x).all(axis=1)]


def kendall_tau_alignment(seq_a: np.ndarray, seq_b: np.ndarray) -> float:
    """Align every frame of a to its cosine nearest neighbour in b; Kendall's tau of (arange, nn index).
    Frames with a non-finite vector are left out; NaN when either sequence keeps fewer than 2 frames."""
    a, b = _finite_rows(seq_a), _finite_rows(seq_b)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    nn = (a @ b.T).argmax(axis=1)
    if len(np.unique(nn)) < 2:
        return 0.0
    return float(kendalltau(np.arange(len(a)), nn).statistic)


def cluster_alignment_tau(sequences: list[np.ndarray], max_pairs: int = 50, seed: int = 0) -> tuple[float, int]:
    """Mean Kendall's tau over (up to `max_pairs` random) pairs of repetitions of one cluster."""
    pairs = [(i, j) for i in range(len(sequences)) for j in range(len(sequences)) if i != j]
    if not pairs:
        return float("nan"), 0
    rng = np.random.default_rng(seed)
    if len(pairs) > max_pairs:
        pairs = [pairs[k] for k in rng.choice(len(pairs), max_pairs, replace=False)]
    taus = [kendall_tau_alignment(sequences[i], sequences[j]) for i, j in pairs]
    taus = [t for t in taus if np.isfinite(t)]
    return (float(np.mean(taus)), len(taus)) if taus else (float("nan"), 0)


REPETITION_SCORES_SCHEMA = {"activity": pl.Utf8, "segments": pl.Int64, "periodic": pl.Boolean,
                            "accepted_share": pl.Float64, "median_count_error": pl.Float64,
                            "within_10pct": pl.Float64}


def repetition_scores(reps: pl.DataFrame, segments: pl.DataFrame, gt: pl.DataFrame) -> pl.DataFrame:
    """Repetition counting against ground truth, on segments lying inside one ground-truth activity.

    Per activity (and `all periodic`): how many segments got an accepted period, and for those the relative
    count error |count - length / true period| / (length / true period). For aperiodic activities (idle) the
    accepted share is the false-acceptance rate."""
    if gt.height == 0 or reps.height == 0:
        return pl.DataFrame(schema=REPETITION_SCORES_SCHEMA)
    fr = gt.select("clip", "frame_idx", "activity", pl.col("period_s").alias("true_period")).join(
        segments.select("clip", "segment_idx", "start_frame", "end_frame", (pl.col("end_s") - pl.col("start_s"))
                        .alias("length_s")), on="clip")
    fr = fr.filter((pl.col("frame_idx") >= pl.col("start_frame")) & (pl.col("frame_idx") < pl.col("end_frame")))
    seg = fr.group_by("clip", "segment_idx").agg(pl.col("activity").n_unique().alias("n_act"),
                                                 pl.col("activity").first(), pl.col("true_period").mean(),
                                                 pl.col("length_s").first())
    seg = seg.filter(pl.col("n_act") == 1).join(reps.select("clip", "segment_idx", "accepted", "rep_count"),
                                                on=["clip", "segment_idx"])
    seg = seg.with_columns(pl.col("true_period").is_not_nan().alias("periodic"),
                           ((pl.col("rep_count") - pl.col("length_s") / pl.col("true_period")).abs()
                            / (pl.col("length_s") / pl.col("true_period"))).alias("err"))

    def row(name: str, g: pl.DataFrame, periodic: bool) -> dict:
        acc = g.filter(pl.col("accepted"))
        err = acc["err"].drop_nans().drop_nulls() if periodic else pl.Series([], dtype=pl.Float64)
        return {"activity": name, "segments": g.height, "periodic": periodic,
                "accepted_share": float(g["accepted"].mean()) if g.height else float("nan"),
                "median_count_error": float(err.median()) if err.len() else float("nan"),
                "within_10pct": float((err < 0.1).mean()) if err.len() else float("nan")}

    rows = [row(a, g, bool(g["periodic"][0])) for (a,), g in seg.sort("activity").group_by(["activity"],
                                                                                          maintain_order=True)]
    per = seg.filter(pl.col("periodic"))
    if per.height:
        rows.append(row("all periodic", per, True))
    return pl.DataFrame(rows, schema=REPETITION_SCORES_SCHEMA)
