"""Black bars (letterbox, pillarbox, windowbox) are cropped before the motion track is made: `content_box` on real
decoded frames, the builder's judgement over the first second and over keyframes spread through the clip, and the
counts of a clip inside bars against the same clip without them."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from handclust_assets.lib.synthetic_reps import RepClipSpec, generate_rep_clip
from handclust_assets.video.frame_cache import FrameCache, build_frame_cache
from handclust_assets.video.motion_track import (
    MotionTrackBuilder,
    load_motion_track,
    motion_track_from_video,
    save_motion_track,
)
from handclust_assets.video.picture_box import BORDER_BLACK, SourceCut, content_box, sample_probes
from handclust_assets.video.writer import write_video
from handclust_assets_tests.support import whole_count

RNG = np.random.default_rng(7)


def framed(content: np.ndarray, top: int, bottom: int, left: int, right: int, bar: int = 16) -> np.ndarray:
    """`content` (N, h, w) inside bars of the given thickness, of grey `bar` with a little coding noise."""
    n, h, w = content.shape
    out = np.full((n, h + top + bottom, w + left + right), bar, np.uint8)
    out += RNG.integers(0, 4, out.shape, dtype=np.uint8)
    out[:, top:top + h, left:left + w] = content
    return out


def textured(n: int, h: int, w: int) -> np.ndarray:
    return RNG.integers(40, 256, (n, h, w), dtype=np.uint8)


@pytest.mark.parametrize(("top", "bottom", "left", "right"), [(18, 18, 0, 0), (0, 0, 32, 32), (12, 12, 24, 24),
                                                              (20, 0, 0, 0), (0, 0, 86, 84)])
def test_content_box_finds_letterbox_pillarbox_and_windowbox_bars(top: int, bottom: int, left: int,
                                                                   right: int) -> None:
    imgs = framed(textured(4, 144 - top - bottom, 256 - left - right), top, bottom, left, right)
    assert content_box(imgs) == (top, 144 - bottom, left, 256 - right)


def test_bars_are_found_where_the_picture_is_dark_along_part_of_its_edge() -> None:
    """The bar's edge falls inside a probe px, so the picture's first column is part bar, and where the picture is
    dark there (a dark corner of the room) it stays under black along a third of the column: the straight edge is
    read on the next column (measured: the shared 02_cups pillarboxed, 71 % and 100 % lit)."""
    content = textured(4, 144, 192)
    content[:, :50, 0] = 20  # the first column: part bar, over a dark corner
    content[:, :50, -1] = 20
    assert content_box(framed(content, 0, 0, 32, 32)) == (0, 144, 32, 224)


def test_a_picture_without_bars_or_with_a_thin_dark_edge_is_kept_whole() -> None:
    assert content_box(textured(4, 144, 256)) is None
    assert content_box(framed(textured(4, 140, 256), 2, 2, 0, 0)) is None  # 1.4 % bars: left alone


def test_an_actor_against_black_and_a_dark_clip_are_no_bars() -> None:
    """The dark reaches in unevenly around a lit actor (no straight edge), and a clip that stays black keeps
    nothing of 20 % of a side: both are kept whole."""
    yy, xx = np.mgrid[:144, :256]
    actor = np.where((yy - 70) ** 2 / 40 ** 2 + (xx - 128) ** 2 / 25 ** 2 < 1, 180, 12).astype(np.uint8)
    assert content_box(np.stack([actor, np.roll(actor, 6, axis=1)])) is None
    assert content_box(np.full((3, 144, 256), 10, np.uint8)) is None
    assert content_box(framed(textured(3, 144, 30), 0, 0, 113, 113)) is None  # 12 % of the width left


@pytest.mark.parametrize(("h", "w"), [(12, 16), (4, 300), (300, 4), (2, 2)])
def test_tiny_and_sliver_frames_inside_bars_make_a_track(h: int, w: int) -> None:
    """Hostile sizes: a tiny frame, slivers (squeezed to 2:1 in the probe image), a 2 x 2 frame, each with a black
    bar on one side: the builder makes a track of every frame, cropped or whole, never an empty image."""
    rng = np.random.default_rng(1)
    b = MotionTrackBuilder(more_frames=lambda: [])
    for i in range(40):
        img = rng.integers(60, 250, (h, w), dtype=np.uint8)
        img[: max(1, h // 4)] = 0
        b.add(av.VideoFrame.from_ndarray(img, format="gray"), i / 30)
    mt = b.result()
    assert len(mt) == 40 and mt.intensity.size and np.isfinite(mt.energy.astype(float)).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(imgs=arrays(np.uint8, st.tuples(st.integers(1, 3), st.integers(4, 40), st.integers(4, 60)),
                   elements=st.sampled_from([0, 8, 16, 24, 25, 90, 255])),
       rows=st.integers(0, 20), cols=st.integers(0, 30))
def test_content_box_never_crops_a_lit_pixel(imgs: np.ndarray, rows: int, cols: int) -> None:
    """Whatever the frames hold (here: random, with dark borders of random size), every pixel above black in any
    of them is inside the box, and the box is a sane sub-rectangle."""
    imgs = imgs.copy()
    imgs[:, :rows] = np.minimum(imgs[:, :rows], BORDER_BLACK)
    imgs[:, :, :cols] = np.minimum(imgs[:, :, :cols], BORDER_BLACK)
    box = content_box(imgs)
    if box is None:
        return
    top, bottom, left, right = box
    h, w = imgs.shape[1:]
    assert 0 <= top < bottom <= h and 0 <= left < right <= w
    inside = np.zeros((h, w), bool)
    inside[top:bottom, left:right] = True
    assert not (imgs > BORDER_BLACK).any(axis=0)[~inside].any()


@pytest.fixture(scope="module")
def strokes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray], int]:
    """A clip of 14 strokes (320 x 180, 30 fps) and its decoded RGB frames."""
    folder = tmp_path_factory.mktemp("bars")
    spec = RepClipSpec("bars", "stroke", n_cycles=14, period_start_s=0.7, period_end_s=0.8, width=320, height=180,
                       fps=30.0, seed=3)
    path, truth = generate_rep_clip(spec, folder)
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return path, frames, truth.count


def test_a_rotated_phone_video_inside_bars_is_cropped_before_it_is_turned_upright(
        strokes: tuple[Path, list[np.ndarray], int], tmp_path: Path) -> None:
    """A phone's clip stored sideways with a 90-degree display rotation, pillarboxed in its stored frame: the bars
    are found and cropped in the stored frame, then the picture is turned, so the track is the upright bare
    clip's shape."""
    path, frames, _ = strokes
    bare = write_video(tmp_path / "bare_rot.mp4", frames, 30.0, crf=18, rotation=90)
    boxed = write_video(tmp_path / "boxed_rot.mp4", [np.pad(f, ((0, 0), (80, 80), (0, 0))) for f in frames], 30.0,
                        crf=18, rotation=90)
    a, b = motion_track_from_video(bare), motion_track_from_video(boxed)
    assert a.box is None and b.box is not None and np.allclose(b.box, (0, 1, 1 / 6, 5 / 6), atol=0.01)
    assert a.intensity.shape == b.intensity.shape and a.intensity.shape[1] > a.intensity.shape[2]  # upright
    assert np.abs(a.intensity.astype(float) - b.intensity.astype(float)).mean() < 4.0


