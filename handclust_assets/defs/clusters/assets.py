"""Clusters: segment descriptors pooled across clips, per-clip and pooled clustering with late fusion, labels.

Every per-clip table arrives as an ordinary input holding every clip partition that has results (the IO manager
leaves out, and names, partitions without results), so one bad clip or one unavailable model never blocks them.
"""

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.common import measured
from handclust_assets.defs.ingest.assets import open_cache
from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.defs.resources import LabelerResource, StorageResource
from handclust_assets.lib.same_video import EVERY_PARTITION, left_out_duplicates

Frame = pl.DataFrame | None
# the per-clip tables the descriptors are built from (the keypoint tables stay per clip)
DESCRIPTOR_TABLES = ("scene_embeddings", "video_embeddings", "tool_scores", "flow", "flow_rhythm", "egomotion",
                     "pose_segments", "hand_segments")


def present(**tables: Frame) -> dict[str, pl.DataFrame]:
    """The inputs that exist (a table no clip has results for arrives as None)."""
    return {k: v for k, v in tables.items() if v is not None}


def clip_coverage(context: dg.AssetExecutionContext, segments: pl.DataFrame, same: dict[str, str] | None = None
                  ) -> dict[str, dg.MetadataValue]:
    """Which clip partitions the cross-clip result covers, and which it left out: without segments, or holding the
    same video as a clip it covers (`same`: clip -> the clip kept, `lib.same_video`; the IO manager left them out)."""
    known = sorted(context.instance.get_dynamic_partitions(clip_partitions.name))
    used = set(segments["clip"].unique().to_list())
    same = same or {}
    left = [k for k in known if k not in used and k not in same]
    if left:
        context.log.warning(f"left out {len(left)} clip(s) without segments: {', '.join(left[:20])}")
    twins = [f"{k} (= {same[k]})" for k in known if k in same and k not in used]
    return {"clips_used": dg.MetadataValue.int(len(used)), "clips_left_out": dg.MetadataValue.int(len(left)),
            "left_out": dg.MetadataValue.text(", ".join(left) or "none"),
            "clips_same_video": dg.MetadataValue.int(len(twins)),
            "same_video": dg.MetadataValue.text(", ".join(twins) or "none")}


@dg.asset(group_name="clusters", code_version="segment-features-v1",
          kinds={"python", "duckdb"},
          description="Per segment and modality, the pooled descriptor: scene mean, V-JEPA windows, log-normalised "
          "tool histogram, flow, flow-rhythm and ego-motion summaries, pose/hands where seen.")
@measured
def segment_features(context: dg.AssetExecutionContext, storage: StorageResource, segments: Frame,
                     scene_embeddings: Frame, video_embeddings: Frame, tool_scores: Frame, flow: Frame,
                     flow_rhythm: Frame, egomotion: Frame, pose_segments: Frame, hand_segments: Frame
                     ) -> dg.Output[pl.DataFrame]:
    if segments is None or not segments.height:
        raise dg.Failure("no clip has segments yet: materialize the per-clip assets first")
    from handclust_assets.science import crossclip

    tables = present(scene_embeddings=scene_embeddings, video_embeddings=video_embeddings, tool_scores=tool_scores,
                     flow=flow, flow_rhythm=flow_rhythm, egomotion=egomotion, pose_segments=pose_segments,
                     hand_segments=hand_segments)
    feats = crossclip.segment_features(segments, tables)
    mods = sorted(feats["modality"].unique().to_list())
    missing = [m for m in crossclip.MODALITIES if m not in mods]
    if missing:
        context.log.warning(f"modalities without results (skipped): {missing}")
    return dg.Output(feats, metadata={"modalities": ", ".join(mods), "skipped": ", ".join(missing) or "none",
                                      "n_segments": dg.MetadataValue.int(segments.height),
                                      **clip_coverage(context, segments, left_out_duplicates(storage.store()))})


