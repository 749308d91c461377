"""Ingest: `clips` (probe + phase), `frame_cache` (decode once), `ground_truth` (synthetic labels),
`anomaly_ground_truth` (EgoClean anomaly spans from a sidecar).

A clip is a plain video file or a video member of a tar shard in the watched folder (`lib/shards.py`); a member
is probed, hashed and decoded straight from the shard (nothing extracted), rectified with the shard's
intrinsics.json, and its sidecars are read from the shard. `clips.source_path` is the file path or the member
reference `<shard>.tar::<member>`; errors name shard and member.
"""

import io
from pathlib import Path

import dagster as dg
import polars as pl

from handclust_assets.defs.adoption import MADE_FROM, SAME_VIDEO_AS
from handclust_assets.defs.common import Progress, clip_asset
from handclust_assets.defs.resources import HandclustSettings, StorageResource
from handclust_assets.lib.adopt import FRAMES, video_identity
from handclust_assets.lib.errors import ClipError
from handclust_assets.lib.phase import phase_from_name
from handclust_assets.lib.same_video import same_video_as
from handclust_assets.lib.shards import (
    ShardMember,
    find_member_intrinsics,
    load_member_intrinsics,
    member_sidecar,
    resolve_source,
    scan_sources,
)
from handclust_assets.video.frame_cache import FrameCache, build_frame_cache
from handclust_assets.video.picture_box import BESIDE_PICTURE
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
    "pixel_aspect": pl.Float64,  # a stored pixel's width / height (anamorphic video: not 1.0); added in v2
    "mirrored": pl.Boolean,  # the display matrix mirrors the picture after `rotation` (added in v2)
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


ANOMALY_GT_SCHEMA = {
    "clip": pl.Utf8,
    "span_idx": pl.Int64,  # null on the one row of a clip whose sidecar lists no anomaly ("checked: none")
    "start_s": pl.Float64,
    "end_s": pl.Float64,
    "label": pl.Utf8,
    "sidecar": pl.Utf8,
}
SOURCE_TAG = "handclust/source"  # set by the folder sensor (defs/ingest/sensors.py): the clip's file or member


def clip_source(settings: HandclustSettings, clip: str, tagged: str | None = None) -> Path | ShardMember:
    """The clip's video: the source the folder sensor tagged the run with (no folder scan), else the one the
    watched folder holds under this key (plain files and tar-shard members, `lib.shards.scan_sources`)."""
    if tagged:
        try:
            src = resolve_source(tagged)
            if isinstance(src, ShardMember) or src.exists():
                return src
        except ClipError:
            pass  # moved or replaced since the run was requested: look again
    sources, _ = scan_sources(settings.videos())
    if clip not in sources:
        raise ClipError(settings.videos() / clip,
                        f"no video for partition {clip!r} in {settings.videos()} (was it removed or renamed?)")
    return sources[clip]


def clip_path(settings: HandclustSettings, clip: str) -> Path | ShardMember:
    """The clip's video (a Path, or a ShardMember for a clip inside a tar shard)."""
    return clip_source(settings, clip)


def source_of(row: dict) -> Path | ShardMember:
    """The readable source of a `clips` row (`source_path` may be `<shard>.tar::<member>`)."""
    return resolve_source(row["source_path"])


def clip_intrinsics(settings: HandclustSettings, src: Path | ShardMember) -> tuple[str | None, object]:
    """(where the intrinsics come from, parsed FisheyeIntrinsics or None), validated: a bad file fails this clip
    with a clear message. A shard member needs intrinsics (shards are fisheye footage) unless rectify='never'."""
    if isinstance(src, ShardMember):
        if settings.rectify == "never":
            found = find_member_intrinsics(src)
            return (str(found) if found is not None else None), None
        intr = load_member_intrinsics(src, required=True)
        return intr.source if intr is not None else None, intr
    path = find_intrinsics(src)
    return (str(path) if path else None), (load_intrinsics(path) if path is not None else None)


def open_cache(storage: StorageResource, clip: str) -> FrameCache:
    """The clip's frame cache as a local folder (the storage folder itself, or a scratch mirror of a bucket)."""
    store = storage.store()
    try:
        return FrameCache(store.fetch_dir(*store.frames(clip)))
    except FileNotFoundError as e:
        raise ClipError(store.uri(*store.frames(clip)), "no frame cache (materialize frame_cache first)") from e


CLIPS_CODE_VERSION = "clips-v2"  # v2: pixel_aspect, mirrored


@clip_asset(group="ingest", code_version=CLIPS_CODE_VERSION, adoptable=False,
            description="One row per clip: probe (duration, fps, VFR, stored size, codec, rotation, frames), content "
            "hash, source path, phase from the file name, the intrinsics.json that applies (if any), the pixel "
            "aspect (anamorphic video: a stored pixel's width / height) and whether the display matrix mirrors it.")
