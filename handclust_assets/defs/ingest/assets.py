"""Ingest group: `clips` (probe + phase), `frame_cache` (decode once), `ground_truth` (synthetic labels)."""


import time
from pathlib import Path

import dagster as dg
import polars as pl

from handclust_assets.defs.common import named_failures
from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.defs.resources import HandclustSettings
from handclust_assets.lib.errors import ClipError
from handclust_assets.lib.phase import phase_from_name
from handclust_assets.lib.storage import frames_dir
from handclust_assets.lib.video_folder import scan_videos
from handclust_assets.video.frame_cache import build_frame_cache
from handclust_assets.video.probe import probe_video
from handclust_assets.video.rectify import find_intrinsics, load_intrinsics

CLIPS_SCHEMA = {
    "clip": pl.Utf8,
    "source_path": pl.Utf8,
    "phase": pl.Utf8,
    "duration_s": pl.Float64,
    "fps": pl.Float64,
    "variable_fps": pl.Boolean,
    "width": pl.Int64,
    "height": pl.Int64,
    "codec": pl.Utf8,
    "rotation": pl.Int64,
    "frame_count": pl.Int64,
    "size_bytes": pl.Int64,
    "content_hash": pl.Utf8,
    "intrinsics_path": pl.Utf8,
}

FRAME_INDEX_SCHEMA = {
    "clip": pl.Utf8,
    "frame_idx": pl.Int64,
    "t_s": pl.Float64,
    "source_frame": pl.Int64,
    "jpeg_bytes": pl.Int64,
}

GT_SCHEMA = {
    "clip": pl.Utf8,
    "frame_idx": pl.Int64,
    "t_s": pl.Float64,
    "activity": pl.Utf8,
    "segment_idx": pl.Int64,
    "period_s": pl.Float64,
}


def clip_path(settings: HandclustSettings, clip: str) -> Path:
    videos = scan_videos(settings.videos())
    if clip not in videos:
        raise ClipError(
            settings.videos() / clip,
            f"no video for partition {clip!r} in {settings.videos()} (was it removed or renamed?)",
        )
    return videos[clip]


@dg.asset(
    partitions_def=clip_partitions,
    group_name="ingest",
    kinds={"python", "duckdb"},
    code_version="clips-v1",
    description="One row per clip: probe (duration, fps, VFR, size, codec, rotation, frames), content hash, "
    "source path, phase from the file name, and the intrinsics.json that applies (if any).",
)
@named_failures
def clips(context: dg.AssetExecutionContext, settings: HandclustSettings) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    path = clip_path(settings, clip)
    info = probe_video(path)
    intr = find_intrinsics(path)
    if intr is not None:
        load_intrinsics(intr)  # validate early: a bad file fails this clip with a clear message
    row = {
        "clip": clip,
        "source_path": str(path.resolve()),
        "phase": phase_from_name(path.stem, tuple(settings.phase_words), settings.phase_pattern),
        **{k: v for k, v in info.as_dict().items() if k in CLIPS_SCHEMA and k != "source_path"},
        "intrinsics_path": str(intr) if intr else None,
    }
    df = pl.DataFrame([row], schema=CLIPS_SCHEMA)
    if info.variable_fps:
        context.log.warning(f"{path}: variable frame rate; frames are sampled by timestamp")
    return dg.Output(
        df,
        metadata={
            "duration_s": dg.MetadataValue.float(info.duration_s),
            "fps": dg.MetadataValue.float(info.fps),
            "frame_count": dg.MetadataValue.int(info.frame_count),
            "phase": row["phase"],
            "codec": info.codec,
            "content_hash": info.content_hash,
        },
    )


