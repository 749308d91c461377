"""Clusters + evaluation groups: the cross-clip assets (they depend on every clip partition).

They read the per-clip tables of every partition that has results (a failed clip or a modality whose model is
missing is simply absent), so one bad clip or one missing model never blocks clustering and evaluation.
"""

import json
from datetime import timedelta

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.defs.resources import HandclustSettings
from handclust_assets.lib import storage
from handclust_assets.lib import tables as T
from handclust_assets.lib.labeling import ClusterEvidence, OpenAICompatibleLabeler, offline_labels
from handclust_assets.science import crossclip as X
from handclust_assets.science.anomaly import SCORE_SCHEMA, SPAN_SCHEMA, detect_anomalies
from handclust_assets.science.clustering import medoids, umap_2d
from handclust_assets.science.metrics import (
    cluster_alignment_tau,
    cross_clip_entropy,
    quality_row,
    repetition_scores,
)

PER_CLIP_TABLES = ("clips", "segments", "ground_truth", "scene_embeddings", "video_embeddings", "tool_scores",
                   "flow", "flow_rhythm", "egomotion", "pose_segments", "hand_segments")  # not the keypoint tables
CROSS_DEPS = [dg.AssetKey(t) for t in ("segments", "scene_embeddings", "video_embeddings", "tool_scores",
                                        "flow_rhythm", "egomotion", "pose", "hands", "pose_segments",
                                        "hand_segments", "clips")]
AUTO = dg.AutomationCondition.eager()
# A lab that ingests footage daily expects the pooled clustering and its scores at most a day old.
DAILY = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=24), warn_window=timedelta(hours=12))


class LabelerResource(dg.ConfigurableResource):
    """Cluster labeler: `offline` (from the evidence) or any OpenAI-compatible endpoint (Gemini's works)."""

    kind: str = "offline"  # offline | openai
    base_url: str = ""
    api_key: str = ""
    model: str = ""
    max_keyframes: int = 4


def load_tables(context: dg.AssetExecutionContext, settings: HandclustSettings, names=PER_CLIP_TABLES) -> dict:
    keys = context.instance.get_dynamic_partitions(clip_partitions.name)
    out = {}
    for name in names:
        try:
            out[name] = T.read_table(settings.root(), name, keys)
        except FileNotFoundError:
            continue
    return out


def _score_meta(d: dict) -> dict:
    return {k: dg.MetadataValue.float(float(v)) if isinstance(v, float) else dg.MetadataValue.int(int(v))
            for k, v in d.items() if isinstance(v, (int, float)) and np.isfinite(v)}


@dg.asset(
    group_name="clusters",
    kinds={"python", "duckdb"},
    deps=CROSS_DEPS,
    code_version="segment-features-v1",
    automation_condition=AUTO,
    description="Per segment and modality, the pooled descriptor: scene mean, V-JEPA windows, log-normalised "
    "tool histogram, flow-rhythm summary, ego-motion summary (pose/hands when present).",
)
def segment_features(context: dg.AssetExecutionContext, settings: HandclustSettings) -> dg.Output[pl.DataFrame]:
    t = load_tables(context, settings)
    if "segments" not in t:
        raise dg.Failure("no clip has segments yet: materialize the per-clip assets first")
    feats = X.segment_features(t["segments"], t)
    mods = sorted(feats["modality"].unique().to_list())
    missing = [m for m in X.MODALITIES if m not in mods]
    if missing:
        context.log.warning(f"modalities without results (skipped): {missing}")
    return dg.Output(feats, metadata={"modalities": ", ".join(mods), "skipped": ", ".join(missing) or "none",
                                      "n_segments": dg.MetadataValue.int(t["segments"].height)})


@dg.asset(group_name="clusters", kinds={"python", "duckdb"}, code_version="clip-clusters-v1",
          automation_condition=AUTO, deps=["segments"],
          description="HDBSCAN per modality per clip (and the fusion per clip); noise = -1, cluster_full gives "
          "noise segments their nearest cluster.")
