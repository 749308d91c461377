"""Flat panels beside the picture (a blurred, magnified copy of it, or bars of a colour, as uploads fill the sides
of an upright phone video) are cropped as black bars are: `fill_box` on arrays, the builder's judgement over the
first second and over keyframes spread through the clip, the frame cache's cut, and the counts of a filled clip
against the same clip without its panels."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from handclust_assets.lib.synthetic_reps import RepClipSpec, generate_rep_clip
from handclust_assets.video.frame_cache import FrameCache, build_frame_cache
from handclust_assets.video.motion_track import load_motion_track, motion_track_from_video, save_motion_track
from handclust_assets.video.picture_box import (
    FILL_MAX_SHARE,
    FILL_MIN_SHARE,
    FILL_SYMMETRY,
    FILL_TEXTURE,
    content_box,
    fill_box,
)
from handclust_assets.video.writer import write_video
from handclust_assets_tests.support import whole_count

RNG = np.random.default_rng(11)
PROBE = (144, 256)  # a 16:9 frame's probe image (`probe_gray`)


def scene(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(n, h, w) uint8 frames of a scene with detail at several scales, drifting a little from frame to frame."""
    rng = np.random.default_rng(seed)
    base = np.zeros((h + 2 * n, w + 2 * n), np.float32)
    for cell, amp in ((4, 50.0), (16, 60.0), (64, 50.0)):
        noise = rng.normal(0, amp, (base.shape[0] // cell + 2, base.shape[1] // cell + 2)).astype(np.float32)
        base += cv2.resize(noise, (base.shape[1] + cell, base.shape[0] + cell), interpolation=cv2.INTER_CUBIC)[
            :base.shape[0], :base.shape[1]]
    base = np.clip(base + 110, 0, 255)
    return np.stack([base[i:i + h, 2 * i:2 * i + w] for i in range(n)]).astype(np.uint8)


def filled(pictures: np.ndarray, width: int, sigma: float = 0.02, shade: float = 0.6) -> np.ndarray:
    """`pictures` (N, h, w) centred in frames `width` wide, the sides filled with the picture magnified to cover
    the frame, blurred (sigma x the width) and darkened (as phone apps and TV uploads fill them)."""
    n, h, w = pictures.shape
    x0 = (width - w) // 2
    out = []
    for p in pictures:
        big = cv2.resize(p, (width, int(round(h * width / w))), interpolation=cv2.INTER_LINEAR)
        y0 = (big.shape[0] - h) // 2
        f = (cv2.GaussianBlur(big[y0:y0 + h].astype(np.float32), (0, 0), sigma * width) * shade).astype(np.uint8)
        f[:, x0:x0 + w] = p
        out.append(f)
    return np.stack(out)


def as_probe(frames: np.ndarray, shape: tuple[int, int] = PROBE) -> np.ndarray:
    """`frames` area-resized to a probe image's size, so a panel's edge falls between probe px as it does."""
    return np.stack([cv2.resize(f, (shape[1], shape[0]), interpolation=cv2.INTER_AREA) for f in frames])


@pytest.mark.parametrize(("picture_w", "width"), [(1080, 1440), (608, 1920), (1440, 1920), (960, 1920)])
def test_a_blurred_fill_beside_the_picture_is_found_where_its_seam_falls_between_probe_px(
        picture_w: int, width: int) -> None:
    """An upright phone video (608 of 1920: a third of the frame), 4:3 in 16:9, and a picture half the frame wide,
    filled at the sides and brought down to the probe's 256 px (the seam lands inside a probe px): the picture
    between the seams is found to within 1 probe px."""
    pictures = scene(6, 1080, picture_w, seed=picture_w)
    probes = as_probe(filled(pictures, width))
    box = fill_box(probes)
    assert box is not None
    top, bottom, left, right = box
    assert (top, bottom) == (0, PROBE[0])
    x0 = (width - picture_w) / 2 * PROBE[1] / width
    assert abs(left - x0) <= 1.01 and abs(right - (PROBE[1] - x0)) <= 1.01
    assert content_box(probes) is None  # no black bar: a fill is lit


@pytest.mark.parametrize("grey", [60, 128, 235])
def test_bars_of_a_colour_are_panels_too(grey: int) -> None:
    """Grey and white pillarbox bars (a branded colour; no black for `content_box` to find) are cropped as a fill
    is."""
    probes = scene(5, 144, 192, seed=grey)
    framed = np.full((5, 144, 256), grey, np.uint8)
    framed[:, :, 32:224] = probes
    framed = np.clip(framed.astype(int) + RNG.integers(-1, 2, framed.shape), 0, 255).astype(np.uint8)  # coding noise
    assert content_box(framed) is None
    box = fill_box(framed)
    assert box is not None and box[0] == 0 and box[1] == 144 and abs(box[2] - 32) <= 1 and abs(box[3] - 224) <= 1


def test_a_wide_picture_in_an_upright_frame_has_its_panels_above_and_below() -> None:
    """A landscape video filled into an upright frame (as phone apps repost one): the panels are found above and
    below."""
    pictures = scene(5, 608, 1080, seed=5)  # (h, w) of a 16:9 picture 1080 wide
    upright = np.stack([f.T for f in filled(np.stack([p.T for p in pictures]), 1920)])  # filled above and below
    probes = as_probe(upright, (512, 256))  # a 9:16 frame's probe (squeezed to 2:1)
    box = fill_box(probes)
    assert box is not None and (box[2], box[3]) == (0, 256)
    y0 = (1920 - 608) / 2 * 512 / 1920
    assert abs(box[0] - y0) <= 1.01 and abs(box[1] - (512 - y0)) <= 1.01


def test_a_scene_with_flat_or_soft_sides_is_kept_whole() -> None:
    """No crop without a seam on both sides: a textured scene; one flat side only (a wall at the left); a spot-lit
    actor on a dark stage (flat sides, a soft edge); flat sides whose edges are not mirrored (a doorway off
    centre); and panels that take detail in one frame of those looked at (the camera pans onto a textured wall)."""
    h, w = PROBE
    assert fill_box(scene(5, h, w)) is None
    one_side = scene(5, h, w, seed=1)
    one_side[:, :, :40] = 90
    assert fill_box(one_side) is None
    stage = scene(5, h, w, seed=2).astype(np.float32)
    x = np.arange(w, dtype=np.float32)
    stage *= np.exp(-((x - w / 2) / (0.18 * w)) ** 4)  # a spotlight: the dark falls off smoothly
    assert fill_box(stage.astype(np.uint8)) is None
    off_centre = scene(5, h, w, seed=3)
    off_centre[:, :, :30] = 80
    off_centre[:, :, 200:] = 80  # panels 30 and 56 px: not a centred picture
    assert fill_box(off_centre) is None
    frames = filled(scene(6, h, 192, seed=4), w)
    assert fill_box(frames) is not None
    frames[-1] = scene(1, h, w, seed=6)[0]  # a keyframe later in the clip: the "panels" hold detail
    assert fill_box(frames) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(imgs=arrays(np.uint8, st.tuples(st.integers(1, 3), st.integers(1, 80), st.integers(1, 120))),
       flat=st.integers(0, 50), level=st.integers(0, 255))
def test_fill_box_never_crops_detail_or_an_uneven_frame(imgs: np.ndarray, flat: int, level: int) -> None:
    """Any frames (tiny, constant, noise, some columns from each side flat): no crash, and a box only where
    both panels are centred, within the shares allowed and, in every image, flatter than `FILL_TEXTURE` x the
    picture."""
    imgs = imgs.copy()
    n, h, w = imgs.shape
    imgs[:, :, :flat] = level
    imgs[:, :, max(0, w - flat):] = level
    box = fill_box(imgs)
    if box is None:
        return
    top, bottom, left, right = box
    assert 0 <= top < bottom <= h and 0 <= left < right <= w
    if (top, bottom) == (0, h):
        side, length = (left, w - right), w
        tex = np.abs(np.diff(imgs.astype(float), axis=1)).mean(axis=(0, 1))
        picture = np.median(tex[left + 1:right - 1])
        each = np.abs(np.diff(imgs.astype(float), axis=1)).mean(axis=1)
        panels = max(each[:, 1:left - 2].mean(axis=1).max(), each[:, right + 2:w - 1].mean(axis=1).max())
    else:
        side, length = (top, h - bottom), h
        tex = np.abs(np.diff(imgs.astype(float), axis=2)).mean(axis=(0, 2))
        picture = np.median(tex[top + 1:bottom - 1])
        each = np.abs(np.diff(imgs.astype(float), axis=2)).mean(axis=2)
        panels = max(each[:, 1:top - 2].mean(axis=1).max(), each[:, bottom + 2:h - 1].mean(axis=1).max())
    assert min(side) >= FILL_MIN_SHARE * length - 1e-9 and max(side) <= FILL_MAX_SHARE * length + 1e-9
    assert abs(side[0] - side[1]) <= FILL_SYMMETRY * length + 1
    assert panels <= FILL_TEXTURE * picture + 1e-6


@pytest.fixture(scope="module")
def strokes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, int]:
    """A clip of 14 strokes (240 x 180, 30 fps) and its decoded RGB frames."""
    folder = tmp_path_factory.mktemp("panels")
    spec = RepClipSpec("panels", "stroke", n_cycles=14, period_start_s=0.7, period_end_s=0.8, width=240, height=180,
                       fps=30.0, seed=4)
    path, truth = generate_rep_clip(spec, folder)
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    return path, frames, truth.count


def filled_rgb(frames: np.ndarray, width: int) -> list[np.ndarray]:
    """`filled` for RGB frames, channel by channel."""
    chans = [filled(np.ascontiguousarray(frames[..., c]), width) for c in range(3)]
    return list(np.stack(chans, axis=-1))


def test_strokes_between_blurred_fills_give_the_track_and_count_of_the_bare_clip(
        strokes: tuple[Path, np.ndarray, int], tmp_path: Path) -> None:
    """A 4:3 clip filled out to 16:9 (the sides a blurred, darkened copy of the picture, which moves with it, so
    the crop is not given up as lit bars are): the motion track is made of the picture between the panels, with
    the bare clip's shape, and counts as the bare clip does; saved and loaded, it says panels were cut."""
    path, frames, truth = strokes
    wide = write_video(tmp_path / "filled.mp4", filled_rgb(frames, 320), 30.0, crf=18)
    bare, mt = motion_track_from_video(path), motion_track_from_video(wide)
    assert bare.box is None
    assert mt.box is not None and mt.box_kind == "panels" and np.allclose(mt.box, (0, 1, 1 / 8, 7 / 8), atol=0.01)
    assert mt.intensity.shape == bare.intensity.shape and mt.energy.shape == bare.energy.shape
    assert np.abs(mt.intensity.astype(float) - bare.intensity.astype(float)).mean() < 5.0
    assert whole_count(mt) == pytest.approx(truth, rel=0.1)
    assert whole_count(mt) == pytest.approx(whole_count(bare), rel=0.05)
    loaded = load_motion_track(save_motion_track(mt, tmp_path / "m.npz"))
    assert np.array_equal(loaded.box, mt.box) and loaded.box_kind == "panels"
    kept = motion_track_from_video(wide, crop_bars=False)
    assert kept.box is None and kept.intensity.shape != bare.intensity.shape


def test_panels_that_take_detail_later_in_the_clip_are_kept(strokes: tuple[Path, np.ndarray, int],
                                                            tmp_path: Path) -> None:
    """Filled for its first 2 s, then the whole frame is picture (an edit): the keyframes spread over the clip
    show detail where the panels were, so nothing is cropped."""
    path, frames, _ = strokes
    wide = filled_rgb(frames, 320)
    whole = [cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA) for f in frames]
    clip = write_video(tmp_path / "edit.mp4", wide[:60] + whole[60:], 30.0, crf=18, keyint=30)
    assert motion_track_from_video(clip).box is None


