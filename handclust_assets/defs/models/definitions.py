import dagster as dg

from handclust_assets.defs.jobs import MODEL_RESOURCES, REEMBED_JOB, reembed_downstream
from handclust_assets.defs.models import assets
from handclust_assets.defs.models.sensors import build_model_update_sensor

defs = dg.Definitions(assets=assets.assets,
                      sensors=[build_model_update_sensor(REEMBED_JOB, MODEL_RESOURCES, reembed_downstream())])