@pytest.mark.parametrize(("by", "bx", "share"), [(30, 0, (1 / 8, 7 / 8, 0, 1)), (0, 80, (0, 1, 1 / 6, 5 / 6)),
                                                 (0, 320, (0, 1, 1 / 3, 2 / 3))])
def test_strokes_inside_bars_give_the_track_and_count_of_the_bare_clip(
        strokes: tuple[Path, list[np.ndarray], int], tmp_path: Path, by: int, bx: int,
        share: tuple[float, ...]) -> None:
    """Letterboxed, pillarboxed, and a third of a wide frame (as a phone's upright video in a 16:9 frame): the
    motion image is made of the picture inside the bars, so it has the bare clip's shape and nearly its values,
    and the strokes are counted as in the bare clip. With the bars left in, the picture is smaller (on 50 dev
    clips, pillarboxed copies counted at MAE 0.21 against 0.13 bare; cropped, 0.12)."""
    path, frames, truth = strokes
    boxed = write_video(tmp_path / "boxed.mp4", [np.pad(f, ((by, by), (bx, bx), (0, 0))) for f in frames], 30.0,
                        crf=18)
    bare = motion_track_from_video(path)
    mt = motion_track_from_video(boxed)
    assert bare.box is None
    assert mt.box is not None and np.allclose(mt.box, share, atol=0.01)
    assert mt.intensity.shape == bare.intensity.shape and mt.energy.shape == bare.energy.shape
    assert np.abs(mt.intensity.astype(float) - bare.intensity.astype(float)).mean() < 4.0
    assert whole_count(mt) == pytest.approx(truth, rel=0.1)
    assert whole_count(mt) == pytest.approx(whole_count(bare), rel=0.05)
    kept = motion_track_from_video(boxed, crop_bars=False)  # the bars left in: the picture is made smaller
    assert kept.box is None and kept.intensity.shape != bare.intensity.shape
    loaded = load_motion_track(save_motion_track(mt, tmp_path / "m.npz"))
    assert np.array_equal(loaded.box, mt.box)


