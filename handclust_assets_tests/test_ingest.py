"""Ingest: probing, frame cache, rectification and every kind of bad input, one clip at a time."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from handclust_assets.lib.errors import ClipError
from handclust_assets.lib.phase import phase_from_name
from handclust_assets.lib.video_folder import scan_videos
from handclust_assets.video.frame_cache import FrameCache, build_frame_cache, output_size
from handclust_assets.video.probe import ffmpeg_binary, probe_video
from handclust_assets.video.rectify import load_intrinsics, undistort_maps
from handclust_assets.video.writer import moving_pattern, write_video


def _clip(path: Path, n: int = 45, w: int = 320, h: int = 180, fps: float = 15.0, **kw) -> Path:
    return write_video(path, moving_pattern(n, w, h), fps, **kw)


def test_real_clip_probe_and_cache(shared_clips: Path, tmp_path: Path) -> None:
    src = shared_clips / "02_cups.mp4"
    info = probe_video(src)
    assert info.codec == "h264" and (info.width, info.height) == (1280, 720)
    assert abs(info.fps - 29.97) < 0.01 and not info.variable_fps
    assert 9.5 < info.duration_s < 10.5 and info.frame_count == 300
    stats = build_frame_cache(src, tmp_path / "fc", sample_fps=5, max_side=480)
    fc = FrameCache(tmp_path / "fc")
    assert stats.n_frames == len(fc) == 50
    assert np.allclose(np.diff(fc.timestamps), 0.2, atol=0.02)
    img = fc.read(10)
    assert img.shape == (270, 480, 3) and img.dtype == np.uint8 and img.std() > 5


def test_cache_is_replaced_not_appended(tmp_path: Path) -> None:
    src = _clip(tmp_path / "a.mp4", n=30)
    build_frame_cache(src, tmp_path / "fc", sample_fps=5)
    build_frame_cache(src, tmp_path / "fc", sample_fps=2)
    fc = FrameCache(tmp_path / "fc")
    assert len(fc) == 4 and fc.fps == 2
    assert not list(tmp_path.glob("fc.*"))  # no temp/old folders left behind


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("clip.avi", {"codec": "mpeg4"}),
        ("clip.mkv", {"codec": "libx264"}),
        ("clip.mov", {"codec": "libx264"}),
        ("clip.gif", {"codec": "gif", "w": 160, "h": 90}),
        ("clip_hevc.mp4", {"codec": "libx265"}),
        ("phone.3gp", {"codec": "mpeg4", "w": 176, "h": 144}),
        ("camcorder.mts", {"codec": "mpeg2video"}),
        ("old_web.flv", {"codec": "flv"}),
        ("old_web.wmv", {"codec": "wmv2"}),
        ("web.webm", {"codec": "libvpx-vp9"}),
        ("web_av1.mkv", {"codec": "libsvtav1"}),
        ("hdr_phone.mp4", {"codec": "libx265", "pix_fmt": "yuv420p10le"}),
        ("edit.mov", {"codec": "prores_ks", "pix_fmt": "yuv422p10le"}),
        ("webcam.avi", {"codec": "mjpeg", "pix_fmt": "yuvj420p"}),
        ("thermal.mkv", {"codec": "ffv1", "pix_fmt": "gray16le"}),
        ("drone.h264", {"codec": "libx264"}),  # raw elementary streams: no container, no timestamps
        ("dashcam.265", {"codec": "libx265"}),
    ],
)
def test_containers_and_codecs_work(tmp_path: Path, name: str, kw: dict) -> None:
    w, h = kw.pop("w", 320), kw.pop("h", 180)
    src = _clip(tmp_path / "videos" / name, n=30, w=w, h=h, **kw)
    assert list(scan_videos(tmp_path / "videos").values()) == [src]  # the watched folder sees it
    info = probe_video(src)
    assert info.frame_count >= 29
    stats = build_frame_cache(src, tmp_path / "fc", sample_fps=5)
    assert stats.n_frames == 10
    assert FrameCache(tmp_path / "fc").read(0).shape[:2] == (h, w)


def test_variable_frame_rate_is_detected_and_sampled_by_time(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(0.02, 0.09, 80))
    times -= times[0]
    src = _clip(tmp_path / "vfr.mp4", n=80, times_s=times.tolist())
    info = probe_video(src)
    assert info.variable_fps
    build_frame_cache(src, tmp_path / "fc", sample_fps=5)
    ts = FrameCache(tmp_path / "fc").timestamps
    assert np.all(np.diff(ts) > 0.1) and np.all(np.diff(ts) < 0.35)
    assert abs(len(ts) - times[-1] * 5) <= 2


def test_rotated_phone_video_is_upright_in_cache(tmp_path: Path) -> None:
    src = _clip(tmp_path / "phone.mp4", n=20, w=320, h=180, rotation=90)
    info = probe_video(src)
    assert info.rotation == 90 and info.display_size == (180, 320)
    build_frame_cache(src, tmp_path / "fc", sample_fps=5)
    assert FrameCache(tmp_path / "fc").read(0).shape == (320, 180, 3)


def test_4k_clip_is_downscaled(tmp_path: Path) -> None:
    src = _clip(tmp_path / "big.mp4", n=6, w=3840, h=2160, fps=30, preset="ultrafast")
    build_frame_cache(src, tmp_path / "fc", sample_fps=5, max_side=480)
    assert FrameCache(tmp_path / "fc").read(0).shape == (270, 480, 3)


def test_tiny_clip(tmp_path: Path) -> None:
    src = _clip(tmp_path / "tiny.mp4", n=10, w=16, h=16)
    build_frame_cache(src, tmp_path / "fc", sample_fps=5)
    assert FrameCache(tmp_path / "fc").read(0).shape == (16, 16, 3)
    assert output_size(16, 16, 480) == (16, 16)


def _bad(tmp_path: Path, kind: str) -> Path:
    if kind == "empty":
        p = tmp_path / "empty.mp4"
        p.write_bytes(b"")
    elif kind == "text":
        p = tmp_path / "notes.mp4"
        p.write_text("this is not a video\n" * 50)
    elif kind == "truncated":
        good = _clip(tmp_path / "good.mp4", n=60)
        p = tmp_path / "truncated.mp4"
        p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "picture":  # a photo saved under a video's name: FFmpeg's image demuxer would open it
        p = tmp_path / "photo.mp4"
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 10, 10)).save(buf, "PNG")
        p.write_bytes(buf.getvalue())
    elif kind == "garbage":
        p = tmp_path / "noise.mkv"
        p.write_bytes(np.random.default_rng(0).integers(0, 255, 50_000, dtype=np.uint8).tobytes())
    else:
        raise ValueError(kind)
    return p


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "garbage", "picture"])
def test_bad_files_raise_clip_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    p = _bad(tmp_path, kind)
    with pytest.raises(ClipError) as ei:
        probe_video(p)
        build_frame_cache(p, tmp_path / "fc")
    assert str(p) in str(ei.value) and ei.value.problem


INTR = {"fx": 160.0, "fy": 160.0, "cx": 160.0, "cy": 90.0, "k1": -0.05, "k2": 0.01, "k3": 0.0, "k4": 0.0}


def test_fisheye_rectification_changes_geometry(tmp_path: Path) -> None:
    p = tmp_path / "intrinsics.json"
    p.write_text(json.dumps({**INTR, "width": 320, "height": 180}))
    intr = load_intrinsics(p)
    m1, _ = undistort_maps(intr, (320, 180), (320, 180))
    assert m1.shape[:2] == (180, 320)
    src = _clip(tmp_path / "fish.mp4", n=15)
    build_frame_cache(src, tmp_path / "fc_r", sample_fps=5, intrinsics=intr)
    build_frame_cache(src, tmp_path / "fc_p", sample_fps=5)
    r, plain = FrameCache(tmp_path / "fc_r"), FrameCache(tmp_path / "fc_p")
    assert r.meta["rectified"] and not plain.meta["rectified"]
    assert np.abs(r.read(0).astype(int) - plain.read(0).astype(int)).mean() > 5


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"fx": 1, "fy": 1, "cx": 1}), "missing key 'cy'"),
        (json.dumps({**INTR, "fx": -3}), "focal lengths must be positive"),
        (json.dumps({**INTR, "fy": True}), "'fy' is not a number (true)"),
        (json.dumps({**INTR, "k1": "abc"}), "'k1' is not a number"),
        (json.dumps({"fx": 1, "fy": 1, "cx": 1, "cy": 1}), "no fisheye coefficients"),
        (json.dumps([1, 2, 3]), "must be a JSON object"),
    ],
)
def test_bad_intrinsics_are_named(tmp_path: Path, content: str, needle: str) -> None:
    p = tmp_path / "intrinsics.json"
    p.write_text(content)
    with pytest.raises(ClipError) as ei:
        load_intrinsics(p)
    assert str(p) in str(ei.value) and needle in str(ei.value)


def test_intrinsics_outside_frame_fail_the_cache(tmp_path: Path) -> None:
    p = tmp_path / "intrinsics.json"
    p.write_text(json.dumps({**INTR, "cx": 5000.0, "width": 320, "height": 180}))
    src = _clip(tmp_path / "fish.mp4", n=10)
    with pytest.raises(ClipError, match="principal point"):
        build_frame_cache(src, tmp_path / "fc", intrinsics=load_intrinsics(p))


@pytest.mark.parametrize("lens", [{"fx": 1e-9, "fy": 1e-9}, {"fx": 160.0, "fy": 1e5}, {"fx": 8.0, "fy": 8.0}])
def test_implausible_focal_lengths_fail_the_cache(tmp_path: Path, lens: dict) -> None:
    """A focal length of a billionth of a pixel, or one that belongs to another resolution (no width / height to
    scale it by), would rectify every frame into one smeared pixel or a needle's eye; the file is named instead."""
    p = tmp_path / "intrinsics.json"
    p.write_text(json.dumps({**INTR, **lens}))
    src = _clip(tmp_path / "fish.mp4", n=10)
    with pytest.raises(ClipError, match="focal length .* is implausible for a 320x180 frame") as ei:
        build_frame_cache(src, tmp_path / "fc", intrinsics=load_intrinsics(p))
    assert str(p) in str(ei.value)


