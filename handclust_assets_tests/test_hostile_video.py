"""Hostile video files beyond the plainly broken ones (test_ingest): files that open and decode but lie about
themselves — timestamps that restart (concatenated MPEG-TS), a file cut short behind an intact header, a cover
picture as the first video stream, slivers of frames, a lone frame — and what the rhythm path's own decoder
(`motion_track_from_video`, used by `count_video` and `eval-repetitions` development runs) says about bad files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handclust_assets.lib.errors import ClipError
from handclust_assets.lib.rep_eval import count_motion_track, count_video
from handclust_assets.lib.synthetic_reps import RepClipSpec, generate_rep_clip
from handclust_assets.science.localize import principal_scores
from handclust_assets.video.frame_cache import FrameCache, build_frame_cache
from handclust_assets.video.motion_track import motion_track_from_video
from handclust_assets.video.probe import display_orientation, monotonic_times, probe_video, snap_rotation
from handclust_assets.video.writer import moving_pattern, write_video
from handclust_assets_tests.support import clip_row


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_a_concatenated_stream_is_counted_through_its_timestamp_restart(tmp_path: Path) -> None:
    """Two MPEG-TS recordings joined byte for byte (what `cat` or a camera's file split gives): the second part's
    timestamps start again at 0. Laid over the first part, its frames were dropped and the count came out
    aperiodic; the timeline now continues and the count covers both parts."""
    src, truth = generate_rep_clip(RepClipSpec("reps", n_cycles=12, period_start_s=0.8, period_end_s=0.8,
                                               width=320, height=180), tmp_path)
    one = write_video(tmp_path / "part.ts", _frames(src), 30.0)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(one.read_bytes() * 2)
    single, double = probe_video(one), probe_video(joined)
    assert double.duration_s == pytest.approx(2 * single.duration_s, rel=0.05)
    stats = build_frame_cache(joined, tmp_path / "fc")
    fc = FrameCache(tmp_path / "fc")
    times = np.asarray(fc.timestamps)
    assert np.all(np.diff(times) > 0) and times[-1] == pytest.approx(2 * single.duration_s, abs=0.5)
    assert "restart" in stats.warning and not stats.truncated
    track = fc.motion_track()
    assert track is not None and np.all(np.diff(track.t_s) > 0)
    row = clip_row(count_motion_track(track))
    assert row["count_estimate"] == pytest.approx(2 * truth.count, rel=0.15), row


def test_a_stream_whose_picture_size_changes_keeps_every_part(tmp_path: Path) -> None:
    """One MPEG-TS stream whose picture size changes twice (a live stream switching quality, or parts of another
    size joined): every frame is kept, the frame cache's frames have the first part's size, the motion track runs
    on through the changes, and the count covers all three parts."""
    import cv2

    src, truth = generate_rep_clip(RepClipSpec("reps", n_cycles=12, period_start_s=0.8, period_end_s=0.8,
                                               width=320, height=180), tmp_path)
    frames = _frames(src)
    parts = [write_video(tmp_path / f"part{i}.ts", [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
                                                    for f in frames], 30.0)
             for i, (w, h) in enumerate(((320, 180), (640, 360), (480, 272)))]
    joined = tmp_path / "switching.ts"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    with av.open(str(joined)) as c:
        sizes = [(f.width, f.height) for f in c.decode(video=0)]
    assert sorted(set(sizes)) == [(320, 180), (480, 272), (640, 360)] and len(sizes) == 3 * len(frames)
    build_frame_cache(joined, tmp_path / "fc")
    fc = FrameCache(tmp_path / "fc")
    assert {fc.read(i).shape for i in range(len(fc))} == {(180, 320, 3)}
    track = fc.motion_track()
    assert track is not None and len(track) == 3 * len(frames) and np.all(np.diff(track.t_s) > 0)
    row = clip_row(count_motion_track(track))
    assert row["count_estimate"] == pytest.approx(3 * truth.count, rel=0.15), row


def _h264_stream(out: av.container.OutputContainer) -> av.video.stream.VideoStream:
    s = out.add_stream("libx264", rate=30)
    s.width, s.height, s.pix_fmt = 320, 180, "yuv420p"
    return s


def _encode_h264(out: av.container.OutputContainer, n: int, s: av.video.stream.VideoStream | None = None) -> None:
    """n frames of a 320 x 180 moving pattern into the H.264 stream `s` of `out` (a new one at 30 fps if None)."""
    s = s or _h264_stream(out)
    for i, img in enumerate(moving_pattern(n, 320, 180)):
        fr = av.VideoFrame.from_ndarray(img, format="rgb24")
        fr.pts = i
        for pkt in s.encode(fr):
            out.mux(pkt)
    for pkt in s.encode():
        out.mux(pkt)


def _faststart_mp4(path: Path, n: int = 150) -> Path:
    """An mp4 with its index (moov) at the front, as streaming muxers write it: cut short, it still opens."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        _encode_h264(out, n)
    return path


@pytest.mark.parametrize("kind", ["faststart mp4", "mkv"])
def test_a_file_cut_short_behind_an_intact_header_is_flagged_truncated(tmp_path: Path, kind: str) -> None:
    """The header still declares 5 s, the data stops at about a third: no decoder error is raised, so the early
    end itself must mark the cache truncated (it used to pass as a complete 0.5-s clip)."""
    if kind == "mkv":
        good = write_video(tmp_path / "good.mkv", moving_pattern(150, 320, 180), 30.0)
    else:
        good = _faststart_mp4(tmp_path / "good.mp4")
    cut = tmp_path / f"cut{good.suffix}"
    cut.write_bytes(good.read_bytes()[: int(good.stat().st_size * 0.35)])
    info = probe_video(cut)
    assert info.duration_s == pytest.approx(5.0, abs=0.1)
    stats = build_frame_cache(cut, tmp_path / "fc")
    assert stats.truncated and "truncated" in stats.warning and f"{info.duration_s:.1f}s" in stats.warning
    full = build_frame_cache(good, tmp_path / "fc_full")
    assert not full.truncated and full.warning == ""


def test_a_cover_picture_stream_is_not_taken_for_the_video(tmp_path: Path) -> None:
    """A .mov whose first video stream is a one-frame picture and whose second is the 2-s clip."""
    p = tmp_path / "cover.mov"
    with av.open(str(p), "w") as out:
        cover = out.add_stream("png", rate=1)
        cover.width, cover.height, cover.pix_fmt = 320, 180, "rgb24"
        video = _h264_stream(out)  # every stream before the first packet
        fr = av.VideoFrame.from_ndarray(next(iter(moving_pattern(1, 320, 180))), format="rgb24")
        fr.pts = 0
        for pkt in [*cover.encode(fr), *cover.encode()]:
            out.mux(pkt)
        _encode_h264(out, 60, video)
    info = probe_video(p)
    assert info.frame_count == 60 and info.fps == pytest.approx(30.0)
    assert build_frame_cache(p, tmp_path / "fc", sample_fps=5).n_frames == 10
    assert len(motion_track_from_video(p)) == 60


def test_sliver_frames_keep_the_motion_track_small(tmp_path: Path) -> None:
    """An 8 x 720 video: the 64-px-wide working image used to be 64 x 5760 px (and the thumbnails 32 x 2880), so
    the box search built a 46k x 46k scatter matrix and ran for hours; it is squeezed to 2:1 now."""
    p = write_video(tmp_path / "sliver.mp4", moving_pattern(60, 8, 720), 30.0)
    build_frame_cache(p, tmp_path / "fc")
    track = FrameCache(tmp_path / "fc").motion_track()
    assert track is not None and len(track) == 60
    assert track.intensity.shape[1] <= 2 * track.intensity.shape[2] <= 64
    assert track.energy.shape[1] * track.energy.shape[2] <= 8 * 16
    assert clip_row(count_motion_track(track))["status"] in ("counted", "no agreement", "brief", "aperiodic")


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=44100)
        for i in range(40):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            fr.sample_rate, fr.pts, fr.time_base = 44100, i * 1024, Fraction(1, 44100)
            for pkt in s.encode(fr):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return path


