"""Cross-clip stage as plain functions: segment descriptors per modality, per-clip and pooled clustering,
late fusion, and the tables the evaluation reads. Inputs are the per-clip result tables (polars)."""

from __future__ import annotations

import numpy as np
import polars as pl

from handclust_assets.science import clustering as C
from handclust_assets.science import descriptors as D
from handclust_assets.science.metrics import cross_clip_entropy, gt_scores, phase_scores

FEATURES_SCHEMA = {"clip": pl.Utf8, "segment_idx": pl.Int64, "modality": pl.Utf8, "vector": pl.List(pl.Float32)}
CLUSTERS_SCHEMA = {
    "clip": pl.Utf8,
    "segment_idx": pl.Int64,
    "modality": pl.Utf8,
    "cluster": pl.Int64,
    "probability": pl.Float64,
    "cluster_full": pl.Int64,
    "start_s": pl.Float64,
    "end_s": pl.Float64,
}
# Modalities in the cross-clip ranking; the fusion uses every one present except `scene` by default
# (scene appearance fingerprints each clip, seed 000), weighted by confidence x cross-clip mixing.
MODALITIES = ("scene", "video", "tools", "flow_rhythm", "egomotion", "pose", "hands")
FUSION_EXCLUDE = ("scene",)
ABLATIONS = {
    "motion only": ("flow_rhythm", "egomotion"),
    "scene only": ("scene",),
    "video only": ("video",),
    "motion + scene": ("flow_rhythm", "egomotion", "scene"),
    "all": MODALITIES,
}


def _arr(col: pl.Series) -> np.ndarray:
    return np.asarray(col.to_list(), np.float32)


