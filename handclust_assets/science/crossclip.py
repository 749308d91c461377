"""Cross-clip stage as plain functions: segment descriptors per modality, per-clip and pooled clustering,
late fusion, and the tables the evaluation reads. Inputs are the per-clip result tables (polars)."""

from __future__ import annotations

import numpy as np
import polars as pl

from handclust_assets.science import clustering, descriptors
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
# Modalities in the cross-clip ranking. The fusion uses every one present, weighted by label-free confidence;
# a modality whose pooled clusters are clip-pure (scene appearance fingerprints each clip, seed 000) is gated
# out by its cross-clip mixing (see `fusion_weights`). FUSION_EXCLUDE can force a modality out.
MODALITIES = ("scene", "video", "tools", "flow", "flow_rhythm", "egomotion", "pose", "hands")
FUSION_EXCLUDE: tuple[str, ...] = ()
FINGERPRINT_GATE = 0.3  # cross-clip mixing below this = most clusters are clip-private: the modality fingerprints clips
# Pose / hands observed on less than this share of a segment's frames give no descriptor for it (no evidence);
# the fusion weight of a modality scales with the share of segments it observes.
MIN_COVERAGE = 0.25
ABLATIONS = {
    "motion only": ("flow", "flow_rhythm", "egomotion"),
    "scene only": ("scene",),
    "video only": ("video",),
    "motion + scene": ("flow", "flow_rhythm", "egomotion", "scene"),
    "all": MODALITIES,
}


def _arr(col: pl.Series) -> np.ndarray:
    """A List/Array column of equal-length vectors -> (n, d) float32, without a detour through Python lists;
    null rows become NaN rows."""
    if col.len() == 0:
        return np.zeros((0, 0), np.float32)
    if isinstance(col.dtype, pl.List):
        lens = col.list.len()
        dim = int(lens.max() or 0)
        if lens.drop_nulls().n_unique() > 1:
            raise ValueError(f"column {col.name!r} holds vectors of different lengths")
        col = col.list.to_array(dim)
    out = col.cast(pl.Array(pl.Float32, col.dtype.size)).to_numpy()
    return np.asarray(out, np.float32).reshape(col.len(), -1)


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
            blocks["scene"] = descriptors.describe_mean(_arr(s["embedding"]), seg)
        if (v := frames("video_embeddings")) is not None:
            v = v.sort("window_idx")
            blocks["video"] = descriptors.describe_windows(_arr(v["embedding"]), v["t_start_s"].to_numpy(),
                                                 v["t_end_s"].to_numpy(), seg)
        if (t := frames("tool_scores")) is not None:
            wide = t.pivot(on="prompt", index="frame_idx", values="score", aggregate_function="max").sort("frame_idx")
            prompts = sorted(c for c in wide.columns if c != "frame_idx")
            blocks["tools"] = descriptors.describe_tools(wide.select(prompts).to_numpy(), seg)
        if (f := frames("flow")) is not None:
            blocks["flow"] = descriptors.describe_flow(f["flow_mag"].to_numpy(), _arr(f["dir_hist"]), seg)
        if (r := frames("flow_rhythm")) is not None:
            blocks["flow_rhythm"] = descriptors.describe_rhythm(r["period_s"].to_numpy(), r["strength"].to_numpy(),
                                                      r["mean_flow"].to_numpy(), seg)
        if (e := frames("egomotion")) is not None:
            lay = _arr(e["residual_layout"]) if "residual_layout" in e.columns else None
            blocks["egomotion"] = descriptors.describe_egomotion(e["camera_mag"].to_numpy(), e["residual_mag"].to_numpy(),
                                                       e["ratio"].to_numpy(), seg, lay)
        for extra in ("pose_segments", "hand_segments"):
            t = tables.get(extra)
            if t is not None:
                t = t.filter(pl.col("clip") == clip).sort("segment_idx")
                if t.height == seg.height:
                    x = _arr(t["vector"]).copy()
                    if "coverage" in t.columns:  # barely seen = no evidence (NaN), not a vector meaning "absent"
                        x[t["coverage"].fill_null(0).to_numpy() < MIN_COVERAGE] = np.nan
                    blocks["pose" if extra == "pose_segments" else "hands"] = x
        for name, x in blocks.items():
            keep = ~np.isnan(x).any(axis=1)
            if not keep.any():
                continue
            out.append(pl.DataFrame({"clip": [clip] * int(keep.sum()), "segment_idx": seg["segment_idx"].filter(keep),
                                     "modality": [name] * int(keep.sum()), "vector": [row.tolist() for row in x[keep]]},
                                    schema=FEATURES_SCHEMA))
    return pl.concat(out) if out else pl.DataFrame(schema=FEATURES_SCHEMA)