@pytest.mark.parametrize(("kind", "needle"), [("audio", "no video stream"), ("text", "not a readable video"),
                                              ("empty", "empty")])
def test_the_rhythm_path_decoder_names_the_file_and_the_problem(tmp_path: Path, kind: str, needle: str) -> None:
    """count_video used to end in `IndexError: tuple index out of range` on an audio-only file."""
    if kind == "audio":
        p = _audio_only(tmp_path / "voice.m4a")
    elif kind == "text":
        p = tmp_path / "notes.mp4"
        p.write_text("not a video\n" * 100)
    else:
        p = tmp_path / "empty.mp4"
        p.write_bytes(b"")
    with pytest.raises(ClipError) as ei:
        count_video(p)
    assert str(p) in str(ei.value) and needle in str(ei.value)


def test_a_decoding_error_in_the_first_second_keeps_the_frames_before_it(tmp_path: Path) -> None:
    """200 bytes of garbage 30 % into a 2-s clip: FFmpeg decodes 12 frames, then raises InvalidDataError. The
    rhythm path's decoder keeps those frames, as the frame cache does; it named the file as undecodable once the
    builder held the first second's frames (to judge black bars) before adding them."""
    good = write_video(tmp_path / "good.mp4", moving_pattern(60, 64, 48), 30.0)
    data = bytearray(good.read_bytes())
    start = int(len(data) * 0.3)
    data[start:start + 200] = np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes()
    bad = tmp_path / "garbled.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(av.error.InvalidDataError), av.open(str(bad)) as c:  # type: ignore[attr-defined]
        for _ in c.decode(video=0):
            pass
    track = motion_track_from_video(bad)
    assert 0 < len(track) < 60 and len(track) == len(motion_track_from_video(bad, crop_bars=False))


