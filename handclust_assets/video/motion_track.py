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
A frame shown twice (a frame rate raised by repeating frames) and the one after it share their energy
(`repeated_frames`). The pulses of an earlier encoding's keyframes, left in the pixels of a re-encoded clip at a
steady rate but not at its own keyframes, are found by their comb and smoothed too (`baked_keyframe_pulses`).

Stored as `motion.npz` in the clip's frame-cache folder (~0.7 KB per source frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.frame import PictureType

MOTION_FILE = "motion.npz"
MOTION_TRACK_VERSION = 6  # v6: + path; bump when the same frames give a different track (caches keyed by it go stale)
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


def small_gray(frame: av.VideoFrame, width: int = WORK_WIDTH) -> np.ndarray:
    """The frame's luma area-averaged to `width` px wide (aspect kept up to `MAX_ASPECT`), uint8: halved by 2 x 2
    means while it is over 4 x as large, then area-resized (of a frame over 8 x as tall as the small image, every
    2nd or 3rd row only: reading every row of 1080p cost the frame cache ~0.13 x of ffmpeg's decode time). Every
    source pixel of a row counts: picked from a coarser grid of them (as before track version 3), a texture finer
    than the small image (brickwork, a cutting mat's grid, fabric) aliases, and the sub-pixel sway of a hand-held
    or head-mounted camera then redraws its aliases in every frame, which the motion energy and the thumbnails
    take for motion. Reads the Y plane directly for 8-bit YUV/gray formats (no colour conversion); other formats
    go through swscale (whose downscaling filters every pixel too)."""
    w, h = frame.width, frame.height
    height = min(MAX_ASPECT * width, max(4, int(round(width * h / max(w, 1)))))
    if frame.format.name in _LUMA_FORMATS:
        plane = frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:h, :w]
        y = y[::max(1, h // (height * ROW_OVERSAMPLE))]  # rows of a tall frame: every 2nd / 3rd (720p / 1080p)
        while y.shape[1] >= 4 * width and y.shape[0] >= 4 * height:  # 2 x 2 means (OpenCV's fast path), then
            y = cv2.resize(y, (y.shape[1] // 2, y.shape[0] // 2), interpolation=cv2.INTER_AREA)  # one area resize
        return cv2.resize(y, (width, height), interpolation=cv2.INTER_AREA)
    return frame.to_ndarray(format="gray", width=width, height=height)


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


def _lift(row: np.ndarray, before: np.ndarray, after: np.ndarray) -> float:
    """How far 3 of 4 cells of `row` exceed the mean of the rows `before` and `after` it."""
    return float(np.percentile(row - (before + after) / 2, 25))


class MotionTrackBuilder:
    """Feed every decoded frame with `add`; `result` gives the MotionTrack."""

    def __init__(self, rotation: int = 0, width: int = WORK_WIDTH) -> None:
        self.rotation = rotation
        self.width = width
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
        self.add_gray(rotate_upright(small_gray(frame, self.width), self.rotation), t_s, is_keyframe(frame))

    def add_gray(self, g: np.ndarray, t_s: float, keyframe: bool = False) -> None:
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
            ok = float(np.median(np.abs(gf - moved))) < float(np.median(np.abs(gf - key)))
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
        raw = cv2.absdiff(g, self._prev).astype(np.float32)
        if response < MIN_RESPONSE or np.hypot(dx, dy) < MIN_SHIFT_PX or np.hypot(dx, dy) > g.shape[1] / 4:
            return raw, raw, (0.0, 0.0)
        moved = translated(self._prev, dx, dy)
        comp = cv2.absdiff(g, moved).astype(np.float32)
        if np.median(comp) >= np.median(raw):  # the peak follows a moving subject, not the camera: shifting the
            return raw, raw, (float(dx), float(dy))  # whole frame by it would paint motion on the still background
        return comp, raw, (float(dx), float(dy))

    def result(self) -> MotionTrack:
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
        track = MotionTrack(np.asarray(self._t, np.float64), energy, np.stack(self._intensity),
                            np.asarray(self._camera, np.float32).reshape(-1, 2), raw, key,
                            np.asarray(self._path, np.float32).reshape(-1, 2))
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
        np.savez_compressed(f, t_s=track.t_s, energy=track.energy, intensity=track.intensity, camera=cam,
                            energy_raw=raw, keyframes=key, **extra)
    return path


def load_motion_track(path: str | Path) -> MotionTrack:
    with np.load(Path(path)) as d:
        cam = d["camera"] if "camera" in d.files else None
        raw = d["energy_raw"] if "energy_raw" in d.files else None
        key = d["keyframes"].astype(bool) if "keyframes" in d.files else None
        path = d["path"] if "path" in d.files else None
        return MotionTrack(d["t_s"].astype(np.float64), d["energy"], d["intensity"], cam, raw, key, path)


def motion_track_from_video(video_path: str | Path, max_seconds: float | None = None) -> MotionTrack:
    """Decode a video once and build its motion track (no frame cache): for development, tests and eval.
    A file that is not a usable video raises `ClipError` naming it (`probe_video`); a decoding error part-way keeps
    the frames decoded so far (as the frame cache does), and one before any frame raises `ClipError`."""
    from handclust_assets.lib.errors import ClipError
    from handclust_assets.video.probe import probe_video, timed_frames

    info = probe_video(video_path, scan_timestamps=False)
    b = MotionTrackBuilder(info.rotation)
    try:
        with av.open(str(video_path)) as c:
            for fr, t in timed_frames(c, info.fps):
                if max_seconds is not None and t >= max_seconds:
                    break
                b.add(fr, t)
    except (av.error.FFmpegError, av.error.InvalidDataError) as e:  # type: ignore[attr-defined]
        if not b._t:
            raise ClipError(video_path, f"video stream cannot be decoded ({type(e).__name__}: {e})") from e
    return b.result()
