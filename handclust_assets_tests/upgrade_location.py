"""A small code location for the upgrade test through the real daemon (`test_code_update.py`): one per-clip asset,
a cross-clip asset that automation refreshes after clip results change (HandClust's own condition), and one that
nothing but a code change re-runs; their code versions come from the environment, so the test "upgrades" by
starting the daemon with other values. The sensor is HandClust's `code_update_sensor`."""

import os

import dagster as dg

from handclust_assets.defs.common import CROSS_CLIP
from handclust_assets.defs.jobs.code_update import build_code_update_sensor
from handclust_assets.defs.partitions import clip_partitions

CLIP_VERSION = os.environ.get("TOY_CLIP_VERSION", "clip-v1")
REPORT_VERSION = os.environ.get("TOY_REPORT_VERSION", "report-v1")


@dg.asset(partitions_def=clip_partitions, code_version=CLIP_VERSION)
def clip_result(context: dg.AssetExecutionContext) -> str:
    return f"{context.partition_key} by {CLIP_VERSION}"


@dg.asset(code_version="pooled-v1", deps=[clip_result], automation_condition=CROSS_CLIP)
def pooled_result() -> str:
    return "pooled"


@dg.asset(code_version=REPORT_VERSION)
def report() -> str:
    return f"report by {REPORT_VERSION}"


process_clip = dg.define_asset_job("process_clip", selection=[clip_result])
cross_clip = dg.define_asset_job("cross_clip", selection=[pooled_result, report])
interval = int(os.environ.get("TOY_AUTOMATION_INTERVAL_S", "1"))
defs = dg.Definitions(
    assets=[clip_result, pooled_result, report],
    jobs=[process_clip, cross_clip],
    sensors=[
        build_code_update_sensor([process_clip, cross_clip], {"clip_result": CLIP_VERSION}, {},
                                 {"pooled_result": "pooled-v1", "report": REPORT_VERSION}, {}, max_queued=8),
        dg.AutomationConditionSensorDefinition("automation", target=dg.AssetSelection.all(),
                                               default_status=dg.DefaultSensorStatus.RUNNING,
                                               minimum_interval_seconds=interval),
    ],
)