@dg.asset(
    partitions_def=clip_partitions,
    group_name="ingest",
    kinds={"python", "duckdb"},
    code_version="frame-cache-v1",
    description="Decode each clip once, sample at `sample_fps`, rectify fisheye if an intrinsics.json applies, "
    "downscale to `max_side`; frames go to storage/frames/<clip>/, the index (frame, timestamp) to DuckDB.",
)
@named_failures
def frame_cache(
    context: dg.AssetExecutionContext, settings: HandclustSettings, clips: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    row = clips.filter(pl.col("clip") == clip).row(0, named=True)
    path = Path(row["source_path"])
    intr = None
    if settings.rectify != "never":
        ip = row["intrinsics_path"]
        if ip:
            intr = load_intrinsics(ip)
        elif settings.rectify == "always":
            raise ClipError(path, "rectify='always' but no intrinsics.json beside the clip")
    info = probe_video(path)
    out = frames_dir(settings.root(), clip)
    last = [time.perf_counter(), 0]

    def progress(n: int, t: float) -> None:
        now = time.perf_counter()
        if now - last[0] > 5.0:
            context.log.info(f"{clip}: {n} frames cached, {t:.0f}/{info.duration_s:.0f} s of video")
            last[0] = now

    stats = build_frame_cache(
        path, out, sample_fps=settings.sample_fps, max_side=settings.max_side, intrinsics=intr, info=info,
        progress=progress,
    )
    if stats.warning:
        context.log.warning(f"{path}: {stats.warning}")
    from handclust_assets.video.frame_cache import FrameCache

    fc = FrameCache(out)
    sizes = (fc.offsets[1:] - fc.offsets[:-1]).astype("int64")
    df = pl.DataFrame(
        {
            "clip": [clip] * len(fc),
            "frame_idx": list(range(len(fc))),
            "t_s": fc.timestamps,
            "source_frame": fc.meta["source_frame"],
            "jpeg_bytes": sizes,
        },
        schema=FRAME_INDEX_SCHEMA,
    )
    context.log.info(
        f"{clip}: {stats.n_frames} frames from {stats.decoded_frames} decoded in {stats.wall_seconds:.1f}s "
        f"({stats.realtime_factor:.1f}x realtime), rectified={intr is not None}"
    )
    return dg.Output(
        df,
        metadata={
            "n_frames": dg.MetadataValue.int(stats.n_frames),
            "x_realtime": dg.MetadataValue.float(round(stats.realtime_factor, 2)),
            "cache_mb": dg.MetadataValue.float(round(stats.bytes / 1e6, 2)),
            "rectified": dg.MetadataValue.bool(intr is not None),
            "truncated": dg.MetadataValue.bool(stats.truncated),
            "cache_dir": dg.MetadataValue.path(str(out)),
        },
    )


@dg.asset(
    partitions_def=clip_partitions,
    group_name="ingest",
    kinds={"python", "duckdb"},
    code_version="gt-v1",
    description="Per-frame ground truth from a `<clip>.gt.parquet` sidecar (synthetic clips), resampled to the "
    "frame cache's timestamps. Zero rows for clips without ground truth.",
)
@named_failures
def ground_truth(
    context: dg.AssetExecutionContext, settings: HandclustSettings, clips: pl.DataFrame, frame_cache: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    src = Path(clips.filter(pl.col("clip") == clip)["source_path"][0])
    side = src.with_name(src.stem + ".gt.parquet")
    if not side.exists():
        return dg.Output(pl.DataFrame(schema=GT_SCHEMA), metadata={"has_ground_truth": False})
    gt = pl.read_parquet(side).sort("t_s")
    fi = frame_cache.filter(pl.col("clip") == clip).select("frame_idx", "t_s").sort("t_s")
    joined = fi.join_asof(gt.select("t_s", "activity", "segment_idx", "period_s"), on="t_s", strategy="backward")
    df = joined.with_columns(pl.lit(clip).alias("clip")).select(list(GT_SCHEMA)).cast(GT_SCHEMA)
    return dg.Output(
        df,
        metadata={
            "has_ground_truth": True,
            "n_activities": dg.MetadataValue.int(df["activity"].n_unique()),
        },
    )
