"""The source-rate motion track: a tiny gray image of every decoded frame, for the rhythm path.

The 5-fps frame cache aliases fast strokes (a 0.4 s trowel stroke is 2 samples). The motion track keeps the
source frame rate at almost no cost: while the frame cache decodes, every frame's luma plane (no colour
conversion) is area-averaged to a 64-px-wide gray image, from which two signals are kept:

    energy     float16 (T, gh, gw)  mean |frame difference| per cell of a coarse grid (cells of ~8 px of
                                    the 64-px image), so a small moving hand is not averaged with the whole frame;
                                    the previous frame is first shifted by the camera's translation (phase
                                    correlation), so head / camera sway is not counted as hand motion; not
                                    when the shift leaves most pixels less alike (it followed a large moving
                                    subject, not the camera)
    energy_raw float16 (T, gh, gw)  the same without the compensation (the camera's own rhythm, e.g. walking)
    camera     float32 (T, 2)       that translation (dx, dy) in px of the 64-px image per frame (0 for frame 0):
                                    the dominant one, the camera's or a large subject's
    path       float32 (T, 2)       where the picture has moved since the first frame (px of the 64-px image):
                                    tracked against a key frame, so a slow pan (under `MIN_SHIFT_PX` a frame, which
                                    `camera` leaves at 0) adds up; a move of 1 px or more is taken only when it
                                    makes most pixels match the key (the camera's, not a subject's), else the path
                                    holds (a subject moving, a cut) and a new key is taken
    intensity  uint8   (T, th, tw)  the gray image pooled to 32 px wide (where things are: repeats once per cycle)
    t_s        float64 (T,)         presentation time of each frame, from the first frame
    keyframes  bool    (T,)         the frames the codec sent whole (I-frames); the energy at one of them is the
                                    mean of its neighbours' unless the whole picture changed (`keyframe_pulses`)
Black bars (letterbox, pillarbox, an upright phone video in a wide frame) are found on the first second's frames
(`content_box`), confirmed on keyframes spread over the clip (`sample_probes`) and cropped before the motion image
is made, so the picture fills its 64 px (`box`: where it was); after the first second, a large frame's picture is cut
from its own luma (`_SourceCut`), not from the 4-x-wider image the bars were found on. Where there are none, flat
panels beside the picture (a blurred, magnified copy of it, or bars of a colour, as uploads fill the sides of an
upright phone video) are found and cropped the same way (`fill_box`; `box_kind` says which).
A frame shown twice (a frame rate raised by repeating frames) and the one after it share their energy
(`repeated_frames`). The pulses of an earlier encoding's keyframes, left in the pixels of a re-encoded clip at a
steady rate but not at its own keyframes, are found by their comb and smoothed too (`baked_keyframe_pulses`).

Stored as `motion.npz` in the clip's frame-cache folder (~0.7 KB per source frame).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import cv2
import numpy as np
from av.video.frame import PictureType

if TYPE_CHECKING:
    from handclust_assets.video.probe import VideoInfo

MOTION_FILE = "motion.npz"
MOTION_TRACK_VERSION = 9  # v6: + path; v7: black bars cropped; v8: the picture inside them cut from a large frame's
# own luma after the first second; v9: flat side panels (a blurred fill, coloured bars) cropped as bars are; bump
# when the same frames give a different track (caches keyed by it go stale)
WORK_WIDTH = 64
THUMB_WIDTH = 32
CELL_PX = 8
ROW_OVERSAMPLE = 8  # the motion image's rows come from at least 8 x as many source rows (memory traffic on 1080p)
MAX_ASPECT = 2  # a frame taller than 2:1 (a sliver of a video) is squeezed to that, so the track stays small
MIN_SHIFT_PX = 0.25  # camera translations below this (px of the 64-px image) are left uncompensated
MIN_RESPONSE = 0.2  # phase-correlation peak needed to trust a translation
PATH_TEST_PX = 1.0  # `path`: a displacement from the key frame this large (px of the 64-px image) is taken only where
# it makes most pixels match the key better; smaller ones cannot be told from a subject's move and are taken as found
PATH_RETEST_PX = 0.5  # ... tested again only once it is this far from the last one tested (the test costs twice the
# phase correlation; a slow pan's every frame needs none)
PATH_REKEY_PX = 4.0  # ... and past this a new key frame is taken (phase correlation is surest on small moves)
KEYFRAME_GAP = 3  # a keyframe is smoothed only with no other keyframe this close (intra-only codecs are left alone)
MAX_PULSE = 6.0  # grey levels: a keyframe's difference above its neighbours' beyond this is a real change, not coding
REPEAT_MAX = 0.5  # grey levels: no cell of a frame shown twice differs from the one before by more
BAKED_MIN_PULSE = 0.3  # grey levels over the neighbours' mean, in 3 of 4 cells: the least a baked pulse lifts
BAKED_QUANTILE = 95  # ... and it is among the clip's top 5 % of such lifts
BAKED_MIN_TEETH = 4  # a comb spans at least 4 frames at one spacing, 3 of them strongly lifted
BAKED_GOP_S = (0.4, 10.0)  # the spacings (keyframe intervals) tried, in seconds
BAKED_ALPHA = 0.01  # chance of so regular a comb in a clip without one, over all the spacings and phases tried
BORDER_BLACK = 24  # luma: a row (column) with no pixel above this in any frame looked at is a black bar's
# (limited-range black is 16; an encoder's ringing at the bar's edge stays under it)
BORDER_MIN_SHARE = 0.03  # bars are cropped only where one side's is at least 3 % of the picture (others are left
# whole, so the track of a video without bars does not change)
BORDER_MIN_CONTENT = 0.2  # ... and the picture kept is at least 20 % of each side (else it is left whole: a dark clip)
BORDER_EDGE = 0.9  # ... ending in a straight edge: the picture's first line inside a bar is lit along 90 % of it
BORDER_SECONDS = 1.0  # the bars are judged on the first second of frames ...
BORDER_MAX_SECONDS = 3.0  # ... or longer while every frame is dark (a fade from black), up to this
BORDER_DARK = 48  # a frame is dark while its 90th-percentile luma is at most this
BORDER_MAX_FRAMES = 360  # the most frames held while judging (a 120-fps clip's 3 s)
PROBE_WIDTH = 4 * WORK_WIDTH  # the bars are found (and cropped) on the luma at this width
PROBE_OVERSAMPLE = max(1, ROW_OVERSAMPLE * WORK_WIDTH // PROBE_WIDTH)  # ... from the same source rows
BARS_EDGE_PX = 4  # probe px beside the picture where a cropped bar may hold an encoder's ringing; a pixel lit beyond
# them later in the clip means the bar was none
BORDER_SAMPLES = 8  # bars seen in the first second are confirmed on this many keyframes spread over the clip
FILL_MIN_SHARE = 0.05  # flat side panels (`fill_box`: a blurred fill, coloured bars): each at least this share of
FILL_MAX_SHARE = 0.4  # ... the width (height) and at most this ...
FILL_SYMMETRY = 0.02  # ... the two within this share of each other (the picture is centred) ...
FILL_TEXTURE = 0.5  # ... their texture (mean |step| along the edge) at most this share of the picture's ...
FILL_MIN_TEXTURE = 1.0  # ... which is at least this (grey levels: a flat picture has nothing to tell a panel from)
FILL_SEAM = 1.5  # ... each ending in a seam: a step over 2 px of at least this (grey levels) ...
FILL_SEAM_RATIO = 3.0  # ... and this many times the panel's own steps beside it (plus `FILL_NOISE`) ...
FILL_NOISE = 0.3
FILL_BANDS = 6  # ... in at least `FILL_STRAIGHT` of this many bands across the seam (a straight edge)
FILL_STRAIGHT = 0.6
FILL_WATCH_S = 0.5  # after the first second the panels are looked at again every this many seconds; detail in them
FILL_WATCH_HITS = 2  # ... this many times running (a flash is not an edit) gives the crop up, as lit bars do
FILL_MAX_IMAGES = 12  # the held frames looked at for panels, evenly spread (on the dev set 8, 12 and 24 find
# the same panels; 12 cost 3 ms a clip against 8 ms)
BESIDE_PICTURE = {"bars": "black bars", "panels": "flat side panels (a blurred fill, bars of a colour)"}  # a
# `box_kind` in words, for logs
_LUMA_FORMATS = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "yuv410p",
                 "nv12", "nv21", "gray", "yuva420p"}


@dataclass
class MotionTrack:
    t_s: np.ndarray
    energy: np.ndarray
    intensity: np.ndarray
    camera: np.ndarray | None = None
    energy_raw: np.ndarray | None = None  # the same energy without camera compensation
    keyframes: np.ndarray | None = None  # bool (T,): the codec's I-frames (None: not recorded)
    path: np.ndarray | None = None  # float32 (T, 2): the picture's displacement since frame 0 (None: not recorded)
    box: np.ndarray | None = None  # float32 (4,): the picture inside black bars the track was made of, as shares of
    # the unrotated frame (top, bottom, left, right); None: the whole frame
    box_kind: str = "bars"  # what was beside the picture in `box`: "bars" (black, `content_box`) or "panels" (a
    # blurred fill or bars of a colour, `fill_box`)

    @property
    def fps(self) -> float:
        return float(1.0 / np.median(np.diff(self.t_s))) if len(self.t_s) > 1 else 0.0

    @property
    def duration_s(self) -> float:
        """From the first frame to the end of the last one (0 for an empty track)."""
        if len(self.t_s) < 2:  # no frame interval to measure: the frames' span (0 s for one frame)
            return float(self.t_s[-1]) if len(self.t_s) else 0.0
        return float(self.t_s[-1] + 1.0 / max(self.fps, 1e-3))

    def __len__(self) -> int:
        return len(self.t_s)


def rotate_upright(img: np.ndarray, rotation: int) -> np.ndarray:
    """`img` turned by the stream's display rotation (0, 90, 180, 270 degrees clockwise), as a player shows it."""
    if rotation == 90:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if rotation == 180:
        return cv2.rotate(img, cv2.ROTATE_180)
    if rotation == 270:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def _luma(frame: av.VideoFrame) -> np.ndarray | None:
    """The frame's Y plane as a uint8 (H, W) view, or None where its format has none to read directly."""
    if frame.format.name not in _LUMA_FORMATS:
        return None
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:frame.height, :frame.width]


