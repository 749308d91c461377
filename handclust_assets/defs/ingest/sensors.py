"""The video-folder sensor: one dynamic partition per finished video, one run per new or changed file."""

import json
import time

import dagster as dg

from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.defs.resources import HandclustSettings
from handclust_assets.lib.video_folder import look, plan_folder, scan_problems

CLIP_TAG = "handclust/clip"


def clips_with_active_runs(instance: dg.DagsterInstance) -> set[str]:
    """Clips that have a queued or running run (their tag), so a changed file waits for it to end."""
    statuses = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    runs = instance.get_run_records(dg.RunsFilter(statuses=statuses), limit=1000)
    return {r.dagster_run.tags[CLIP_TAG] for r in runs if CLIP_TAG in r.dagster_run.tags}


def build_video_folder_sensor(job: str, interval_s: int = 10) -> dg.SensorDefinition:
    @dg.sensor(
        name="video_folder_sensor",
        job_name=job,
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Watches the video folder ($HANDCLUST_VIDEO_DIR, default $HANDCLUST_HOME/videos): a video is "
        "taken once its size and mtime are stable across two ticks; a burst of files still landing is waited for "
        "(one batch of runs); adds one `clips` partition per video and requests one run per new or changed file, "
        "never while a run of that clip is queued or running; reports removed files and unreadable entries once.",
    )
    def video_folder_sensor(context: dg.SensorEvaluationContext, settings: HandclustSettings) -> dg.SensorResult:
        folder = settings.videos()
        now = time.time()
        files = look(folder, now)
        known = set(context.instance.get_dynamic_partitions(clip_partitions.name))
        cursor = json.loads(context.cursor) if context.cursor else {}
        busy = clips_with_active_runs(context.instance) & set(files)
        plan = plan_folder(files, known, cursor, busy=busy, settle_s=settings.settle_seconds, now=now)
        warned = set(cursor.get("problems", []))
        problems = scan_problems(folder)
        for path, why in problems.items():
            if path not in warned:
                context.log.warning(f"{path}: {why}; skipped")
        for k in plan.removed:
            context.log.warning(f"video for partition {k!r} was removed from {folder}; its results are kept "
                                "(`handclust forget` deletes them)")
        nxt = json.dumps({**plan.cursor, "problems": sorted(problems)})
        runs = [dg.RunRequest(run_key=f"{k}@{files[k].fingerprint}", partition_key=k, tags={CLIP_TAG: k})
                for k in plan.to_run]
        if not runs:
            why = f"{len(plan.waiting)} video(s) still landing or waiting: {', '.join(plan.waiting[:5])}" \
                if plan.waiting else f"no new or changed videos in {folder}"
            return dg.SensorResult(skip_reason=why, cursor=nxt)
        context.log.info(f"{len(runs)} clip run(s): {', '.join(plan.to_run[:10])}")
        return dg.SensorResult(
            run_requests=runs,
            dynamic_partitions_requests=[clip_partitions.build_add_request(plan.new_keys)] if plan.new_keys else [],
            cursor=nxt,
        )

    return video_folder_sensor