def large(frames: list[np.ndarray], scale: int = 3) -> list[np.ndarray]:
    """`frames` scaled up `scale` x (960 x 540 for the strokes), as 720p and 1080p uploads are."""
    import cv2

    return [cv2.resize(f, (f.shape[1] * scale, f.shape[0] * scale), interpolation=cv2.INTER_CUBIC) for f in frames]


@pytest.mark.parametrize(("by", "bx"), [(90, 0), (0, 240), (60, 120)])
def test_a_large_frame_inside_bars_is_cut_from_the_frame_not_its_probe_image(
        strokes: tuple[Path, list[np.ndarray], int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by: int,
        bx: int) -> None:
    """Past the first second, the motion image of a frame at least twice the probe image's size is cut from the
    frame's own luma (`SourceCut`), not from the 4-x-wider probe image (whose making cost as much again as the
    rest of the track's). It is the probe cut's picture, resampled once: the same box and shapes, nearly the same
    values (measured: thumbnails 0.14-0.24 grey levels apart, energy 1 %), the same count; the frame where the cut
    changes over is differenced as before."""
    from handclust_assets.video import motion_track as mtm

    _, frames, truth = strokes
    big = large(frames)
    boxed = write_video(tmp_path / "boxed.mp4", [np.pad(f, ((by, by), (bx, bx), (0, 0))) for f in big], 30.0, crf=18)
    cuts = []
    real_cut = SourceCut.motion_image
    monkeypatch.setattr(SourceCut, "motion_image", lambda cut, y, width: cuts.append(cut) or real_cut(cut, y, width))
    source = fed(MotionTrackBuilder(), boxed)
    assert len(cuts) == len(big) - 31  # every frame after the first second's 31, on which the bars were judged
    monkeypatch.setattr(mtm.MotionTrackBuilder, "_source_cut", lambda self, frame: None)  # the probe image's cut
    probe = fed(MotionTrackBuilder(), boxed)
    assert source.box == probe.box and source.box is not None
    a, b = source.result(), probe.result()
    assert a.energy.shape == b.energy.shape and a.intensity.shape == b.intensity.shape == (len(big), 18, 32)
    seam = 32  # the frames judged (the first 31) and the first one after them: differenced alike
    assert all(np.array_equal(x, y) for x, y in zip(source._energy[:seam], probe._energy[:seam]))
    assert np.abs(a.intensity.astype(float) - b.intensity.astype(float)).mean() < 0.5
    assert np.abs(a.energy.astype(float) - b.energy.astype(float)).mean() < 0.03 * b.energy.astype(float).mean()
    assert whole_count(a) == pytest.approx(truth, rel=0.1)
    assert whole_count(a) == pytest.approx(whole_count(b), rel=0.02)


def test_a_clip_without_bars_keeps_its_track_and_cache_bit_for_bit(strokes: tuple[Path, list[np.ndarray], int],
                                                                    tmp_path: Path) -> None:
    """Judging the bars changes nothing where there are none: the motion track and the cached JPEG bytes (whose
    first second waited for the judgement) are those made without it."""
    from handclust_assets.video.frame_cache import PACK

    path, _, _ = strokes
    a, b = motion_track_from_video(path), motion_track_from_video(path, crop_bars=False)
    for name in ("t_s", "energy", "energy_raw", "intensity", "camera", "path", "keyframes"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    judged, kept = cached(path, tmp_path / "judged"), cached(path, tmp_path / "kept", crop_bars=False)
    assert judged.meta["content_box"] is None and len(judged) == len(kept) > 5
    assert (tmp_path / "judged" / PACK).read_bytes() == (tmp_path / "kept" / PACK).read_bytes()


def test_a_fade_from_black_is_waited_out_before_the_bars_are_judged(
        strokes: tuple[Path, list[np.ndarray], int], tmp_path: Path) -> None:
    """1.5 s of black before the letterboxed picture fades in: judged on the first second alone, the clip would
    be all bar (and kept whole); the builder waits for a lit frame, then finds the letterbox."""
    _, frames, _ = strokes
    fade = [np.zeros_like(frames[0])] * 45 + [(f * min(1.0, (i + 1) / 15)).astype(np.uint8)
                                              for i, f in enumerate(frames)]
    boxed = write_video(tmp_path / "fade.mp4", [np.pad(f, ((30, 30), (0, 0), (0, 0))) for f in fade], 30.0, crf=18)
    mt = motion_track_from_video(boxed)
    assert mt.box is not None and np.allclose(mt.box, (1 / 8, 7 / 8, 0, 1), atol=0.01)
    assert len(mt) == len(fade)


def test_a_dark_part_of_the_picture_that_lights_up_later_is_no_bar(
        strokes: tuple[Path, list[np.ndarray], int], tmp_path: Path) -> None:
    """The lower half is black for the first 2 s (a lamp off, a dark doorway), then lit. The first second alone
    shows a straight-edged bar; the keyframes spread over the clip (one a second here) show the lower half lit,
    so the picture is kept whole."""
    path = lamp_clip(strokes[1], tmp_path / "lamp.mp4", keyint=30)
    assert motion_track_from_video(path).box is None
    b = fed(MotionTrackBuilder(), path)  # no keyframes to look at: judged on the first second, the lower half is a bar
    assert b.result().box is not None


def lamp_clip(frames: list[np.ndarray], path: Path, keyint: int) -> Path:
    """`frames` with the lower half black for the first 2 s, written with a keyframe every `keyint` frames."""
    h = frames[0].shape[0]
    dark = [f.copy() for f in frames]
    for f in dark[:60]:
        f[h // 2:] = 0
    return write_video(path, dark, 30.0, crf=18, keyint=keyint)


def fed(builder: MotionTrackBuilder, path: Path) -> MotionTrackBuilder:
    """`builder` fed every frame of the video at `path` (30 fps)."""
    with av.open(str(path)) as c:
        for i, fr in enumerate(c.decode(video=0)):
            builder.add(fr, i / 30)
    return builder


@pytest.mark.parametrize("scale", [1, 3])
def test_bars_lit_after_the_keyframes_checked_are_given_up_and_the_track_made_again(
        strokes: tuple[Path, list[np.ndarray], int], tmp_path: Path, scale: int) -> None:
    """The lower half dark for the first 2 s, then lit, in a clip with one keyframe (a long GOP, as x264's default
    of 250 frames is for short clips): the keyframes checked over the clip all show the dark half, so it is cropped
    at first; the first frame with a lit pixel there gives the crop up, and the track (direct and in the frame
    cache) is made again of the whole picture, the same as without the crop. At 3 x the size, the bars are
    watched in the frame's own luma (`SourceCut`), not in its probe image."""
    frames = strokes[1] if scale == 1 else large(strokes[1], scale)
    path = lamp_clip(frames, tmp_path / "lamp_gop.mp4", keyint=1000)
    b = fed(MotionTrackBuilder(more_frames=lambda: sample_probes(path)), path)
    assert b.box is not None and b.crop_given_up_at == 60  # cropped on what it saw, given up where the half lit
    assert (b._cut is not None and b._cut[1] is not None) == (scale > 1)
    whole = motion_track_from_video(path, crop_bars=False)
    for mt in (motion_track_from_video(path), build_and_read(path, tmp_path / "fc")):
        assert mt.box is None and np.array_equal(mt.intensity, whole.intensity)
        assert np.array_equal(mt.energy, whole.energy)


def test_keyframes_spread_over_the_clip_are_each_decoded_once(strokes: tuple[Path, list[np.ndarray], int],
                                                              tmp_path: Path) -> None:
    """`sample_probes` looks at the keyframe at or before each of 8 points of the clip: with a keyframe every
    3 s (every 90 frames: 4 in the strokes' clip), each is decoded once, not once for every point that falls in its
    GOP; a clip of one GOP gives one probe. The probes are those of the keyframes decoded in order."""
    from handclust_assets.video.frame_gray import probe_gray
    from handclust_assets.video.motion_track import is_keyframe

    _, frames, _ = strokes
    for keyint in (90, 1000):
        path = write_video(tmp_path / f"k{keyint}.mp4", frames, 30.0, crf=18, keyint=keyint)
        with av.open(str(path)) as c:
            keys = [probe_gray(f) for f in c.decode(video=0) if is_keyframe(f)]
        probes = sample_probes(path)
        assert len(keys) == (-(-len(frames) // 90) if keyint == 90 else 1)
        assert len(probes) == len(keys) and all(np.array_equal(p, k) for p, k in zip(probes, keys))


def cached(path: Path, folder: Path, **kw: object) -> FrameCache:
    build_frame_cache(path, folder, sample_fps=5.0, max_side=160, **kw)
    return FrameCache(folder)


def build_and_read(path: Path, folder: Path) -> object:
    return cached(path, folder).motion_track()


def test_the_frame_cache_stores_the_bars_with_its_motion_track(strokes: tuple[Path, list[np.ndarray], int],
                                                               tmp_path: Path) -> None:
    path, frames, _ = strokes
    boxed = write_video(tmp_path / "boxed.mp4", [np.pad(f, ((0, 0), (80, 80), (0, 0))) for f in frames], 30.0,
                        crf=18)
    mt = build_and_read(boxed, tmp_path / "fc")
    direct = motion_track_from_video(boxed)
    assert mt is not None and mt.box is not None and np.array_equal(mt.box, direct.box)
    assert np.array_equal(mt.intensity, direct.intensity)


@pytest.mark.parametrize(("by", "bx", "share"), [(30, 0, (1 / 8, 7 / 8, 0, 1)), (0, 80, (0, 1, 1 / 6, 5 / 6)),
                                                 (20, 40, (1 / 11, 10 / 11, 1 / 10, 9 / 10))])
def test_the_frame_cache_cuts_the_bars_off_the_frames_the_models_see(
        strokes: tuple[Path, list[np.ndarray], int], tmp_path: Path, by: int, bx: int,
        share: tuple[float, ...]) -> None:
    """Letterboxed, pillarboxed and windowboxed: the sampled frames are the picture inside the bars at the size
    the bare clip's frames have, and nearly their pixels (the models see the picture, not the bars, at the cache's
    full size); `meta.json` says where the picture was. With `crop_bars=False` the bars stay and the picture is
    smaller."""
    path, frames, _ = strokes
    boxed = write_video(tmp_path / "boxed.mp4", [np.pad(f, ((by, by), (bx, bx), (0, 0))) for f in frames], 30.0,
                        crf=18)
    bare, cut = cached(path, tmp_path / "bare"), cached(boxed, tmp_path / "cut")
    assert bare.meta["content_box"] is None
    assert cut.meta["content_box"] is not None and np.allclose(cut.meta["content_box"], share, atol=0.01)
    assert (cut.width, cut.height) == (bare.width, bare.height) and len(cut) == len(bare)
    a, b = bare.all_frames().astype(float), cut.all_frames().astype(float)
    assert a.shape == b.shape and np.abs(a - b).mean() < 6.0
    assert b[:, :, :3].mean() > 20 and b[:, :, -3:].mean() > 20 and b[:, :3].mean() > 20 and b[:, -3:].mean() > 20
    kept = cached(boxed, tmp_path / "kept", crop_bars=False)
    assert kept.meta["content_box"] is None and (kept.width, kept.height) != (bare.width, bare.height)
    assert np.array_equal(cut.motion_track().intensity, motion_track_from_video(boxed).intensity)


def test_a_rotated_phone_video_inside_bars_is_cached_cut_and_upright(
        strokes: tuple[Path, list[np.ndarray], int], tmp_path: Path) -> None:
    """Stored sideways with a 90-degree display rotation, pillarboxed in its stored frame: the cache cuts the bars
    in the stored frame and turns the picture upright, as it does the same clip without bars."""
    _, frames, _ = strokes
    bare = write_video(tmp_path / "bare_rot.mp4", frames, 30.0, crf=18, rotation=90)
    boxed = write_video(tmp_path / "boxed_rot.mp4", [np.pad(f, ((0, 0), (80, 80), (0, 0))) for f in frames], 30.0,
                        crf=18, rotation=90)
    a, b = cached(bare, tmp_path / "a"), cached(boxed, tmp_path / "b")
    assert (b.width, b.height) == (a.width, a.height) and a.height > a.width  # upright
    assert np.abs(a.all_frames().astype(float) - b.all_frames().astype(float)).mean() < 6.0


def test_a_clip_shorter_than_the_bars_judgement_is_cached_cut(
        strokes: tuple[Path, list[np.ndarray], int], tmp_path: Path) -> None:
    """Two thirds of a second, letterboxed: the clip ends while its frames still wait for the bars to be judged;
    they are judged on what there is and every sampled frame goes in, cut."""
    _, frames, _ = strokes
    boxed = write_video(tmp_path / "short.mp4", [np.pad(f, ((30, 30), (0, 0), (0, 0))) for f in frames[:20]], 30.0,
                        crf=18)
    fc = cached(boxed, tmp_path / "fc")
    assert len(fc) == 4 and fc.meta["content_box"] is not None and (fc.width, fc.height) == (160, 90)


def test_bars_are_kept_on_a_rectified_clip_and_where_they_light_up_later(
        strokes: tuple[Path, list[np.ndarray], int], tmp_path: Path) -> None:
    """A fisheye clip is rectified whole (the lens model holds for the whole frame), bars and all. Bars that light
    up after the keyframes checked (one keyframe in the clip) give the crop up: the cache is made again of the
    whole picture, frames and motion track alike."""
    import json

    from handclust_assets.video.rectify import load_intrinsics

    _, frames, _ = strokes
    boxed = write_video(tmp_path / "boxed.mp4", [np.pad(f, ((30, 30), (0, 0), (0, 0))) for f in frames], 30.0,
                        crf=18)
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps({"fx": 160.0, "fy": 160.0, "cx": 160.0, "cy": 120.0, "k1": -0.05, "k2": 0.01,
                                "k3": 0.0, "k4": 0.0, "width": 320, "height": 240}))
    fisheye = cached(boxed, tmp_path / "fisheye", intrinsics=load_intrinsics(intr))
    assert fisheye.meta["rectified"] and fisheye.meta["content_box"] is None
    assert (fisheye.width, fisheye.height) == (160, 120)
    lamp = lamp_clip(frames, tmp_path / "lamp_gop.mp4", keyint=1000)
    whole, kept = cached(lamp, tmp_path / "whole"), cached(lamp, tmp_path / "kept", crop_bars=False)
    assert whole.meta["content_box"] is None and (whole.width, whole.height) == (160, 90)
    assert np.array_equal(whole.all_frames(), kept.all_frames())
    assert np.array_equal(whole.motion_track().energy, kept.motion_track().energy)


def test_the_scene_model_sees_a_pillarboxed_clip_as_the_bare_one_once_the_bars_are_cut(
        shared_clips: Path, tmp_path: Path) -> None:
    """A real upright phone picture (the middle 9:16 of 02_cups) inside a wide frame's black bars: the ImageNet
    scene encoder's embeddings of the cached frames match the bare upright clip's once the cache cuts the bars
    (cosine 0.93 here, at 160 px; 0.94-0.95 on three real clips at 480 px), not with the bars left in (0.42 here;
    0.51-0.56 at 480 px, about halfway to another clip: 02_cups against 04_coffee 0.32), so uploads with and
    without bars embed alike."""
    from handclust_assets.models.scene import EfficientNetLiteSceneEncoder

    with av.open(str(shared_clips / "02_cups.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(45), c.decode(video=0))]
    h, w = frames[0].shape[:2]
    cw = int(h * 9 / 16) // 2 * 2
    x0 = (w - cw) // 2
    upright = [f[:, x0:x0 + cw] for f in frames]
    bare = write_video(tmp_path / "upright.mp4", upright, 30.0, crf=18)
    boxed = write_video(tmp_path / "pillar.mp4", [np.pad(f, ((0, 0), (x0, w - cw - x0), (0, 0))) for f in upright],
                        30.0, crf=18)
    enc = EfficientNetLiteSceneEncoder(dtype="float32").load()
    emb = {name: enc.embed(cached(p, tmp_path / name, **kw).all_frames()) for name, p, kw in
           (("bare", bare, {}), ("cut", boxed, {}), ("kept", boxed, {"crop_bars": False}))}

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))

    assert len(emb["bare"]) == len(emb["cut"]) == len(emb["kept"]) >= 8
    assert cos(emb["bare"], emb["cut"]) > 0.85
    assert cos(emb["bare"], emb["cut"]) > cos(emb["bare"], emb["kept"]) + 0.2