def blocks_of(features: pl.DataFrame, modalities: tuple[str, ...] | None = None, how: str = "inner"
              ) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """Aligned matrices per modality. `how="inner"`: the segments every selected modality has;
    `how="outer"`: every segment any of them has, NaN rows where a modality is missing (fusion treats a
    missing block as no evidence)."""
    present = sorted(features["modality"].unique().to_list()) if features.height else []
    mods = [m for m in (modalities or present) if m in present]
    keys = None
    for m in mods:
        k = features.filter(pl.col("modality") == m).select("clip", "segment_idx")
        keys = k if keys is None else (keys.join(k, on=["clip", "segment_idx"], how="inner") if how == "inner"
                                       else pl.concat([keys, k]).unique())
    if keys is None:
        return pl.DataFrame(schema={"clip": pl.Utf8, "segment_idx": pl.Int64}), {}
    keys = keys.sort("clip", "segment_idx")
    blocks = {}
    for m in mods:
        f = keys.join(features.filter(pl.col("modality") == m), on=["clip", "segment_idx"], how="left")
        blocks[m] = _arr(f["vector"])
    return keys, blocks


def _rows(keys: pl.DataFrame, modality: str, labels: np.ndarray, prob: np.ndarray, full: np.ndarray,
          spans: pl.DataFrame) -> pl.DataFrame:
    df = keys.with_columns(pl.lit(modality).alias("modality"), pl.Series("cluster", labels, pl.Int64),
                           pl.Series("probability", prob, pl.Float64), pl.Series("cluster_full", full, pl.Int64))
    return df.join(spans, on=["clip", "segment_idx"], how="left").select(list(CLUSTERS_SCHEMA))


def mixing_score(labels: np.ndarray, clips: np.ndarray) -> float:
    """Cross-clip mixing of a clustering: size-weighted mean entropy x share of clusters spanning >= 2 clips."""
    _, s = cross_clip_entropy(labels, clips)
    return (s["mean_entropy"] if np.isfinite(s["mean_entropy"]) else 0.0) * s["multi_clip_share"]


def _nonneg(v: float) -> float:
    """NaN / inf / negative (a score that could not be computed) -> 0."""
    v = float(v)
    return v if np.isfinite(v) and v > 0 else 0.0


def fusion_weights(confidence: dict[str, float], mixing: dict[str, float] | None = None,
                   gate: float = FINGERPRINT_GATE, observed: dict[str, float] | None = None) -> dict[str, float]:
    """Label-free fusion weights, normalised to 1, so confident modalities outweigh ambiguous ones:
    w = confidence (bootstrap stability x separation, `clustering.modality_confidence`) + 0.01, and, when
    clips are pooled, x min(1, mixing / gate): a modality whose clusters are clip-pure (cross-clip mixing
    ~0: it fingerprints each clip's look, the seeds' scene trap) fades out instead of splitting activities
    by clip. Mixing above the gate does not add weight: coarse clusters mix well without being right.
    `observed`: the share of segments a modality has a descriptor for (pose, hands: coverage); a modality that
    sees 10 % of the footage cannot carry the other 90 %."""
    w = {}
    for m, c in confidence.items():
        g = 1.0 if mixing is None else min(1.0, _nonneg(mixing.get(m, 0.0)) / gate)
        w[m] = (_nonneg(c) + 0.01) * g * (1.0 if observed is None else _nonneg(observed.get(m, 1.0)))
    tot = sum(w.values())
    if tot <= 0:
        return {m: 1.0 / len(confidence) for m in confidence}
    return {m: v / tot for m, v in w.items()}


def _cluster_space(space: clustering.FusionSpace, blocks: dict[str, np.ndarray], prev: dict | None, stabilise: bool
                   ) -> tuple[np.ndarray, clustering.ClusterResult, np.ndarray]:
    x = space.transform(blocks)
    res = clustering.cluster_hdbscan(x, "cosine", max_dim=clustering.FUSED_DIM if len(space.names) > 1 else None)
    labels = clustering.canonical_labels(res.labels)
    if stabilise and prev is not None:
        pspace = clustering.FusionSpace.from_dict(prev["space"])
        if pspace.compatible(blocks):
            pc = clustering.ClusterModel.from_dict(prev["clusters"])
            labels = clustering.stable_relabel(labels, pspace.transform(blocks), np.asarray(pc.centroids))
    res.labels = labels
    return x, res, clustering.assign_noise_to_nearest(x, labels)


