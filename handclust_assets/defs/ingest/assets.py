"""Ingest: `clips` (probe + phase), `frame_cache` (decode once), `ground_truth` (synthetic labels)."""

import io
from pathlib import Path

import dagster as dg
import polars as pl

from handclust_assets.defs.common import Progress, clip_asset
from handclust_assets.defs.resources import HandclustSettings, StorageResource
from handclust_assets.lib.errors import ClipError
from handclust_assets.lib.phase import phase_from_name
from handclust_assets.lib.video_folder import scan_videos
from handclust_assets.video.frame_cache import FrameCache, build_frame_cache
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
        raise ClipError(settings.videos() / clip,
                        f"no video for partition {clip!r} in {settings.videos()} (was it removed or renamed?)")
    return videos[clip]


def open_cache(storage: StorageResource, clip: str) -> FrameCache:
    """The clip's frame cache as a local folder (the storage folder itself, or a scratch mirror of a bucket)."""
    store = storage.store()
    try:
        return FrameCache(store.fetch_dir(*store.frames(clip)))
    except FileNotFoundError as e:
        raise ClipError(store.uri(*store.frames(clip)), "no frame cache (materialize frame_cache first)") from e


@clip_asset(group="ingest", code_version="clips-v1",
            description="One row per clip: probe (duration, fps, VFR, size, codec, rotation, frames), content hash, "
            "source path, phase from the file name, and the intrinsics.json that applies (if any).")
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
    if info.variable_fps:
        context.log.warning(f"{path}: variable frame rate; frames are sampled by timestamp")
    return dg.Output(pl.DataFrame([row], schema=CLIPS_SCHEMA), metadata={
        "duration_s": dg.MetadataValue.float(info.duration_s),
        "fps": dg.MetadataValue.float(info.fps),
        "frame_count": dg.MetadataValue.int(info.frame_count),
        "phase": row["phase"],
        "codec": info.codec,
        "content_hash": info.content_hash,
    })


@clip_asset(group="ingest", code_version="frame-cache-v1",
            description="Decode each clip once, sample at `sample_fps`, rectify fisheye if an intrinsics.json "
            "applies, downscale to `max_side`; frames go to <storage>/frames/<clip>/, the index (frame, timestamp) "
            "to DuckDB.")
def frame_cache(context: dg.AssetExecutionContext, settings: HandclustSettings, storage: StorageResource,
                clips: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    row = clips.row(0, named=True)
    path = Path(row["source_path"])
    intr = None
    if settings.rectify != "never":
        if row["intrinsics_path"]:
            intr = load_intrinsics(row["intrinsics_path"])
        elif settings.rectify == "always":
            raise ClipError(path, "rectify='always' but no intrinsics.json beside the clip")
    info = probe_video(path)
    progress = Progress(context, f"{clip} frame cache", max(1, int(info.duration_s * settings.sample_fps)),
                        video_s=info.duration_s, every_s=5.0)
    store = storage.store()
    with store.staging(*store.frames(clip)) as out:
        stats = build_frame_cache(path, out, sample_fps=settings.sample_fps, max_side=settings.max_side,
                                  intrinsics=intr, info=info, progress=lambda n, t: progress(n))
        fc = FrameCache(out)
        df = pl.DataFrame({"clip": [clip] * len(fc), "frame_idx": range(len(fc)), "t_s": fc.timestamps,
                           "source_frame": fc.meta["source_frame"],
                           "jpeg_bytes": (fc.offsets[1:] - fc.offsets[:-1]).astype("int64")}, schema=FRAME_INDEX_SCHEMA)
    if stats.warning:
        context.log.warning(f"{path}: {stats.warning}")
    context.log.info(f"{clip}: {stats.n_frames} frames from {stats.decoded_frames} decoded in {stats.wall_seconds:.1f}s "
                     f"({stats.realtime_factor:.1f}x realtime), rectified={intr is not None}")
    return dg.Output(df, metadata={
        "n_frames": dg.MetadataValue.int(stats.n_frames),
        "x_realtime": dg.MetadataValue.float(round(stats.realtime_factor, 2)),
        "cache_mb": dg.MetadataValue.float(round(stats.bytes / 1e6, 2)),
        "rectified": dg.MetadataValue.bool(intr is not None),
        "truncated": dg.MetadataValue.bool(stats.truncated),
        "cache_dir": dg.MetadataValue.path(store.uri(*store.frames(clip))),
    })


@clip_asset(group="ingest", code_version="gt-v1",
            description="Per-frame ground truth from a `<clip>.gt.parquet` sidecar (synthetic clips), resampled to "
            "the frame cache's timestamps. Zero rows for clips without ground truth.")
def ground_truth(context: dg.AssetExecutionContext, clips: pl.DataFrame, frame_cache: pl.DataFrame
                 ) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    src = Path(clips["source_path"][0])
    side = src.with_name(src.stem + ".gt.parquet")
    if not side.exists():
        return dg.Output(pl.DataFrame(schema=GT_SCHEMA), metadata={"has_ground_truth": False})
    try:
        gt = pl.read_parquet(io.BytesIO(side.read_bytes())).sort("t_s")
    except Exception as e:  # noqa: BLE001 - a broken sidecar is this clip's problem
        raise ClipError(side, f"unreadable ground-truth sidecar ({type(e).__name__}: {e})") from e
    fi = frame_cache.select("frame_idx", "t_s").sort("t_s")
    joined = fi.join_asof(gt.select("t_s", "activity", "segment_idx", "period_s"), on="t_s", strategy="backward")
    df = joined.with_columns(pl.lit(clip).alias("clip")).select(list(GT_SCHEMA)).cast(GT_SCHEMA)
    return dg.Output(df, metadata={"has_ground_truth": True,
                                   "n_activities": dg.MetadataValue.int(df["activity"].n_unique())})


assets = [clips, frame_cache, ground_truth]
