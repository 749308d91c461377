"""The code location: every asset, check, job, sensor and schedule of HandClust."""


import dagster as dg

from handclust_assets.assets import body, crossclip, dashboard, embeddings, ingest, motion, segments
from handclust_assets.io_manager import DuckDBParquetIOManager
from handclust_assets.models.resources import MediaPipeResource
from handclust_assets.sensors import build_video_folder_sensor
from handclust_assets.settings import HandclustSettings

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
    crossclip.cluster_labels,
    crossclip.segment_map,
    crossclip.alignment_scores,
    crossclip.anomaly_detection,
]
dashboard_assets = [*dashboard.dashboard_assets]  # lab_dashboard, preview_reel, activity_overlays
asset_checks = [
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
ingest_job = dg.define_asset_job("ingest_clips", selection=dg.AssetSelection.assets(*ingest_assets))
overlay_job = dg.define_asset_job(
    "render_overlays",
    selection=dg.AssetSelection.assets(dashboard.activity_overlays),
    description="Per clip partition: the activity overlay video (fusion cluster label + rolling timeline).",
)


def build_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[*per_clip_assets, *cross_clip_assets, *dashboard_assets],
        asset_checks=asset_checks,
        jobs=[clip_job, cross_job, ingest_job, overlay_job],
        sensors=[build_video_folder_sensor(clip_job.name)],
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
