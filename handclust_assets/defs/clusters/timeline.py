"""`activity_timeline` (per clip): which discovered activity happens when, for every clip — also for a clip that
arrived after the last cross-clip clustering, placed into the existing clusters without re-clustering."""

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.clusters.assets import PER_CLIP_TABLES, load_cluster_model
from handclust_assets.defs.common import named_failures
from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.defs.resources import HandclustSettings
from handclust_assets.lib import tables as T
from handclust_assets.science import crossclip as X

TIMELINE_SCHEMA = {
    "clip": pl.Utf8,
    "segment_idx": pl.Int64,
    "start_s": pl.Float64,
    "end_s": pl.Float64,
    "cluster": pl.Int64,  # fusion cluster; -1 = noise (clustered) or novel (classified)
    "activity": pl.Int64,  # the cluster, or the nearest one for noise/novel segments: a full timeline
    "distance": pl.Float64,  # to the activity's centroid in the fusion space (NaN when clustered)
    "label": pl.Utf8,
    "source": pl.Utf8,  # clustered (in the pooled clustering) | classified (placed with the saved model)
}


def pooled_rows(clip: str, segments: pl.DataFrame, clustered: pl.DataFrame | None) -> pl.DataFrame | None:
    """The clip's fusion rows in the pooled clustering when it covers every segment of the clip, else None."""
    if clustered is None or not clustered.height:
        return None
    fus = clustered.filter((pl.col("clip") == clip) & (pl.col("modality") == "fusion"))
    return fus if fus.height == segments.filter(pl.col("clip") == clip).height else None


def timeline_for_clip(clip: str, segments: pl.DataFrame, clustered: pl.DataFrame | None,
                      features: pl.DataFrame | None, model: dict | None, labels: pl.DataFrame | None) -> pl.DataFrame:
    """Plain function behind the asset: rows for every segment of `clip`, in segment order. `features` (the
    clip's segment descriptors) are needed only when the clip is not in the pooled clustering."""
    seg = segments.filter(pl.col("clip") == clip).sort("segment_idx").select("clip", "segment_idx", "start_s", "end_s")
    fus = pooled_rows(clip, segments, clustered)
    if fus is not None:
        rows = seg.join(fus.select("segment_idx", "cluster", pl.col("cluster_full").alias("activity")),
                        on="segment_idx", how="left").with_columns(
            pl.lit(float("nan")).alias("distance"), pl.lit("clustered").alias("source"))
    else:
        if model is None or "fusion" not in model.get("modalities", {}):
            raise ValueError(f"{clip}: not in the cross-clip clustering and no saved cluster model to classify it "
                             "with: materialize cross_clip_clusters first")
        if features is None:
            raise ValueError(f"{clip}: not in the cross-clip clustering: its segment descriptors are needed")
        cl = X.classify_segments(features.filter(pl.col("clip") == clip), {"fusion": model["modalities"]["fusion"]})
        rows = seg.join(cl.select("segment_idx", "cluster", pl.col("nearest_cluster").alias("activity"), "distance"),
                        on="segment_idx", how="left").with_columns(pl.lit("classified").alias("source"))
    lab = None
    if labels is not None and labels.height:
        lab = labels.filter(pl.col("modality") == "fusion").select(pl.col("cluster").alias("activity"), "label")
    rows = rows.join(lab, on="activity", how="left") if lab is not None else rows.with_columns(
        pl.lit(None, pl.Utf8).alias("label"))
    rows = rows.with_columns(pl.col("label").fill_null(pl.format("activity {}", pl.col("activity"))))
    return rows.select(list(TIMELINE_SCHEMA)).cast(TIMELINE_SCHEMA).sort("segment_idx")


@dg.asset(
    partitions_def=clip_partitions,
    group_name="clusters",
    kinds={"python", "duckdb"},
    deps=["segments", "segment_features", "cross_clip_clusters", "cluster_labels"],
    code_version="activity-timeline-v1",
    automation_condition=dg.AutomationCondition.eager(),
    description="Per clip, every segment's discovered activity (fusion cluster, noise given its nearest activity) "
    "with its label. A clip that is not yet in the pooled clustering is classified against the saved cluster model "
    "(storage/models/cluster_model.json) without re-clustering; `source` says which, `cluster` = -1 marks a "
    "segment outside every known activity (novel).",
)
@named_failures
def activity_timeline(context: dg.AssetExecutionContext, settings: HandclustSettings) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    root = settings.root()

    def read(name: str, parts: list[str] | None = None) -> pl.DataFrame | None:
        try:
            return T.read_table(root, name, parts)
        except FileNotFoundError:
            return None

    segs = read("segments", [clip])
    if segs is None:
        raise dg.Failure(f"{clip}: no segments yet (materialize the clip's per-clip assets first)")
    clustered = read("cross_clip_clusters")
    feats = None
    if pooled_rows(clip, segs, clustered) is None:  # a new clip: its descriptors, to classify it
        t = {n: df for n in PER_CLIP_TABLES if (df := read(n, [clip])) is not None}
        feats = X.segment_features(t["segments"], t)
    try:
        df = timeline_for_clip(clip, segs, clustered, feats, load_cluster_model(settings), read("cluster_labels"))
    except ValueError as e:
        raise dg.Failure(str(e)) from e
    novel = float((df["cluster"] < 0).mean()) if df.height else 0.0
    context.log.info(f"{clip}: {df.height} segments, source={df['source'][0] if df.height else '-'}, "
                     f"{novel:.0%} noise/novel, {df['activity'].n_unique()} activities")
    return dg.Output(df, metadata={
        "segments": dg.MetadataValue.int(df.height),
        "activities": dg.MetadataValue.int(int(df["activity"].n_unique())),
        "novel_or_noise_share": dg.MetadataValue.float(round(novel, 4)),
        "classified": dg.MetadataValue.bool(bool(df.height and df["source"][0] == "classified")),
        "mean_distance": dg.MetadataValue.float(float(np.nan_to_num(df["distance"].mean() or 0.0))),
    })
