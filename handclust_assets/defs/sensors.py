"""The video-folder sensor: one dynamic partition per video, a run per new or changed file."""


import json

import dagster as dg

from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.defs.resources import (
    HandclustSettings,
    MediaPipeResource,
    SceneModelResource,
    ToolModelResource,
    VideoModelResource,
)
from handclust_assets.lib.video_folder import file_fingerprint, scan_videos


def plan_folder_changes(
    videos: dict[str, str], known_partitions: set[str], cursor: dict
) -> tuple[list[str], list[str], list[str], dict]:
    """Pure planning step: (new partition keys, keys to (re)run, removed keys, next cursor).

    `videos` maps key -> fingerprint (size:mtime). A changed fingerprint re-runs the same partition (no
    duplicate partition is created); a vanished file is reported once as removed and its results kept.
    """
    seen = cursor.get("files", {})
    removed_before = set(cursor.get("removed", []))
    new_keys = sorted(k for k in videos if k not in known_partitions)
    to_run = sorted(k for k, fp in videos.items() if seen.get(k) != fp)
    removed = sorted(k for k in known_partitions if k not in videos and k not in removed_before)
    still_removed = sorted((removed_before | set(removed)) - set(videos))
    return new_keys, to_run, removed, {"files": videos, "removed": still_removed}


def build_video_folder_sensor(job_name: str) -> dg.SensorDefinition:
    @dg.sensor(
        name="video_folder_sensor",
        job_name=job_name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Watches the video folder (storage/videos or $HANDCLUST_VIDEO_DIR): adds a `clips` "
        "partition per new video and requests its run; re-runs a changed file; reports removed files "
        "(their results are kept until deleted with `handclust forget`).",
    )
    def video_folder_sensor(context: dg.SensorEvaluationContext, settings: HandclustSettings) -> dg.SensorResult:
        folder = settings.videos()
        videos = {k: file_fingerprint(p) for k, p in scan_videos(folder).items()}
        known = set(context.instance.get_dynamic_partitions(clip_partitions.name))
        cursor = json.loads(context.cursor) if context.cursor else {}
        new_keys, to_run, removed, nxt = plan_folder_changes(videos, known, cursor)
        for k in removed:
            context.log.warning(f"video for partition {k!r} was removed from {folder}; results are kept")
        runs = [dg.RunRequest(run_key=f"{k}@{videos[k]}", partition_key=k, tags={"handclust/clip": k}) for k in to_run]
        if not runs and not new_keys:
            return dg.SensorResult(skip_reason=f"no new or changed videos in {folder}", cursor=json.dumps(nxt))
        return dg.SensorResult(
            run_requests=runs,
            dynamic_partitions_requests=[clip_partitions.build_add_request(new_keys)] if new_keys else [],
            cursor=json.dumps(nxt),
        )

    return video_folder_sensor


def recorded_model_versions(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: set[str]
                            ) -> dict[str, str | None]:
    """partition -> the `model_version` its latest materialization recorded (two storage queries)."""
    ids = instance.get_latest_storage_id_by_partition(asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION,
                                                      partitions)
    if not ids:
        return {}
    res = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(ids.values())),
                                          limit=len(ids))
    out: dict[str, str | None] = {}
    for rec in res.records:
        mat = rec.asset_materialization
        if mat is None or mat.partition is None:
            continue
        v = mat.metadata.get("model_version")
        out[mat.partition] = str(v.value) if v is not None else None
    return out


def build_model_update_sensor(job_name: str, model_assets: dict[str, str],
                              downstream: dict[str, list[dg.AssetKey]], batch_size: int = 4,
                              interval_s: int = 300) -> dg.SensorDefinition:
    """Re-embed on a schedule when a model updates (`model_assets`: asset -> one of the resource keys scene_model,
    video_model, tool_model, mediapipe): every `interval_s`, compare each model asset's recorded
    model version per clip partition with what its resource resolves to now (new hub commit, changed local
    weights folder, other .task file) and request the stale partitions, `batch_size` runs per tick, each
    re-materializing the model asset and its per-clip downstream assets for one clip."""

    @dg.sensor(
        name="model_update_sensor",
        job_name=job_name,
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Re-embeds clip partitions whose model changed (model id, hub revision/commit, local weights "
        f"fingerprint), {batch_size} runs per tick; runs are tagged handclust/reembed=<asset>@<version>.",
    )
    def model_update_sensor(context: dg.SensorEvaluationContext, scene_model: SceneModelResource,
                            video_model: VideoModelResource, tool_model: ToolModelResource,
                            mediapipe: MediaPipeResource) -> dg.SensorResult:
        resources = {"scene_model": scene_model, "video_model": video_model, "tool_model": tool_model,
                     "mediapipe": mediapipe}
        from handclust_assets.lib.reembed import plan_reembed, run_key

        cursor = json.loads(context.cursor) if context.cursor else {}
        partitions = set(context.instance.get_dynamic_partitions(clip_partitions.name))
        runs: list[dg.RunRequest] = []
        nxt: dict[str, dict] = {}
        notes: list[str] = []
        for asset, res_key in model_assets.items():
            try:
                current = resources[res_key].version()
            except Exception as e:  # noqa: BLE001 - a resource that cannot say its version skips this asset
                notes.append(f"{asset}: no version ({type(e).__name__}: {e})")
                continue
            key = dg.AssetKey(asset)
            recorded = recorded_model_versions(context.instance, key, partitions)
            prev = cursor.get(asset, {})
            already = prev.get("requested", []) if prev.get("version") == current else []
            plan = plan_reembed(asset, recorded, current, already, batch_size - len(runs))
            for p in plan.requested:
                runs.append(dg.RunRequest(run_key=run_key(asset, p, current), partition_key=p,
                                          asset_selection=[key, *downstream.get(asset, [])],
                                          tags={"handclust/reembed": f"{asset}@{current}"[:255]}))
            nxt[asset] = {"version": current,
                          "requested": sorted(set(plan.pending) | set(plan.requested))}
            if plan.stale:
                notes.append(f"{asset}: {len(plan.stale)} stale for {current} ({len(plan.requested)} requested now, "
                             f"{len(plan.pending)} pending)")
        for n in notes:
            context.log.info(n)
        if not runs:
            return dg.SensorResult(skip_reason="; ".join(notes) or "every model asset is up to date",
                                   cursor=json.dumps(nxt))
        return dg.SensorResult(run_requests=runs, cursor=json.dumps(nxt))

    return model_update_sensor
