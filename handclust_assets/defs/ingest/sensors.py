"""The video-folder sensor: one dynamic partition per finished video (a plain file, or a video member of a tar
shard), one run per new or changed clip."""

import json
import os
import time

import dagster as dg

from handclust_assets.defs.ingest.assets import SOURCE_TAG
from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.defs.resources import HandclustSettings
from handclust_assets.lib.video_folder import look_folder, plan_folder, renamed_to

CLIP_TAG = "handclust/clip"


ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def active_runs(instance: dg.DagsterInstance, tag: str | None = None) -> tuple[set[str], int, int]:
    """The clips with a run queued or running (their tag), how many of those clip runs carry `tag` (a sensor's
    own), and how many runs are queued or running in all."""
    runs = [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(statuses=ACTIVE), limit=1000)]
    return ({r.tags[CLIP_TAG] for r in runs if CLIP_TAG in r.tags},
            sum(1 for r in runs if tag is not None and tag in r.tags and CLIP_TAG in r.tags), len(runs))


def clips_with_active_runs(instance: dg.DagsterInstance) -> set[str]:
    """Clips that have a queued or running run (their tag), so a changed file waits for it to end."""
    return active_runs(instance)[0]


def log_problems_once(context: dg.SensorEvaluationContext, problems: dict[str, str], cursor: dict) -> None:
    """Warn about each unreadable entry (broken link, unreadable file, truncated/corrupt/compressed shard) once
    per problem, not every tick. A shard problem names the shard; its members that cannot be read fail in their
    own runs, with shard and member named."""
    warned = set(cursor.get("problems", []))
    for path, why in problems.items():
        if path not in warned:
            what = ("members listed before the damage are still clips; one cut short fails in its own run, named"
                    if path.lower().endswith(".tar") else "skipped")
            context.log.warning(f"{path}: {why}; {what}")


def build_video_folder_sensor(job: str, interval_s: int | None = None) -> dg.SensorDefinition:
    """Looks at the folder every `interval_s` seconds (env HANDCLUST_SENSOR_INTERVAL_S, default 5)."""

    @dg.sensor(
        name="video_folder_sensor",
        job_name=job,
        minimum_interval_seconds=interval_s or int(os.environ.get("HANDCLUST_SENSOR_INTERVAL_S", "5")),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Watches the video folder ($HANDCLUST_VIDEO_DIR, default $HANDCLUST_HOME/videos): a video is "
        "taken once its size and mtime are stable across two ticks; a burst of files still landing is waited for "
        "(one batch of runs). Every video member of an uncompressed .tar shard is a clip too (fingerprint = its tar "
        "header, so a rewritten shard re-runs exactly its changed members). Adds one `clips` partition per clip and "
        "requests one run per new or changed clip, "
        "never while a run of that clip is queued or running; reports removed files and unreadable entries once.",
    )
    def video_folder_sensor(context: dg.SensorEvaluationContext, settings: HandclustSettings) -> dg.SensorResult:
        folder = settings.videos()
        now = time.time()
        seen = look_folder(folder, now)
        files = seen.files
        known = set(context.instance.get_dynamic_partitions(clip_partitions.name))
        cursor = json.loads(context.cursor) if context.cursor else {}
        busy = clips_with_active_runs(context.instance) & set(files)
        plan = plan_folder(files, known, cursor, busy=busy, settle_s=settings.settle_seconds, now=now)
        log_problems_once(context, seen.problems, cursor)
        moved = renamed_to(plan.removed, cursor.get("done", {}), files)
        for k in plan.removed:
            if k in moved:
                context.log.warning(f"video for partition {k!r} was renamed or moved: it is now "
                                    f"{seen.sources[moved[k]]} (same size and modification time), partition "
                                    f"{moved[k]!r}; its clip run copies {k!r}'s results where they were made from "
                                    f"the same code, settings and models; the cross-clip graph pools the video once, "
                                    f"as {moved[k]!r}, and {k!r} keeps its results (`handclust forget {k}` deletes "
                                    "them)")
                continue
            context.log.warning(f"video for partition {k!r} was removed from {folder}; its results are kept "
                                "(`handclust forget` deletes them)")
        nxt = json.dumps({**plan.cursor, "problems": sorted(seen.problems)})
        runs = [dg.RunRequest(run_key=f"{k}@{files[k].fingerprint}", partition_key=k,
                              tags={CLIP_TAG: k, SOURCE_TAG: seen.sources[k]}) for k in plan.to_run]
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
