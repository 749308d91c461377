"""The code location: every asset, check, job, sensor and schedule of HandClust."""


import dagster as dg

from handclust_assets.assets import ingest, motion
from handclust_assets.io_manager import DuckDBParquetIOManager
from handclust_assets.sensors import build_video_folder_sensor
from handclust_assets.settings import HandclustSettings

ingest_assets = [ingest.clips, ingest.frame_cache, ingest.ground_truth]
motion_assets = [motion.flow, motion.flow_rhythm, motion.egomotion]
per_clip_assets = [*ingest_assets, *motion_assets]
cross_clip_assets: list = []

clip_job = dg.define_asset_job(
    "process_clip",
    selection=dg.AssetSelection.assets(*per_clip_assets),
    description="Every per-clip asset for one clip partition (ingest, modalities, segments, per-clip metrics).",
)
CLIP_JOB = clip_job.name
CROSS_JOB = "cross_clip"
cross_job = dg.define_asset_job(
    CROSS_JOB,
    selection=dg.AssetSelection.assets(*cross_clip_assets) if cross_clip_assets else dg.AssetSelection.assets(),
    description="Cross-clip clustering, evaluation and the dashboard over every clip partition.",
)
ingest_job = dg.define_asset_job("ingest_clips", selection=dg.AssetSelection.assets(*ingest_assets))


def build_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[*per_clip_assets, *cross_clip_assets],
        jobs=[clip_job, cross_job, ingest_job],
        sensors=[build_video_folder_sensor(clip_job.name)],
        resources={
            "io_manager": DuckDBParquetIOManager(root=dg.EnvVar("HANDCLUST_STORAGE").get_value("") or ""),
            "settings": HandclustSettings(),
        },
    )


defs = build_defs()
