"""The compact frame cache: each clip is decoded once, sampled at a fixed rate, rectified, downscaled.

Layout of one clip's cache folder (`storage/frames/<clip_key>/`):

    frames.jpgpack   the sampled frames as JPEG images, concatenated
    offsets.npy      int64 (n + 1,) byte offsets into frames.jpgpack
    meta.json        fps, size, timestamps, source info, whether it was rectified
    motion.npz       every decoded frame's motion energy per grid cell and gray intensity (tiny images) at the
                     source frame rate, for repetition counting (video/motion_track.py; not rectified)

Why JPEG-in-one-file: a 5-fps cache at 480 px is ~20 KB/frame (5 h of footage ~ 1.8 GB instead of ~35 GB
raw), one file per clip keeps inode counts low, and decoding a 480 px JPEG costs ~1 ms, far below any
model that reads it. Sampling is by presentation timestamp, so variable-frame-rate clips are sampled at
true times.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import cv2
import numpy as np

from handclust_assets.lib.errors import ClipError
from handclust_assets.lib.storage import replace_dir
from handclust_assets.video.frame_gray import rotate_upright
from handclust_assets.video.motion_track import (
    MOTION_FILE,
    MotionTrack,
    MotionTrackBuilder,
    load_motion_track,
    save_motion_track,
)
from handclust_assets.video.picture_box import sample_probes
from handclust_assets.video.probe import (
    VideoInfo,
    VideoSource,
    close_input,
    open_input,
    probe_video,
    source_label,
    timed_frames,
)
from handclust_assets.video.rectify import FisheyeIntrinsics, check_intrinsics_fit, undistort_maps

PACK = "frames.jpgpack"
OFFSETS = "offsets.npy"
META = "meta.json"
# Decoding that ends before this share of the duration the container declares (and 0.5 s short of it): truncated.
EARLY_END_SHARE = 0.9
WAIT_SIDE = 1920  # a sampled frame waiting for the bars' judgement is held at most this many px wide (and high)


def output_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Downscaled (w, h) with the long side at most `max_side`, aspect kept, both even, never upscaled."""
    s = min(1.0, max_side / max(width, height))
    w = max(2, int(round(width * s / 2)) * 2)
    h = max(2, int(round(height * s / 2)) * 2)
    return w, h


@dataclass
class CacheStats:
    n_frames: int
    decoded_frames: int
    video_seconds: float
    wall_seconds: float
    bytes: int
    truncated: bool
    warning: str

    @property
    def realtime_factor(self) -> float:
        return self.video_seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")


class _Sampler:
    """Which decoded frames the cache keeps: one per `1/sample_fps` step, by presentation time (VFR safe)."""

    def __init__(self, sample_fps: float, source_fps: float) -> None:
        self.step = 1.0 / sample_fps
        self.slack = 0.5 / source_fps  # half a source frame: 30 fps -> 5 fps picks every 6th frame exactly
        self.next_t = 0.0

    def take(self, t: float) -> bool:
        if t + self.slack < self.next_t:
            return False
        # a long gap in a VFR clip still yields one sample per step, not a burst
        self.next_t = max(self.next_t + self.step, t + 0.5 * self.step) if t - self.next_t > self.step \
            else self.next_t + self.step
        return True


