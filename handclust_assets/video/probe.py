"""Probe a video with PyAV (bundled FFmpeg): duration, fps (and whether variable), size, codec, rotation."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

import av
import numpy as np

from handclust_assets.lib.errors import ClipError
from handclust_assets.lib.memory import release_freed_memory

# Containers the bundled FFmpeg reads; a labelled folder of phone (.3gp), camcorder (.mts / .m2ts), broadcast (.mxf,
# .vob) or older web footage (.flv, .wmv / .asf, .ogv) must not be skipped by the folder scan.
# Raw elementary streams (.h264 / .264, .hevc / .h265 / .265: a drone's or a dashcam's export) are read too.
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".gif", ".mpg", ".mpeg", ".ts", ".hevc",
                    ".3gp", ".3g2", ".mts", ".m2ts", ".mxf", ".vob", ".flv", ".wmv", ".asf", ".ogv", ".y4m",
                    ".h264", ".264", ".h265", ".265")

# Anything larger than this on its long side is decoded but flagged; the frame cache downsamples anyway.
MAX_SUPPORTED_SIDE = 8192
# A pixel aspect (sample aspect ratio: a stored pixel's width over its height) outside this range is taken for a
# broken header and read as square pixels. Anamorphic video is within it: DV 8:9 / 32:27, HDV 4:3, 2x anamorphic 2:1.
PIXEL_ASPECT_RANGE = (0.25, 4.0)
# Decoded frames between two `release_freed_memory` calls while decoding (10 s at 30 fps).
TRIM_EVERY_FRAMES = 300


@dataclass(frozen=True)
class VideoInfo:
    path: str
    duration_s: float
    fps: float
    variable_fps: bool
    width: int
    height: int
    codec: str
    rotation: int
    frame_count: int
    size_bytes: int
    content_hash: str
    pixel_aspect: float = 1.0  # a stored pixel's width / height; 1.0 square, 4/3 HDV's 1440 x 1080 shown 1920 wide
    mirrored: bool = False  # the display matrix flips the picture: after `rotation`, it is shown mirrored left-right

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) of the stored frame after applying the rotation metadata, in stored pixels (what a
        lens calibrated on the decoded frames, `intrinsics.json`, is measured in)."""
        if self.rotation % 180 == 90:
            return self.height, self.width
        return self.width, self.height

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as a player shows it: the stored width stretched by the pixel aspect (anamorphic
        video), then the rotation metadata applied."""
        w = max(1, round(self.width * self.pixel_aspect))
        return (self.height, w) if self.rotation % 180 == 90 else (w, self.height)


@runtime_checkable
class VideoSource(Protocol):
    """A video that is not a plain file of its own (e.g. a member of a tar shard, `lib/shards.ShardMember`).

    `ref` names it in errors and tables; `open()` returns a seekable, read-only binary file object (PyAV reads
    it without any copy on disk) and raises ClipError naming `ref` when the source is unusable.
    """

    @property
    def ref(self) -> str: ...

    @property
    def size_bytes(self) -> int: ...

    def open(self) -> BinaryIO: ...


def source_label(source: str | Path | VideoSource) -> str:
    """How a file or a source is named in errors and tables (a file: its path as given)."""
    return source.ref if isinstance(source, VideoSource) else str(source)


def open_input(source: str | Path | VideoSource) -> tuple[av.container.InputContainer, BinaryIO | None]:
    """`av.open` a file path or a VideoSource; the caller closes the container, then the file object (if any)."""
    if not isinstance(source, VideoSource):
        return av.open(os.fspath(source), mode="r"), None
    fobj = source.open()
    try:
        return av.open(fobj, mode="r"), fobj
    except BaseException:
        fobj.close()
        raise


def close_input(container: av.container.InputContainer, fobj: BinaryIO | None) -> None:
    """Close what `open_input` opened: the container, then the file object (if any)."""
    container.close()
    if fobj is not None:
        fobj.close()


def content_hash(path: str | Path | VideoSource, chunk: int = 1 << 20) -> str:
    """sha256 of the head, tail and size of the file: cheap for hour-long videos, changes when the file does.

    A VideoSource (tar member) hashes its bytes the same way, so a member and its extracted copy hash alike."""
    if isinstance(path, VideoSource):
        size, opener = int(path.size_bytes), path.open
    else:
        p = Path(path)
        size, opener = p.stat().st_size, lambda: p.open("rb")
    h = hashlib.sha256(str(size).encode())
    with opener() as f:
        h.update(f.read(chunk))
        if size > 2 * chunk:
            f.seek(size - chunk)
            h.update(f.read(chunk))
        elif size > chunk:
            h.update(f.read())
    return h.hexdigest()[:16]


def stream_rotation(stream: av.video.stream.VideoStream) -> int:
    """Clockwise rotation (0/90/180/270) a player applies, from the display matrix or the legacy tag."""
    rot = 0
    tag = (stream.metadata or {}).get("rotate")
    if tag is not None:
        try:
            rot = int(float(tag))
        except ValueError:
            rot = 0
    else:
        found = side_data_orientation(getattr(stream, "side_data", None))
        rot = found[0] if found is not None else 0
    return snap_rotation(rot)


def display_orientation(matrix: np.ndarray) -> tuple[int, bool] | None:
    """(rotation, mirrored) a player applies for a display matrix (FFmpeg's 3 x 3 int32, 16.16 fixed point): the
    clockwise quarter turn, then whether the turned picture is flipped left to right. Read as FFmpeg's own tools
    read it (fftools' autorotate): the angle from the matrix, then a flip from the signs of its entries: at 0 a
    negative m[4] is a vertical flip (a half turn, mirrored); at 180 m[0] < 0 flips left to right and m[4] < 0
    upside down (both: a plain half turn); at 90 m[3] > 0 is a transpose (a quarter turn, mirrored); at 270 m[3] < 0
    is the other diagonal's. An angle off the quarters snaps to the nearest one, unmirrored. None: no matrix
    (fewer than 9 values, or a zero column)."""
    m = np.asarray(matrix, np.float64).ravel()
    if m.size < 9:
        return None
    s0, s1 = np.hypot(m[0], m[3]), np.hypot(m[1], m[4])
    if s0 == 0 or s1 == 0 or not np.isfinite([s0, s1]).all():
        return None
    # clockwise whole degrees, 0..359, as fftools' get_rotation rounds and wraps them
    theta = int(np.round(np.degrees(np.arctan2(m[1] / s1, m[0] / s0)))) % 360
    if theta == 90:
        return 90, bool(m[3] > 0)
    if theta == 180:
        h, v = bool(m[0] < 0), bool(m[4] < 0)
        return (180, False) if h and v else (0, True) if h else (180, True) if v else (0, False)
    if theta == 270:
        return 270, bool(m[3] < 0)
    if theta == 0:
        return (180, True) if m[4] < 0 else (0, False)
    return snap_rotation(theta), False


def side_data_orientation(side_data: Iterable[object] | None) -> tuple[int, bool] | None:
    """`display_orientation` of the display matrix among a frame's or a stream's side data; None where there is
    none (or it cannot be read)."""
    for sd in side_data or []:
        try:
            if "DISPLAYMATRIX" in str(getattr(sd, "type", "")).upper():
                data = bytes(sd)
                if len(data) >= 36:
                    return display_orientation(np.frombuffer(data[:36], dtype="<i4"))
        except Exception:  # side data varies across builds: no orientation from it
            continue
    return None


def snap_rotation(degrees: float) -> int:
    """A display rotation as one of 0/90/180/270 (a 45-degree matrix, which no player applies as a quarter turn,
    snaps to the nearest quarter; ties go to the lower one)."""
    return int(np.ceil(float(degrees) / 90.0 - 0.5)) * 90 % 360


def pick_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The clip's video stream: one FFmpeg can decode, not a cover picture (attached_pic disposition), and of the
    rest the one with the most frames (stream header, else duration x rate), then the largest picture; the first
    on ties. A .mov or .mkv may carry a one-frame cover or thumbnail stream before the real video. IndexError when
    there is none."""
    streams = list(container.streams.video)
    if not streams:
        raise IndexError("no video stream")
    attached = int(getattr(getattr(av.stream, "Disposition", None), "attached_pic", 0x400))

    def key(ix: tuple[int, av.video.stream.VideoStream]) -> tuple:
        i, s = ix
        cover = bool(int(getattr(s, "disposition", 0) or 0) & attached)
        frames = float(s.frames or 0)
        if frames <= 0 and s.duration and s.time_base and s.average_rate:
            frames = float(s.duration * s.time_base * s.average_rate)
        cc = s.codec_context  # None when FFmpeg has no decoder for the stream (unknown or corrupt codec id)
        area = int(cc.width or 0) * int(cc.height or 0) if cc is not None else 0
        return (cc is not None, not cover, frames, area, -i)

    return max(enumerate(streams), key=key)[1]


def monotonic_times(times: Iterator[float | None], fps: float, reset_s: float = 0.5
                    ) -> Iterator[tuple[float | None, str]]:
    """Presentation times (s; None where a frame has none) -> a timeline that starts at 0 and only goes forward,
    with a note ("" or what was repaired). A jump back of more than `reset_s` is a timestamp restart
    (concatenated MPEG-TS, a camera's file split): the timeline continues one frame after the last time instead of
    laying the second part over the first. A frame whose time repeats or steps back by less (a broken muxer, a
    duplicated frame) gets None: it is skipped. Frames without any time follow the previous one at 1 / fps."""
    dt = 1.0 / fps if np.isfinite(fps) and fps > 1e-3 else 1.0 / 30.0
    start: float | None = None
    offset, last = 0.0, -np.inf
    for t in times:
        if t is None or not np.isfinite(t):
            last = last + dt if np.isfinite(last) else 0.0
            yield last, ""
            continue
        start = t if start is None else start
        out = t - start + offset
        if last - out > reset_s:
            offset += last + dt - out
            last = last + dt
            yield last, f"timestamps restart after {last - dt:.2f}s (concatenated stream?); the timeline continues"
        elif out <= last:
            yield None, "frames with a repeated or backward timestamp skipped"
        else:
            last = out
            yield out, ""


def timed_frames(container: av.container.InputContainer, fps: float, notes: list[str] | None = None
                 ) -> Iterator[tuple[av.VideoFrame, float]]:
    """Every decoded frame of the clip's video stream (`pick_video_stream`) with its time (s) on a timeline that
    starts at 0 and only goes forward (`monotonic_times`: a restart of the timestamps continues the timeline, a
    frame with a repeated or backward time is skipped); what had to be repaired is appended to `notes`, once per
    kind. Every `TRIM_EVERY_FRAMES` frames the decoding threads' freed memory goes back to the system
    (`release_freed_memory`), so memory stays flat on long clips."""
    vs = pick_video_stream(container)
    vs.thread_type = "AUTO"
    tb = float(vs.time_base) if vs.time_base else 0.0
    frames: list[av.VideoFrame] = []

    def times() -> Iterator[float | None]:
        for i, frame in enumerate(container.decode(vs), start=1):
            frames.append(frame)
            if i % TRIM_EVERY_FRAMES == 0:
                release_freed_memory()
            yield float(frame.pts) * tb if frame.pts is not None and tb else None

    for t, note in monotonic_times(times(), fps):
        if note and notes is not None and not any(n.split(" ")[:2] == note.split(" ")[:2] for n in notes):
            notes.append(note)
        frame = frames.pop()
        if t is not None:
            yield frame, t


def _check_file(p: Path) -> int:
    if not p.exists():
        raise ClipError(p, "file does not exist")
    if p.is_dir():
        raise ClipError(p, "is a directory, not a video file")
    return p.stat().st_size


def _open_probed(source: Path | VideoSource, p: object) -> tuple[av.container.InputContainer, BinaryIO | None]:
    try:
        return open_input(source)
    except ClipError:
        raise
    except av.error.FFmpegError as e:  # type: ignore[attr-defined]
        raise ClipError(p, f"not a readable video container ({type(e).__name__}: {e})") from e
    except Exception as e:
        raise ClipError(p, f"cannot open as video ({type(e).__name__}: {e})") from e


def _frame_size(vs: av.video.stream.VideoStream, p: object) -> tuple[int, int]:
    cc = vs.codec_context
    width, height = int(cc.width or 0), int(cc.height or 0)
    if width <= 0 or height <= 0:
        raise ClipError(p, f"video stream has no valid frame size ({width}x{height})")
    if max(width, height) > MAX_SUPPORTED_SIDE:
        raise ClipError(p, f"frame size {width}x{height} exceeds the supported {MAX_SUPPORTED_SIDE} px")
    return width, height


def _packet_times(container: av.container.InputContainer, vs: av.video.stream.VideoStream, tb: float,
                  max_packets: int, to_end: bool = False) -> tuple[list[float], int]:
    """Presentation times of the first packets (demuxed, not decoded), and how many packets with data were read.
    A truncated file keeps what was read. With `to_end` (the header gives neither a duration nor a frame count), a
    stream whose packets carry no time (a raw .h264 / .hevc elementary stream) is counted to its end: its frame
    count is known no other way (demuxing only parses, it does not decode)."""
    pts: list[float] = []
    packets = 0
    try:
        for i, pkt in enumerate(container.demux(vs)):
            packets += int(pkt.size > 0)
            if pkt.pts is not None and tb:
                pts.append(float(pkt.pts) * tb)
            if i + 1 >= max_packets and (pts or not to_end):
                break
    except av.error.FFmpegError:  # type: ignore[attr-defined]
        pass  # decoding will report the real problem
    return pts, packets


def _timestamp_runs(pts: np.ndarray, reset_s: float = 1.0) -> list[np.ndarray]:
    """Packet times (in demuxing order) split where they jump back by more than `reset_s` (a restart; B-frame
    reordering steps back by at most 16 frames, which the caller's `reset_s` covers)."""
    cuts = np.flatnonzero(np.diff(pts) < -reset_s) + 1
    return [r for r in np.split(pts, cuts) if len(r)]


@dataclass
class _Timing:
    fps: float
    duration_s: float
    frames: int
    variable: bool


def _timing(container: av.container.InputContainer, vs: av.video.stream.VideoStream, pts: list[float],
            max_packets: int, p: object, packets: int = 0) -> _Timing:
    """Frame rate, duration, frame count and whether the rate varies (frame intervals spread more than 10 %
    around their median), from the stream's header, completed from the packet times where it says nothing. A stream
    whose packets carry no time at all (`packets` of them: a raw elementary stream) runs at the rate its codec
    header gives (an H.264 / HEVC VUI; FFmpeg's `average_rate` there is its 25 fps default for raw input)."""
    tb = float(vs.time_base) if vs.time_base else 0.0
    avg = float(vs.average_rate) if vs.average_rate else 0.0
    if not pts and packets:
        rate = vs.codec_context.framerate or vs.guessed_rate
        avg = float(rate) if rate else avg
    base = float(vs.base_rate) if getattr(vs, "base_rate", None) else 0.0
    duration = float(vs.duration * tb) if vs.duration and tb else (
        float(container.duration / av.time_base) if container.duration else 0.0)
    frames = int(vs.frames or 0)
    variable = False
    if len(pts) >= 3:
        parts = _timestamp_runs(np.asarray(pts), max(1.0, 16.0 / avg) if avg > 0 else 1.0)
        d = np.concatenate([np.diff(np.sort(r)) for r in parts])
        d = d[d > 0]
        if d.size:
            med = float(np.median(d))
            variable = bool(np.mean(np.abs(d - med) > 0.1 * med) > 0.05)
            avg = avg if avg > 0 else 1.0 / med
            if len(parts) > 1:  # timestamps restart (concatenated stream): the decoded timeline runs on
                duration = max(duration, sum(float(r.max() - r.min()) + med for r in parts))
        if (frames == 0 or len(parts) > 1) and len(pts) < max_packets:
            frames = max(frames, len(pts))
    fps = avg or base
    if fps <= 0 or not np.isfinite(fps):
        raise ClipError(p, "cannot determine a frame rate (no timestamps in the video stream)")
    if duration <= 0 and pts:
        duration = max(pts) - min(pts) + 1.0 / fps
    if frames == 0 and not pts and packets:
        frames = packets
        duration = duration if duration > 0 else packets / fps
    if frames == 0 and duration > 0:
        frames = int(round(duration * fps))
    if frames == 0 and not pts:
        raise ClipError(p, "video stream holds no frames (empty or truncated file)")
    return _Timing(fps, duration, frames, variable)


def _first_frame_orientation(container: av.container.InputContainer, vs: av.video.stream.VideoStream,
                             rotation: int, p: object) -> tuple[int, bool]:
    """Decode the first frame (of a container at its start): it proves the stream is decodable and carries the
    display matrix: (the clockwise rotation a player applies, whether it then mirrors the picture;
    `display_orientation`). Without a matrix, `rotation` (the stream's tag), unmirrored."""
    first = None
    try:
        for fr in container.decode(vs):
            first = fr
            break
    except (av.error.FFmpegError, av.error.InvalidDataError) as e:  # type: ignore[attr-defined]
        raise ClipError(p, f"video stream cannot be decoded ({type(e).__name__}: {e})") from e
    if first is None:
        raise ClipError(p, "video stream holds no decodable frame (empty or truncated file)")
    found = side_data_orientation(getattr(first, "side_data", None))  # (PyAV's `frame.rotation`: the same matrix)
    return found if found is not None and found != (0, False) else (rotation, False)


def probe_video(
    path: str | Path | VideoSource, scan_timestamps: bool = True, max_scan_packets: int = 3000
) -> VideoInfo:
    """Probe a video file (or a VideoSource such as a tar member); raise ClipError naming the file and the
    problem when it is not a usable video.

    With scan_timestamps, packet timestamps of the first `max_scan_packets` packets are read (no decoding)
    to tell constant from variable frame rate and to count frames when the container does not say; they are read
    anyway where the container gives neither a duration nor a frame count (a raw elementary stream)."""
    source = path if isinstance(path, VideoSource) else Path(path)
    p = source_label(source) if isinstance(source, VideoSource) else source
    size = int(source.size_bytes) if isinstance(source, VideoSource) else _check_file(source)
    if size == 0:
        raise ClipError(p, "file is empty (0 bytes)")
    container, fobj = _open_probed(source, p)
    try:
        if not container.streams.video:
            raise ClipError(p, "contains no video stream")
        if _is_still_image(container):
            raise ClipError(p, f"is a still image ({container.format.name}), not a video")
        vs = pick_video_stream(container)
        if vs.codec_context is None:
            raise ClipError(p, "video stream has no decoder here (unknown or corrupt codec id in the container)")
        width, height = _frame_size(vs, p)
        codec = vs.codec_context.name or "unknown"
        tb = float(vs.time_base) if vs.time_base else 0.0
        silent = not (vs.frames or vs.duration or container.duration)  # the header says nothing: read packets
        scan = scan_timestamps or silent
        pts, packets = _packet_times(container, vs, tb, max_scan_packets, to_end=silent) if scan else ([], 0)
        timing = _timing(container, vs, pts, max_scan_packets, p, packets)
        try:
            container.seek(0)
        except av.error.FFmpegError:  # type: ignore[attr-defined]  # a raw elementary stream cannot seek back
            close_input(container, fobj)
            container, fobj = _open_probed(source, p)
            vs = pick_video_stream(container)
        rotation, mirrored = _first_frame_orientation(container, vs, stream_rotation(vs), p)
        pixel_aspect = _pixel_aspect(vs)
    finally:
        close_input(container, fobj)
    return VideoInfo(
        path=source_label(source) if isinstance(source, VideoSource) else str(source.resolve()),
        duration_s=float(timing.duration_s),
        fps=float(timing.fps),
        variable_fps=timing.variable,
        width=width,
        height=height,
        codec=codec,
        rotation=rotation,
        frame_count=int(timing.frames),
        size_bytes=int(size),
        content_hash=content_hash(source),
        pixel_aspect=pixel_aspect,
        mirrored=mirrored,
    )


def _pixel_aspect(vs: av.video.stream.VideoStream) -> float:
    """The stream's sample aspect ratio as a float: the container's where it sets one (an mp4 / mov `pasp` box, a
    Matroska display size), else the codec's (an H.264 / HEVC VUI, MPEG-2's aspect code; known once a frame is
    decoded), as FFmpeg's players choose. Unset, 0:1, or outside `PIXEL_ASPECT_RANGE` (a broken header): 1.0."""
    for sar in (vs.sample_aspect_ratio, vs.codec_context.sample_aspect_ratio):
        if sar is not None and sar.numerator > 0 and sar.denominator > 0:
            aspect = float(sar)
            return aspect if PIXEL_ASPECT_RANGE[0] <= aspect <= PIXEL_ASPECT_RANGE[1] else 1.0
    return 1.0


def _is_still_image(container: av.container.InputContainer) -> bool:
    """FFmpeg opens single pictures (PNG, JPEG, BMP, TIFF, WebP, ...) through its image demuxers: `image2`,
    `*_pipe`. Animated GIF has its own demuxer (`gif`) and stays a video."""
    name = container.format.name or ""
    return name == "image2" or name.endswith("_pipe")


def ffmpeg_binary() -> str | None:
    """An ffmpeg executable for baselines and tools: the system's, else the one inside the imageio-ffmpeg wheel
    (a dev dependency), else None. Decoding itself never needs it (PyAV bundles FFmpeg)."""
    found = shutil.which("ffmpeg")
    if found is None:
        try:
            import imageio_ffmpeg

            found = imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError):
            found = None
    return found
