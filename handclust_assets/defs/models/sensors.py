"""`model_update_sensor`: observe the models, re-embed what a model change made stale, fill in skipped modalities."""

import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from handclust_assets.defs.ingest.sensors import CLIP_TAG, active_runs
from handclust_assets.defs.models.assets import WEIGHTS_OF, model_state
from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.defs.resources import (
    MediaPipeResource,
    SceneModelResource,
    ToolModelResource,
    VideoModelResource,
)
from handclust_assets.lib.reembed import plan_reembed, run_key

DATA_VERSION_TAG = "dagster/data_version"
REEMBED_TAG = "handclust/reembed"
READ_BUDGET_S = 15.0  # full reads of recorded model versions per tick: ~1 s per asset per 10,000 clips (SQLite)


def recorded_model_versions(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: set[str]
                            ) -> dict[str, str | None]:
    """partition -> the `model_version` its latest materialization recorded (two storage queries)."""
    from handclust_assets.defs.adoption import latest_metadata

    out: dict[str, str | None] = {}
    for partition, meta in latest_metadata(instance, asset_key, partitions).items():
        v = meta.get("model_version")
        out[partition] = str(v.value) if v is not None else None
    return out


def observe_models(resources: Mapping[str, Any], observed: Mapping[str, str]
                   ) -> tuple[dict[str, tuple[str, str | None]], list[dg.AssetObservation], dict[str, str]]:
    """Each model's (version, unavailable reason); an observation of its weights asset when the version changed
    since `observed` (resource key -> last recorded version); the updated record."""
    states, events, now = {}, [], dict(observed)
    for res_key, res in resources.items():
        states[res_key] = model_state(res)
        version, reason = states[res_key]
        if now.get(res_key) != version:
            now[res_key] = version
            events.append(dg.AssetObservation(WEIGHTS_OF[res_key], tags={DATA_VERSION_TAG: version[:255]},
                                              metadata={"version": version, "reason": reason or "none",
                                                        "available": reason is None}))
    return states, events, now


def reembed_requests(instance: dg.DagsterInstance, model_assets: Mapping[str, str],
                     downstream: Mapping[str, Sequence[dg.AssetKey]], states: Mapping[str, tuple[str, str | None]],
                     cursor: Mapping[str, Any], max_queued: int, budget_s: float = READ_BUDGET_S,
                     ) -> tuple[list[dg.RunRequest], dict, list[str]]:
    """The runs to request now (stale or missing partitions of available models, clips without a run in
    progress; at most `max_queued` of its runs queued or running at once, at low priority), the cursor entries per
    asset, and notes for the log.

    The model version every partition recorded is read (one query over every partition) only for an asset whose
    model changed since the sensor last found all its partitions current or asked for (`confirmed` in its cursor
    entry), `budget_s` of such reads per tick (one at least; the rest next tick). Otherwise only the partitions
    with a frame cache and no result are looked for (two cheap queries): a clip run while the model was
    unavailable."""
    partitions = set(instance.get_dynamic_partitions(clip_partitions.name))
    cached = set(instance.get_materialized_partitions(dg.AssetKey("frame_cache"))) & partitions
    busy, ours_active, _ = active_runs(instance, REEMBED_TAG)
    runs: list[dg.RunRequest] = []
    nxt: dict = {}
    notes: list[str] = []
    start, read_any = time.monotonic(), False
    for asset, res_key in model_assets.items():
        current, reason = states[res_key]
        prev = cursor.get(asset, {})
        if reason is not None:
            notes.append(f"{asset}: skipped, model unavailable ({reason})")
            if prev:
                nxt[asset] = prev
            continue
        key = dg.AssetKey(asset)
        full = prev.get("confirmed") != current
        if full and read_any and time.monotonic() - start > budget_s:
            notes.append(f"{asset}: its partitions' model versions are read next tick")
            if prev:
                nxt[asset] = prev
            continue
        if full:  # a frame cache but no result: missing; then what each result recorded
            recorded: dict[str, str | None] = {p: None for p in cached}
            recorded.update(recorded_model_versions(instance, key, partitions))
            read_any = True
        else:  # confirmed current: only clips cached since without a result
            made = set(instance.get_materialized_partitions(key))
            recorded = {p: None for p in cached - made}
        already = prev.get("requested", []) if prev.get("version") == current else []
        plan = plan_reembed(asset, {p: v for p, v in recorded.items() if p not in busy}, current, already,
                            max_queued - ours_active - len(runs))
        runs += [dg.RunRequest(run_key=run_key(asset, p, current), partition_key=p,
                               asset_selection=[key, *downstream.get(asset, [])],
                               tags={REEMBED_TAG: f"{asset}@{current}"[:255], CLIP_TAG: p, "dagster/priority": "-1"})
                 for p in plan.requested]
        waiting = {p for p, v in recorded.items() if p in busy and v != current}
        if not full:
            confirmed = prev.get("confirmed")
        elif not waiting and len(plan.requested) + len(plan.pending) == len(plan.stale):
            confirmed = current  # every stale partition asked for (now or before), none waiting for a clip run
        else:
            confirmed = None
        nxt[asset] = {"version": current, "requested": sorted(set(plan.pending) | set(plan.requested)),
                      "confirmed": confirmed}
        if plan.stale:
            notes.append(f"{asset}: {len(plan.stale)} stale or missing for {current} ({len(plan.requested)} "
                         f"requested now, {len(plan.pending)} pending)")
    return runs, nxt, notes


