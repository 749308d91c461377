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
Black bars (letterbox, pillarbox, an upright phone video in a wide frame) are found on the first second's frames,
confirmed on keyframes spread over the clip and cropped before the motion image is made, so the picture fills its
64 px (`box`: where it was); where there are none, flat panels beside the picture (a blurred, magnified copy of
it, or bars of a colour) are found and cropped the same way (`box_kind` says which). How they are found and
watched is `picture_box`'s; the small gray images are `frame_gray`'s; this module keeps the track and its state.
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

from handclust_assets.video.frame_gray import (
    LUMA_FORMATS,
    MAX_ASPECT,
    PROBE_WIDTH,
    WORK_WIDTH,
    luma,
    probe_gray,
    rotate_upright,
    small_gray,
    small_height,
)
from handclust_assets.video.picture_box import (
    BORDER_DARK,
    BORDER_MAX_FRAMES,
    BORDER_MAX_SECONDS,
    BORDER_SECONDS,
    FILL_MAX_IMAGES,
    FILL_WATCH_HITS,
    FILL_WATCH_S,
    SourceCut,
    content_box,
    detail_in_panels,
    fill_box,
    inside_bars,
    lit_in_bars,
    sample_probes,
)

if TYPE_CHECKING:
    from handclust_assets.video.probe import VideoInfo

MOTION_FILE = "motion.npz"
MOTION_TRACK_VERSION = 9  # v6: + path; v7: black bars cropped; v8: the picture inside them cut from a large frame's
# own luma after the first second; v9: flat side panels (a blurred fill, coloured bars) cropped as bars are; bump
# when the same frames give a different track (caches keyed by it go stale)
THUMB_WIDTH = 32
CELL_PX = 8
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
    """`np.median` of a float32 array (the path's test), the same value without its overhead: the middle one or two
    of a partition, averaged in float32. (`np.median` in the path's test and the camera compensation took 0.12 s of
    the frame cache worker's 0.83 s of CPU on 20 s of 1080p.)"""
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
        self._watched_at = -np.inf  # when the panels were last looked at (`detail_in_panels`) ...
        self._watch_hits = 0  # ... and how many times running they held detail
        self._probe_shape: tuple[int, int] | None = None
        self._cut: tuple[tuple[int, int], SourceCut | None] | None = None  # (frame shape, its `_source_cut`)
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
            probe = None  # the frame's probe image, made once where it is needed
            if self.box_kind == "panels" and self.crop_given_up_at is None and t_s - self._watched_at >= FILL_WATCH_S:
                self._watched_at = t_s
                probe = probe_gray(frame)
                detail = detail_in_panels(probe, self.box, self._probe_shape)
                self._watch_hits = self._watch_hits + 1 if detail else 0
                if self._watch_hits >= FILL_WATCH_HITS:
                    self.crop_given_up_at = len(self._t)
            if self.box is None:
                g = small_gray(frame, self.width)
            elif (cut := self._source_cut(frame)) is not None:
                y = luma(frame)
                if self.crop_given_up_at is None and self.box_kind == "bars" and cut.lit(y):
                    self.crop_given_up_at = len(self._t)
                g = cut.motion_image(y, self.width)
                if self._seam:  # the frames before were cut from their probe images: this one is too, for its
                    self._seam = False  # difference from them, and the next is compared with its cut from the source
                    probe = probe_gray(frame) if probe is None else probe
                    inside = inside_bars(probe, self.box, self._probe_shape, self.width)
                    self.add_gray(rotate_upright(inside, self.rotation), t_s, key,
                                  then=rotate_upright(g, self.rotation))
                    return
            else:
                probe = probe_gray(frame) if probe is None else probe
                if self.crop_given_up_at is None and self.box_kind == "bars" \
                        and lit_in_bars(probe, self.box, self._probe_shape):
                    self.crop_given_up_at = len(self._t)
                g = inside_bars(probe, self.box, self._probe_shape, self.width)
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
            g = g if self.box is None else inside_bars(p, self.box, self._probe_shape, self.width)
            self.add_gray(rotate_upright(g, self.rotation), t, key)

    def _source_cut(self, frame: av.VideoFrame) -> SourceCut | None:
        """Where the picture inside the bars, and the bars, lie in the frame's own luma (`SourceCut`), for a frame
        of the judged shape, at least twice the probe's size, whose Y plane can be read; else None (the probe image
        is cut instead)."""
        h, w = frame.height, frame.width
        if self._cut is not None and self._cut[0] == (h, w):
            return self._cut[1]
        cut = None
        ph = small_height(h, w, PROBE_WIDTH)
        if (ph, PROBE_WIDTH) == self._probe_shape and h >= 2 * ph and w >= 2 * PROBE_WIDTH \
                and frame.format.name in LUMA_FORMATS:  # (a smaller frame's probe costs little)
            cut = SourceCut.of(self.box, (ph, PROBE_WIDTH), (h, w), self.width)
        self._cut = ((h, w), cut)
        return cut

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