def test_panels_that_take_detail_after_the_keyframes_checked_give_the_crop_up(
        strokes: tuple[Path, np.ndarray, int], tmp_path: Path) -> None:
    """The same edit in one long GOP (a keyframe only at the start, so the keyframes spread over the clip all show
    the panels): the panels are looked at again every `FILL_WATCH_S` while decoding, and the detail in them gives
    the crop up; the track and the cache are made again of the whole frame, as for bars lit later."""
    from handclust_assets.video.motion_track import MotionTrackBuilder
    from handclust_assets.video.picture_box import FILL_WATCH_S, sample_probes

    path, frames, _ = strokes
    wide = filled_rgb(frames, 320)
    whole = [cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA) for f in frames]
    clip = write_video(tmp_path / "edit.mp4", wide[:60] + whole[60:], 30.0, crf=18, keyint=1000)
    builder = MotionTrackBuilder(more_frames=lambda: sample_probes(clip))
    with av.open(str(clip)) as c:
        for i, f in enumerate(c.decode(video=0)):
            builder.add(f, i / 30.0)
    assert builder.box is not None and builder.box_kind == "panels"  # judged on the first second and the keyframes
    assert builder.crop_given_up_at is not None and 60 <= builder.crop_given_up_at <= 60 + 2 * FILL_WATCH_S * 30 + 1
    assert motion_track_from_video(clip).box is None
    build_frame_cache(clip, tmp_path / "fc", sample_fps=5.0, max_side=160)
    fc = FrameCache(tmp_path / "fc")
    assert fc.meta["content_box"] is None and fc.width == 160