def test_partition_keys_are_sanitized_stable_and_unique(tmp_path: Path) -> None:
    for rel in ["My Clip (1).MP4", "sub/dir/A.mp4", "x.mp4", "x.mov", ".hidden.mp4", "readme.txt", "a.gt.parquet"]:
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"0")
    keys = scan_videos(tmp_path)
    assert set(keys) == {"my_clip_1", "sub__dir__a", "x_mp4", "x_mov"}
    assert scan_videos(tmp_path) == keys
    shutil.copy(tmp_path / "x.mp4", tmp_path / "zzz.mp4")
    assert {k: v for k, v in scan_videos(tmp_path).items() if k != "zzz"} == keys


@pytest.mark.parametrize(
    ("name", "phase"),
    [
        ("01_production_masonry", "production"),
        ("11_prep_demo", "prep"),
        ("transit-to-site", "transit"),
        ("Downtime_Break", "downtime"),
        ("prepping_mortar", "prep"),
        ("factory001_worker001_00001", "unknown"),
    ],
)
def test_phase_from_name(name: str, phase: str) -> None:
    assert phase_from_name(name) == phase


def test_phase_from_custom_rule() -> None:
    assert phase_from_name("f1_w2_assembly_007", words=("assembly", "break")) == "assembly"
    assert phase_from_name("site3-PHASE=pour-01", pattern=r"PHASE=(\w+?)-") == "pour"