def _rgb(frame: av.VideoFrame, size: tuple[int, int], rotation: int, maps: tuple | None,
         crop: Crop | None = None) -> np.ndarray:
    """The frame as RGB at the cache size: rotated by its display matrix, rectified when `maps` are given, cut to
    the picture inside black bars when `crop` is given (`Crop`; never with `maps`)."""
    ow, oh = size
    if crop is not None:
        return rotate_upright(crop.cut(frame), rotation)
    if maps is None and rotation % 180 == 0:  # scaled as it is stored; a half turn keeps the size
        return rotate_upright(frame.to_ndarray(width=ow, height=oh, format="rgb24", interpolation="AREA"), rotation)
    rgb = rotate_upright(frame.to_ndarray(format="rgb24"), rotation)
    if maps is not None:
        return cv2.remap(rgb, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if rgb.shape[1] != ow or rgb.shape[0] != oh:
        rgb = cv2.resize(rgb, (ow, oh), interpolation=cv2.INTER_AREA)
    return rgb


@dataclass(frozen=True)
class Crop:
    """The picture inside black bars, as the cache cuts it: the stored (unrotated) frame is scaled to `scaled`
    (w, h) and the `box` (x, y, w, h) of that is kept, so the picture comes out at the cache size in one resize;
    `size` is the cache's (w, h), upright."""

    scaled: tuple[int, int]
    box: tuple[int, int, int, int]
    size: tuple[int, int]

    def cut(self, frame: av.VideoFrame) -> np.ndarray:
        """The picture of a decoded frame, unrotated."""
        x, y, w, h = self.box
        rgb = frame.to_ndarray(width=self.scaled[0], height=self.scaled[1], format="rgb24", interpolation="AREA")
        return np.ascontiguousarray(rgb[y:y + h, x:x + w])

    def cut_image(self, img: np.ndarray) -> np.ndarray:
        """The picture of the stored frame as an image of any size (unrotated): cut at the same shares, resized."""
        fw, fh = self.scaled
        x, y, w, h = self.box
        ih, iw = img.shape[:2]
        x0, y0 = round(x * iw / fw), round(y * ih / fh)
        x1, y1 = max(x0 + 1, round((x + w) * iw / fw)), max(y0 + 1, round((y + h) * ih / fh))
        return cv2.resize(np.ascontiguousarray(img[y0:y1, x0:x1]), (w, h), interpolation=cv2.INTER_AREA)


def bars_crop(display_size: tuple[int, int], rotation: int, share: tuple[float, float, float, float],
              max_side: int) -> Crop:
    """How the cache cuts the picture out of bars at `share` (top, bottom, left, right: shares of the stored,
    unrotated frame, `MotionTrackBuilder.box_share`) from a video of `display_size` (w, h, upright) turned by
    `rotation` degrees: the picture's upright size downscaled as the whole frame would be (`output_size`)."""
    top, bottom, left, right = share
    turned = rotation % 180 != 0
    sw, sh = (display_size[1], display_size[0]) if turned else display_size  # the stored frame, display px
    cw, ch = max(2, round(sw * (right - left))), max(2, round(sh * (bottom - top)))
    ow, oh = output_size(*((ch, cw) if turned else (cw, ch)), max_side)
    uw, uh = (oh, ow) if turned else (ow, oh)  # the cut, in the stored frame's orientation
    fw = max(uw, round(uw / max(right - left, 1e-6)))
    fh = max(uh, round(uh / max(bottom - top, 1e-6)))
    x, y = min(round(left * fw), fw - uw), min(round(top * fh), fh - uh)
    return Crop((fw, fh), (x, y, uw, uh), (ow, oh))


@dataclass
class _Pack:
    """The JPEG pack being written: byte offsets, timestamps and source frame indices of the kept frames."""

    path: Path
    quality: int
    offsets: list[int]
    times: list[float]
    source: list[int]

    def add(self, f: BinaryIO, rgb: np.ndarray, t: float, index: int, video: object) -> None:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY),
                                                                              self.quality])
        if not ok:
            raise ClipError(video, f"JPEG encoding failed at t={t:.2f}s")
        f.write(buf.tobytes())
        self.offsets.append(self.offsets[-1] + len(buf))
        self.times.append(t)
        self.source.append(index)


def _open(video: Path | VideoSource, tmp: Path) -> tuple[av.container.InputContainer, BinaryIO | None]:
    try:
        return open_input(video)
    except ClipError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ClipError(video, f"cannot open for decoding ({type(e).__name__}: {e})") from e