@dg.asset(group_name="clusters", code_version="pooled-clips-v4", kinds={"python", "duckdb"},  # v4: why
          deps=[segment_features], ins={"clips": dg.AssetIn(metadata=EVERY_PARTITION)},
          description="One row per clip partition: whether the cross-clip graph pools it, and as which clip. A video "
          "renamed, moved or copied within the watched folder is a partition of its own (equal content hash, or "
          "the same footage under other bytes: `footage_signature`; or a piece of a longer clip, cut without "
          "encoding again: pooled as the longer one); the "
          "graph pools each video once, as the first of its partitions whose file is still there; `why` says why "
          "a partition is pooled as another (same bytes, same footage, piece). Per-clip tables keep every "
          "partition: join a notebook query on `pooled` to count each video once.")
def pooled_clips(context: dg.AssetExecutionContext, storage: StorageResource, clips: Frame
                 ) -> dg.Output[pl.DataFrame]:
    from handclust_assets.lib.same_video import footage_relations, pooled_table

    if clips is None or not clips.height:
        raise dg.Failure("no clip has a `clips` row yet: materialize a clip run first")
    df = pooled_table(clips, *footage_relations(storage.store(), clips["clip"].to_list()))
    same = df.filter(~pl.col("pooled"))
    if same.height:
        context.log.info(f"{same.height} clip partition(s) hold a video another is pooled as: "
                         + ", ".join(f"{k} (= {v})" for k, v in same.select("clip", "pooled_as").rows()[:20]))
    return dg.Output(df, metadata={"clips": dg.MetadataValue.int(df.height),
                                   "pooled": dg.MetadataValue.int(int(df["pooled"].sum())),
                                   "same_video": dg.MetadataValue.int(same.height)})


@dg.asset(group_name="clusters", code_version="clip-clusters-v1",
          kinds={"python", "duckdb"},
          description="HDBSCAN per modality per clip (and the fusion per clip); noise = -1, cluster_full gives "
          "noise segments their nearest cluster.")