def segment_features(segments: pl.DataFrame, tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """One row per (clip, segment, modality present for that clip) with the descriptor vector."""
    out = []
    for (clip,), seg in segments.sort("clip", "segment_idx").group_by(["clip"], maintain_order=True):
        blocks: dict[str, np.ndarray] = {}

        def frames(name: str, clip: str = clip) -> pl.DataFrame | None:
            t = tables.get(name)
            if t is None:
                return None
            t = t.filter(pl.col("clip") == clip)
            return t.sort("frame_idx") if t.height and "frame_idx" in t.columns else (t if t.height else None)

        if (s := frames("scene_embeddings")) is not None:
            blocks["scene"] = D.describe_mean(_arr(s["embedding"]), seg)
        if (v := frames("video_embeddings")) is not None:
            v = v.sort("window_idx")
            blocks["video"] = D.describe_windows(_arr(v["embedding"]), v["t_start_s"].to_numpy(),
                                                 v["t_end_s"].to_numpy(), seg)
        if (t := frames("tool_scores")) is not None:
            wide = t.pivot(on="prompt", index="frame_idx", values="score", aggregate_function="max").sort("frame_idx")
            prompts = sorted(c for c in wide.columns if c != "frame_idx")
            blocks["tools"] = D.describe_tools(wide.select(prompts).to_numpy(), seg)
        if (r := frames("flow_rhythm")) is not None:
            blocks["flow_rhythm"] = D.describe_rhythm(r["period_s"].to_numpy(), r["strength"].to_numpy(),
                                                      r["mean_flow"].to_numpy(), seg)
        if (e := frames("egomotion")) is not None:
            blocks["egomotion"] = D.describe_egomotion(e["camera_mag"].to_numpy(), e["residual_mag"].to_numpy(),
                                                       e["ratio"].to_numpy(), seg)
        for extra in ("pose_segments", "hand_segments"):
            t = tables.get(extra)
            if t is not None:
                t = t.filter(pl.col("clip") == clip).sort("segment_idx")
                if t.height == seg.height:
                    blocks["pose" if extra == "pose_segments" else "hands"] = _arr(t["vector"])
        for name, x in blocks.items():
            out.append(pl.DataFrame({"clip": [clip] * len(x), "segment_idx": seg["segment_idx"],
                                     "modality": [name] * len(x), "vector": [row.tolist() for row in x]},
                                    schema=FEATURES_SCHEMA))
    return pl.concat(out) if out else pl.DataFrame(schema=FEATURES_SCHEMA)


def blocks_of(features: pl.DataFrame, modalities: tuple[str, ...] | None = None
              ) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """Aligned matrices per modality over the segments every selected modality has."""
    present = sorted(features["modality"].unique().to_list())
    mods = [m for m in (modalities or present) if m in present]
    keys = None
    for m in mods:
        k = features.filter(pl.col("modality") == m).select("clip", "segment_idx")
        keys = k if keys is None else keys.join(k, on=["clip", "segment_idx"], how="inner")
    if keys is None:
        return pl.DataFrame(schema={"clip": pl.Utf8, "segment_idx": pl.Int64}), {}
    keys = keys.sort("clip", "segment_idx")
    blocks = {}
    for m in mods:
        f = keys.join(features.filter(pl.col("modality") == m), on=["clip", "segment_idx"], how="left")
        blocks[m] = _arr(f["vector"])
    return keys, blocks


def _rows(keys: pl.DataFrame, modality: str, res: C.ClusterResult, full: np.ndarray, spans: pl.DataFrame
          ) -> pl.DataFrame:
    df = keys.with_columns(pl.lit(modality).alias("modality"), pl.Series("cluster", res.labels, pl.Int64),
                           pl.Series("probability", res.probabilities, pl.Float64),
                           pl.Series("cluster_full", full, pl.Int64))
    return df.join(spans, on=["clip", "segment_idx"], how="left").select(list(CLUSTERS_SCHEMA))


def entropy_aware_weights(features: pl.DataFrame, mods: list[str]) -> dict[str, float]:
    """Fusion weight = confidence (clustering alone) x (cross-clip mixing + 0.05): label-free, and it keeps a
    modality that only fingerprints clips (confident but clip-pure clusters) from dominating the fusion."""
    keys, blocks = blocks_of(features, tuple(mods))
    conf = C.confidence_weights(blocks)
    w = {}
    for m in mods:
        res = C.cluster_hdbscan(blocks[m], "cosine")
        _, s = cross_clip_entropy(res.labels, keys["clip"].to_numpy())
        mix = (s["mean_entropy"] if np.isfinite(s["mean_entropy"]) else 0.0) * s["multi_clip_share"]
        w[m] = conf[m] * (mix + 0.05)
    tot = sum(w.values()) or 1.0
    return {m: v / tot for m, v in w.items()}


def cluster_all(features: pl.DataFrame, segments: pl.DataFrame, per_clip: bool,
                previous: dict[str, np.ndarray] | None = None) -> tuple[pl.DataFrame, dict]:
    """Cluster every modality (and the fusion) per clip or pooled across clips."""
    spans = segments.select("clip", "segment_idx", "start_s", "end_s")
    present = [m for m in MODALITIES if m in set(features["modality"].unique().to_list())]
    out, info = [], {"weights": {}, "centroids": {}}
    groups = [(c,) for c in sorted(features["clip"].unique().to_list())] if per_clip else [None]
    fuse_mods = [m for m in present if m not in FUSION_EXCLUDE] or present
    weights = entropy_aware_weights(features, fuse_mods) if not per_clip and len(fuse_mods) > 1 else None
    info["weights"] = weights or {}
    for g in groups:
        feats = features.filter(pl.col("clip") == g[0]) if g else features
        for m in present:
            keys, blocks = blocks_of(feats, (m,))
            if not blocks:
                continue
            x = blocks[m]
            res = C.cluster_hdbscan(x, "cosine")
            labels = C.stable_relabel(res.labels, C.l2n(x), (previous or {}).get(m)) if not per_clip else res.labels
            res.labels = labels
            full = C.assign_noise_to_nearest(x, labels)
            out.append(_rows(keys, m, res, full, spans))
            if not per_clip:
                info["centroids"][m] = C.centroids(C.l2n(x), labels)
        keys, blocks = blocks_of(feats, tuple(fuse_mods))
        if blocks:
            x, w, _ = C.fuse_modalities(blocks, weights)
            res = C.cluster_hdbscan(x, "cosine")
            if not per_clip:
                res.labels = C.stable_relabel(res.labels, x, (previous or {}).get("fusion"))
                info["centroids"]["fusion"] = C.centroids(x, res.labels)
                info["fusion_x"] = (keys, x)
            out.append(_rows(keys, "fusion", res, C.assign_noise_to_nearest(x, res.labels), spans))
    return (pl.concat(out) if out else pl.DataFrame(schema=CLUSTERS_SCHEMA)), info


def ablation_phase_scores(features: pl.DataFrame, clips: pl.DataFrame) -> pl.DataFrame:
    rows = []
    phase = dict(zip(clips["clip"].to_list(), clips["phase"].to_list()))
    for name, mods in ABLATIONS.items():
        keys, blocks = blocks_of(features, mods)
        missing = [m for m in mods if m not in blocks] if name != "all" else []
        if not blocks or missing:
            rows.append({"ablation": name, "modalities": "+".join(mods), "nmi": None, "ari": None, "k": 0,
                         "noise": 0, "note": f"not available: {', '.join(missing) or 'no features'}"})
            continue
        x = C.fuse_modalities(blocks, {m: 1.0 / len(blocks) for m in blocks})[0] if len(blocks) > 1 else blocks[mods[0]]
        res = C.cluster_hdbscan(x, "cosine")
        ph = np.array([phase.get(c, "unknown") for c in keys["clip"].to_list()])
        s = phase_scores(res.labels, ph)
        rows.append({"ablation": name, "modalities": "+".join(sorted(blocks)), "nmi": s["nmi"], "ari": s["ari"],
                     "k": res.k, "noise": res.noise, "note": ""})
    return pl.DataFrame(rows, schema={"ablation": pl.Utf8, "modalities": pl.Utf8, "nmi": pl.Float64,
                                      "ari": pl.Float64, "k": pl.Int64, "noise": pl.Int64, "note": pl.Utf8})


def ground_truth_table(clusters: pl.DataFrame, segments: pl.DataFrame, gt: pl.DataFrame) -> pl.DataFrame:
    """Frame-level MoF (Hungarian), NMI, ARI, edit score per modality, on clips with ground truth."""
    schema = {"modality": pl.Utf8, "mof": pl.Float64, "nmi": pl.Float64, "ari": pl.Float64, "edit": pl.Float64,
              "n_clips": pl.Int64, "n_frames": pl.Int64}
    if gt.height == 0:
        return pl.DataFrame(schema=schema)
    rows = []
    for (m,), cl in clusters.group_by(["modality"], maintain_order=True):
        seg = segments.join(cl.select("clip", "segment_idx", "cluster_full"), on=["clip", "segment_idx"])
        fr = gt.join(seg.select("clip", "start_frame", "end_frame", "cluster_full"), on="clip")
        fr = fr.filter((pl.col("frame_idx") >= pl.col("start_frame")) & (pl.col("frame_idx") < pl.col("end_frame")))
        if fr.height == 0:
            continue
        fr = fr.sort("clip", "frame_idx")
        s = gt_scores(fr["cluster_full"].to_numpy(), fr["activity"].to_numpy(), fr["clip"].to_numpy())
        rows.append({"modality": m, **s, "n_clips": fr["clip"].n_unique(), "n_frames": fr.height})
    return pl.DataFrame(rows, schema=schema).sort("mof", descending=True) if rows else pl.DataFrame(schema=schema)
