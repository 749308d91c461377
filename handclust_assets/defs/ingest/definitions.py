import dagster as dg

from handclust_assets.defs.ingest import assets, footage, hub
from handclust_assets.defs.ingest.sensors import build_video_folder_sensor
from handclust_assets.defs.jobs import CLIP_JOB

defs = dg.Definitions(assets=[*assets.assets, *footage.assets], sensors=[build_video_folder_sensor(CLIP_JOB)],
                      jobs=hub.jobs)
