"""The code location: every asset, check, job, sensor and schedule of HandClust."""


import dagster as dg

from handclust_assets.defs.clusters import assets as crossclip
from handclust_assets.defs.clusters import timeline
from handclust_assets.defs.dashboard import assets as dashboard
from handclust_assets.defs.ingest import assets as ingest
from handclust_assets.defs.io_manager import DuckDBParquetIOManager
from handclust_assets.defs.modalities import body, checks, embeddings, motion
from handclust_assets.defs.resources import HandclustSettings, MediaPipeResource
from handclust_assets.defs.segments import assets as segments
from handclust_assets.defs.sensors import build_model_update_sensor, build_video_folder_sensor

ingest_assets = [ingest.clips, ingest.frame_cache, ingest.ground_truth]
motion_assets = [motion.flow, motion.flow_rhythm, motion.egomotion]
model_assets = [embeddings.scene_embeddings, embeddings.video_embeddings, embeddings.tool_scores]
segment_assets = [segments.segments, segments.repetitions]
body_assets = [body.pose, body.hands, body.pose_segments, body.hand_segments]
per_clip_assets = [*ingest_assets, *motion_assets, *model_assets, *segment_assets, *body_assets]
cross_clip_assets = [
    crossclip.segment_features,
    crossclip.clip_clusters,
    crossclip.cross_clip_clusters,
    crossclip.cross_clip_entropy_table,
    crossclip.cluster_entropy,
    crossclip.quality_matrix,
    crossclip.phase_scores,
    crossclip.ground_truth_scores,
    crossclip.repetition_scores_table,
    crossclip.cluster_labels,
    crossclip.segment_map,
    crossclip.alignment_scores,
    crossclip.anomaly_detection,
]
timeline_assets = [timeline.activity_timeline]  # per clip, after the cross-clip clustering
dashboard_assets = [*dashboard.dashboard_assets]  # lab_dashboard, preview_reel, activity_overlays
asset_checks = [
    *checks.model_checks,
    segments.segments_cover_clip,
    crossclip.one_cluster_row_per_segment_and_modality,
    crossclip.entropy_in_unit_interval,
]

clip_job = dg.define_asset_job(
    "process_clip",
    selection=dg.AssetSelection.assets(*per_clip_assets),
    description="Every per-clip asset for one clip partition (ingest, modalities, segments, per-clip metrics).",
)
CLIP_JOB = clip_job.name
CROSS_JOB = "cross_clip"
cross_job = dg.define_asset_job(
    CROSS_JOB,
    selection=dg.AssetSelection.assets(*cross_clip_assets, *dashboard.cross_clip_dashboard_assets),
    description="Cross-clip clustering, evaluation and the dashboard over every clip partition.",
)
ingest_job = dg.define_asset_job(
    "ingest_clips", selection=dg.AssetSelection.assets(*ingest_assets),
    description="Per clip partition: probe, phase, fisheye rectification and the frame cache (decode once).")
reembed_job = dg.define_asset_job(
    "reembed_models",
    selection=(dg.AssetSelection.assets(*model_assets, body.pose, body.hands).downstream()
               & dg.AssetSelection.assets(*per_clip_assets)),
    description="Per clip partition: every model-backed modality (scene, video, tools, pose, hands) and the per-clip "
    "assets built on them; what the model_update_sensor runs for stale partitions, and what to backfill by hand.",
)
timeline_job = dg.define_asset_job(
    "classify_clips",
    selection=dg.AssetSelection.assets(*timeline_assets),
    description="Per clip partition: the activity timeline; clips not yet in the pooled clustering are classified "
    "against the saved cluster model without re-clustering.",
)
overlay_job = dg.define_asset_job(
    "render_overlays",
    selection=dg.AssetSelection.assets(dashboard.activity_overlays),
    description="Per clip partition: the activity overlay video (fusion cluster label + rolling timeline).",
)

# model asset -> the resource whose version() says which model it should be built with now
MODEL_RESOURCES = {"scene_embeddings": "scene_model", "video_embeddings": "video_model", "tool_scores": "tool_model"}
MODEL_RESOURCES |= {"pose": "mediapipe", "hands": "mediapipe"}


def per_clip_downstream(key: dg.AssetKey, assets: list[dg.AssetsDefinition]) -> list[dg.AssetKey]:
    """Every per-clip asset that (transitively) depends on `key`: what a re-embed run must rebuild."""
    selection = dg.AssetSelection.assets(key).downstream() & dg.AssetSelection.assets(*assets)
    return sorted((k for k in selection.resolve(assets) if k != key), key=lambda k: k.to_user_string())


def build_sensors() -> list[dg.SensorDefinition]:
    model_keys = {n: r for n, r in MODEL_RESOURCES.items()
                  if any(dg.AssetKey(n) in a.keys for a in per_clip_assets)}
    downstream = {n: per_clip_downstream(dg.AssetKey(n), per_clip_assets) for n in model_keys}
    return [build_video_folder_sensor(clip_job.name),
            build_model_update_sensor(clip_job.name, model_keys, downstream)]


def build_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[*per_clip_assets, *cross_clip_assets, *timeline_assets, *dashboard_assets],
        asset_checks=asset_checks,
        jobs=[clip_job, cross_job, ingest_job, overlay_job, timeline_job, reembed_job],
        sensors=build_sensors(),
        resources={
            "io_manager": DuckDBParquetIOManager(root=dg.EnvVar("HANDCLUST_STORAGE").get_value("") or ""),
            "settings": HandclustSettings(),
            "scene_model": embeddings.SCENE_MODEL,
            "video_model": embeddings.VIDEO_MODEL,
            "tool_model": embeddings.TOOL_MODEL,
            "labeler": crossclip.LabelerResource(),
            "mediapipe": MediaPipeResource(),
        },
    )


defs = build_defs()
