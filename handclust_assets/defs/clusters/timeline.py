"""`activity_timeline`: which discovered activity happens when, for every clip with segments — a clip in the
pooled clustering gets its clusters, a clip that arrived after it is placed into the existing clusters with the
saved cluster model, without re-clustering. One table for all clips, rebuilt with the cross-clip graph (in the
same run), so a burst of clips costs one run."""

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.clusters.assets import DESCRIPTOR_TABLES
from handclust_assets.defs.common import measured
from handclust_assets.defs.resources import StorageResource
from handclust_assets.lib import tables
from handclust_assets.lib.errors import NothingYet
from handclust_assets.lib.storage import Storage

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
    from handclust_assets.science import crossclip

    seg = segments.filter(pl.col("clip") == clip).sort("segment_idx").select("clip", "segment_idx", "start_s", "end_s")
    fus = pooled_rows(clip, segments, clustered)
    if fus is not None:
        rows = seg.join(fus.select("segment_idx", "cluster", pl.col("cluster_full").alias("activity")),
                        on="segment_idx", how="left").with_columns(
            pl.lit(float("nan")).alias("distance"), pl.lit("clustered").alias("source"))
    else:
        if model is None or "fusion" not in model.get("modalities", {}):
            raise NothingYet(f"{clip}: not in a pooled clustering yet and no saved cluster model to classify it "
                             "with; its timeline appears after the first cross-clip clustering")
        if features is None:
            raise ValueError(f"{clip}: not in the cross-clip clustering: its segment descriptors are needed")
        cl = crossclip.classify_segments(features.filter(pl.col("clip") == clip),
                                         {"fusion": model["modalities"]["fusion"]})
        rows = seg.join(cl.select("segment_idx", "cluster", pl.col("nearest_cluster").alias("activity"), "distance"),
                        on="segment_idx", how="left").with_columns(pl.lit("classified").alias("source"))
    lab = None
    if labels is not None and labels.height:
        lab = labels.filter(pl.col("modality") == "fusion").select(pl.col("cluster").alias("activity"), "label")
    rows = rows.join(lab, on="activity", how="left") if lab is not None else rows.with_columns(
        pl.lit(None, pl.Utf8).alias("label"))
    rows = rows.with_columns(pl.col("label").fill_null(pl.format("activity {}", pl.col("activity"))))
    return rows.select(list(TIMELINE_SCHEMA)).cast(TIMELINE_SCHEMA).sort("segment_idx")


def clip_descriptors(store: Storage, clip: str, segments: pl.DataFrame) -> pl.DataFrame:
    """A clip's segment descriptors from its own per-clip tables (read only for a clip outside the pooling)."""
    from handclust_assets.science import crossclip

    t = {}
    for name in DESCRIPTOR_TABLES:
        try:
            t[name] = tables.read_table(store, name, [clip])
        except FileNotFoundError:
            continue
    return crossclip.segment_features(segments.filter(pl.col("clip") == clip), t)


@dg.asset(
    group_name="clusters",
    code_version="activity-timeline-v2",
    kinds={"python", "duckdb"},
    description="Per clip, every segment's discovered activity (fusion cluster, noise given its nearest activity) "
    "with its label. A clip that is not yet in the pooled clustering is classified against the saved cluster model "
    "(<storage>/models/cluster_model.json) without re-clustering; `source` says which, `cluster` = -1 marks a "
    "segment outside every known activity (novel).",
)
@measured
def activity_timeline(context: dg.AssetExecutionContext, storage: StorageResource, segments: pl.DataFrame,
                      cross_clip_clusters: pl.DataFrame | None, cluster_labels: pl.DataFrame | None
                      ) -> dg.Output[pl.DataFrame]:
    store = storage.store()
    model = store.load_cluster_model()
    frames, waiting = [], []
    for clip in sorted(segments["clip"].unique().to_list()):
        feats = None if pooled_rows(clip, segments, cross_clip_clusters) is not None else clip_descriptors(
            store, clip, segments)
        try:
            frames.append(timeline_for_clip(clip, segments, cross_clip_clusters, feats, model, cluster_labels))
        except NothingYet:
            waiting.append(clip)
        except ValueError as e:
            raise dg.Failure(str(e)) from e
    if waiting:
        context.log.warning(f"{len(waiting)} clip(s) have no timeline until a pooled clustering exists: {waiting[:10]}")
    df = pl.concat(frames) if frames else pl.DataFrame(schema=TIMELINE_SCHEMA)
    novel = float((df["cluster"] < 0).mean()) if df.height else 0.0
    sources = ", ".join(sorted(df["source"].unique().to_list())) or "-"
    context.log.info(f"{df['clip'].n_unique()} clip(s), {df.height} segments, source={sources}, {novel:.0%} "
                     f"noise/novel, {df['activity'].n_unique()} activities")
    return dg.Output(df, metadata={
        "segments": dg.MetadataValue.int(df.height),
        "activities": dg.MetadataValue.int(int(df["activity"].n_unique())),
        "novel_or_noise_share": dg.MetadataValue.float(round(novel, 4)),
        "clips": dg.MetadataValue.int(df["clip"].n_unique()),
        "classified_clips": dg.MetadataValue.int(df.filter(pl.col("source") == "classified")["clip"].n_unique()),
        "mean_distance": dg.MetadataValue.float(float(np.nan_to_num(df["distance"].mean() or 0.0))),
    })


assets = [activity_timeline]