def clip_clusters(context: dg.AssetExecutionContext, settings: HandclustSettings,
                  segment_features: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    segs = load_tables(context, settings, ("segments",))["segments"]
    df, _ = X.cluster_all(segment_features, segs, per_clip=True)
    return dg.Output(df, metadata={"rows": dg.MetadataValue.int(df.height)})


def cluster_model_path(settings: HandclustSettings):  # noqa: ANN201
    return storage.cluster_model_path(settings.root())


def load_cluster_model(settings: HandclustSettings) -> dict | None:
    return storage.load_cluster_model(settings.root())


def _save_json(path, obj: dict) -> None:  # noqa: ANN001
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


@dg.asset(group_name="clusters", kinds={"python", "duckdb"}, code_version="cross-clip-clusters-v2",
          automation_condition=AUTO, deps=["segments"], freshness_policy=DAILY,
          description="All segments of all clips pooled, HDBSCAN per modality (cosine, min cluster size growing "
          "with sqrt(n)) and late fusion (z-score, L2, weighted concat; weight = confidence x cross-clip mixing, "
          "label-free). Cluster ids are matched to the previous run's centroids so they stay stable; the fitted "
          "spaces + centroids go to storage/models/cluster_model.json for classifying new clips.")
def cross_clip_clusters(context: dg.AssetExecutionContext, settings: HandclustSettings,
                        segment_features: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    segs = load_tables(context, settings, ("segments",))["segments"]
    previous = (load_cluster_model(settings) or {}).get("modalities")
    df, info = X.cluster_all(segment_features, segs, per_clip=False, previous=previous)
    model = {"version": 2, "clips": sorted(segs["clip"].unique().to_list()), "weights": info["weights"],
             "modalities": info["model"]}
    _save_json(cluster_model_path(settings), model)
    meta = {f"weight_{m}": dg.MetadataValue.float(round(w, 4)) for m, w in info["weights"].items()}
    meta.update({f"confidence_{m}": dg.MetadataValue.float(round(c, 4)) for m, c in info["confidence"].items()})
    for (m,), g in df.group_by(["modality"]):
        meta[f"k_{m}"] = dg.MetadataValue.int(int(g.filter(pl.col("cluster") >= 0)["cluster"].n_unique()))
        meta[f"noise_{m}"] = dg.MetadataValue.int(int((g["cluster"] < 0).sum()))
    meta["cluster_model"] = dg.MetadataValue.path(str(cluster_model_path(settings)))
    return dg.Output(df, metadata=meta)


@dg.asset_check(asset=cross_clip_clusters, description="Every segment has exactly one cluster row per modality.")
def one_cluster_row_per_segment_and_modality(cross_clip_clusters: pl.DataFrame) -> dg.AssetCheckResult:
    dup = cross_clip_clusters.group_by("clip", "segment_idx", "modality").len().filter(pl.col("len") > 1).height
    per_mod = cross_clip_clusters.group_by("modality").agg(pl.len())
    fusion = cross_clip_clusters.filter(pl.col("modality") == "fusion").height
    return dg.AssetCheckResult(passed=dup == 0 and fusion > 0, metadata={
        "duplicate_rows": dg.MetadataValue.int(dup), "fusion_rows": dg.MetadataValue.int(fusion),
        "modalities": ", ".join(per_mod["modality"].to_list())})


def _entropy_tables(clusters: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    per, summ = [], []
    for (m,), g in clusters.sort("modality").group_by(["modality"], maintain_order=True):
        df, s = cross_clip_entropy(g["cluster"].to_numpy(), g["clip"].to_numpy())
        per.append(df.with_columns(pl.lit(m).alias("modality")).select("modality", "cluster", "size", "n_clips",
                                                                       "entropy"))
        summ.append({"modality": m, **s})
    schema = {"modality": pl.Utf8, "mean_entropy": pl.Float64, "multi_clip_share": pl.Float64, "k": pl.Int64,
              "noise": pl.Int64, "n": pl.Int64}
    s = (pl.DataFrame(summ, schema=schema).with_columns(pl.col("mean_entropy").fill_nan(None))  # no cluster: null
         .sort("mean_entropy", descending=True, nulls_last=True))
    return pl.concat(per), s


@dg.asset(name="cross_clip_entropy", group_name="evaluation", kinds={"python", "duckdb"}, code_version="entropy-v1",
          automation_condition=AUTO, freshness_policy=DAILY,
          description="Cross-clip mixing entropy per modality: size-weighted mean over clusters of "
          "H(p_clip)/log(n clips in the cluster), share of clusters spanning >= 2 clips, k and noise.")
def cross_clip_entropy_table(cross_clip_clusters: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    _, s = _entropy_tables(cross_clip_clusters)
    meta = {}
    for r in s.iter_rows(named=True):
        meta.update({f"{r['modality']}_{k}": v for k, v in _score_meta(r).items()})
    return dg.Output(s, metadata=meta)




@dg.asset(group_name="evaluation", kinds={"python", "duckdb"}, code_version="cluster-entropy-v1",
          automation_condition=AUTO, description="Per cluster: size, clips it spans, mixing entropy.")
def cluster_entropy(cross_clip_clusters: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    per, _ = _entropy_tables(cross_clip_clusters)
    return dg.Output(per, metadata={"clusters": dg.MetadataValue.int(per.height)})


@dg.asset_check(asset=cluster_entropy, description="Every entropy lies in [0, 1].")
def entropy_in_unit_interval(cluster_entropy: pl.DataFrame) -> dg.AssetCheckResult:
    bad = cluster_entropy.filter((pl.col("entropy") < 0) | (pl.col("entropy") > 1 + 1e-9) | pl.col("entropy").is_nan())
    return dg.AssetCheckResult(passed=bad.height == 0, metadata={"out_of_range": dg.MetadataValue.int(bad.height)})


@dg.asset(group_name="evaluation", kinds={"python", "duckdb"}, code_version="quality-v1", automation_condition=AUTO,
          description="Per clip x modality: noise rate and number of clusters (the seed's quality matrix).")
def quality_matrix(clip_clusters: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    rows = [{"clip": c, "modality": m, **quality_row(g["cluster"].to_numpy())}
            for (c, m), g in clip_clusters.group_by(["clip", "modality"])]
    df = pl.DataFrame(rows, schema={"clip": pl.Utf8, "modality": pl.Utf8, "noise_rate": pl.Float64, "k": pl.Int64,
                                    "n": pl.Int64}).sort("clip", "modality")
    meta = {f"noise_{m}": dg.MetadataValue.float(float(g["noise_rate"].mean()))
            for (m,), g in df.group_by(["modality"])}
    return dg.Output(df, metadata=meta)


@dg.asset(group_name="evaluation", kinds={"python", "duckdb"}, code_version="phase-v1", automation_condition=AUTO,
          deps=["clips"], description="Agreement (NMI, ARI) of clusters with the file-name phase for the feature "
          "ablations: motion only, scene only, video only, motion + scene, all.")
def phase_scores(context: dg.AssetExecutionContext, settings: HandclustSettings,
                 segment_features: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    clips = load_tables(context, settings, ("clips",))["clips"]
    df = X.ablation_phase_scores(segment_features, clips)
    meta = {}
    for r in df.iter_rows(named=True):
        key = r["ablation"].replace(" + ", "_").replace(" ", "_")
        if r["nmi"] is not None:
            meta[f"nmi_{key}"] = dg.MetadataValue.float(r["nmi"])
            meta[f"ari_{key}"] = dg.MetadataValue.float(r["ari"])
    return dg.Output(df, metadata=meta)


@dg.asset(group_name="evaluation", kinds={"python", "duckdb"}, code_version="gt-scores-v1",
          automation_condition=AUTO, deps=["ground_truth"],
          description="On clips with ground truth (synthetic): frame-level MoF after Hungarian matching, NMI, ARI "
          "and segmental edit score, per modality and for the fusion.")
def ground_truth_scores(context: dg.AssetExecutionContext, settings: HandclustSettings,
                        cross_clip_clusters: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    t = load_tables(context, settings, ("segments", "ground_truth"))
    gt = t.get("ground_truth", pl.DataFrame(schema={"clip": pl.Utf8}))
    df = X.ground_truth_table(cross_clip_clusters, t["segments"], gt)
    meta = {}
    for r in df.iter_rows(named=True):
        meta.update({f"{r['modality']}_{k}": v for k, v in _score_meta({k: r[k] for k in ("mof", "nmi", "ari", "edit")}
                                                                          ).items()})
    if df.height:
        meta["best"] = df["modality"][0]
    return dg.Output(df, metadata=meta)


@dg.asset(name="repetition_scores", group_name="evaluation", kinds={"python", "duckdb"},
          code_version="repetition-scores-v1",
          automation_condition=AUTO, deps=["repetitions", "segments", "ground_truth"],
          description="On clips with ground truth: per activity, the share of segments whose repetition period was "
          "accepted (scene-SSM and flow autocorrelation agree within 30 %) and the relative error of the count "
          "(length / period); for aperiodic activities (idle) the accepted share is the false-acceptance rate.")
def repetition_scores_table(context: dg.AssetExecutionContext, settings: HandclustSettings
                            ) -> dg.Output[pl.DataFrame]:
    t = load_tables(context, settings, ("repetitions", "segments", "ground_truth"))
    if "repetitions" not in t or "segments" not in t:
        raise dg.Failure("no repetitions yet: materialize the per-clip assets first")
    gt = t.get("ground_truth", pl.DataFrame(schema={"clip": pl.Utf8, "frame_idx": pl.Int64, "activity": pl.Utf8,
                                                     "period_s": pl.Float64}))
    df = repetition_scores(t["repetitions"], t["segments"], gt)
    meta: dict = {"accepted_share_all": dg.MetadataValue.float(float(t["repetitions"]["accepted"].mean() or 0.0))}
    for r in df.iter_rows(named=True):
        key = r["activity"].replace(" ", "_")
        meta.update({f"{key}_{k}": v for k, v in _score_meta({k: r[k] for k in ("accepted_share", "median_count_error",
                                                                                 "within_10pct")}).items()})
    return dg.Output(df, metadata=meta)


def _evidence(m: str, c: int, g: pl.DataFrame, t: dict, clips: pl.DataFrame) -> ClusterEvidence:
    segs = t["segments"].join(g.select("clip", "segment_idx"), on=["clip", "segment_idx"])

    def frames_of(name: str) -> pl.DataFrame | None:
        if name not in t:
            return None
        return t[name].join(segs.select("clip", "start_frame", "end_frame"), on="clip").filter(
            (pl.col("frame_idx") >= pl.col("start_frame")) & (pl.col("frame_idx") < pl.col("end_frame")))

    ev = ClusterEvidence(cluster_id=c, modality=m, n_segments=g.height, n_clips=g["clip"].n_unique())
    if (tl := frames_of("tool_scores")) is not None and tl.height:
        top = tl.group_by("prompt").agg(pl.col("score").mean()).sort("score", descending=True).head(3)
        ev.top_tools = list(zip(top["prompt"].to_list(), top["score"].to_list()))
    if (r := frames_of("flow_rhythm")) is not None and r.height:
        ev.motion_period_s = float(r["period_s"].drop_nans().median() or np.nan)
        ev.periodicity = float(r["strength"].mean())
    if (e := frames_of("egomotion")) is not None and e.height:
        ev.camera_motion = float(e["camera_mag"].mean())
        ev.residual_motion = float(e["residual_mag"].mean())
        if "residual_layout" in e.columns:
            lay = X._arr(e["residual_layout"])
            ev.motion_layout = np.nanmean(lay, axis=0).tolist() if lay.size else []
    ph = g.join(clips.select("clip", "phase"), on="clip")["phase"]
    ev.phase = ph.mode()[0] if ph.len() else "unknown"
    return ev


def _medoids(features: pl.DataFrame, clusters: pl.DataFrame, entry: dict | None) -> dict[int, tuple[str, int]]:
    """cluster -> (clip, segment_idx) of its medoid in the space the clustering used (saved model)."""
    g = clusters.filter(pl.col("cluster") >= 0).select("clip", "segment_idx", "cluster")
    out: dict[int, tuple[str, int]] = {}
    rows = X.space_rows(features, entry) if entry is not None else None
    if rows is not None:
        k = rows[0].with_row_index("row").join(g, on=["clip", "segment_idx"])
        x = rows[1][k["row"].to_numpy()]
        for c, i in medoids(x, k["cluster"].to_numpy()).items():
            out[c] = (k["clip"][i], int(k["segment_idx"][i]))
    for (c,), grp in g.group_by(["cluster"]):  # no usable space: the first segment
        out.setdefault(int(c), (grp["clip"][0], int(grp["segment_idx"][0])))
    return out


@dg.asset(group_name="clusters", kinds={"python", "duckdb"}, code_version="labels-v2", automation_condition=AUTO,
          description="A short label per cross-clip cluster: offline from the evidence judged against the other "
          "clusters (head still/moving, hand work vs the stillest cluster, where in the frame hands/objects move, "
          "top tool, rhythm), or from a vision-language model on medoid keyframes (LabelerResource, cached by "
          "content; any HTTP failure falls back to the offline label and says why).")
def cluster_labels(context: dg.AssetExecutionContext, settings: HandclustSettings, labeler: LabelerResource,
                   cross_clip_clusters: pl.DataFrame, segment_features: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    from handclust_assets.video.frame_cache import FrameCache

    t = load_tables(context, settings, ("segments", "clips", "tool_scores", "flow_rhythm", "egomotion"))
    model = (load_cluster_model(settings) or {}).get("modalities", {})
    client = None
    if labeler.kind == "openai":
        client = OpenAICompatibleLabeler(labeler.base_url, labeler.api_key, labeler.model,
                                         max_keyframes=labeler.max_keyframes, cache_dir=settings.root() / "label_cache")
    rows = []
    for (m,), cm in cross_clip_clusters.filter(pl.col("cluster") >= 0).sort("modality").group_by(
            ["modality"], maintain_order=True):
        meds = _medoids(segment_features, cm, model.get(m))
        groups = sorted(cm.group_by(["cluster"]), key=lambda kv: kv[0][0])
        evs = [_evidence(m, int(c), g, t, t["clips"]) for (c,), g in groups]
        offline = offline_labels(evs)
        for ev, off in zip(evs, offline):
            med_clip, med_seg = meds[ev.cluster_id]
            if client is not None:
                seg = t["segments"].filter((pl.col("clip") == med_clip) & (pl.col("segment_idx") == med_seg))
                try:
                    fc = FrameCache(settings.root() / "frames" / med_clip)
                    a, b = int(seg["start_frame"][0]), int(seg["end_frame"][0])
                    ev.keyframes = [fc.read(i) for i in np.linspace(a, b - 1, 4).astype(int)]
                except FileNotFoundError:
                    pass
                label, source = client.label(ev, fallback=off)
            else:
                label, source = off, "offline"
            rows.append({"modality": m, "cluster": ev.cluster_id, "label": label, "source": source,
                         "n_segments": ev.n_segments, "n_clips": ev.n_clips, "medoid_clip": med_clip,
                         "medoid_segment": med_seg, "evidence": ev.summary()})
    schema = {"modality": pl.Utf8, "cluster": pl.Int64, "label": pl.Utf8, "source": pl.Utf8, "n_segments": pl.Int64,
              "n_clips": pl.Int64, "medoid_clip": pl.Utf8, "medoid_segment": pl.Int64, "evidence": pl.Utf8}
    df = pl.DataFrame(rows, schema=schema).sort("modality", "cluster")
    return dg.Output(df, metadata={"labels": dg.MetadataValue.int(df.height),
                                   "http_labels": dg.MetadataValue.int(int((df["source"] != "offline").sum()))})


@dg.asset(group_name="evaluation", kinds={"python", "duckdb"}, code_version="segment-map-v2",
          automation_condition=AUTO, description="2-D UMAP map (cosine) of all segments in the fusion space the "
          "cross-clip clustering used (same weights), with their fusion cluster and its label.")
def segment_map(settings: HandclustSettings, cross_clip_clusters: pl.DataFrame, segment_features: pl.DataFrame,
                cluster_labels: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    model = (load_cluster_model(settings) or {}).get("modalities", {}).get("fusion")
    rows = X.space_rows(segment_features, model) if model is not None else None
    if rows is not None:
        keys, x = rows
    else:
        mods = [m for m in X.MODALITIES if m not in X.FUSION_EXCLUDE]
        keys, blocks = X.blocks_of(segment_features, tuple(mods), how="outer")
        x = X.C.fuse_modalities(blocks, {m: 1.0 for m in blocks})[0]
    xy = umap_2d(x)
    fus = cross_clip_clusters.filter(pl.col("modality") == "fusion").select("clip", "segment_idx", "cluster")
    lab = cluster_labels.filter(pl.col("modality") == "fusion").select("cluster", "label")
    df = (keys.with_columns(pl.Series("x", xy[:, 0]), pl.Series("y", xy[:, 1]))
          .join(fus, on=["clip", "segment_idx"], how="left").join(lab, on="cluster", how="left")
          .select("clip", "segment_idx", "x", "y", "cluster", "label"))
    return dg.Output(df, metadata={"points": dg.MetadataValue.int(df.height)})


@dg.asset(group_name="evaluation", kinds={"python", "duckdb"}, code_version="alignment-v1",
          automation_condition=AUTO, deps=["scene_embeddings"],
          description="Kendall's tau of nearest-neighbour frame alignment between repetitions (segments) of each "
          "cluster, on scene embeddings, averaged over pairs (MASA / LA2DS evaluation).")
def alignment_scores(context: dg.AssetExecutionContext, settings: HandclustSettings,
                     cross_clip_clusters: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    t = load_tables(context, settings, ("segments", "scene_embeddings"))
    segs = t["segments"].join(cross_clip_clusters.filter(pl.col("cluster") >= 0), on=["clip", "segment_idx"])
    emb = {c: np.asarray(g.sort("frame_idx")["embedding"].to_list(), np.float32)
           for (c,), g in t["scene_embeddings"].group_by(["clip"])}
    rows = []
    for (m, c), g in segs.group_by(["modality", "cluster"]):
        seqs = [emb[r["clip"]][r["start_frame"]:r["end_frame"]] for r in g.head(30).iter_rows(named=True)
                if r["clip"] in emb]
        tau, n = cluster_alignment_tau(seqs, max_pairs=40)
        rows.append({"modality": m, "cluster": int(c), "mean_tau": tau, "n_pairs": n})
    df = pl.DataFrame(rows, schema={"modality": pl.Utf8, "cluster": pl.Int64, "mean_tau": pl.Float64,
                                    "n_pairs": pl.Int64}).sort("modality", "cluster")
    meta = {f"tau_{m}": dg.MetadataValue.float(float(g["mean_tau"].drop_nans().mean() or 0.0))
            for (m,), g in df.group_by(["modality"])}
    return dg.Output(df, metadata=meta)


@dg.multi_asset(
    group_name="evaluation",
    outs={"anomaly_scores": dg.AssetOut(kinds={"python", "duckdb"}, automation_condition=AUTO),
          "anomalies": dg.AssetOut(kinds={"python", "duckdb"}, automation_condition=AUTO)},
    deps=["video_embeddings", "scene_embeddings"],
    code_version="anomalies-v1",
    description="EgoClean anomalies per clip: row-mean typicality of the V-JEPA 2 window self-similarity (scene "
    "embeddings pooled over 1-s windows when V-JEPA is absent: the `source` column says which), 1 - typicality, "
    "EMA, Otsu + hysteresis -> spans.",
)
def anomaly_detection(context: dg.AssetExecutionContext, settings: HandclustSettings):  # noqa: ANN201
    t = load_tables(context, settings, ("video_embeddings", "scene_embeddings"))
    scores, spans = [], []
    src_tab = "video_embeddings" if "video_embeddings" in t else "scene_embeddings"
    for (clip,), g in t[src_tab].group_by(["clip"]):
        if src_tab == "video_embeddings":
            g = g.sort("window_idx")
            emb, ts, te = np.asarray(g["embedding"].to_list()), g["t_start_s"].to_numpy(), g["t_end_s"].to_numpy()
        else:
            g = g.sort("frame_idx").with_columns((pl.col("t_s") // 1).alias("sec"))
            w = g.group_by("sec", maintain_order=True).agg(pl.col("embedding"))
            emb = np.stack([np.mean(np.asarray(e.to_list()), axis=0) for e in w["embedding"]])
            ts = w["sec"].to_numpy().astype(float)
            te = ts + 1
        sc, sp = detect_anomalies(emb, ts, te)
        scores.append(sc.with_columns(pl.lit(clip).alias("clip"), pl.lit(src_tab).alias("source")))
        spans.append(sp.with_columns(pl.lit(clip).alias("clip"), pl.lit(src_tab).alias("source")))
    sc = pl.concat(scores).select("clip", "source", *SCORE_SCHEMA)
    sp = (pl.concat(spans) if spans else pl.DataFrame(schema={**SPAN_SCHEMA, "clip": pl.Utf8, "source": pl.Utf8})
          ).select("clip", "source", *SPAN_SCHEMA)
    yield dg.Output(sc, output_name="anomaly_scores", metadata={"source": src_tab})
    yield dg.Output(sp, output_name="anomalies", metadata={"spans": dg.MetadataValue.int(sp.height),
                                                           "source": src_tab})