def test_the_frame_cache_cuts_the_panels_off_the_frames_the_models_see(strokes: tuple[Path, np.ndarray, int],
                                                                      tmp_path: Path) -> None:
    """The sampled frames are the picture between the panels, at the bare clip's frame size; `meta.json` says
    where it was and that it was panels."""
    path, frames, _ = strokes
    wide = write_video(tmp_path / "filled.mp4", filled_rgb(frames, 320), 30.0, crf=18)
    build_frame_cache(path, tmp_path / "bare", sample_fps=5.0, max_side=160)
    build_frame_cache(wide, tmp_path / "cut", sample_fps=5.0, max_side=160)
    bare, cut = FrameCache(tmp_path / "bare"), FrameCache(tmp_path / "cut")
    assert bare.meta["content_box"] is None and bare.meta.get("content_kind") is None
    assert np.allclose(cut.meta["content_box"], (0, 1, 1 / 8, 7 / 8), atol=0.01)
    assert cut.meta["content_kind"] == "panels"
    assert (cut.width, cut.height) == (bare.width, bare.height) and len(cut) == len(bare)
    assert np.abs(bare.all_frames().astype(float) - cut.all_frames().astype(float)).mean() < 8.0


def test_a_wide_clip_filled_into_an_upright_frame_is_cut_above_and_below(strokes: tuple[Path, np.ndarray, int],
                                                                         tmp_path: Path) -> None:
    """The strokes (4:3) reposted in an upright 9:16 frame, filled above and below: the track and the cache are the
    picture between the panels, counted as the bare clip is."""
    path, frames, truth = strokes
    upright = [np.stack([filled(np.ascontiguousarray(f[..., c].T)[None], 320)[0].T for c in range(3)], axis=-1)
               for f in frames]  # 240 x 320 (w x h): the 180-px-high picture centred, panels of 70 px above and below
    clip = write_video(tmp_path / "upright.mp4", upright, 30.0, crf=18)
    mt = motion_track_from_video(clip)
    assert mt.box is not None and mt.box_kind == "panels"
    assert np.allclose(mt.box, (70 / 320, 250 / 320, 0, 1), atol=0.01)
    assert whole_count(mt) == pytest.approx(truth, rel=0.1)
    build_frame_cache(clip, tmp_path / "fc", sample_fps=5.0, max_side=160)
    fc = FrameCache(tmp_path / "fc")
    assert fc.meta["content_kind"] == "panels" and fc.width > fc.height  # the wide picture, not the upright frame
