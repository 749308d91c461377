"""`code_update_sensor`: after HandClust is upgraded, re-run what older code made.

Every asset has a `code_version`, and Dagster records it on each materialization. When an upgrade changes an
asset's code version (a new counter, a new frame cache), the results already in storage were made by the old
code: the UI marks them "code version changed", and nothing re-runs them by itself. This sensor does, the way
`model_update_sensor` re-embeds after a model update:

1. Clip partitions first: one run per clip, each the clip's changed assets and the per-clip assets built on them,
   at low priority (a new clip dropped meanwhile runs first). Up to `max_queued` (200) of its runs are queued or
   running at once, topped up every tick: enough that the queue does not run dry between ticks, so the automation
   refreshes the cross-clip graph once, after them (a gap would refresh it in between), and few enough that a tick
   never creates tens of thousands of runs.
2. Then the cross-clip assets that are still made by older code (their code changed and no clip result did, so
   automation has no reason to run them): one run of them and what is built on them. The sensor asks for it only
   after two ticks in a row found nothing more to ask for and no run in progress, so it never races the
   automation's refresh after the clip re-runs. A clip whose re-run ended without new results (its video removed
   since, its model now unavailable) is named in the sensor's log and not asked for again.

It reads only the assets whose code version changed since it last found them current (one query over every clip
partition each: ~1 s per 10,000 clips on SQLite), and once all is asked for, nothing until the versions change
again. Stop it in the UI (Automation -> code_update_sensor) to keep old results after an upgrade.
"""

import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from handclust_assets.defs.adoption import latest_materializations
from handclust_assets.defs.ingest.sensors import CLIP_TAG, active_runs
from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.lib.reembed import cross_clip_to_rerun, plan_code_rerun, versions_digest

CODE_UPDATE_TAG = "handclust/code-update"
CODE_VERSION_TAG = "dagster/code_version"  # what Dagster records on a materialization of an asset with a code version
CLEAN_TICKS = 2  # ticks in a row with every clip partition current before the cross-clip assets are looked at
BUDGET_S = 15.0  # storage reads per tick (a sensor tick times out at 60 s): ~1 s per asset per 10,000 clips (SQLite)


def recorded_code_versions(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: set[str]
                           ) -> dict[str, str | None]:
    """partition -> the code version its latest materialization of the asset recorded (None: none recorded)."""
    return {p: m.tags.get(CODE_VERSION_TAG) if m.tags else None
            for p, m in latest_materializations(instance, asset_key, partitions).items()}


def recorded_cross_clip_versions(instance: dg.DagsterInstance, assets: Sequence[str]) -> dict[str, str | None]:
    """asset -> the code version its latest materialization recorded, for the (unpartitioned) assets made at all."""
    keys = [dg.AssetKey(a) for a in assets]
    events = instance.get_latest_materialization_events(keys)
    return {k.to_user_string(): (ev.asset_materialization.tags or {}).get(CODE_VERSION_TAG)
            for k, ev in events.items() if ev is not None and ev.asset_materialization is not None}


