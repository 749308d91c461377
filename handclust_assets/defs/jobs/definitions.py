import os

import dagster as dg

from handclust_assets.defs.jobs import (
    cross_clip,
    cross_clip_code_versions,
    cross_clip_downstream,
    jobs,
    per_clip_code_versions,
    per_clip_downstream,
    process_clip,
)
from handclust_assets.defs.jobs.code_update import build_code_update_sensor

# Cross-clip assets, timelines and overlays follow new clip results by their automation conditions. This sensor
# evaluates them; it is on by default (Dagster's own default sensor starts stopped).
automation = dg.AutomationConditionSensorDefinition(
    "handclust_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=int(os.environ.get("HANDCLUST_AUTOMATION_INTERVAL_S", "2")),
    description="Refreshes the cross-clip graph and the dashboard after a burst of clips (once no clip run is queued "
    "or running), then every clip's timeline and overlay in one run.",
)

clip_versions = per_clip_code_versions()
code_update = build_code_update_sensor([process_clip, cross_clip], clip_versions,
                                       per_clip_downstream(list(clip_versions)), cross_clip_code_versions(),
                                       cross_clip_downstream())

defs = dg.Definitions(jobs=jobs, sensors=[automation, code_update])