def _decode_into(video: Path | VideoSource, tmp: Path, info: VideoInfo, pack: _Pack, sampler: _Sampler,
                 maps: tuple | None, max_side: int, motion: MotionTrackBuilder, crop_bars: bool,
                 progress: Callable[[int, float], None] | None) -> tuple[int, float, str, list[str], _Sink]:
    """Decode every frame once: each feeds the motion track, the sampled ones go into the pack (`_Sink`).
    Returns (frames decoded, time of the last one, a warning when a decoding error stopped it early, notes on
    repaired timestamps, the sink: the cache's size and crop). Stops early where the motion track gives up the
    crop (`MotionTrackBuilder.crop_given_up_at`: bars lit, panels with detail): the caller decodes again whole.

    The decoder runs in this thread and hands each frame, in order, to one worker thread that feeds the motion track
    and scales, encodes and writes the sampled frames (`_FrameWorker`): PyAV decodes without the GIL, so that work
    overlaps the decoding of the next frames (2 cores, 20 s of 1080p, 8 interleaved runs: median 1.75 -> 1.49 s;
    docs/results.md). The output is byte for byte the same. The queue between them is short, so a slow worker holds
    the decoder back and memory stays at a few frames. Progress is reported from this thread."""
    container, fobj = _open(video, tmp)
    decoded, last_t, warning, notes = 0, 0.0, "", []
    reported = 0
    try:
        with pack.path.open("wb") as f:
            sink = _Sink(f, pack, motion, info, maps, max_side, video, crop_bars)
            worker = _FrameWorker(sink)
            try:
                for frame, t in timed_frames(container, info.fps, notes):
                    decoded += 1
                    last_t = t
                    if not worker.put((frame, t, decoded - 1, sampler.take(t))):
                        break  # the worker failed: its error is raised below
                    if motion.crop_given_up_at is not None:  # the crop is given up: the rest would be thrown away
                        break
                    if progress is not None and len(pack.times) > reported:
                        reported = len(pack.times)
                        progress(reported, pack.times[reported - 1])
            except (av.error.FFmpegError, av.error.InvalidDataError) as e:  # type: ignore[attr-defined]
                warning = f"decoding stopped at frame {decoded} ({type(e).__name__}: {e})"
            finally:
                try:
                    worker.finish()  # every frame handed over is consumed (or the worker's error re-raised)
                except (av.error.FFmpegError, av.error.InvalidDataError) as e:  # type: ignore[attr-defined]
                    # a frame that decoded but cannot be converted ends the clip there, as a decoding error does
                    warning = warning or f"decoding stopped at frame {worker.consumed + 1} ({type(e).__name__}: {e})"
            sink.flush()
            if progress is not None and len(pack.times) > reported:
                progress(len(pack.times), pack.times[-1])
    finally:
        close_input(container, fobj)
    return decoded, last_t, warning, notes, sink


class _Sink:
    """What the frame worker does with each decoded frame: every one feeds the motion track, the sampled ones go
    into the pack. While the motion track is still judging black bars (its first second, longer through a fade
    from black), each sampled frame waits as two small images: the whole frame at the cache size and the stored
    frame at up to `WAIT_SIDE` px (not the decoded frame: 15 of an 8K video would hold ~750 MB). Then they go in
    whole (the first image: the same bytes as without the wait) or cut to the picture inside the bars (from the
    second), and every frame after them is cut straight from the decoded frame (`bars_crop`). Rectified clips are
    never cut (the lens model needs the whole frame). `size` and `crop` are the cache's once decided."""

    def __init__(self, f: BinaryIO, pack: _Pack, motion: MotionTrackBuilder, info: VideoInfo, maps: tuple | None,
                 max_side: int, video: Path | VideoSource, crop_bars: bool) -> None:
        self.f, self.pack, self.motion, self.info, self.maps, self.video = f, pack, motion, info, maps, video
        self.max_side = max_side
        self.size = output_size(*info.display_size, max_side)
        self.crop: Crop | None = None
        self._decided = not crop_bars or maps is not None
        self._waiting: list[tuple[np.ndarray, np.ndarray, float, int]] = []

    def __call__(self, frame: av.VideoFrame, t: float, index: int, take: bool) -> None:
        self.motion.add(frame, t)
        rotation = self.info.rotation
        if self._decided:
            if take:
                self._add(_rgb(frame, self.size, rotation, self.maps, self.crop), t, index)
            return
        if take:
            w, h = output_size(frame.width, frame.height, WAIT_SIDE)
            stored = frame.to_ndarray(width=w, height=h, format="rgb24", interpolation="AREA")
            self._waiting.append((_rgb(frame, self.size, rotation, self.maps), stored, t, index))
        if self.motion.judged:
            self._decide()

    def flush(self) -> None:
        """The clip ended: frames still waiting (a clip shorter than the bars' judgement) go in."""
        if not self._decided:
            self.motion.judge_bars()
            self._decide()

    def _decide(self) -> None:
        share = self.motion.box_share
        if share is not None:
            self.crop = bars_crop(self.info.display_size, self.info.rotation, share, self.max_side)
            self.size = self.crop.size
        self._decided = True
        waiting, self._waiting = self._waiting, []
        for whole, stored, t, index in waiting:
            rgb = whole if self.crop is None else rotate_upright(self.crop.cut_image(stored), self.info.rotation)
            self._add(rgb, t, index)

    def _add(self, rgb: np.ndarray, t: float, index: int) -> None:
        """A sampled frame, upright, into the pack: mirrored where the display matrix says so."""
        self.pack.add(self.f, np.ascontiguousarray(rgb[:, ::-1]) if self.info.mirrored else rgb, t, index, self.video)