@measured
def clip_clusters(segment_features: pl.DataFrame, segments: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science import crossclip

    df, _ = crossclip.cluster_all(segment_features, segments, per_clip=True)
    return dg.Output(df)


@dg.asset(group_name="clusters", code_version="cross-clip-clusters-v2",
          kinds={"python", "duckdb"},
          description="All segments of all clips pooled, HDBSCAN per modality (cosine, min cluster size growing with "
          "sqrt(n)) and late fusion (z-score, L2, weighted concat; weight = confidence x cross-clip mixing, "
          "label-free). Cluster ids are matched to the previous run's centroids so they stay stable; the fitted "
          "spaces + centroids go to <storage>/models/cluster_model.json for classifying new clips.")
@measured
def cross_clip_clusters(storage: StorageResource, segment_features: pl.DataFrame, segments: pl.DataFrame
                        ) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science import crossclip

    store = storage.store()
    previous = (store.load_cluster_model() or {}).get("modalities")
    df, info = crossclip.cluster_all(segment_features, segments, per_clip=False, previous=previous)
    path = store.save_cluster_model({"version": 2, "clips": sorted(segments["clip"].unique().to_list()),
                                     "weights": info["weights"], "modalities": info["model"]})
    meta = {f"weight_{m}": dg.MetadataValue.float(round(w, 4)) for m, w in info["weights"].items()}
    meta.update({f"confidence_{m}": dg.MetadataValue.float(round(c, 4)) for m, c in info["confidence"].items()})
    for (m,), g in df.group_by(["modality"]):
        meta[f"k_{m}"] = dg.MetadataValue.int(int(g.filter(pl.col("cluster") >= 0)["cluster"].n_unique()))
        meta[f"noise_{m}"] = dg.MetadataValue.int(int((g["cluster"] < 0).sum()))
    meta["cluster_model"] = dg.MetadataValue.path(path)
    return dg.Output(df, metadata=meta)


@dg.asset_check(asset=cross_clip_clusters, description="Every segment has exactly one cluster row per modality.")
def one_cluster_row_per_segment_and_modality(cross_clip_clusters: pl.DataFrame) -> dg.AssetCheckResult:
    dup = cross_clip_clusters.group_by("clip", "segment_idx", "modality").len().filter(pl.col("len") > 1).height
    per_mod = cross_clip_clusters.group_by("modality").agg(pl.len())
    fusion = cross_clip_clusters.filter(pl.col("modality") == "fusion").height
    return dg.AssetCheckResult(passed=dup == 0 and fusion > 0, metadata={
        "duplicate_rows": dg.MetadataValue.int(dup), "fusion_rows": dg.MetadataValue.int(fusion),
        "modalities": ", ".join(sorted(per_mod["modality"].to_list()))})


@dg.asset(group_name="clusters", code_version="labels-v2",
          kinds={"python", "duckdb"},
          description="A short label per cross-clip cluster: offline from the evidence judged against the other "
          "clusters (head still/moving, hand work vs the stillest cluster, where in the frame hands/objects move, "
          "top tool, rhythm), or from a vision-language model on medoid keyframes (LabelerResource, cached by "
          "content; any HTTP failure falls back to the offline label and says why).")
@measured
def cluster_labels(storage: StorageResource, labeler: LabelerResource, cross_clip_clusters: pl.DataFrame,
                   segment_features: pl.DataFrame, segments: pl.DataFrame, clips: Frame, tool_scores: Frame,
                   flow_rhythm: Frame, egomotion: Frame) -> dg.Output[pl.DataFrame]:
    from handclust_assets.lib.labeling import OpenAICompatibleLabeler, label_clustering, medoid_segments

    store = storage.store()
    model = (store.load_cluster_model() or {}).get("modalities", {})
    tables = {"segments": segments, **present(clips=clips, tool_scores=tool_scores, flow_rhythm=flow_rhythm,
                                              egomotion=egomotion)}
    medoids = {m: medoid_segments(segment_features, cross_clip_clusters.filter(pl.col("modality") == m), model.get(m))
               for m in cross_clip_clusters["modality"].unique().to_list()}
    client = None
    if labeler.kind == "openai":
        client = OpenAICompatibleLabeler(labeler.base_url, labeler.api_key, labeler.model,
                                         max_keyframes=labeler.max_keyframes,
                                         cache_dir=store.sub("label_cache"))

    def keyframes(clip: str, a: int, b: int) -> list[np.ndarray]:
        fc = open_cache(storage, clip)
        return [fc.read(i) for i in np.linspace(a, max(a, b - 1), 4).astype(int)]

    df = label_clustering(cross_clip_clusters, tables, medoids, client, keyframes)
    return dg.Output(df, metadata={"labels": dg.MetadataValue.int(df.height),
                                   "http_labels": dg.MetadataValue.int(int((df["source"] != "offline").sum()))})


@dg.asset(group_name="clusters", code_version="segment-map-v2",
          kinds={"python", "duckdb"},
          description="2-D UMAP map (cosine) of all segments in the fusion space the cross-clip clustering used "
          "(same weights), with their fusion cluster and its label.")
@measured
def segment_map(storage: StorageResource, cross_clip_clusters: pl.DataFrame, segment_features: pl.DataFrame,
                cluster_labels: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science import crossclip
    from handclust_assets.science.clustering import umap_2d

    model = (storage.store().load_cluster_model() or {}).get("modalities", {}).get("fusion")
    keys, x = crossclip.fusion_rows(segment_features, model)
    xy = umap_2d(x)
    fus = cross_clip_clusters.filter(pl.col("modality") == "fusion").select("clip", "segment_idx", "cluster")
    lab = cluster_labels.filter(pl.col("modality") == "fusion").select("cluster", "label")
    df = (keys.with_columns(pl.Series("x", xy[:, 0]), pl.Series("y", xy[:, 1]))
          .join(fus, on=["clip", "segment_idx"], how="left").join(lab, on="cluster", how="left")
          .select("clip", "segment_idx", "x", "y", "cluster", "label"))
    return dg.Output(df, metadata={"points": dg.MetadataValue.int(df.height)})


assets = [segment_features, pooled_clips, clip_clusters, cross_clip_clusters, cluster_labels, segment_map]
checks = [one_cluster_row_per_segment_and_modality]