def cluster_all(features: pl.DataFrame, segments: pl.DataFrame, per_clip: bool,
                previous: dict | None = None) -> tuple[pl.DataFrame, dict]:
    """Cluster every modality and the late fusion, per clip or pooled across clips.

    Returns (rows with CLUSTERS_SCHEMA, info). Pooled, info["model"] holds per modality and for the fusion the
    fitted space and the cluster centroids/radii (`save`-able, used to classify new clips without
    re-clustering); `previous` (an earlier info["model"]) keeps cluster ids stable across re-runs.
    """
    spans = segments.select("clip", "segment_idx", "start_s", "end_s")
    present = [m for m in MODALITIES if m in set(features["modality"].unique().to_list())]
    fuse_mods = [m for m in present if m not in FUSION_EXCLUDE] or present
    out, info = [], {"weights": {}, "model": {}, "confidence": {}, "mixing": {}, "observed": {}}
    groups = sorted(features["clip"].unique().to_list()) if per_clip else [None]
    for g in groups:
        feats = features.filter(pl.col("clip") == g) if g is not None else features
        conf, mix = {}, {}
        for m in present:
            keys, blocks = blocks_of(feats, (m,))
            if not blocks:
                continue
            space = clustering.FusionSpace.fit(blocks, {m: 1.0})
            x, res, full = _cluster_space(space, blocks, (previous or {}).get(m), stabilise=not per_clip)
            out.append(_rows(keys, m, res.labels, res.probabilities, full, spans))
            conf[m] = clustering.modality_confidence(x, res.labels)
            mix[m] = mixing_score(res.labels, keys["clip"].to_numpy())
            if not per_clip:
                info["model"][m] = {"space": space.to_dict(), "clusters": clustering.ClusterModel.fit(x, res.labels).to_dict()}
        mods = [m for m in fuse_mods if m in conf]
        if not mods:
            continue
        n_seg = feats.select("clip", "segment_idx").unique().height
        seen = {m: feats.filter(pl.col("modality") == m).height / max(n_seg, 1) for m in mods}
        weights = fusion_weights({m: conf[m] for m in mods}, None if per_clip else {m: mix[m] for m in mods},
                                 observed=seen)
        keys, blocks = blocks_of(feats, tuple(mods), how="outer")
        space = clustering.FusionSpace.fit(blocks, weights)
        x, res, full = _cluster_space(space, blocks, (previous or {}).get("fusion"), stabilise=not per_clip)
        out.append(_rows(keys, "fusion", res.labels, res.probabilities, full, spans))
        if not per_clip:
            info["weights"], info["confidence"], info["mixing"], info["observed"] = weights, conf, mix, seen
            info["model"]["fusion"] = {"space": space.to_dict(),
                                       "clusters": clustering.ClusterModel.fit(x, res.labels).to_dict()}
            info["fusion_x"] = (keys, x)
    return (pl.concat(out) if out else pl.DataFrame(schema=CLUSTERS_SCHEMA)), info


CLASSIFIED_SCHEMA = {"clip": pl.Utf8, "segment_idx": pl.Int64, "modality": pl.Utf8, "cluster": pl.Int64,
                     "nearest_cluster": pl.Int64, "distance": pl.Float64}


def space_blocks(features: pl.DataFrame, space: clustering.FusionSpace) -> tuple[pl.DataFrame, dict[str, np.ndarray]] | None:
    """`features` aligned for a fitted space: every segment with any of its modalities, NaN rows (no evidence)
    for a modality a segment lacks; None when nothing matches or a descriptor's dimension changed."""
    keys, blocks = blocks_of(features, tuple(space.names), how="outer")
    if not blocks:
        return None
    blocks = {n: blocks.get(n, np.full((keys.height, space.blocks[n].in_dim), np.nan, np.float32))
              for n in space.names}
    return (keys, blocks) if space.compatible(blocks) else None