def clips(context: dg.AssetExecutionContext, settings: HandclustSettings, storage: StorageResource
          ) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    src = clip_source(settings, clip, context.run.tags.get(SOURCE_TAG))
    info = probe_video(src)
    intr_from, intr = clip_intrinsics(settings, src)
    member = isinstance(src, ShardMember)
    stem = Path(src.member).stem if member else src.stem
    row = {
        "clip": clip,
        "source_path": src.ref if member else str(src.resolve()),
        "phase": phase_from_name(stem, tuple(settings.phase_words), settings.phase_pattern),
        **{k: v for k, v in info.as_dict().items() if k in CLIPS_SCHEMA and k != "source_path"},
        "intrinsics_path": intr_from,
    }
    if info.variable_fps:
        context.log.warning(f"{row['source_path']}: variable frame rate; frames are sampled by timestamp")
    twins = same_video_as(storage.store(), clip, info.content_hash)
    if twins:
        context.log.warning(f"{row['source_path']}: the same video as clip partition(s) {', '.join(twins)} (renamed, "
                            "moved or copied: equal content hash); the cross-clip graph pools one of them, the "
                            "others' results stay per clip (`handclust forget <clip>` deletes them)")
    probed = {k: v for k, v in row.items() if k not in ("clip", "source_path", "phase", "intrinsics_path")}
    calibration = None if intr is None else {"K": intr.K.tolist(), "D": intr.D.tolist(), "width": intr.width,
                                             "height": intr.height, "balance": intr.balance}
    return dg.Output(pl.DataFrame([row], schema=CLIPS_SCHEMA), metadata={
        SAME_VIDEO_AS: dg.MetadataValue.text(", ".join(twins) or "none"),
        MADE_FROM: dg.MetadataValue.text(video_identity(info.content_hash, probed, calibration, CLIPS_CODE_VERSION)),
        "source": dg.MetadataValue.text(row["source_path"]),
        "in_shard": dg.MetadataValue.bool(member),
        "duration_s": dg.MetadataValue.float(info.duration_s),
        "fps": dg.MetadataValue.float(info.fps),
        "frame_count": dg.MetadataValue.int(info.frame_count),
        "pixel_aspect": dg.MetadataValue.float(info.pixel_aspect),
        "mirrored": dg.MetadataValue.bool(info.mirrored),
        "phase": row["phase"],
        "codec": info.codec,
        "content_hash": info.content_hash,
    })


@clip_asset(group="ingest", code_version="frame-cache-v11", side_files=(FRAMES,),
            # v5: motion.npz without baked keyframe pulses; v6: and
            # with the picture's path (motion track version 6: a slow pan adds up against key frames); v7: black bars
            # cropped before the motion track is made (version 7); v8: and off the sampled frames the models see;
            # v9: a large frame's picture inside bars cut from its own luma, not its probe image (version 8); v10:
            # flat side panels (a blurred fill, bars of a colour) cut off as bars are (version 9); v11: anamorphic
            # video (pixels not square: DV, HDV, broadcast) stored as shown, stretched to square pixels; a display
            # matrix's flip applied (it was read as a half turn, or not at all); a half turn applied (it was not)
            description="Decode each clip once, sample at `sample_fps`, rectify fisheye if an intrinsics.json "
            "applies, cut black bars and flat side panels off (letterbox, pillarbox, a blurred fill), stretch "
            "anamorphic video to square pixels, downscale to `max_side`; frames go to "
            "<storage>/frames/<clip>/, the index (frame, timestamp) to DuckDB.")