class _FrameWorker:
    """One thread that applies `fn` to the items `put` to it, in order. `put` returns False once `fn` has raised;
    `finish` waits for every item handed over and re-raises the first error `fn` raised."""

    def __init__(self, fn: Callable[..., None], depth: int = 8) -> None:
        import queue
        import threading

        self._fn, self._queue = fn, queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self.consumed = 0  # items `fn` took without raising
        self._thread = threading.Thread(target=self._run, name="frame-cache-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._fn(*item)
                    self.consumed += 1
                except BaseException as e:  # handed back to the decoding thread by `finish`
                    self._error = e

    def put(self, item: tuple) -> bool:
        if self._error is not None:
            return False
        self._queue.put(item)
        return True

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def build_frame_cache(
    video_path: str | Path | VideoSource,
    out_dir: str | Path,
    sample_fps: float = 5.0,
    max_side: int = 480,
    intrinsics: FisheyeIntrinsics | None = None,
    info: VideoInfo | None = None,
    jpeg_quality: int = 90,
    progress: Callable[[int, float], None] | None = None,
    crop_bars: bool = True,
) -> CacheStats:
    """Decode `video_path` once and write the sampled frames into `out_dir` (replaced atomically).

    `video_path` may be a VideoSource (a tar-shard member): decoded straight from it, nothing extracted. Black bars
    (letterbox, pillarbox, windowbox) are cut off the sampled frames, as off the motion track (the models see the
    picture at the cache's full size; `meta.json`'s `content_box` says where it was in the stored frame); where
    they turn out lit later, the clip is decoded again whole. `crop_bars=False` keeps them; a rectified clip keeps
    them too."""
    video_path = video_path if isinstance(video_path, VideoSource) else Path(video_path)
    out_dir = Path(out_dir)
    if sample_fps <= 0:
        raise ValueError(f"sample_fps must be positive, got {sample_fps}")
    info = info or probe_video(video_path)
    maps = None
    if intrinsics is not None:  # a lens calibrated on decoded frames is in stored pixels; the maps stretch
        up_w, up_h = info.upright_size  # anamorphic ones square as they rectify (one resample)
        check_intrinsics_fit(intrinsics, up_w, up_h)
        maps = undistort_maps(intrinsics, (up_w, up_h), output_size(*info.display_size, max_side))
    tmp = out_dir.with_name(out_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pack = _Pack(tmp / PACK, int(jpeg_quality), [0], [], [])
    sampler = _Sampler(sample_fps, info.fps)
    motion = MotionTrackBuilder(info.rotation, crop_bars=crop_bars,  # every decoded frame, for the rhythm path
                                more_frames=lambda: sample_probes(video_path))  # (motion.npz); bars seen at the
    t0 = time.perf_counter()  # start are confirmed on keyframes over the clip
    try:
        decoded, last_t, warning, notes, sink = _decode_into(video_path, tmp, info, pack, sampler, maps, max_side,
                                                             motion, crop_bars, progress)
    except BaseException:  # nothing half-written is left beside the cache
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if motion.crop_given_up_at is not None:  # bars (panels) cropped after the first second were lit (took detail)
        shutil.rmtree(tmp, ignore_errors=True)  # later, which a long GOP's keyframes missed: decoded again whole
        return build_frame_cache(video_path, out_dir, sample_fps, max_side, intrinsics, info, jpeg_quality, progress,
                                 crop_bars=False)
    wall = time.perf_counter() - t0
    if not pack.times:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ClipError(video_path, f"no frames could be decoded: {warning or 'the decoder produced no frames'}")
    end_s = last_t + 1.0 / info.fps
    if not warning and end_s < min(EARLY_END_SHARE * info.duration_s, info.duration_s - 0.5):  # ends early
        warning = (f"decoding ended at {end_s:.1f}s of the {info.duration_s:.1f}s the container declares "
                   f"(truncated file?)")
    elif warning and pack.times[-1] < 0.5 * info.duration_s:
        warning += f"; only {pack.times[-1]:.1f}s of {info.duration_s:.1f}s decoded"
    truncated = bool(warning)
    warning = "; ".join([w for w in [warning, *notes] if w])
    np.save(tmp / OFFSETS, np.asarray(pack.offsets, dtype=np.int64))
    save_motion_track(motion.result(), tmp / MOTION_FILE)
    ow, oh = sink.size
    meta = {
        "source": source_label(video_path) if isinstance(video_path, VideoSource) else str(video_path.resolve()),
        "content_hash": info.content_hash, "sample_fps": sample_fps, "width": ow, "height": oh,
        "rectified": maps is not None, "intrinsics": intrinsics.source if intrinsics is not None else None,
        "pixel_aspect": info.pixel_aspect,  # anamorphic video (not 1.0) is stored here with square pixels
        "rotation_applied": info.rotation, "mirrored": info.mirrored,
        "timestamps": pack.times, "source_frame": pack.source,
        "truncated": truncated, "warning": warning,
        # the picture inside black bars, as (top, bottom, left, right) shares of the stored frame; null: whole
        "content_box": list(motion.box_share) if sink.crop is not None else None,
        # what was cut off beside it: "bars" (black) or "panels" (a blurred fill, bars of a colour); null: nothing
        "content_kind": motion.box_kind if sink.crop is not None else None,
    }
    (tmp / META).write_text(json.dumps(meta))
    replace_dir(tmp, out_dir)
    return CacheStats(n_frames=len(pack.times), decoded_frames=decoded,
                      video_seconds=float(pack.times[-1] + sampler.step), wall_seconds=wall,
                      bytes=int(pack.offsets[-1]), truncated=truncated, warning=warning)


class FrameCache:
    """Read access to one clip's cached frames (RGB uint8)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        meta_path = self.dir / META
        if not meta_path.exists():
            raise FileNotFoundError(f"no frame cache at {self.dir} (materialize the frame_cache asset first)")
        self.meta = json.loads(meta_path.read_text())
        self.offsets = np.load(self.dir / OFFSETS)
        self.timestamps = np.asarray(self.meta["timestamps"], dtype=np.float64)
        self.fps = float(self.meta["sample_fps"])
        self.width = int(self.meta["width"])
        self.height = int(self.meta["height"])
        self._pack = np.memmap(self.dir / PACK, dtype=np.uint8, mode="r") if self.offsets[-1] else None

    def __len__(self) -> int:
        return len(self.timestamps)

    def motion_track(self) -> MotionTrack | None:
        """The source-rate motion track (motion energy per grid cell, intensity), or None for a cache built
        before it existed (rebuild the frame cache to get it)."""
        path = self.dir / MOTION_FILE
        return load_motion_track(path) if path.exists() else None

    @property
    def n_frames(self) -> int:
        return len(self.timestamps)

    def read(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} out of range 0..{len(self) - 1}")
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        bgr = cv2.imdecode(np.asarray(self._pack[a:b]), cv2.IMREAD_COLOR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def read_batch(self, indices: Sequence[int]) -> np.ndarray:
        return np.stack([self.read(int(i)) for i in indices]) if len(indices) else np.zeros(
            (0, self.height, self.width, 3), np.uint8
        )

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        for i in range(start, len(self) if stop is None else min(stop, len(self))):
            yield self.read(i)

    def all_frames(self) -> np.ndarray:
        """Every frame in memory at once: for short clips, tests and notebooks. Assets use `frames()` (an hour at
        5 fps and 480 px is 7 GB of pixels)."""
        return self.read_batch(range(len(self)))

    def frames(self) -> CachedFrames:
        """The frames as a lazy sequence: decoded when indexed or sliced, so a model sees a clip of any length
        one batch at a time."""
        return CachedFrames(self)


class CachedFrames(Sequence):
    """A frame cache's frames as a sequence: `frames[i]` one RGB frame, `frames[a:b]` an (n, H, W, 3) array of
    those frames, decoded on demand (nothing is kept)."""

    def __init__(self, cache: FrameCache) -> None:
        self._cache = cache

    def __len__(self) -> int:
        return len(self._cache)

    def __getitem__(self, i: int | slice) -> np.ndarray:  # type: ignore[override]
        if isinstance(i, slice):
            return self._cache.read_batch(range(*i.indices(len(self))))
        i = int(i)
        return self._cache.read(i + len(self) if i < 0 else i)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._cache.iter_frames()


def sample_frames(
    video_path: str | Path, sample_fps: float = 5.0, max_side: int = 480, max_seconds: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode a video straight to an (N, H, W, 3) uint8 RGB array at `sample_fps` (for tests/notebooks)."""
    info = probe_video(video_path, scan_timestamps=False)
    disp_w, disp_h = info.display_size
    ow, oh = output_size(disp_w, disp_h, max_side)
    frames, times = [], []
    next_t = 0.0
    with av.open(str(video_path)) as c:
        for fr, t in timed_frames(c, info.fps):
            if max_seconds is not None and t >= max_seconds:
                break
            if t + 0.5 / info.fps < next_t:
                continue
            rgb = rotate_upright(fr.to_ndarray(format="rgb24"), info.rotation)
            rgb = rgb[:, ::-1] if info.mirrored else rgb
            frames.append(cv2.resize(rgb, (ow, oh), interpolation=cv2.INTER_AREA))
            times.append(t)
            next_t += 1.0 / sample_fps
    return np.stack(frames), np.asarray(times)
