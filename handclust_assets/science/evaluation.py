"""The evaluation tables as plain functions (polars in, polars out): cross-clip entropy, the quality matrix,
alignment between repetitions, and EgoClean anomalies per clip."""

from __future__ import annotations

import numpy as np
import polars as pl

from handclust_assets.science.anomaly import SCORE_SCHEMA, SPAN_SCHEMA, detect_anomalies
from handclust_assets.science.metrics import cluster_alignment_tau, cross_clip_entropy, quality_row

ENTROPY_SUMMARY_SCHEMA = {"modality": pl.Utf8, "mean_entropy": pl.Float64, "multi_clip_share": pl.Float64,
                          "k": pl.Int64, "noise": pl.Int64, "n": pl.Int64}
CLUSTER_ENTROPY_SCHEMA = {"modality": pl.Utf8, "cluster": pl.Int64, "size": pl.Int64, "n_clips": pl.Int64,
                          "entropy": pl.Float64}
QUALITY_SCHEMA = {"clip": pl.Utf8, "modality": pl.Utf8, "noise_rate": pl.Float64, "k": pl.Int64, "n": pl.Int64}
ALIGNMENT_SCHEMA = {"modality": pl.Utf8, "cluster": pl.Int64, "mean_tau": pl.Float64, "n_pairs": pl.Int64}
ANOMALY_SCORES_SCHEMA = {"clip": pl.Utf8, "source": pl.Utf8, **SCORE_SCHEMA}
ANOMALY_SPANS_SCHEMA = {"clip": pl.Utf8, "source": pl.Utf8, **SPAN_SCHEMA}


def entropy_tables(clusters: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per cluster: size, clips, mixing entropy; per modality: size-weighted mean entropy, multi-clip share, k,
    noise, n — sorted best first, null mean entropy for a modality without clusters)."""
    per, summ = [], []
    for (m,), g in clusters.sort("modality").group_by(["modality"], maintain_order=True):
        df, s = cross_clip_entropy(g["cluster"].to_numpy(), g["clip"].to_numpy())
        per.append(df.with_columns(pl.lit(m).alias("modality")).select(list(CLUSTER_ENTROPY_SCHEMA)))
        summ.append({"modality": m, **s})
    s = (pl.DataFrame(summ, schema=ENTROPY_SUMMARY_SCHEMA).with_columns(pl.col("mean_entropy").fill_nan(None))
         .sort("mean_entropy", descending=True, nulls_last=True))
    per_df = pl.concat(per).cast(CLUSTER_ENTROPY_SCHEMA) if per else pl.DataFrame(schema=CLUSTER_ENTROPY_SCHEMA)
    return per_df, s


def quality_table(clip_clusters: pl.DataFrame) -> pl.DataFrame:
    """Per clip x modality: noise rate, number of clusters, segments (the seed's quality matrix)."""
    rows = [{"clip": c, "modality": m, **quality_row(g["cluster"].to_numpy())}
            for (c, m), g in clip_clusters.group_by(["clip", "modality"])]
    return pl.DataFrame(rows, schema=QUALITY_SCHEMA).sort("clip", "modality")


def alignment_table(clusters: pl.DataFrame, segments: pl.DataFrame, scene_embeddings: pl.DataFrame | None,
                    max_members: int = 30, max_pairs: int = 40) -> pl.DataFrame:
    """Kendall's tau of nearest-neighbour frame alignment between the segments (repetitions) of each cluster, on
    the scene embeddings, averaged over pairs (MASA / LA2DS)."""
    if scene_embeddings is None or not scene_embeddings.height:
        return pl.DataFrame(schema=ALIGNMENT_SCHEMA)
    segs = segments.join(clusters.filter(pl.col("cluster") >= 0), on=["clip", "segment_idx"])
    emb = {c: np.asarray(g.sort("frame_idx")["embedding"].to_list(), np.float32)
           for (c,), g in scene_embeddings.group_by(["clip"])}
    rows = []
    for (m, c), g in segs.group_by(["modality", "cluster"]):
        seqs = [emb[r["clip"]][r["start_frame"]:r["end_frame"]] for r in g.head(max_members).iter_rows(named=True)
                if r["clip"] in emb]
        tau, n = cluster_alignment_tau(seqs, max_pairs=max_pairs)
        rows.append({"modality": m, "cluster": int(c), "mean_tau": tau, "n_pairs": n})
    return pl.DataFrame(rows, schema=ALIGNMENT_SCHEMA).sort("modality", "cluster")


def window_embeddings(video_embeddings: pl.DataFrame | None, scene_embeddings: pl.DataFrame | None
                      ) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """(source, clip -> (window embeddings, start s, end s)): the V-JEPA 2 windows when they exist, else the scene
    embeddings mean-pooled over 1-s windows."""
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    if video_embeddings is not None and video_embeddings.height:
        for (clip,), g in video_embeddings.group_by(["clip"]):
            g = g.sort("window_idx")
            out[clip] = (np.asarray(g["embedding"].to_list(), np.float64), g["t_start_s"].to_numpy(),
                         g["t_end_s"].to_numpy())
        return "video_embeddings", out
    if scene_embeddings is None:
        return "none", out
    for (clip,), g in scene_embeddings.group_by(["clip"]):
        g = g.sort("frame_idx").with_columns((pl.col("t_s") // 1).alias("sec"))
        w = g.group_by("sec", maintain_order=True).agg(pl.col("embedding"))
        emb = np.stack([np.mean(np.asarray(e.to_list(), np.float64), axis=0) for e in w["embedding"]])
        ts = w["sec"].to_numpy().astype(float)
        out[clip] = (emb, ts, ts + 1)
    return "scene_embeddings", out


def anomaly_tables(video_embeddings: pl.DataFrame | None, scene_embeddings: pl.DataFrame | None,
                   min_contrast: float = 0.12) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """EgoClean per clip: (window scores, anomalous spans, embedding source); `min_contrast` as in
    `detect_anomalies`."""
    source, windows = window_embeddings(video_embeddings, scene_embeddings)
    scores, spans = [], []
    for clip, (emb, ts, te) in sorted(windows.items()):
        sc, sp = detect_anomalies(emb, ts, te, min_contrast=min_contrast)
        scores.append(sc.with_columns(pl.lit(clip).alias("clip"), pl.lit(source).alias("source")))
        spans.append(sp.with_columns(pl.lit(clip).alias("clip"), pl.lit(source).alias("source")))
    sc = pl.concat(scores).select(list(ANOMALY_SCORES_SCHEMA)) if scores else pl.DataFrame(schema=ANOMALY_SCORES_SCHEMA)
    sp = pl.concat(spans).select(list(ANOMALY_SPANS_SCHEMA)) if spans else pl.DataFrame(schema=ANOMALY_SPANS_SCHEMA)
    return sc.cast(ANOMALY_SCORES_SCHEMA), sp.cast(ANOMALY_SPANS_SCHEMA), source