def test_a_lone_frame_gets_no_invented_duration(tmp_path: Path) -> None:
    """One frame has no frame interval: its track used to claim 1000 s (1 / max(fps, 1e-3))."""
    p = write_video(tmp_path / "one.mp4", moving_pattern(1, 64, 64), 30.0)
    track = motion_track_from_video(p)
    assert len(track) == 1 and track.duration_s == 0.0
    row = clip_row(count_video(p))
    assert row["end_s"] <= 0.1 and row["status"] == "aperiodic"


def test_a_stream_with_an_unknown_codec_is_named_not_a_crash(tmp_path: Path) -> None:
    """A corrupt codec id (here the sample entry's fourcc) leaves FFmpeg no decoder: the stream has no codec
    context, and picking the stream used to fail with AttributeError ('NoneType' has no attribute 'width')."""
    good = write_video(tmp_path / "good.mp4", moving_pattern(20, 64, 48), 15.0)
    data = good.read_bytes()
    assert data.count(b"avc1") >= 1
    bad = tmp_path / "unknown_codec.mp4"
    bad.write_bytes(data.replace(b"avc1", b"zq9x"))
    with av.open(str(bad)) as c:
        assert c.streams.video and c.streams.video[0].codec_context is None
    with pytest.raises(ClipError) as ei:
        probe_video(bad)
    assert str(bad) in str(ei.value) and "no decoder" in ei.value.problem


@pytest.mark.parametrize("name", ["drone.h264", "dashcam.hevc"])
def test_a_raw_elementary_stream_is_timed_by_its_codec_header(tmp_path: Path, name: str) -> None:
    """A raw H.264 / HEVC stream has no container: no duration, no frame count, no timestamps, and it cannot seek.
    Probing used to call it "empty or truncated"; FFmpeg's rate for raw input is its 25 fps default, while the
    stream's own header says 15. The clip is probed at 15 fps, counted frame by frame, and timed by that rate on
    both decoding paths (the frame cache and the rhythm path's)."""
    codec = "libx265" if name.endswith("hevc") else "libx264"
    p = write_video(tmp_path / name, moving_pattern(30, 96, 64), 15.0, codec=codec)
    with av.open(str(p)) as c:  # what FFmpeg says of it
        vs = c.streams.video[0]
        assert not vs.duration and not c.duration and not vs.frames and float(vs.average_rate) == 25
    info = probe_video(p)
    assert info.fps == 15 and info.frame_count == 30 and info.duration_s == pytest.approx(2.0)
    track = motion_track_from_video(p)
    assert len(track) == 30 and track.t_s[-1] == pytest.approx(29 / 15)
    stats = build_frame_cache(p, tmp_path / "fc", sample_fps=5)
    assert stats.n_frames == 10 and not stats.truncated
    assert clip_row(count_video(p))["end_s"] == pytest.approx(2.0, abs=0.1)