def frame_cache(context: dg.AssetExecutionContext, settings: HandclustSettings, storage: StorageResource,
                clips: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    row = clips.row(0, named=True)
    path = source_of(row)
    intr = None
    if settings.rectify != "never":
        _, intr = clip_intrinsics(settings, path)
        if intr is None and settings.rectify == "always":
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
    bars = fc.meta.get("content_box")
    beside = BESIDE_PICTURE[fc.meta.get("content_kind") or "bars"]
    context.log.info(f"{clip}: {stats.n_frames} frames from {stats.decoded_frames} decoded in {stats.wall_seconds:.1f}s "
                     f"({stats.realtime_factor:.1f}x realtime), rectified={intr is not None}"
                     + (f", {beside} cut off (picture at {bars} of the frame: top, bottom, left, right)" if bars else ""))
    return dg.Output(df, metadata={
        "n_frames": dg.MetadataValue.int(stats.n_frames),
        "x_realtime": dg.MetadataValue.float(round(stats.realtime_factor, 2)),
        "cache_mb": dg.MetadataValue.float(round(stats.bytes / 1e6, 2)),
        "rectified": dg.MetadataValue.bool(intr is not None),
        "pixel_aspect": dg.MetadataValue.float(info.pixel_aspect),  # 1.0 square; else stretched to square pixels
        "bars_cut": dg.MetadataValue.bool(bars is not None),  # letterbox / pillarbox / side panels cut off the frames
        "cut_off": dg.MetadataValue.text(fc.meta.get("content_kind") or "-"),  # "bars" (black) or "panels"
        "truncated": dg.MetadataValue.bool(stats.truncated),
        "warning": dg.MetadataValue.text(stats.warning or "-"),  # truncation, repaired timestamps
        "cache_dir": dg.MetadataValue.path(store.uri(*store.frames(clip))),
    })


@clip_asset(group="ingest", code_version="gt-v1", adoptable=False,  # reads a sidecar beside the file
            description="Per-frame ground truth from a `<clip>.gt.parquet` sidecar (synthetic clips), resampled to "
            "the frame cache's timestamps. Zero rows for clips without ground truth.")
def ground_truth(context: dg.AssetExecutionContext, clips: pl.DataFrame, frame_cache: pl.DataFrame
                 ) -> dg.Output[pl.DataFrame]:
    clip = context.partition_key
    side = sidecar(source_of(clips.row(0, named=True)), ".gt.parquet")
    if side is None:
        return dg.Output(pl.DataFrame(schema=GT_SCHEMA), metadata={"has_ground_truth": False})
    try:
        gt = pl.read_parquet(io.BytesIO(side.read_bytes())).sort("t_s")
    except Exception as e:  # a broken sidecar is this clip's problem
        raise ClipError(side, f"unreadable ground-truth sidecar ({type(e).__name__}: {e})") from e
    fi = frame_cache.select("frame_idx", "t_s").sort("t_s")
    joined = fi.join_asof(gt.select("t_s", "activity", "segment_idx", "period_s"), on="t_s", strategy="backward")
    df = joined.with_columns(pl.lit(clip).alias("clip")).select(list(GT_SCHEMA)).cast(GT_SCHEMA)
    return dg.Output(df, metadata={"has_ground_truth": True,
                                   "n_activities": dg.MetadataValue.int(df["activity"].n_unique())})


def sidecar(src: Path | ShardMember, suffix: str) -> Path | ShardMember | None:
    """`<stem><suffix>` beside a plain video, or next to a shard member inside its shard; None when absent."""
    if isinstance(src, ShardMember):
        return member_sidecar(src, suffix)
    side = src.with_name(src.stem + suffix)
    return side if side.is_file() else None


@clip_asset(group="ingest", code_version="anomaly-gt-v1", adoptable=False,  # reads a sidecar beside the file
            description="Ground-truth anomaly spans (EgoClean) from a `<clip>.anomalies.csv` sidecar (start_s, end_s, "
            "label; seconds or mm:ss) beside the video or inside its tar shard; the synthetic generator writes one "
            "with the exact spans of the anomalies it injects. Zero rows for a clip without a sidecar (not judged); "
            "a sidecar without rows gives one row with null span_idx: checked, no anomaly (every detection there "
            "is a false positive).")
def anomaly_ground_truth(context: dg.AssetExecutionContext, clips: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    from handclust_assets.science.anomaly_eval import SIDECAR_SUFFIX, parse_anomaly_csv

    clip = context.partition_key
    side = sidecar(source_of(clips.row(0, named=True)), SIDECAR_SUFFIX)
    if side is None:
        return dg.Output(pl.DataFrame(schema=ANOMALY_GT_SCHEMA), metadata={"has_ground_truth": False})
    try:
        text = side.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ClipError(str(side), f"anomaly sidecar cannot be read ({e})") from e
    spans = parse_anomaly_csv(text, str(side))
    df = spans.with_row_index("span_idx").with_columns(
        pl.lit(clip).alias("clip"), pl.col("span_idx").cast(pl.Int64), pl.lit(str(side)).alias("sidecar"))
    if not df.height:
        df = pl.DataFrame([{"clip": clip, "span_idx": None, "start_s": None, "end_s": None,
                            "label": "checked: no anomaly", "sidecar": str(side)}], schema=ANOMALY_GT_SCHEMA)
    df = df.select(list(ANOMALY_GT_SCHEMA)).cast(ANOMALY_GT_SCHEMA)
    return dg.Output(df, metadata={"has_ground_truth": True, "sidecar": dg.MetadataValue.text(str(side)),
                                   "n_spans": dg.MetadataValue.int(spans.height),
                                   "anomaly_s": dg.MetadataValue.float(float((spans["end_s"] - spans["start_s"]).sum()))})


assets = [clips, frame_cache, ground_truth, anomaly_ground_truth]