def test_decoding_gives_freed_memory_back_as_it_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long clips: FFmpeg's decoding threads free memory into glibc arenas that grow with the clip (a 20-min clip's
    frame cache step reached 2.2 GB). The decoder hands it back every `TRIM_EVERY_FRAMES` frames, on every
    decoding path (`timed_frames`: frame cache and motion track)."""
    import handclust_assets.video.probe as probe

    calls = []
    monkeypatch.setattr(probe, "TRIM_EVERY_FRAMES", 10)
    monkeypatch.setattr(probe, "release_freed_memory", lambda: calls.append(1))
    stats = build_frame_cache(_clip(tmp_path / "c.mp4", n=45), tmp_path / "fc")
    assert stats.decoded_frames == 45 and len(calls) == 4
    monkeypatch.undo()
    from handclust_assets.lib import memory

    memory.release_freed_memory()  # the real one: glibc's malloc_trim here, a no-op without glibc
    assert memory.MALLOC_TRIM is not None or not Path("/lib/x86_64-linux-gnu/libc.so.6").exists()


def test_frames_are_consumed_in_order_by_one_worker_and_its_failure_names_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache build decodes in the calling thread and hands frames to one worker (motion track, JPEG pack): the
    result equals consuming them in the decoding thread, progress comes from the calling thread, counting up, and a
    failure in the worker stops the build with the file named, leaving no half-written cache and no thread behind."""
    import threading

    import handclust_assets.video.frame_cache as fcm

    src = write_video(tmp_path / "w.mp4", moving_pattern(60, 96, 128), fps=30.0)
    seen: list[tuple[int, str]] = []
    stats = build_frame_cache(src, tmp_path / "fc", sample_fps=5,
                              progress=lambda n, t: seen.append((n, threading.current_thread().name)))
    assert [n for n, _ in seen] == sorted({n for n, _ in seen}) and seen[-1][0] == stats.n_frames == 10
    assert {name for _, name in seen} == {threading.current_thread().name}

    class Inline:  # the same consumer, called in the decoding thread
        def __init__(self, fn, depth: int = 8) -> None:
            self.fn = fn

        def put(self, item: tuple) -> bool:
            self.fn(*item)
            return True

        def finish(self) -> None:
            pass

    monkeypatch.setattr(fcm, "_FrameWorker", Inline)
    build_frame_cache(src, tmp_path / "fc_inline", sample_fps=5)
    monkeypatch.undo()
    for name in (fcm.PACK, fcm.OFFSETS):
        assert (tmp_path / "fc" / name).read_bytes() == (tmp_path / "fc_inline" / name).read_bytes()
    a, b = np.load(tmp_path / "fc" / fcm.MOTION_FILE), np.load(tmp_path / "fc_inline" / fcm.MOTION_FILE)
    assert a.files == b.files and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a.files)

    before = threading.active_count()
    monkeypatch.setattr(fcm.cv2, "imencode", lambda *a, **k: (False, None))  # the JPEG encoder fails
    with pytest.raises(ClipError, match=r"w\.mp4.*JPEG encoding failed"):
        build_frame_cache(src, tmp_path / "fc_bad", sample_fps=5)
    assert not list(tmp_path.glob("fc_bad*")) and threading.active_count() == before


