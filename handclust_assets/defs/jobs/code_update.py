"""`code_update_sensor`: after HandClust is upgraded, re-run the clip partitions whose results older code made.

Every per-clip asset has a `code_version`, and Dagster records it on each materialization. When an upgrade
changes an asset's code version (a new counter, a new frame cache), the results already in storage were made by
the old code: the UI marks them "code version changed", and nothing re-runs them by itself. This sensor does,
the way `model_update_sensor` re-embeds after a model update: a few runs at a time (at most `batch_size` of its
runs queued or running), each one clip's changed assets and the per-clip assets built on them, at low priority
(a new clip dropped meanwhile runs first). The cross-clip graph follows by automation, as after any clip run; a
cross-clip asset whose own code changed is refreshed by its automation condition (`defs/common.py`).

Stop the sensor in the UI (Automation -> code_update_sensor) to keep old results after an upgrade.
"""

import json
import os
from collections.abc import Mapping, Sequence

import dagster as dg

from handclust_assets.defs.adoption import latest_materializations
from handclust_assets.defs.ingest.sensors import CLIP_TAG
from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.lib.reembed import plan_code_rerun, versions_digest

CODE_UPDATE_TAG = "handclust/code-update"
CODE_VERSION_TAG = "dagster/code_version"  # what Dagster records on a materialization of an asset with a code version
ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def recorded_code_versions(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: set[str]
                           ) -> dict[str, str | None]:
    """partition -> the code version its latest materialization of the asset recorded (None: none recorded)."""
    return {p: m.tags.get(CODE_VERSION_TAG) if m.tags else None
            for p, m in latest_materializations(instance, asset_key, partitions).items()}


def active_clip_runs(instance: dg.DagsterInstance) -> tuple[set[str], int]:
    """The clips with a run queued or running (their tag), and how many of those runs this sensor asked for."""
    runs = [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(statuses=ACTIVE), limit=1000)]
    return ({r.tags[CLIP_TAG] for r in runs if CLIP_TAG in r.tags},
            sum(1 for r in runs if CODE_UPDATE_TAG in r.tags))


def code_update_requests(instance: dg.DagsterInstance, current: Mapping[str, str | None],
                         downstream: Mapping[str, Sequence[dg.AssetKey]], cursor: Mapping, batch_size: int
                         ) -> tuple[list[dg.RunRequest], dict, list[str]]:
    """The runs to request now, the next cursor and notes for the log. `current`: per-clip asset -> its code
    version now, in graph order; `downstream`: per-clip asset -> the per-clip assets built on it."""
    digest = versions_digest(current)
    if cursor.get("versions") == digest and cursor.get("settled"):
        return [], dict(cursor), []
    partitions = set(instance.get_dynamic_partitions(clip_partitions.name))
    recorded = {a: recorded_code_versions(instance, dg.AssetKey(a), partitions) for a in current}
    busy, ours_active = active_clip_runs(instance)
    already = cursor.get("requested", []) if cursor.get("versions") == digest else []
    plan = plan_code_rerun(recorded, current, already, busy, batch_size - ours_active)
    runs = []
    for p in plan.requested:
        changed = plan.stale[p]
        keys = {dg.AssetKey(a) for a in changed} | {k for a in changed for k in downstream.get(a, [])}
        made = {a: current[a] for a in changed}
        label = ", ".join(f"{a}@{v}" for a, v in made.items())
        runs.append(dg.RunRequest(run_key=f"code:{p}:{versions_digest(made)}", partition_key=p,
                                  asset_selection=sorted(keys, key=lambda k: k.path),
                                  tags={CODE_UPDATE_TAG: label[:255], CLIP_TAG: p, "dagster/priority": "-1"}))
    notes = []
    if plan.stale:
        per_asset = {a: sum(a in v for v in plan.stale.values()) for a in current}
        notes.append(f"{len(plan.stale)} clip(s) hold results made by older code ("
                     + ", ".join(f"{a} {n}" for a, n in per_asset.items() if n)
                     + f"): {len(plan.requested)} requested now, {len(plan.pending)} requested before, "
                     f"{len(plan.waiting)} waiting for a run of the clip to end")
    nxt = {"versions": digest, "requested": sorted(set(plan.pending) | set(plan.requested)),
           "settled": plan.settled}
    return runs, nxt, notes


def build_code_update_sensor(job: str, current: Mapping[str, str | None],
                             downstream: Mapping[str, Sequence[dg.AssetKey]], batch_size: int = 4,
                             interval_s: int | None = None) -> dg.SensorDefinition:
    """Every `interval_s` (env HANDCLUST_CODE_CHECK_S, default 60): request, at most `batch_size` of its runs queued
    or running at once, the clip partitions whose latest materialization of a per-clip asset was made by another
    code version than `current` (asset -> code version). Once every such partition has been requested and no clip
    run is in progress, it stops looking until the code versions change again (nothing is read from the instance
    while they stay the same)."""
    interval = interval_s or int(os.environ.get("HANDCLUST_CODE_CHECK_S", "60"))

    @dg.sensor(
        name="code_update_sensor",
        job_name=job,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After an upgrade of HandClust, re-runs the clip partitions whose results were made by an older "
        f"code version of a per-clip asset (that asset and the per-clip assets built on it), {batch_size} runs at a "
        "time at low priority; runs are tagged handclust/code-update=<asset>@<version>. Stop it to keep old results.",
    )
    def code_update_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        runs, nxt, notes = code_update_requests(context.instance, current, downstream, cursor, batch_size)
        for n in notes:
            context.log.info(n)
        cur = json.dumps(nxt)
        if not runs:
            why = "; ".join(notes) or "every clip result was made by the current code"
            return dg.SensorResult(skip_reason=why, cursor=cur)
        return dg.SensorResult(run_requests=runs, cursor=cur)

    return code_update_sensor