def code_update_requests(instance: dg.DagsterInstance, clip: Mapping[str, str | None],
                         clip_downstream: Mapping[str, Sequence[dg.AssetKey]], cross: Mapping[str, str | None],
                         cross_downstream: Mapping[str, Sequence[str]], cursor: Mapping, max_queued: int,
                         jobs: tuple[str, str] = ("process_clip", "cross_clip"), budget_s: float = BUDGET_S,
                         ) -> tuple[list[dg.RunRequest], dict, list[str]]:
    """The runs to request now, the next cursor and notes for the log. `clip` / `cross`: per-clip / cross-clip
    asset -> its code version now (per-clip in graph order); the downstream maps: asset -> what is built on it
    (per-clip assets for a per-clip one, cross-clip asset names for a cross-clip one). `jobs`: the clip job and the
    cross-clip job.

    Only the per-clip assets whose code version is not the one the cursor confirmed current are read (one storage
    query over every partition each), as many as `budget_s` allows this tick (one at least); the rest next tick."""
    digest = versions_digest({**clip, **cross})
    same = cursor.get("versions") == digest
    if same and cursor.get("settled"):
        return [], dict(cursor), []
    confirmed = dict(cursor.get("confirmed", {}))
    changed = [a for a in clip if confirmed.get(a) != clip[a]]
    partitions = set(instance.get_dynamic_partitions(clip_partitions.name))
    recorded: dict[str, dict[str, str | None]] = {}
    start = time.monotonic()
    for a in changed:
        if recorded and time.monotonic() - start > budget_s:
            break
        recorded[a] = recorded_code_versions(instance, dg.AssetKey(a), partitions)
    unread = [a for a in changed if a not in recorded]
    busy, ours_active, n_active = active_runs(instance, CODE_UPDATE_TAG)
    plan = plan_code_rerun(recorded, {a: clip[a] for a in recorded}, cursor.get("requested", []) if same else [],
                           busy, max_queued - ours_active)
    runs, notes = [], []
    for p in plan.requested:
        stale_assets = plan.stale[p]
        keys = {dg.AssetKey(a) for a in stale_assets} | {k for a in stale_assets for k in clip_downstream.get(a, [])}
        now = {a: clip[a] for a in stale_assets}
        runs.append(dg.RunRequest(
            run_key=f"code:{p}:{versions_digest(now)}", partition_key=p, job_name=jobs[0],
            asset_selection=sorted(keys, key=lambda k: k.path),
            tags={CODE_UPDATE_TAG: ", ".join(f"{a}@{v}" for a, v in now.items())[:255], CLIP_TAG: p,
                  "dagster/priority": "-1"}))
    # every stale clip was asked for before and no clip run is in progress: what is still stale was not re-made by
    # its run (a video removed since, a model now unavailable) and is not asked for again
    nothing_new = not plan.requested and not plan.waiting and not busy and not unread
    if nothing_new:
        confirmed.update({a: clip[a] for a in recorded})
    if unread:
        notes.append(f"{len(unread)} per-clip asset(s) with another code version left to read next tick: "
                     f"{', '.join(unread)}")
    if plan.stale and nothing_new:
        notes.append(f"{len(plan.stale)} clip(s) still hold results made by older code after their re-run ended "
                     f"(see their runs, tagged {CODE_UPDATE_TAG}): {', '.join(list(plan.stale)[:10])}")
    elif plan.stale:
        per_asset = {a: sum(a in v for v in plan.stale.values()) for a in clip}
        notes.append(f"{len(plan.stale)} clip(s) hold results made by older code ("
                     + ", ".join(f"{a} {n}" for a, n in per_asset.items() if n)
                     + f"): {len(plan.requested)} requested now, {len(plan.pending)} requested before, "
                     f"{len(plan.waiting)} waiting for a run of the clip to end")
    clean = (cursor.get("clean_ticks", 0) + 1 if same else 1) if nothing_new else 0
    cross_done = same and cursor.get("cross_done", False)
    if clean >= CLEAN_TICKS and not n_active and not cross_done:
        made_by = recorded_cross_clip_versions(instance, list(cross))
        todo = cross_clip_to_rerun(made_by, cross, cross_downstream)
        if todo:
            stale = sorted(a for a, v in made_by.items() if a in cross and v != cross[a])
            runs.append(dg.RunRequest(
                run_key=f"code:cross:{digest}", job_name=jobs[1], asset_selection=[dg.AssetKey(a) for a in todo],
                tags={CODE_UPDATE_TAG: ", ".join(f"{a}@{cross[a]}" for a in stale)[:255]}))
            notes.append(f"every clip is current; {len(todo)} cross-clip asset(s) made by older code or built on "
                         f"them requested: {', '.join(todo)}")
        cross_done = True
    nxt = {"versions": digest, "requested": sorted(set(plan.pending) | set(plan.requested)), "clean_ticks": clean,
           "cross_done": cross_done, "settled": cross_done and nothing_new, "confirmed": confirmed}
    return runs, nxt, notes


def build_code_update_sensor(jobs: Sequence[Any], clip: Mapping[str, str | None],
                             clip_downstream: Mapping[str, Sequence[dg.AssetKey]], cross: Mapping[str, str | None],
                             cross_downstream: Mapping[str, Sequence[str]], max_queued: int = 200,
                             interval_s: int | None = None) -> dg.SensorDefinition:
    """Every `interval_s` (env HANDCLUST_CODE_CHECK_S, default 30): request, at most `max_queued` of its clip runs
    queued or running at once, the clip partitions whose latest materialization of a per-clip asset was made by
    another code version than `clip` (asset -> code version); then, once every clip partition is current, the
    cross-clip assets made by another code version than `cross`. `jobs`: the clip job and the cross-clip job (as
    `define_asset_job` makes them)."""
    interval = interval_s or int(os.environ.get("HANDCLUST_CODE_CHECK_S", "30"))
    names = (jobs[0].name, jobs[1].name)

    @dg.sensor(
        name="code_update_sensor",
        jobs=list(jobs),
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After an upgrade of HandClust, re-runs the clip partitions whose results an older code version "
        f"of a per-clip asset made (that asset and the per-clip assets built on it), up to {max_queued} runs queued "
        "at a time at low priority, then the cross-clip assets still made by older code; runs are tagged "
        "handclust/code-update=<asset>@<version>. Stop it to keep old results.",
    )
    def code_update_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        runs, nxt, notes = code_update_requests(context.instance, clip, clip_downstream, cross, cross_downstream,
                                                cursor, max_queued, names)
        for n in notes:
            context.log.info(n)
        cur = json.dumps(nxt)
        if not runs:
            why = "; ".join(notes) or ("every result was made by the current code" if nxt["settled"] else
                                       "every clip result was made by the current code; the cross-clip assets are "
                                       "looked at once no run is in progress")
            return dg.SensorResult(skip_reason=why, cursor=cur)
        return dg.SensorResult(run_requests=runs, cursor=cur)

    return code_update_sensor