def space_rows(features: pl.DataFrame, entry: dict) -> tuple[pl.DataFrame, np.ndarray] | None:
    """(keys, rows in the saved space) for one modality's (or the fusion's) entry of the cluster model."""
    space = clustering.FusionSpace.from_dict(entry["space"])
    aligned = space_blocks(features, space)
    return None if aligned is None else (aligned[0], space.transform(aligned[1]))


def classify_segments(features: pl.DataFrame, model: dict[str, dict]) -> pl.DataFrame:
    """Place segments (any clips) into an existing clustering without re-clustering: each modality's and the
    fusion's saved space + centroids. `cluster` is -1 where a segment lies outside every acceptance radius
    (a novel activity); `nearest_cluster` always names the closest one. A modality the fusion was fitted with
    but these segments lack counts as no evidence; a modality whose descriptor changed is skipped."""
    out = []
    for m, entry in model.items():
        rows = space_rows(features, entry)
        if rows is None:
            continue
        keys, x = rows
        ids, d, ok = clustering.ClusterModel.from_dict(entry["clusters"]).nearest(x)
        out.append(keys.with_columns(pl.lit(m).alias("modality"), pl.Series("cluster", np.where(ok, ids, -1), pl.Int64),
                                     pl.Series("nearest_cluster", ids, pl.Int64), pl.Series("distance", d, pl.Float64)))
    return pl.concat(out).select(list(CLASSIFIED_SCHEMA)) if out else pl.DataFrame(schema=CLASSIFIED_SCHEMA)


def ablation_phase_scores(features: pl.DataFrame, clips: pl.DataFrame) -> pl.DataFrame:
    rows = []
    phase = dict(zip(clips["clip"].to_list(), clips["phase"].to_list()))
    for name, mods in ABLATIONS.items():
        keys, blocks = blocks_of(features, mods)
        missing = [m for m in mods if m not in blocks] if name != "all" else []
        if not blocks or missing or keys.height == 0:  # (no segment seen by every modality of the set)
            why = ", ".join(missing) or ("no features" if not blocks else "no segment has all of them")
            rows.append({"ablation": name, "modalities": "+".join(mods), "nmi": None, "ari": None, "k": 0,
                         "noise": 0, "note": f"not available: {why}"})
            continue
        x = clustering.FusionSpace.fit(blocks, {m: 1.0 / len(blocks) for m in blocks}).transform(blocks)
        res = clustering.cluster_hdbscan(x, "cosine", max_dim=clustering.FUSED_DIM)
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
    clustered_clips = clusters["clip"].unique().implode()
    for (m,), cl in clusters.group_by(["modality"], maintain_order=True):
        # every segment of the clips with ground truth; one a modality has no descriptor for (pose/hands not
        # seen) counts as unassigned (-1, wrong), so coverage-limited modalities are scored on the same frames
        seg = segments.join(cl.select("clip", "segment_idx", "cluster_full"), on=["clip", "segment_idx"], how="left")
        seg = seg.filter(pl.col("clip").is_in(clustered_clips)).with_columns(
            pl.col("cluster_full").fill_null(-1))
        fr = gt.join(seg.select("clip", "start_frame", "end_frame", "cluster_full"), on="clip")
        fr = fr.filter((pl.col("frame_idx") >= pl.col("start_frame")) & (pl.col("frame_idx") < pl.col("end_frame")))
        if fr.height == 0:
            continue
        fr = fr.sort("clip", "frame_idx")
        s = gt_scores(fr["cluster_full"].to_numpy(), fr["activity"].to_numpy(), fr["clip"].to_numpy())
        rows.append({"modality": m, **s, "n_clips": fr["clip"].n_unique(), "n_frames": fr.height})
    return pl.DataFrame(rows, schema=schema).sort("mof", descending=True) if rows else pl.DataFrame(schema=schema)


def fusion_rows(features: pl.DataFrame, entry: dict | None = None) -> tuple[pl.DataFrame, np.ndarray]:
    """(keys, rows) of every segment in the fusion space: the saved one (`entry`, the cluster model's "fusion")
    when it fits these descriptors, else an equal-weight fusion of every modality present (the one fallback the
    segment map and the dashboard share)."""
    rows = space_rows(features, entry) if entry is not None else None
    if rows is not None:
        return rows
    mods = tuple(m for m in MODALITIES if m not in FUSION_EXCLUDE)
    keys, blocks = blocks_of(features, mods, how="outer")
    return keys, clustering.fuse_modalities(blocks, {m: 1.0 for m in blocks})[0]