def test_timestamps_that_jump_minutes_ahead_keep_the_frames(tmp_path: Path) -> None:
    """A clock that jumps (minutes, or an hour, between two frames) is a gap, not a crash: every frame is kept on
    its own time and the counter runs over the gap (finding nothing). An hour's gap used to end the run for want of
    memory: the period track built a centres x centres matrix (36,000^2 values for an hour, see test_counting)."""
    times = [i / 25 for i in range(20)] + [200 + i / 25 for i in range(20)]
    p = write_video(tmp_path / "gap.mkv", moving_pattern(40, 96, 64), 25.0, times_s=times)
    stats = build_frame_cache(p, tmp_path / "fc")
    cache = FrameCache(tmp_path / "fc")
    assert stats.decoded_frames == 40 and cache.timestamps[-1] > 199
    row = clip_row(count_video(p))
    assert row["end_s"] > 199 and row["status"] == "aperiodic" and row["count"] is None


@pytest.mark.parametrize(("deg", "quarter"), [(0, 0), (45, 0), (46, 90), (90, 90), (135, 90), (180, 180),
                                              (-90, 270), (270, 270), (359, 0), (-44, 0), (-46, 270)])
def test_display_rotations_snap_to_quarter_turns(deg: float, quarter: int) -> None:
    assert snap_rotation(deg) == quarter


_TIMES = st.lists(st.one_of(st.none(), st.floats(-1e4, 1e4), st.just(float("nan"))), min_size=0, max_size=60)


@settings(max_examples=200, deadline=None)
@given(times=_TIMES, fps=st.floats(0.0, 240.0))
def test_the_timeline_starts_at_zero_and_only_goes_forward(times: list[float | None], fps: float) -> None:
    out = list(monotonic_times(iter(times), fps))
    assert len(out) == len(times)
    kept = [t for t, _ in out if t is not None]
    assert all(np.isfinite(kept))
    assert all(b > a for a, b in zip(kept, kept[1:]))
    if kept:
        assert kept[0] == 0.0


@settings(max_examples=100, deadline=None)
@given(start=st.floats(-100, 100), steps=st.lists(st.floats(0.001, 2.0), min_size=1, max_size=40))
def test_a_clean_timeline_is_only_shifted_to_zero(start: float, steps: list[float]) -> None:
    times = start + np.concatenate([[0.0], np.cumsum(steps)])
    out = list(monotonic_times(iter(times.tolist()), 30.0))
    assert all(note == "" for _, note in out)
    assert np.allclose([t for t, _ in out], times - times[0], atol=1e-9)


def test_a_restart_continues_the_timeline_and_a_repeat_is_skipped() -> None:
    times = [10.0, 10.1, 10.2, 10.2, 10.15, 10.3, 10.4, 10.5, 10.6, 10.0, 10.1]  # a repeat, a step back, a restart
    out = list(monotonic_times(iter(times), 10.0))
    kept = [round(t, 6) for t, _ in out if t is not None]
    assert kept == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    assert [i for i, (t, _) in enumerate(out) if t is None] == [3, 4]
    assert "restart" in out[9][1] and "skipped" in out[3][1]


@pytest.mark.parametrize(("n_frames", "n_pixels"), [(60, 12), (12, 60)])
def test_principal_scores_are_the_same_from_either_scatter_matrix(n_frames: int, n_pixels: int) -> None:
    z = np.random.default_rng(3).normal(size=(n_frames, n_pixels))
    z -= z.mean(axis=0)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    assert np.allclose(np.abs(principal_scores(z, 4)), np.abs(u[:, :4] * s[:4]), atol=1e-8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-2**31, 2**31 - 1), min_size=0, max_size=12))
def test_any_display_matrix_reads_as_a_quarter_turn_and_a_flip_or_none(values: list[int]) -> None:
    """A display matrix is side data from the file: any 9 int32 values (a zero column, huge or tiny entries,
    too few values) give a quarter turn and a mirror flag, or None (no matrix), never an error."""
    got = display_orientation(np.asarray(values, np.int64))
    if got is not None:
        rotation, mirrored = got
        assert rotation in (0, 90, 180, 270) and isinstance(mirrored, bool)
    else:
        m = np.asarray(values, np.float64)
        assert m.size < 9 or np.hypot(m[0], m[3]) == 0 or np.hypot(m[1], m[4]) == 0