def test_a_frame_that_cannot_be_converted_ends_the_cache_there_with_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An FFmpeg error while converting a decoded frame (in the cache's worker thread) stops the clip there, as a
    decoding error does: the frames before it are kept and the cache says why it is short."""
    import handclust_assets.video.frame_cache as fcm

    src = write_video(tmp_path / "w.mp4", moving_pattern(60, 96, 128), fps=30.0)
    real_rgb, calls = fcm._rgb, []

    def failing_rgb(frame, size, rotation, maps, crop=None):
        calls.append(1)
        if len(calls) == 5:
            raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
        return real_rgb(frame, size, rotation, maps, crop)

    monkeypatch.setattr(fcm, "_rgb", failing_rgb)
    stats = build_frame_cache(src, tmp_path / "fc", sample_fps=5)
    assert stats.n_frames == 4 and stats.truncated
    assert "decoding stopped at frame 25 (InvalidDataError" in stats.warning
    cache = FrameCache(tmp_path / "fc")
    assert cache.read(3).shape == cache.read(0).shape and cache.read(3).std() > 0


def _disc_frames(n: int, w: int, h: int, top: int = 0) -> list[np.ndarray]:
    """Frames of a white disc on a dark, noisy ground, drawn 3/4 as wide as it is high (a circle in a frame shown
    with 4:3 pixels), moving sideways; `top` rows of black bars above and below."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        img = rng.integers(20, 90, (h, w, 3), dtype=np.uint8)
        cx, cy, ry = w / 2 + 2 * (i % 5), h / 2, 0.3 * (h - 2 * top)
        img[((xx - cx) / (0.75 * ry)) ** 2 + ((yy - cy) / ry) ** 2 <= 1] = 255
        if top:
            img[:top], img[h - top:] = 0, 0
        out.append(img)
    return out


def _disc_shape(img: np.ndarray) -> float:
    """Width over height of the bright disc in a cached frame (1.0: round)."""
    ys, xs = np.nonzero(img.mean(axis=-1) > 170)
    return (np.ptp(xs) + 1) / (np.ptp(ys) + 1)


@pytest.mark.parametrize(("rotation", "top"), [(0, 0), (90, 0), (0, 40)])
def test_anamorphic_video_is_cached_as_shown_with_square_pixels(tmp_path: Path, rotation: int, top: int) -> None:
    """HDV's 1440 x 1080 (here 240 x 180) is shown 1920 (320) wide: its pixels are 4:3. The cache keeps what a player
    shows, so a circle is round for the models, through a display rotation and inside cut-off black bars too."""
    src = write_video(tmp_path / "hdv.mp4", _disc_frames(30, 240, 180, top), 15, pixel_aspect=Fraction(4, 3),
                      rotation=rotation, crf=12)
    info = probe_video(src)
    assert info.pixel_aspect == pytest.approx(4 / 3) and (info.width, info.height) == (240, 180)
    assert info.display_size == ((180, 320) if rotation else (320, 180))
    assert info.upright_size == ((180, 240) if rotation else (240, 180))
    build_frame_cache(src, tmp_path / "fc", sample_fps=5)
    fc = FrameCache(tmp_path / "fc")
    img = fc.read(0)
    if top:  # the bars are cut off: the picture is 320 x 100, shown
        assert fc.meta["content_box"] is not None and img.shape[:2] == (100, 320)
    else:
        assert img.shape[:2] == ((320, 180) if rotation else (180, 320))
    assert fc.meta["pixel_aspect"] == pytest.approx(4 / 3)
    assert _disc_shape(img) == pytest.approx(1.0, abs=0.08)  # stored: 0.75 wide for 1 high


def test_square_pixels_and_a_broken_pixel_aspect_leave_the_frame_as_stored(tmp_path: Path) -> None:
    square = write_video(tmp_path / "square.mp4", _disc_frames(10, 240, 180), 15)
    broken = write_video(tmp_path / "broken.mp4", _disc_frames(10, 240, 180), 15, pixel_aspect=Fraction(50, 1))
    for src in (square, broken):
        info = probe_video(src)
        assert info.pixel_aspect == 1.0 and info.display_size == info.upright_size == (240, 180)
        build_frame_cache(src, tmp_path / src.stem, sample_fps=5)
        assert FrameCache(tmp_path / src.stem).read(0).shape[:2] == (180, 240)


def test_a_fisheye_lens_is_rectified_in_stored_pixels_and_shown_square(tmp_path: Path) -> None:
    """A lens calibrated on an anamorphic camera's decoded frames is in stored pixels: its principal point must lie
    in the stored 240 x 180 frame (not the 320 x 180 shown), and the rectified cache comes out at the shown aspect,
    the disc still round and in the middle."""
    src = write_video(tmp_path / "fish.mp4", _disc_frames(10, 240, 180), 15, pixel_aspect=Fraction(4, 3), crf=12)
    lens = {**INTR, "fx": 90.0, "fy": 120.0, "cx": 120.0, "cy": 90.0, "k1": -0.01, "k2": 0.0}
    p = tmp_path / "intrinsics.json"
    p.write_text(json.dumps(lens))
    build_frame_cache(src, tmp_path / "fc", sample_fps=5, intrinsics=load_intrinsics(p))
    fc = FrameCache(tmp_path / "fc")
    img = fc.read(0)
    assert fc.meta["rectified"] and img.shape[:2] == (180, 320)
    assert _disc_shape(img) == pytest.approx(1.0, abs=0.1)
    xs = np.nonzero(img.mean(axis=-1) > 170)[1]
    assert abs(xs.mean() - 160) < 12
    p.write_text(json.dumps({**lens, "cx": 300.0}))  # inside the 320 px shown, outside the 240 px stored
    with pytest.raises(ClipError, match="principal point"):
        build_frame_cache(src, tmp_path / "fc2", sample_fps=5, intrinsics=load_intrinsics(p))


def test_every_display_orientation_is_cached_as_ffmpeg_shows_it(tmp_path: Path) -> None:
    """A display matrix turns the picture by a quarter turn and may flip it (a phone's front camera, an editor's
    'flip'). All 16 that FFmpeg writes (`-display_rotation 0/90/180/270`, with `-display_hflip` and / or
    `-display_vflip`) give the cache the picture FFmpeg's own CLI shows (its autorotate), as the player would. A
    flip used to be read as a half turn, or not at all, and a plain half turn was cached upside down."""
    ff = ffmpeg_binary()
    assert ff is not None, "imageio-ffmpeg (a dev dependency) gives the tests an ffmpeg binary"
    h, w = 96, 160
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0], img[..., 1] = xx * 255 // w, yy * 255 // h
    img[8:30, 10:40] = 255  # a bright block near one corner: every turn and flip looks different
    src = write_video(tmp_path / "src.mp4", [img] * 6, 15.0, crf=5)
    with av.open(str(src)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    turns_and_flips = [o for k in range(4) for o in (np.rot90(first, -k), np.rot90(first, -k)[:, ::-1])]
    for rotation in (0, 90, 180, 270):
        for hflip, vflip in ((False, False), (True, False), (False, True), (True, True)):
            dst = tmp_path / f"r{rotation}_{int(hflip)}{int(vflip)}.mp4"
            flags = ["-display_rotation", str(rotation)] + ["-display_hflip"] * hflip + ["-display_vflip"] * vflip
            subprocess.run([ff, "-y", "-loglevel", "error", *flags, "-i", str(src), "-c", "copy", str(dst)],
                           check=True)
            info = probe_video(dst)
            sw, sh = info.display_size
            raw = subprocess.run([ff, "-loglevel", "error", "-i", str(dst), "-frames:v", "1", "-f", "rawvideo",
                                  "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
            shown = np.frombuffer(raw, np.uint8).reshape(sh, sw, 3).astype(int)
            build_frame_cache(dst, tmp_path / f"fc_{dst.stem}", sample_fps=5)
            cached = FrameCache(tmp_path / f"fc_{dst.stem}").read(0).astype(int)
            assert cached.shape == shown.shape and np.abs(cached - shown).mean() < 4, dst.name
            others = [o for o in turns_and_flips if o.shape == shown.shape and np.abs(o - shown).mean() > 4]
            assert len(others) == 3 and min(np.abs(o - cached).mean() for o in others) > 20, dst.name  # no other
            # turn or flip of the picture would pass for it
