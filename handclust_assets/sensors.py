"""The video-folder sensor: one dynamic partition per video, a run per new or changed file."""


import json

import dagster as dg

from handclust_assets.partitions import clip_partitions, file_fingerprint, scan_videos
from handclust_assets.settings import HandclustSettings


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
