"""`picture_box`'s watch while decoding, as plain functions on arrays: the cropped bars stay dark (`lit_in_bars` on
the probe image, `SourceCut.lit` on the frame's own luma, which must judge a frame alike), the panels stay flat
(`detail_in_panels`), and a stream that changes size is never judged on the wrong grid. The builder and the frame
cache that call them are tested in test_black_bars.py and test_side_panels.py."""

from __future__ import annotations

import av
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from handclust_assets.video import picture_box as pb
from handclust_assets.video.frame_gray import luma, probe_gray
from handclust_assets_tests.test_black_bars import framed
from handclust_assets_tests.test_side_panels import PROBE, filled, scene


def boxed_frame(h: int, w: int, bar: int, rng: np.random.Generator) -> np.ndarray:
    """An h x w luma frame: a textured picture between black bars `bar` px high above and below (test_black_bars'
    `framed`: limited-range black with a little coding noise)."""
    return framed(rng.integers(60, 220, (1, h - 2 * bar, w)).astype(np.uint8), bar, bar, 0, 0)[0]


def judged(img: np.ndarray) -> tuple[tuple[int, int, int, int], tuple[int, int], pb.SourceCut]:
    """The bars' box on the frame's probe image, its shape and the frame's `SourceCut`."""
    probe = probe_gray(av.VideoFrame.from_ndarray(img, format="gray"))
    box = pb.content_box(probe[None])
    assert box is not None
    return box, probe.shape, pb.SourceCut.of(box, probe.shape, img.shape, 64)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([(720, 1280, 90), (1080, 1920, 140), (1080, 1440, 100)]), st.floats(0.0, 1.0),
       st.floats(0.0, 1.0), st.booleans(), st.integers(0, 2**32 - 1))
def test_a_lit_spot_in_a_bar_is_seen_alike_on_the_frames_own_luma_and_on_its_probe(
        size: tuple[int, int, int], fx: float, fy: float, top: bool, seed: int) -> None:
    """A lit patch (24 x 24 source px at luma 200, over 3 probe px each way) anywhere in a bar, clear of the lines
    beside the picture where an encoder's ringing may reach: both watches see it; the same frame without it:
    neither does. (After the first second a large frame's bars are watched on its own luma, a small one's on its
    probe image: one clip's frames must not be judged otherwise for their size.)"""
    h, w, bar = size
    rng = np.random.default_rng(seed)
    img = boxed_frame(h, w, bar, rng)
    box, shape, cut = judged(img)
    assert not pb.lit_in_bars(probe_gray(av.VideoFrame.from_ndarray(img, format="gray")), box, shape)
    assert not cut.lit(img)
    margin = int(np.ceil((pb.BARS_EDGE_PX + 1) * h / shape[0]))  # source rows beside the picture left out, and one more
    room = bar - margin - 24
    assert room > 0
    y0 = int(fy * room) if top else h - bar + margin + int(fy * room)
    x0 = int(fx * (w - 24))
    img[y0:y0 + 24, x0:x0 + 24] = 200
    frame = av.VideoFrame.from_ndarray(img, format="gray")
    assert pb.lit_in_bars(probe_gray(frame), box, shape)
    assert cut.lit(luma(frame))


def test_ringing_beside_the_picture_is_not_a_lit_bar() -> None:
    """An encoder's ringing reaches a macroblock into a bar (25 grey levels measured 2 probe px from the picture):
    the lines beside the picture are not watched, by either watch."""
    rng = np.random.default_rng(1)
    img = boxed_frame(1080, 1920, 140, rng)
    box, shape, cut = judged(img)
    ring = int(pb.BARS_EDGE_PX * 1080 / shape[0]) - 2  # source rows within the margin
    img[140 - ring:140] = 120
    img[940:940 + ring] = 120
    assert not pb.lit_in_bars(probe_gray(av.VideoFrame.from_ndarray(img, format="gray")), box, shape)
    assert not cut.lit(img)
    img[140 - ring - 30:140 - ring] = pb.BORDER_DARK + 60  # past the margin (4 probe px of rows): lit
    assert pb.lit_in_bars(probe_gray(av.VideoFrame.from_ndarray(img, format="gray")), box, shape)
    assert cut.lit(img)


def test_a_probe_of_another_size_is_not_judged_and_is_cut_in_proportion() -> None:
    """The stream changed size mid-clip: its probe images are not judged lit or detailed on the old grid (False),
    and the picture is cut from them where the box lies in proportion (the motion image keeps its shape)."""
    rng = np.random.default_rng(2)
    img = boxed_frame(720, 1280, 90, rng)
    box, shape, _ = judged(img)
    other = probe_gray(av.VideoFrame.from_ndarray(np.full((360, 480), 250, np.uint8), format="gray"))
    assert other.shape != shape
    assert not pb.lit_in_bars(other, box, shape)
    assert not pb.detail_in_panels(other, box, shape)
    probe = probe_gray(av.VideoFrame.from_ndarray(img, format="gray"))
    assert pb.inside_bars(other, box, shape, 64).shape == pb.inside_bars(probe, box, shape, 64).shape


def test_panels_that_take_detail_are_seen_and_flat_ones_are_not() -> None:
    """Blurred-fill panels beside a textured picture (test_side_panels' `filled`): flat, they hold no detail;
    painted with texture as strong as the picture's (an edit to the whole frame), they do."""
    rng = np.random.default_rng(3)
    frames = filled(scene(4, PROBE[0], 128, seed=3), PROBE[1])
    box = pb.fill_box(frames)
    assert box is not None and abs(box[2] - 64) <= 2 and abs(box[3] - 192) <= 2
    img = frames[0]
    assert not pb.detail_in_panels(img, box, PROBE)
    edited = img.copy()
    edited[:, :64] = rng.integers(40, 220, (PROBE[0], 64))
    assert pb.detail_in_panels(edited, box, PROBE)