def build_model_update_sensor(job: str, model_assets: Mapping[str, str],
                              downstream: Mapping[str, Sequence[dg.AssetKey]], max_queued: int = 200,
                              interval_s: int | None = None) -> dg.SensorDefinition:
    """Every `interval_s` (env HANDCLUST_MODEL_CHECK_S, default 300): observe each model (`model_assets`: asset ->
    resource key), record a new version as an observation of its weights asset, and request — one run per clip, the
    model asset and its per-clip downstream, at low priority (a clip dropped meanwhile runs first), at most
    `max_queued` of its runs queued or running at once (topped up every tick, so the queue does not run dry between
    ticks and the automation refreshes the cross-clip graph once, after them) — the partitions whose recorded
    version differs from the current one, plus those that have a frame cache but no result (skipped while the model
    was unavailable). Nothing is requested for a model that is unavailable, nor for a clip with a run in progress."""
    interval = interval_s or int(os.environ.get("HANDCLUST_MODEL_CHECK_S", "300"))

    @dg.sensor(
        name="model_update_sensor",
        job_name=job,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Observes the models (hub commit / local weights fingerprint / .task sha256) and re-runs clip "
        f"partitions whose model changed or that were skipped while it was unavailable, up to {max_queued} runs queued "
        "at a time at low priority; runs are tagged handclust/reembed=<asset>@<version>.",
    )
    def model_update_sensor(context: dg.SensorEvaluationContext, scene_model: SceneModelResource,
                            video_model: VideoModelResource, tool_model: ToolModelResource,
                            mediapipe: MediaPipeResource) -> dg.SensorResult:
        resources = {"scene_model": scene_model, "video_model": video_model, "tool_model": tool_model,
                     "mediapipe": mediapipe}
        cursor = json.loads(context.cursor) if context.cursor else {}
        states, events, observed = observe_models(resources, cursor.get("observed", {}))
        runs, nxt, notes = reembed_requests(context.instance, model_assets, downstream, states, cursor, max_queued)
        for n in notes:
            context.log.info(n)
        cur = json.dumps({"observed": observed, **nxt})
        if not runs:
            return dg.SensorResult(skip_reason="; ".join(notes) or "every model asset is up to date", cursor=cur,
                                   asset_events=events)
        return dg.SensorResult(run_requests=runs, cursor=cur, asset_events=events)

    return model_update_sensor