def small_height(h: float, w: float, width: int) -> int:
    """The height of a `width`-px-wide image of an h x w picture: its aspect kept, at least 4 px, and no taller than
    `MAX_ASPECT` x the width (a sliver of a video is squeezed to that)."""
    return min(MAX_ASPECT * width, max(4, int(round(width * h / max(w, 1)))))


def small_gray(frame: av.VideoFrame, width: int = WORK_WIDTH, oversample: int = ROW_OVERSAMPLE,
               halve_over: int = 4) -> np.ndarray:
    """The frame's luma area-averaged to `width` px wide (aspect kept up to `MAX_ASPECT`), uint8: halved by 2 x 2
    means while it is over 4 x as large, then area-resized (of a frame over 8 x as tall as the small image, every
    2nd or 3rd row only: reading every row of 1080p cost the frame cache ~0.13 x of ffmpeg's decode time). Every
    source pixel of a row counts: picked from a coarser grid of them (as before track version 3), a texture finer
    than the small image (brickwork, a cutting mat's grid, fabric) aliases, and the sub-pixel sway of a hand-held
    or head-mounted camera then redraws its aliases in every frame, which the motion energy and the thumbnails
    take for motion. Reads the Y plane directly for 8-bit YUV/gray formats (no colour conversion); other formats
    go through swscale (whose downscaling filters every pixel too)."""
    w, h = frame.width, frame.height
    height = small_height(h, w, width)
    if (y := _luma(frame)) is not None:
        y = y[::max(1, h // (height * oversample))]  # rows of a tall frame: every 2nd / 3rd (720p / 1080p)
        y = _halved(y, (halve_over * height / 2, halve_over * width / 2), trim_odd=False)  # 2 x 2 means (fast),
        return cv2.resize(y, (width, height), interpolation=cv2.INTER_AREA)  # then one area resize
    return frame.to_ndarray(format="gray", width=width, height=height)


def _halved(y: np.ndarray, until: tuple[float, float], trim_odd: bool = True) -> np.ndarray:
    """`y` halved by 2 x 2 means while it is at least `until` (rows, columns) times 2 in both directions, an odd last
    row or column left out first (OpenCV's area resize takes its fast path only on exact halves: halving
    960 x 131 px cost as much as the rest of the motion image's making). `trim_odd=False`: an odd size is halved
    as it is (`small_gray`'s whole frames, as every track since version 3 made them)."""
    while y.shape[0] >= 2 * until[0] and y.shape[1] >= 2 * until[1]:
        if trim_odd:
            y = y[:y.shape[0] // 2 * 2, :y.shape[1] // 2 * 2]
        y = cv2.resize(y, (y.shape[1] // 2, y.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return y


def probe_gray(frame: av.VideoFrame) -> np.ndarray:
    """The frame's luma at `PROBE_WIDTH` (4 x the motion image's width) from the same source rows `small_gray`
    reads: where black bars are found, and cropped from before the motion image is made of what is left. Halved
    by 2 x 2 means while twice as large (one area resize of the whole 1080p frame cost 4 x the motion image's
    making; halved first, 2 x)."""
    return small_gray(frame, PROBE_WIDTH, oversample=PROBE_OVERSAMPLE, halve_over=2)


def content_box(images: np.ndarray, black: int = BORDER_BLACK, min_share: float = BORDER_MIN_SHARE,
                min_content: float = BORDER_MIN_CONTENT, edge: float = BORDER_EDGE) -> tuple[int, int, int, int] | None:
    """The picture inside black bars, (top, bottom, left, right) in px of `images` (N, H, W) uint8 (rows top:bottom,
    columns left:right), or None to keep the whole picture.

    Letterboxed (a wide film in a 16:9 frame), pillarboxed (4:3 in 16:9) and a phone's upright video in a wide frame
    are common in uploaded footage: the bars hold no motion and the picture is made smaller, down to a third of the
    motion image's width (~20 of 64 px, 2-3 cells for the box search). A bar is a run of rows (columns) from an edge
    with no pixel above `black` in any image (over several frames, so a dark edge of the scene that lights up once
    is kept), ending in a straight edge: the first line inside it is lit along at least `edge` of its length in
    some image, or the second line is (the first is often part bar; a dark scene, or an actor against black, is
    uneven there and kept whole). Bars are cropped only
    where one side's is at least `min_share` of the picture (a thin dark edge is left, and a video without bars
    keeps the track it had) and at least `min_content` of each side, and 4 px, is left (a black or dark clip, or
    a sliver, is left whole)."""
    imgs = np.asarray(images)
    if imgs.ndim != 3 or not imgs.size:
        return None
    bright = (imgs > black).any(axis=0)  # (H, W): lit in some frame
    h, w = bright.shape
    rows, cols = np.flatnonzero(bright.any(axis=1)), np.flatnonzero(bright.any(axis=0))
    if not len(rows) or not len(cols):
        return None
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    # a bar ends in a straight edge: the picture's first or second line inside it is lit across (in some frame;
    # the first is often part bar, and where the picture is dark there it stays under `black`); where the dark
    # reaches in unevenly (a dark scene, an actor's outline against black), that side is kept whole
    if top and max(bright[top, left:right].mean(), bright[min(top + 1, h - 1), left:right].mean()) < edge:
        top = 0
    if bottom < h and max(bright[bottom - 1, left:right].mean(), bright[max(bottom - 2, 0), left:right].mean()) < edge:
        bottom = h
    if left and max(bright[top:bottom, left].mean(), bright[top:bottom, min(left + 1, w - 1)].mean()) < edge:
        left = 0
    if right < w and max(bright[top:bottom, right - 1].mean(), bright[top:bottom, max(right - 2, 0)].mean()) < edge:
        right = w
    if max(top, h - bottom) < min_share * h and max(left, w - right) < min_share * w:
        return None
    if bottom - top < max(4.0, min_content * h) or right - left < max(4.0, min_content * w):
        return None
    return top, bottom, left, right


def _column_texture(images: np.ndarray) -> np.ndarray:
    """(N, W): the mean |step| down each column of each of `images` (N, H, W) float32, the detail a flat panel
    lacks."""
    return np.abs(np.diff(images, axis=1)).mean(axis=1)


def _panel_texture(each: np.ndarray, x0: int, x1: int) -> tuple[np.ndarray, float]:
    """For panels before column `x0` and from column `x1` (`each`: `_column_texture`): the texture of the more
    textured panel in each image (N,), and the picture's (the median column of the images' mean between them). The
    outermost columns and those beside each seam (part panel, part picture) are left out."""
    w = each.shape[1]
    panels = np.maximum(each[:, 1:x0 - 2].mean(axis=1), each[:, x1 + 2:w - 1].mean(axis=1))
    return panels, float(np.median(each[:, x0 + 1:x1 - 1].mean(axis=0)))


def _panel_edges(images: np.ndarray) -> tuple[int, int] | None:
    """The picture's first and last + 1 column between flat side panels of `images` (N, H, W) float32, or None
    (`fill_box`)."""
    _, h, w = images.shape
    if h < 2 * FILL_BANDS or w < 32:
        return None
    each = _column_texture(images)
    steps = np.abs(np.diff(images, axis=2))  # steps[..., x - 1]: from column x - 1 to x
    band = h // FILL_BANDS
    prof = np.stack([steps.mean(axis=(0, 1))] + [steps[:, k * band:(k + 1) * band].mean(axis=(0, 1))
                                                for k in range(FILL_BANDS)])  # (1 + bands, W - 1)
    win = np.lib.stride_tricks.sliding_window_view(prof, 5, axis=1).max(axis=2)  # win[:, j]: max of prof[:, j:j+5]
    x = np.arange(7, w - 6)
    # a seam where the picture starts at column x (left) or ends before it (right): a step over 2 px (a column
    # that is part panel, part picture, splits it) far above the panel's own steps beside it, in the mean image
    # and in most bands of rows (a straight edge)
    left = prof[:, x - 1] + prof[:, x - 2]
    right = prof[:, x - 1] + prof[:, x]

    def straight(seam: np.ndarray, beside: np.ndarray) -> np.ndarray:
        ok = (seam >= FILL_SEAM) & (seam >= FILL_SEAM_RATIO * (beside + FILL_NOISE))
        return ok[0] & (ok[1:].sum(axis=0) >= FILL_STRAIGHT * FILL_BANDS)

    lo, hi = max(7.0, FILL_MIN_SHARE * w), FILL_MAX_SHARE * w
    lefts = x[straight(left, win[:, x - 7]) & (x >= lo) & (x <= hi)]
    rights = set(x[straight(right, win[:, x + 1]) & (w - x >= lo) & (w - x <= hi)])
    skew = int(FILL_SYMMETRY * w) + 1
    for x0 in lefts:  # the outermost seam (a straight edge in the picture is further in)
        for d in sorted(range(-skew, skew + 1), key=abs):
            x1 = w - int(x0) + d
            if x1 not in rights or x1 - x0 < BORDER_MIN_CONTENT * w:
                continue
            # flat in every image: a panel that holds detail in one (a keyframe after an edit) is none
            panels, ref = _panel_texture(each, int(x0), x1)
            if ref >= FILL_MIN_TEXTURE and float(panels.max()) <= FILL_TEXTURE * ref:
                return int(x0), int(x1)
    return None


def fill_box(images: np.ndarray) -> tuple[int, int, int, int] | None:
    """The picture between flat panels at its sides (or above and below), (top, bottom, left, right) in px of
    `images` (N, H, W) uint8 as `content_box` gives it, or None.

    Uploads show a narrower picture (an upright phone video, 4:3 footage) in a wide frame with the sides filled by a
    blurred, often darkened, magnified copy of the picture, or by bars of a colour (a wide picture in an upright
    frame likewise above and below). No black bar, so `content_box` keeps them; but the panels hold no detail, and
    the picture they shrink costs the counts what black bars did. A panel is a run of columns from each side with
    texture (the mean |step| along the column) under `FILL_TEXTURE` x the picture's, ending in a seam: a step across
    far above the panel's own steps, at the same column in most bands of rows (a straight edge, not a soft dark
    background or an actor's outline), the two panels within `FILL_SYMMETRY` of the width of each other (the picture
    is centred), each `FILL_MIN_SHARE` to `FILL_MAX_SHARE` of the width; the outermost such pair is taken (a
    straight edge inside the picture is further in). Looked at over the frames given together: the seams on their
    mean, the panels' flatness in each (a panel that takes detail in any of them is none)."""
    imgs = np.asarray(images, np.float32)
    if imgs.ndim != 3 or not imgs.size:
        return None
    _, h, w = imgs.shape
    cols = _panel_edges(imgs)
    if cols is not None:
        return 0, h, cols[0], cols[1]
    rows = _panel_edges(np.ascontiguousarray(imgs.transpose(0, 2, 1)))
    return None if rows is None else (rows[0], rows[1], 0, w)


def sample_probes(source: object, n: int = BORDER_SAMPLES) -> list[np.ndarray]:
    """`probe_gray` images of up to `n` keyframes spread evenly over the video `source` (a path or a VideoSource):
    the keyframe at or before each of n points (seeking, decoding only keyframes, each once: the points of a long
    GOP share one; the decoder is drained for it, not fed on to the next keyframe).
    What cannot be sought or decoded is left out (an empty list at worst), never raised."""
    from handclust_assets.video.probe import close_input, open_input, pick_video_stream

    probes: list[np.ndarray] = []
    try:
        container, fobj = open_input(source)  # type: ignore[arg-type]
    except Exception:
        return probes
    try:
        vs = pick_video_stream(container)
        tb = float(vs.time_base or 0)
        duration = float(vs.duration * tb) if vs.duration and tb else float(container.duration or 0) / 1e6
        if duration <= 0 or tb <= 0:
            return probes
        cc = vs.codec_context
        cc.skip_frame = "NONKEY"
        start = float(vs.start_time * tb) if vs.start_time is not None else 0.0
        seen: set[int] = set()
        for i in range(n):
            try:
                container.seek(int((start + duration * (i + 0.5) / n) / tb), stream=vs, backward=True)
                frame = None
                for packet in container.demux(vs):
                    if not packet.is_keyframe:
                        continue
                    at = packet.pts if packet.pts is not None else packet.dts
                    if at is not None and at in seen:
                        break  # a long GOP: this point's keyframe was another's too (decoded once)
                    if at is not None:
                        seen.add(at)
                    got = list(cc.decode(packet)) or list(cc.decode(None))  # drained (the next seek flushes)
                    frame = got[0] if got else None
                    break
            except Exception:
                continue
            if frame is not None:
                probes.append(probe_gray(frame))
    except Exception:
        pass
    finally:
        close_input(container, fobj)
    return probes


def is_keyframe(frame: av.VideoFrame) -> bool:
    """Whether the codec sent this frame whole (a keyframe or any I-frame, open-GOP ones too)."""
    return bool(frame.key_frame) or int(frame.pict_type) == int(PictureType.I)


def keyframe_pulses(energy: np.ndarray, keyframes: np.ndarray, gap: int = KEYFRAME_GAP,
                    max_pulse: float = MAX_PULSE) -> np.ndarray:
    """The frames whose `energy` (T, ...) row is a codec's keyframe pulse, to be smoothed (`smooth_rows`).

    A lossy codec's error builds up frame by frame through a group of pictures and is reset at each keyframe, so
    the difference into a keyframe holds a pulse of coding noise over the whole picture: on a still background
    ~1-1.5 grey levels (median 1.2 over 4,500 keyframes of CRF-32 clips) against ~0 for the other frames, which
    x264 mostly copies. With keyframes at a steady rate (phones and action cameras write one every 0.5-2 s) that
    is a rhythm the counter finds in a still scene. A keyframe counts as a pulse when no other keyframe is within
    `gap` frames (intra-only codecs and very short GOPs, whose pulses are too fast to be taken for a repetition,
    are left alone), it is not the first or the last frame, and the median cell's energy exceeds the mean of the
    frames before and after by at most `max_pulse` grey levels: more, and the whole picture changed (a cut, a
    flash, the keyframe an encoder puts at a scene change), which is no coding noise."""
    key = np.asarray(keyframes, bool)
    n = len(energy)
    if n < 3 or len(key) != n or not key[1:-1].any():
        return np.zeros(0, np.int64)
    near = np.convolve(key.astype(np.int32), np.ones(2 * gap + 1, np.int32), mode="same")  # keyframes within gap
    idx = np.flatnonzero(key & (near == 1))
    idx = idx[(idx > 0) & (idx < n - 1)]
    if not len(idx):
        return idx
    e = np.asarray(energy, np.float32).reshape(n, -1)
    excess = np.median(e[idx] - (e[idx - 1] + e[idx + 1]) / 2, axis=1)
    return idx[excess <= max_pulse]


def smooth_rows(arr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A copy of `arr` (T, ...) with each of `rows` (none the first or last) the mean of the rows before and after;
    a run of consecutive rows goes linearly from the row before it to the row after it."""
    out = np.array(arr, copy=True)
    rows = np.unique(np.asarray(rows, np.int64))
    if not len(rows):
        return out
    starts = rows[np.r_[True, np.diff(rows) > 1]]
    ends = rows[np.r_[np.diff(rows) > 1, True]]
    for a, b in zip(starts, ends):
        lo, hi = arr[a - 1].astype(np.float32), arr[b + 1].astype(np.float32)
        for k in range(a, b + 1):
            w = (k - a + 1) / (b - a + 2)
            out[k] = ((1 - w) * lo + w * hi).astype(out.dtype)
    return out


def repeated_frames(energy: np.ndarray, max_diff: float = REPEAT_MAX) -> np.ndarray:
    """The frames of `energy` (T, ...) that repeat the frame before (no cell differs by more than `max_diff` grey
    levels) while the frame after moves (some cell differs by over 4 x that), to be spread (`spread_rows`).

    A frame rate raised by showing frames twice (24 or 25 fps footage delivered at 30, a phone dropping frames
    under load, a screen recording) leaves no difference at the repeat and the difference of two frame intervals
    at the frame after: at 24 -> 30 fps a motion energy that dips every 5th frame, a rhythm of 0.17 s whose
    multiples the counter can take for strokes. A still picture (a rest, a frozen scene) repeats too, but the frame
    after it moves little or not at all."""
    n = len(energy)
    if n < 3:
        return np.zeros(0, np.int64)
    peak = np.asarray(energy, np.float32).reshape(n, -1).max(axis=1)
    return np.flatnonzero((peak[1:-1] <= max_diff) & (peak[2:] > 4 * max_diff)) + 1


def spread_rows(arr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A copy of `arr` (T, ...) with each of `rows` (none the last) and the row after it both their mean: the
    motion of two frame intervals shared between them."""
    out = np.array(arr, copy=True)
    rows = np.asarray(rows, np.int64)
    if len(rows):
        mean = ((arr[rows].astype(np.float32) + arr[rows + 1].astype(np.float32)) / 2).astype(out.dtype)
        out[rows], out[rows + 1] = mean, mean
    return out


def baked_keyframe_pulses(energy: np.ndarray, fps: float, min_pulse: float = BAKED_MIN_PULSE,
                          quantile: float = BAKED_QUANTILE, min_teeth: int = BAKED_MIN_TEETH,
                          gop_s: tuple[float, float] = BAKED_GOP_S, alpha: float = BAKED_ALPHA) -> np.ndarray:
    """The frames of `energy` (T, ...) that carry an earlier encoding's keyframe pulses, to be smoothed
    (`smooth_rows`): the codec's pulses of `keyframe_pulses`, left in the pixels when a phone's clip is re-encoded
    (trimmed, uploaded, converted), where the decoder's keyframes no longer mark them.

    A frame is lifted when 3 of 4 cells exceed the mean of the frames before and after by over `min_pulse` grey
    levels (coding noise covers the whole picture; a moving hand lifts a few cells, a cut lifts the median by over
    `MAX_PULSE`, and neither counts), and strongly so when its lift is among the clip's top `100 - quantile` %.
    Single lifted frames are common (6 % of a still scene's frames lift over 0.3), so only a comb counts: the
    spacing in `gop_s` and the phase whose frames are most often strongly lifted (at least `min_teeth` frames, at
    least `min_teeth - 1` of them strongly lifted), kept when a clip whose strong lifts fell anywhere would show
    so regular a comb with a chance under `alpha` over all the spacings and phases tried (binomial tail,
    Bonferroni). The comb's frames that are lifted at all are returned, each with the frame before (or after) it
    when that one is lifted too: a re-encoder's B-frames may show part of the step a frame early. A person's
    strokes never keep one spacing to the frame for four cycles; a codec's GOP does."""
    from scipy.stats import binom

    n = len(energy)
    if n < 3 or not np.isfinite(fps) or fps <= 0:
        return np.zeros(0, np.int64)
    lo = max(4, int(np.ceil(gop_s[0] * fps)))
    hi = min(int(gop_s[1] * fps), (n - 2) // min_teeth)
    if hi < lo:
        return np.zeros(0, np.int64)
    e = np.asarray(energy, np.float32).reshape(n, -1)
    excess = e[1:-1] - (e[:-2] + e[2:]) / 2
    lift = np.full(n, -np.inf, np.float32)
    lift[1:-1] = np.percentile(excess, 25, axis=1)
    lift[1:-1][np.median(excess, axis=1) > MAX_PULSE] = -np.inf  # the whole picture changed: no coding noise
    finite = lift[np.isfinite(lift)]
    if not len(finite):
        return np.zeros(0, np.int64)
    strong = lift > max(min_pulse, float(np.percentile(finite, quantile)))
    if strong.sum() < min_teeth - 1:
        return np.zeros(0, np.int64)
    rate = float(strong[1:-1].mean())
    best_p, best = 1.0, (0, 0)
    for gop in range(lo, hi + 1):
        size = -(-n // gop) * gop
        hit, inner = np.zeros(size, bool), np.zeros(size, bool)
        hit[:n], inner[1:n - 1] = strong, True
        hits, teeth = hit.reshape(-1, gop).sum(axis=0), inner.reshape(-1, gop).sum(axis=0)
        ok = (teeth >= min_teeth) & (hits >= min_teeth - 1)
        if ok.any():
            p = np.where(ok, binom.sf(hits - 1, teeth, rate), 1.0)
            phase = int(np.argmin(p))
            if p[phase] < best_p:
                best_p, best = float(p[phase]), (gop, phase)
    tests = (lo + hi) * (hi - lo + 1) // 2  # every (spacing, phase) pair tried
    if best_p * tests > alpha:
        return np.zeros(0, np.int64)
    gop, phase = best
    rows = np.arange(phase, n - 1, gop)
    rows = rows[(rows > 0) & (lift[rows] > 0)]
    # a re-encoder's B-frames may show part of the step a frame early (or late): that frame goes with it
    before = np.array([k >= 2 and _lift(e[k - 1], e[k - 2], e[k + 1]) > min_pulse / 2 for k in rows], bool)
    after = np.array([k + 2 < n and _lift(e[k + 1], e[k - 1], e[k + 2]) > min_pulse / 2 for k in rows], bool)
    return np.unique(np.concatenate([rows, rows[before] - 1, rows[~before & after] + 1])).astype(np.int64)


def translated(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """`img` moved by (dx, dy) px (bilinear; the edges replicated), as the camera compensation and the path's test
    move a frame onto the next."""
    return cv2.warpAffine(img, np.float32([[1, 0, dx], [0, 1, dy]]), (img.shape[1], img.shape[0]),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _median(a: np.ndarray) -> float:
    """`np.median` of a float32 array, the same value without its overhead (np.median's, in the path's test and the
    camera compensation, took 0.12 s of CPU on 20 s of 1080p; the frame cache's worker took 0.83 s in all): the
    middle one or two of a partition, averaged in float32."""
    flat = a.ravel()
    n = flat.size
    k = n // 2
    if n % 2:
        return float(np.partition(flat, k)[k])
    part = np.partition(flat, (k - 1, k))
    return float((part[k - 1] + part[k]) / 2)  # (numpy scalars: float32 stays float32, as np.median's mean)


def _median_u8(img: np.ndarray) -> float:
    """`np.median` of a uint8 image, exactly, from the counts of its 256 levels (no sort, no float copy)."""
    counts = np.cumsum(np.bincount(img.ravel(), minlength=256))
    n = img.size
    lo = int(np.searchsorted(counts, (n - 1) // 2, side="right"))  # the values at sorted places (n - 1) // 2
    hi = int(np.searchsorted(counts, n // 2, side="right"))  # and n // 2: one value where n is odd
    return (lo + hi) / 2


def _lift(row: np.ndarray, before: np.ndarray, after: np.ndarray) -> float:
    """How far 3 of 4 cells of `row` exceed the mean of the rows `before` and `after` it."""
    return float(np.percentile(row - (before + after) / 2, 25))


@dataclass(frozen=True)
class _SourceCut:
    """The picture inside black bars (`content_box`, found in probe px) and the bars beside it, in px of a frame's
    own luma, so each frame's motion image is cut from the frame, not from its probe image."""

    picture: tuple[int, int, int, int]  # rows r0:r1, columns c0:c1 of the picture (its partly-bar lines left out)
    height: int  # the motion image's height (as `_inside_bars` makes it)
    bars: tuple[tuple[slice, slice], ...]  # the bars, less `BARS_EDGE_PX` probe px beside the picture
    row_step: int  # the probe's row step (`probe_gray` reads every n-th row)
    block: tuple[int, int]  # (rows of `row_step`, columns) averaged for a probe pixel's worth in the bars

    @staticmethod
    def of(box: tuple[int, int, int, int], probe_shape: tuple[int, int], frame_shape: tuple[int, int],
           width: int) -> _SourceCut:
        top, bottom, left, right = box
        ph, pw = probe_shape
        h, w = frame_shape
        sy, sx = h / ph, w / pw
        # the probe's cut, in source px: its partly-bar lines left out (`_inside_bars`), rounded inwards
        r0, r1 = int(np.ceil((top + (top > 0)) * sy)), int((bottom - (bottom < ph)) * sy)
        c0, c1 = int(np.ceil((left + (left > 0)) * sx)), int((right - (right < pw)) * sx)
        height = small_height(bottom - top, right - left, width)
        m = BARS_EDGE_PX
        every = slice(0, None)
        bars = [(slice(0, int(max(0, top - m) * sy)), every), (slice(int(np.ceil(min(ph, bottom + m) * sy)), h), every),
                (every, slice(0, int(max(0, left - m) * sx))), (every, slice(int(np.ceil(min(pw, right + m) * sx)), w))]
        bars = [(rs, cs) for rs, cs in bars if len(range(h)[rs]) and len(range(w)[cs])]
        row_step = max(1, h // (ph * PROBE_OVERSAMPLE))
        block = (max(1, int(round(sy / row_step))), max(1, int(round(sx))))
        return _SourceCut((r0, max(r1, r0 + 1), c0, max(c1, c0 + 1)), height, tuple(bars), row_step, block)


class MotionTrackBuilder:
    """Feed every decoded frame with `add`; `result` gives the MotionTrack."""

    def __init__(self, rotation: int = 0, width: int = WORK_WIDTH, crop_bars: bool = True,
                 more_frames: Callable[[], list[np.ndarray]] | None = None) -> None:
        self.rotation = rotation
        self.width = width
        self.box: tuple[int, int, int, int] | None = None  # the picture inside black bars (`content_box`, probe px)
        self.box_kind = "bars"  # or "panels": the picture between flat side panels (`fill_box`), which are lit
        self.crop_given_up_at: int | None = None  # the first frame whose cropped bars hold a lit pixel (they were no
        # bars: the keyframes checked over the clip missed it, as a long GOP's few do), or whose panels took detail;
        # the caller makes the track again without the crop (`motion_track_from_video`, the frame cache)
        self._watched_at = -np.inf  # when the panels were last looked at (`_detail_in_panels`) ...
        self._watch_hits = 0  # ... and how many times running they held detail
        self._probe_shape: tuple[int, int] | None = None
        self._cut: tuple[tuple[int, int], _SourceCut | None] | None = None  # (frame shape, its `_source_cut`)
        self._seam = False  # whether frames cut from their probe images were added and none cut from the source yet
        self._judged = not crop_bars  # whether the bars have been judged
        self._held: list[tuple[np.ndarray, np.ndarray, float, bool]] = []  # (probe, motion image, t, key) meanwhile
        self._lit = False  # whether a held frame was not dark (a fade from black has ended)
        self._more_frames = more_frames  # probe images from over the whole clip (`sample_probes`), to confirm bars
        self._t: list[float] = []
        self._energy: list[np.ndarray] = []
        self._intensity: list[np.ndarray] = []
        self._prev: np.ndarray | None = None
        self._grid: tuple[int, int] | None = None
        self._camera: list[tuple[float, float]] = []
        self._raw: list[np.ndarray] = []
        self._prev_f: np.ndarray | None = None
        self._window: np.ndarray | None = None
        self._key: list[bool] = []
        self._path: list[tuple[float, float]] = []
        self._key_f: np.ndarray | None = None  # `path`'s key frame and where the path was at it
        self._key_at = (0.0, 0.0)
        self._sure_at = (0.0, 0.0)  # the path where a move was last confirmed (or at the key)
        self._tested = (0.0, 0.0)  # the displacement from the key that was last tested
        self._step_response = 1.0  # the phase-correlation peak from the previous frame to this one

    def add(self, frame: av.VideoFrame, t_s: float) -> None:
        """Add a decoded frame. The frames of the first second (longer while they are dark) are held until black
        bars have been judged on them (`content_box`); where there are bars, every frame's motion image is made of
        the picture inside them."""
        key = is_keyframe(frame)
        if self._judged:
            if self.box_kind == "panels" and self.crop_given_up_at is None and t_s - self._watched_at >= FILL_WATCH_S:
                self._watched_at = t_s
                self._watch_hits = self._watch_hits + 1 if self._detail_in_panels(probe_gray(frame)) else 0
                if self._watch_hits >= FILL_WATCH_HITS:
                    self.crop_given_up_at = len(self._t)
            if self.box is None:
                g = small_gray(frame, self.width)
            elif (cut := self._source_cut(frame)) is not None:
                y = _luma(frame)
                if self.crop_given_up_at is None and self.box_kind == "bars" and self._lit_in_source_bars(y, cut):
                    self.crop_given_up_at = len(self._t)
                g = self._cut_from_source(y, cut)
                if self._seam:  # the frames before were cut from their probe images: this one is too, for its
                    self._seam = False  # difference from them, and the next is compared with its cut from the source
                    probe = self._inside_bars(probe_gray(frame))
                    self.add_gray(rotate_upright(probe, self.rotation), t_s, key, then=rotate_upright(g, self.rotation))
                    return
            else:
                probe = probe_gray(frame)
                if self.crop_given_up_at is None and self.box_kind == "bars" and self._lit_in_bars(probe):
                    self.crop_given_up_at = len(self._t)
                g = self._inside_bars(probe)
            self.add_gray(rotate_upright(g, self.rotation), t_s, key)
            return
        self._held.append((probe_gray(frame), small_gray(frame, self.width), float(t_s), key))
        self._lit = self._lit or float(np.percentile(self._held[-1][0], 90)) > BORDER_DARK
        span = self._held[-1][2] - self._held[0][2]
        if (span >= BORDER_SECONDS and self._lit) or span >= BORDER_MAX_SECONDS or len(self._held) >= BORDER_MAX_FRAMES:
            self._judge_bars()

    @property
    def judged(self) -> bool:
        """Whether the black bars have been judged: `box` is final and no frame is held any more."""
        return self._judged

    def judge_bars(self) -> None:
        """Judge the bars now, on the frames held so far (the clip ended within its first second)."""
        if not self._judged:
            self._judge_bars()

    def _judge_bars(self) -> None:
        """Find the bars on the held frames (of the first frame's size) and add those frames. Bars seen there are
        kept only where the keyframes spread over the clip (`more_frames`) are dark there too: a dark background
        that the actor or the camera moves into later is no bar. Where there are none, flat side panels (`fill_box`)
        are looked for the same way: on the held frames, then with the keyframes (a panel that takes detail in any
        of them is none)."""
        held, self._held, self._judged = self._held, [], True
        if held:
            shape = held[0][0].shape
            probes = [p for p, *_ in held if p.shape == shape]
            more: list[np.ndarray] | None = None

            def confirmed(find: Callable[[np.ndarray], tuple[int, int, int, int] | None],
                          looked: list[np.ndarray]) -> tuple[int, int, int, int] | None:
                nonlocal more
                box = find(np.stack(looked))
                if box is not None and self._more_frames is not None:
                    more = [p for p in self._more_frames() if p.shape == shape] if more is None else more
                    box = find(np.stack(looked + more))
                return box

            self.box = confirmed(content_box, probes)
            if self.box is None:
                spread = np.unique(np.linspace(0, len(probes) - 1, min(FILL_MAX_IMAGES, len(probes))).round())
                self.box = confirmed(fill_box, [probes[int(i)] for i in spread])
                self.box_kind = "bars" if self.box is None else "panels"
            self._probe_shape = shape
        self._seam = self.box is not None and bool(held)
        for p, g, t, key in held:
            self.add_gray(rotate_upright(g if self.box is None else self._inside_bars(p), self.rotation), t, key)

    def _lit_in_bars(self, probe: np.ndarray) -> bool:
        """Whether a pixel of `probe` inside the cropped bars is lit (over `BORDER_DARK`), leaving out the 4 lines
        beside the picture: an encoder's ringing reaches a macroblock into the bar (measured: 25 grey levels 2 probe
        px from the picture of a 600-px-wide windowboxed clip at CRF 18)."""
        if probe.shape != self._probe_shape:
            return False  # the stream changed size: not judged
        top, bottom, left, right = self.box
        h, w = probe.shape
        m = BARS_EDGE_PX
        parts = [probe[:max(0, top - m)], probe[min(h, bottom + m):], probe[:, :max(0, left - m)],
                 probe[:, min(w, right + m):]]
        return any(part.size and int(part.max()) > BORDER_DARK for part in parts)

    def _detail_in_panels(self, probe: np.ndarray) -> bool:
        """Whether the panels cropped (`fill_box`) hold detail in `probe` (a `probe_gray` image): their texture over
        `FILL_TEXTURE` x the picture's in it (at least `FILL_MIN_TEXTURE`; a dark frame's blurred fill stays under
        it). The keyframes checked over the clip are few in a long GOP; an edit to the whole frame after them
        shows here."""
        if probe.shape != self._probe_shape:
            return False  # the stream changed size: not judged
        top, bottom, left, right = self.box
        img = probe.astype(np.float32)
        if left == 0 and right == img.shape[1]:  # panels above and below: looked at as columns
            img, (left, right) = img.T, (top, bottom)
        panels, ref = _panel_texture(_column_texture(img[None]), left, right)  # (`fill_box` leaves 7 px at least
        return float(panels[0]) > FILL_TEXTURE * max(ref, FILL_MIN_TEXTURE)  # beside each panel, 20 % between)

    def _inside_bars(self, probe: np.ndarray) -> np.ndarray:
        """The motion image (`width` px wide) of the picture inside the bars of `probe` (a `probe_gray` image)."""
        if probe.shape != self._probe_shape:  # the stream changed size: the bars are placed proportionally
            probe = cv2.resize(probe, (self._probe_shape[1], self._probe_shape[0]), interpolation=cv2.INTER_AREA)
        top, bottom, left, right = self.box
        height = small_height(bottom - top, right - left, self.width)
        # a bar's edge rarely falls on a probe px, so the picture's first line beside a bar is part bar: a dark line
        # that the motion image and the thumbnails would hold; it is left out too (a quarter of a motion-image px,
        # stretched over; the image keeps the picture's shape)
        ph, pw = probe.shape
        inner = probe[top + (top > 0):bottom - (bottom < ph), left + (left > 0):right - (right < pw)]
        return cv2.resize(inner, (self.width, height), interpolation=cv2.INTER_AREA)

    def _source_cut(self, frame: av.VideoFrame) -> _SourceCut | None:
        """Where the picture inside the bars, and the bars, lie in the frame's own luma (`_SourceCut`), for a frame
        of the judged shape, at least twice the probe's size, whose Y plane can be read; else None (the probe image
        is cut instead)."""
        h, w = frame.height, frame.width
        if self._cut is not None and self._cut[0] == (h, w):
            return self._cut[1]
        cut = None
        ph = small_height(h, w, PROBE_WIDTH)
        if (ph, PROBE_WIDTH) == self._probe_shape and h >= 2 * ph and w >= 2 * PROBE_WIDTH \
                and frame.format.name in _LUMA_FORMATS:  # (a smaller frame's probe costs little)
            cut = _SourceCut.of(self.box, (ph, PROBE_WIDTH), (h, w), self.width)
        self._cut = ((h, w), cut)
        return cut

    def _cut_from_source(self, y: np.ndarray, cut: _SourceCut) -> np.ndarray:
        """The motion image of the picture inside the bars, made from the frame's luma `y` as `small_gray` makes a
        whole frame's: the probe image's cut, made over (its 4-x-wider area resize cost as much again as the rest of
        the frame's motion image)."""
        r0, r1, c0, c1 = cut.picture
        rows = y[r0:r1:max(1, (r1 - r0) // (cut.height * ROW_OVERSAMPLE))]
        g = _halved(rows[:, c0:c1], (2 * cut.height, 2 * self.width))
        return cv2.resize(g, (self.width, cut.height), interpolation=cv2.INTER_AREA)

    @staticmethod
    def _lit_in_source_bars(y: np.ndarray, cut: _SourceCut) -> bool:
        """`_lit_in_bars` on the frame's luma `y`: a mean over blocks of about a probe pixel's source pixels in the
        bars (every few rows, as the probe reads them) over `BORDER_DARK`."""
        fy, fx = cut.block
        for rs, cs in cut.bars:
            part = y[rs, cs][::cut.row_step]
            if not part.size or int(part.max()) <= BORDER_DARK:
                continue  # no pixel over it, so no mean (the usual case: one pass, no resize)
            n, m = part.shape[0] // fy * fy, part.shape[1] // fx * fx
            if n and m:
                part = cv2.resize(part[:n, :m], (m // fx, n // fy), interpolation=cv2.INTER_AREA)
            if part.size and int(part.max()) > BORDER_DARK:
                return True
        return False

    @property
    def box_share(self) -> tuple[float, float, float, float] | None:
        """The picture inside the bars as shares of the (unrotated) frame: (top, bottom, left, right), or None."""
        if self.box is None or self._probe_shape is None:
            return None
        h, w = self._probe_shape
        return self.box[0] / h, self.box[1] / h, self.box[2] / w, self.box[3] / w

    def add_gray(self, g: np.ndarray, t_s: float, keyframe: bool = False, then: np.ndarray | None = None) -> None:
        """Add a frame's motion image `g`. `then`: the same frame's image made another way (as all the frames after
        it will be), which the next frame is compared with instead of `g`."""
        h, w = g.shape
        if self._grid is None:
            self._grid = (max(1, int(round(w / CELL_PX))), max(1, int(round(h / CELL_PX))))
        if self._prev is not None and self._prev.shape != g.shape:
            g = cv2.resize(g, (self._prev.shape[1], self._prev.shape[0]), interpolation=cv2.INTER_AREA)
            h, w = g.shape
        gf = g.astype(np.float32)
        if self._prev is None:
            diff = raw = np.zeros(g.shape, np.float32)
            shift = (0.0, 0.0)
        else:
            diff, raw, shift = self._compensated_diff(g, gf)
        self._camera.append(shift)
        self._path.append(self._track_path(gf))
        self._raw.append(cv2.resize(raw, self._grid, interpolation=cv2.INTER_AREA).astype(np.float16))
        self._energy.append(cv2.resize(diff, self._grid, interpolation=cv2.INTER_AREA).astype(np.float16))
        th = min(MAX_ASPECT * THUMB_WIDTH, max(2, int(round(THUMB_WIDTH * h / w))))
        self._intensity.append(cv2.resize(g, (THUMB_WIDTH, th), interpolation=cv2.INTER_AREA))
        self._t.append(float(t_s))
        self._key.append(bool(keyframe))
        self._prev = g
        if self._prev_f is None:
            self._prev_f = gf
        if then is not None and then.shape == g.shape:
            tf = then.astype(np.float32)
            if self._key_f is gf:
                self._key_f = tf
            self._prev, self._prev_f = then, tf

    def _track_path(self, gf: np.ndarray) -> tuple[float, float]:
        """Where the picture has moved since the first frame (`path`): the key frame's place plus the translation
        from the key frame to this frame (phase correlation). A translation of `PATH_TEST_PX` or more counts only where it
        lowers the median pixel difference from the key (a camera move explains most pixels; a moving subject,
        which the peak may follow, only its own), tested again each `PATH_RETEST_PX` it goes on. Where it does not,
        or either peak is weak (from the key, or from the previous frame: a cut, where no translation explains the
        change), the path goes back to where a test last confirmed it (moves under `PATH_TEST_PX` since then are
        dropped, so a subject's small moves cannot add up) and `gf` (the frame, float32) becomes the key; past
        `PATH_REKEY_PX` too."""
        if self._key_f is None or self._key_f.shape != gf.shape:
            self._key_f, self._key_at, self._tested = gf, self._sure_at, (0.0, 0.0)
            return self._sure_at
        (dx, dy), response = cv2.phaseCorrelate(self._key_f, gf, self._window)
        d = float(np.hypot(dx, dy))
        ok = response >= MIN_RESPONSE and self._step_response >= MIN_RESPONSE and d <= gf.shape[1] / 4
        tested = ok and d >= PATH_TEST_PX and np.hypot(dx - self._tested[0], dy - self._tested[1]) >= PATH_RETEST_PX
        if tested:
            key = self._key_f
            moved = translated(key, dx, dy)
            ok = _median(np.abs(gf - moved)) < _median(np.abs(gf - key))
        if not ok:  # back to the last place a test confirmed (small untested moves since then are dropped)
            self._key_f, self._key_at, self._tested = gf, self._sure_at, (0.0, 0.0)
            return self._sure_at
        at = (self._key_at[0] + float(dx), self._key_at[1] + float(dy))
        if tested:
            self._sure_at, self._tested = at, (float(dx), float(dy))
        if d > PATH_REKEY_PX:
            self._key_f, self._key_at, self._tested = gf, at, (0.0, 0.0)
        return at

    def _compensated_diff(self, g: np.ndarray, gf: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
        """|g - previous frame shifted by the global translation| and that translation. No shift under
        `MIN_SHIFT_PX` or when the phase-correlation peak is weak (no dominant translation: a static camera, or only
        the subject moves). The translation is returned as found, but the difference is taken without it when the
        shift does not lower the median pixel difference: a camera move explains most pixels, a large moving
        subject (which the peak may follow) only its own; `gf` is `g` as float32. Returns (difference,
        uncompensated difference, shift)."""
        if self._window is None or self._window.shape != g.shape:
            self._window = cv2.createHanningWindow((g.shape[1], g.shape[0]), cv2.CV_32F)
        (dx, dy), response = cv2.phaseCorrelate(self._prev_f, gf, self._window)
        self._step_response = float(response)
        self._prev_f = gf
        raw8 = cv2.absdiff(g, self._prev)
        raw = raw8.astype(np.float32)
        if response < MIN_RESPONSE or np.hypot(dx, dy) < MIN_SHIFT_PX or np.hypot(dx, dy) > g.shape[1] / 4:
            return raw, raw, (0.0, 0.0)
        comp8 = cv2.absdiff(g, translated(self._prev, dx, dy))
        if _median_u8(comp8) >= _median_u8(raw8):  # the peak follows a moving subject, not the camera: shifting
            return raw, raw, (float(dx), float(dy))  # the whole frame by it would paint motion on the background
        return comp8.astype(np.float32), raw, (float(dx), float(dy))

    def result(self) -> MotionTrack:
        self.judge_bars()  # a clip shorter than the frames the bars are judged on
        if not self._t:
            return MotionTrack(np.zeros(0), np.zeros((0, 1, 1), np.float16), np.zeros((0, 1, 1), np.uint8))
        key = np.asarray(self._key, bool)
        raw = np.stack(self._raw)
        pulses = keyframe_pulses(raw, key)  # judged on the uncompensated difference, smoothed in both
        energy, raw = smooth_rows(np.stack(self._energy), pulses), smooth_rows(raw, pulses)
        repeats = repeated_frames(raw)
        energy, raw = spread_rows(energy, repeats), spread_rows(raw, repeats)
        if len(energy) > 1:
            energy[0], raw[0] = energy[1], raw[1]  # the first frame has no predecessor
        share = self.box_share
        track = MotionTrack(np.asarray(self._t, np.float64), energy, np.stack(self._intensity),
                            np.asarray(self._camera, np.float32).reshape(-1, 2), raw, key,
                            np.asarray(self._path, np.float32).reshape(-1, 2),
                            None if share is None else np.asarray(share, np.float32), self.box_kind)
        baked = baked_keyframe_pulses(raw, track.fps)  # an earlier encoding's pulses, no longer at our keyframes
        track.energy, track.energy_raw = smooth_rows(energy, baked), smooth_rows(raw, baked)
        return track


def save_motion_track(track: MotionTrack, path: str | Path) -> Path:
    path = Path(path)
    with path.open("wb") as f:
        cam = track.camera if track.camera is not None else np.zeros((len(track.t_s), 2), np.float32)
        raw = track.energy_raw if track.energy_raw is not None else track.energy
        key = track.keyframes if track.keyframes is not None else np.zeros(len(track.t_s), bool)
        extra = {} if track.path is None else {"path": np.asarray(track.path, np.float32)}
        if track.box is not None:
            extra["box"] = np.asarray(track.box, np.float32)
            if track.box_kind != "bars":
                extra["box_kind"] = np.asarray(track.box_kind)
        np.savez_compressed(f, t_s=track.t_s, energy=track.energy, intensity=track.intensity, camera=cam,
                            energy_raw=raw, keyframes=key, **extra)
    return path


def load_motion_track(path: str | Path) -> MotionTrack:
    with np.load(Path(path)) as d:
        cam = d["camera"] if "camera" in d.files else None
        raw = d["energy_raw"] if "energy_raw" in d.files else None
        key = d["keyframes"].astype(bool) if "keyframes" in d.files else None
        path = d["path"] if "path" in d.files else None
        box = d["box"] if "box" in d.files else None
        kind = str(d["box_kind"]) if "box_kind" in d.files else "bars"
        return MotionTrack(d["t_s"].astype(np.float64), d["energy"], d["intensity"], cam, raw, key, path, box, kind)


def motion_track_from_video(video_path: str | Path | object, max_seconds: float | None = None,
                            crop_bars: bool = True, info: VideoInfo | None = None) -> MotionTrack:
    """Decode a video once and build its motion track (no frame cache): for development, tests and eval
    (`crop_bars=False`: black bars are kept, as tracks before version 7 kept them; where bars cropped after the
    first second turn out lit later, the decode stops there and the clip is decoded again without the crop).
    `video_path` may be a VideoSource (a tar-shard member); `info`: its `probe_video` result, where the caller has
    it (else it is probed).
    A file that is not a usable video raises `ClipError` naming it (`probe_video`); a decoding error part-way keeps
    the frames decoded so far (as the frame cache does), and one before any frame raises `ClipError`."""
    from handclust_assets.lib.errors import ClipError
    from handclust_assets.video.probe import close_input, open_input, probe_video, timed_frames

    info = info if info is not None else probe_video(video_path, scan_timestamps=False)
    b = MotionTrackBuilder(info.rotation, crop_bars=crop_bars, more_frames=lambda: sample_probes(video_path))
    decoded = 0  # counted here: the builder holds the first second's frames before it adds them
    try:
        container, fobj = open_input(video_path)
        try:
            for fr, t in timed_frames(container, info.fps):
                if max_seconds is not None and t >= max_seconds:
                    break
                b.add(fr, t)
                decoded += 1
                if b.crop_given_up_at is not None:  # the rest of this decode would be thrown away
                    break
        finally:
            close_input(container, fobj)
    except (av.error.FFmpegError, av.error.InvalidDataError) as e:  # type: ignore[attr-defined]
        if not decoded:
            raise ClipError(video_path, f"video stream cannot be decoded ({type(e).__name__}: {e})") from e
    if b.crop_given_up_at is not None:  # the bars were lit (the panels took detail) later: the whole picture, again
        return motion_track_from_video(video_path, max_seconds, crop_bars=False, info=info)
    return b.result()
