"""Hands: MediaPipe HandLandmarker detections per sampled frame, propagated forward and backward in time with
an OpenCV CSRT tracker ("anchored CSRT", after the seeds' WiLoR-anchored tracker) to lift coverage.

Slots. Each frame has two hand slots, `left` and `right` (the person's own hands; MediaPipe's handedness,
un-mirrored for a helmet camera). Two detections with the same label in one frame: the more confident keeps
the label, the other takes the free slot; more than two hands are dropped.

Propagation (per slot). The frames where a slot is not detected form gaps between detections. From the
detection before a gap a CSRT tracker runs forward, from the detection after it one runs backward, each at
most `max_gap_frames` frames, and a frame goes to the nearer anchor: the forward tracker stops at the gap's
midpoint and the backward one takes the rest; if either fails early, the other continues past the midpoint
(so no frame is tracked twice, and every frame ends up with its nearest anchor that reaches it). A tracker
stops when CSRT reports a failure, when its box is mostly outside the frame or has grown/shrunk more than
`max_scale_change`, or when it meets another detection (IoU >= `stop_iou` with any detected hand box in that
frame: the detector already covers that hand). Tracking runs on a downscaled copy of the frame
(`work_width`) with a small template and few scales: a tracked frame costs a few milliseconds.

Per frame: `state` = detected (some hand detected) | tracked (none detected, some tracked) | absent.
Coverage = share of frames that are not absent; `coverage_detected` counts detections only. Propagation
only adds boxes, so coverage after >= coverage before.

Segment summary (`hand_segment_vectors`, `HAND_DIM` = 16 dims, NaN-free): see `HAND_VECTOR_DIMS`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np
import polars as pl

from handclust_assets.science.landmark_types import N_HAND_KEYPOINTS, HandFrames

SLOTS = ("left", "right")
ABSENT, DETECTED, TRACKED = 0, 1, 2
SOURCE_NAMES = ("absent", "detected", "tracked")
FINGERTIPS = (4, 8, 12, 16, 20)

HAND_VECTOR_DIMS: tuple[tuple[str, str], ...] = (
    ("coverage_detected", "share of frames with a detected hand (before propagation)"),
    ("coverage", "share of frames with a hand detected or CSRT-tracked (after propagation)"),
    ("two_hand_share", "share of frames with both hands present"),
    ("left_share", "share of frames with the left hand present"),
    ("right_share", "share of frames with the right hand present"),
    ("cx_mean", "mean hand-box centre x, fraction of frame width (0.5 when no hand)"),
    ("cy_mean", "mean hand-box centre y, fraction of frame height (0.5 when no hand)"),
    ("cx_std", "std of hand-box centre x"),
    ("cy_std", "std of hand-box centre y"),
    ("size_mean", "mean sqrt(box width x height), fraction of the frame (0 when no hand)"),
    ("size_std", "std of that size"),
    ("speed_mean", "mean hand-centre speed in the frame, frame sizes per s (clipped to 10)"),
    ("speed_p90", "90th percentile of that speed (clipped to 10)"),
    ("spread_mean", "mean distance between the two hand centres when both present, frame sizes"),
    ("openness_mean", "mean fingertip-to-wrist / wrist-to-middle-knuckle distance, detected hands (0 when none)"),
    ("openness_std", "std of that openness"),
)
HAND_DIM = len(HAND_VECTOR_DIMS)


@dataclass
class CsrtConfig:
    """CSRT propagation settings. The defaults were chosen on the shared real clips by holding detections
    out and checking the tracked box against them (see handclust_assets_tests/test_pose_hands.py)."""

    work_width: int = 240  # track on a copy downscaled to this width (never upscaled)
    pad: float = 0.1  # the landmark box is tight around joints: pad it per side for the tracker
    template_size: float = 64.0
    number_of_scales: int = 9
    use_segmentation: bool = False
    use_color_names: bool = True
    # CSRT reports a failure when its response peak falls below this. OpenCV's 0.035 almost never fires: a
    # tracker then slides along the border or onto background after the hand has gone. 0.15 stops within a
    # frame of an object leaving the view and keeps ~85 % of held-out detections recoverable.
    psr_threshold: float = 0.15
    min_box_px: int = 8
    max_scale_change: float = 3.0
    min_inside: float = 0.5
    stop_iou: float = 0.3


@dataclass
class HandTracks:
    """Per frame and slot (0 = left, 1 = right). boxes: (N, 2, 4) normalised x0, y0, x1, y1 (NaN absent);
    source: (N, 2) int8 ABSENT / DETECTED / TRACKED; score: (N, 2) handedness score (NaN unless detected);
    keypoints: (N, 2, 21, 3) normalised x, y, z (NaN unless detected)."""

    boxes: np.ndarray
    source: np.ndarray
    score: np.ndarray
    keypoints: np.ndarray
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.source)

    @property
    def n_detected(self) -> np.ndarray:
        return (self.source == DETECTED).sum(axis=1)

    @property
    def n_present(self) -> np.ndarray:
        return (self.source != ABSENT).sum(axis=1)

    @property
    def state(self) -> np.ndarray:
        """(N,) 'detected' | 'tracked' | 'absent'."""
        det = (self.source == DETECTED).any(axis=1)
        trk = (self.source == TRACKED).any(axis=1)
        return np.where(det, "detected", np.where(trk, "tracked", "absent"))

    @property
    def coverage_detected(self) -> float:
        return float((self.source == DETECTED).any(axis=1).mean()) if len(self) else 0.0

    @property
    def coverage(self) -> float:
        return float((self.source != ABSENT).any(axis=1).mean()) if len(self) else 0.0

    def copy(self) -> HandTracks:
        return HandTracks(self.boxes.copy(), self.source.copy(), self.score.copy(), self.keypoints.copy(),
                          dict(self.stats))


def tracks_from_detections(frames: HandFrames) -> HandTracks:
    """Detections -> per-slot arrays (no propagation yet)."""
    n = len(frames)
    boxes = np.full((n, 2, 4), np.nan, np.float32)
    source = np.zeros((n, 2), np.int8)
    score = np.full((n, 2), np.nan, np.float32)
    kps = np.full((n, 2, N_HAND_KEYPOINTS, 3), np.nan, np.float32)
    for i, hands in enumerate(frames.hands):
        for h in sorted(hands, key=lambda h: -(h.score if np.isfinite(h.score) else 0.0)):
            s = 0 if h.label.lower().startswith("l") else 1
            if source[i, s] != ABSENT:
                s = 1 - s
                if source[i, s] != ABSENT:
                    continue  # a third hand: dropped
            boxes[i, s] = np.clip(h.box, 0.0, 1.0)
            source[i, s] = DETECTED
            score[i, s] = h.score
            kps[i, s] = h.keypoints
    return HandTracks(boxes, source, score, kps)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (x0, y0, x1, y1) boxes; 0 when either is NaN or empty."""
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return 0.0
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal [start, end) runs of True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(d[0::2].tolist(), d[1::2].tolist()))


class _FrameSource:
    """Downscaled BGR (or grey) copies of frames for the tracker, with a small LRU cache."""

    def __init__(self, read_frame: Callable[[int], np.ndarray], work_width: int, size: int) -> None:
        self.read_frame = read_frame
        self.work_width = work_width
        self.size = size
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.reads = 0

    def __call__(self, i: int) -> np.ndarray:
        if i in self.cache:
            self.cache.move_to_end(i)
            return self.cache[i]
        rgb = np.asarray(self.read_frame(i))
        self.reads += 1
        h, w = rgb.shape[:2]
        if w > self.work_width:
            rgb = cv2.resize(rgb, (self.work_width, max(8, int(round(h * self.work_width / w)))),
                             interpolation=cv2.INTER_AREA)
        img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        self.cache[i] = img
        if len(self.cache) > self.size:
            self.cache.popitem(last=False)
        return img


class _Tracker:
    """One CSRT tracker walking from an anchor frame in one direction."""

    def __init__(self, frames: _FrameSource, anchor: int, step: int, box: np.ndarray, cfg: CsrtConfig,
                 detections: np.ndarray, stats: dict) -> None:
        self.frames, self.pos, self.step_dir, self.cfg, self.det, self.stats = frames, anchor, step, cfg, detections, stats
        img = frames(anchor)
        self.h, self.w = img.shape[:2]
        x0, y0, x1, y1 = (float(v) for v in box)
        bw, bh = (x1 - x0) * self.w, (y1 - y0) * self.h
        px, py = cfg.pad * bw, cfg.pad * bh
        r = self._clip_rect(x0 * self.w - px, y0 * self.h - py, bw + 2 * px, bh + 2 * py)
        self.alive = r is not None
        if r is None:
            return
        self.area0 = self.ref_area = float(r[2] * r[3])
        p = cv2.TrackerCSRT_Params()
        p.template_size = cfg.template_size
        p.number_of_scales = cfg.number_of_scales
        p.use_segmentation = cfg.use_segmentation
        p.use_color_names = cfg.use_color_names
        p.psr_threshold = cfg.psr_threshold
        self.tracker = cv2.TrackerCSRT_create(p)
        try:
            self.tracker.init(img, r)
            stats["inits"] = stats.get("inits", 0) + 1
        except cv2.error:
            self.alive = False

    def _clip_rect(self, x: float, y: float, w: float, h: float) -> tuple[int, int, int, int] | None:
        m = self.cfg.min_box_px
        w, h = max(w, m), max(h, m)
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(float(self.w), x + w), min(float(self.h), y + h)
        if x1 - x0 < m or y1 - y0 < m:
            return None
        return int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))

    def advance(self) -> np.ndarray | None:
        """Track into the next frame; the unpadded normalised box, or None (and dead) when it stops."""
        if not self.alive:
            return None
        j = self.pos + self.step_dir
        self.stats["updates"] = self.stats.get("updates", 0) + 1
        try:
            ok, (x, y, w, h) = self.tracker.update(self.frames(j))
        except cv2.error:
            ok = False
        if not ok:
            return self._stop("failures")
        inside = max(0.0, min(x + w, self.w) - max(x, 0)) * max(0.0, min(y + h, self.h) - max(y, 0))
        if w <= 0 or h <= 0 or inside / (w * h) < self.cfg.min_inside:
            return self._stop("left_frame")
        # CSRT clips its box to the image: a box on the border that shrank is leaving the view
        if x <= 0.5 or y <= 0.5 or x + w >= self.w - 0.5 or y + h >= self.h - 0.5:
            if w * h < self.cfg.min_inside * self.ref_area:
                return self._stop("left_frame")
        else:
            self.ref_area = float(w * h)
        ratio = (w * h) / self.area0
        if not 1.0 / self.cfg.max_scale_change <= ratio <= self.cfg.max_scale_change:
            return self._stop("scale_jumps")
        cx, cy = x + w / 2, y + h / 2
        uw, uh = w / (1 + 2 * self.cfg.pad), h / (1 + 2 * self.cfg.pad)
        box = np.clip(np.asarray([(cx - uw / 2) / self.w, (cy - uh / 2) / self.h, (cx + uw / 2) / self.w,
                                  (cy + uh / 2) / self.h], np.float32), 0.0, 1.0)
        for d in self.det[j]:
            if iou(box, d) >= self.cfg.stop_iou:
                return self._stop("met_detection")
        self.pos = j
        return box

    def _stop(self, why: str) -> None:
        self.stats[why] = self.stats.get(why, 0) + 1
        self.alive = False
        return None


def _fill_gap(g0: int, g1: int, s: int, n: int, max_gap: int, frames: _FrameSource, tracks: HandTracks,
              out: HandTracks, det_boxes: list[list[np.ndarray]], cfg: CsrtConfig, stats: dict) -> None:
    """Track slot `s` into the gap [g0, g1) from the detections on either side (nearest anchor wins)."""
    a = g0 - 1 if g0 > 0 else None
    b = g1 if g1 < n else None
    fwd_lim = a + max_gap if a is not None else -1
    bwd_lim = b - max_gap if b is not None else n
    mid = (a + b) // 2 if a is not None and b is not None else g1 - 1

    def walk(t: _Tracker, stop: Callable[[int], bool]) -> None:
        while t.alive and not stop(t.pos):
            box = t.advance()
            if box is not None:
                out.boxes[t.pos, s], out.source[t.pos, s] = box, TRACKED

    fwd = None
    fwd_end = g0  # first frame the forward tracker has not covered
    if a is not None and g0 <= min(mid, fwd_lim):
        fwd = _Tracker(frames, a, 1, tracks.boxes[a, s], cfg, det_boxes, stats)
        walk(fwd, lambda pos: pos >= min(mid, fwd_lim))
        fwd_end = fwd.pos + 1
    bwd_start = g1  # lowest frame the backward tracker has covered
    lower = max(fwd_end, bwd_lim, g0)
    if b is not None and lower < b:
        bwd = _Tracker(frames, b, -1, tracks.boxes[b, s], cfg, det_boxes, stats)
        walk(bwd, lambda pos: pos <= lower)
        bwd_start = bwd.pos
    if fwd is not None and fwd.alive:  # the backward tracker stopped early: go on past the midpoint
        walk(fwd, lambda pos: pos >= min(bwd_start - 1, fwd_lim))


def propagate_csrt(
    tracks: HandTracks,
    read_frame: Callable[[int], np.ndarray],
    max_gap_frames: int = 25,
    config: CsrtConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> HandTracks:
    """Fill each slot's gaps between detections with CSRT-tracked boxes (see the module docstring).

    `read_frame(i)` returns frame i (RGB, any size, the same for every i): e.g. `FrameCache.read` or
    `frames.__getitem__` (it must be thread-safe when `workers` > 1). Gaps are independent of each other (a
    tracker only looks at detections), so `workers` threads take contiguous runs of them (OpenCV releases the
    GIL); the result does not depend on `workers`. Returns a new HandTracks; detections are never changed."""
    cfg = config or CsrtConfig()
    out = tracks.copy()
    n = len(tracks)
    stats: dict = {"inits": 0, "updates": 0}
    if max_gap_frames <= 0 or n == 0:
        out.stats = stats
        return out
    det_boxes = [[tracks.boxes[i, s] for s in range(2) if tracks.source[i, s] == DETECTED] for i in range(n)]
    jobs = []
    for s in range(2):
        det = tracks.source[:, s] == DETECTED
        if det.any():
            jobs += [(g0, g1, s) for g0, g1 in _runs(~det)]
    jobs.sort()
    lock = threading.Lock()
    done = [0]

    def run(group: list[tuple[int, int, int]]) -> dict:
        st: dict = {}
        frames = _FrameSource(read_frame, cfg.work_width, size=4 * max_gap_frames + 8)
        for g0, g1, s in group:
            _fill_gap(g0, g1, s, n, max_gap_frames, frames, tracks, out, det_boxes, cfg, st)
            if progress is not None:
                with lock:
                    done[0] += 1
                    progress(done[0], len(jobs))
        st["frame_reads"] = frames.reads
        return st

    k = max(1, min(int(workers), len(jobs)))
    groups = [list(g) for g in np.array_split(np.asarray(jobs, dtype=np.int64).reshape(-1, 3), k)] if jobs else []
    groups = [[tuple(int(v) for v in j) for j in g] for g in groups]
    if k <= 1:
        parts = [run(g) for g in groups]
    else:
        with ThreadPoolExecutor(k, thread_name_prefix="csrt") as ex:
            parts = list(ex.map(run, groups))
    for st in parts:
        for key, v in st.items():
            stats[key] = stats.get(key, 0) + v
    stats["tracked_slot_frames"] = int((out.source == TRACKED).sum())
    out.stats = stats
    return out


def hand_openness(keypoints: np.ndarray, aspect: float) -> np.ndarray:
    """(..., 21, 3) keypoints -> (...) mean fingertip-to-wrist distance / wrist-to-middle-knuckle distance
    (about 1 for a fist, about 2 for an open hand); NaN where undefined."""
    k = np.asarray(keypoints, np.float64)
    p = np.stack([k[..., 0] * aspect, k[..., 1]], axis=-1)
    wrist = p[..., 0:1, :]
    tips = np.linalg.norm(p[..., list(FINGERTIPS), :] - wrist, axis=-1).mean(axis=-1)
    palm = np.linalg.norm(p[..., 9, :] - p[..., 0, :], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(palm > 1e-6, tips / palm, np.nan).astype(np.float32)


def _stat(x: np.ndarray, fn: Callable[[np.ndarray], float], empty: float) -> float:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(fn(x)) if len(x) else empty


def hand_segment_vectors(
    boxes: np.ndarray,
    source: np.ndarray,
    openness: np.ndarray,
    t_s: np.ndarray,
    segments: pl.DataFrame,
) -> np.ndarray:
    """(S, 16) float32 hand summary per segment (dims in `HAND_VECTOR_DIMS`), never NaN.

    boxes (N, 2, 4), source (N, 2), openness (N, 2) per frame and slot; `segments` indexes frames with
    `start_frame` / `end_frame` (end exclusive)."""
    boxes = np.asarray(boxes, np.float64)
    source = np.asarray(source)
    openness = np.asarray(openness, np.float64)
    t = np.asarray(t_s, np.float64)
    n = len(source)
    present = source != ABSENT
    cx = np.where(present, (boxes[..., 0] + boxes[..., 2]) / 2, np.nan)
    cy = np.where(present, (boxes[..., 1] + boxes[..., 3]) / 2, np.nan)
    size = np.where(present, np.sqrt(np.clip((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]),
                                             0, None)), np.nan)
    dt = np.diff(t, prepend=np.nan)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = np.hypot(np.diff(cx, axis=0, prepend=np.nan), np.diff(cy, axis=0, prepend=np.nan)) / dt
        spread = np.hypot(cx[:, 0] - cx[:, 1], cy[:, 0] - cy[:, 1])
    opn = np.where(source == DETECTED, openness, np.nan)
    rows = []
    for a, b in zip(segments["start_frame"].to_list(), segments["end_frame"].to_list()):
        a, b = max(0, int(a)), min(n, int(b))
        if b <= a:
            rows.append([0.0] * 5 + [0.5, 0.5] + [0.0] * (HAND_DIM - 7))
            continue
        pr = present[a:b]
        rows.append([
            float((source[a:b] == DETECTED).any(axis=1).mean()),
            float(pr.any(axis=1).mean()),
            float(pr.all(axis=1).mean()),
            float(pr[:, 0].mean()),
            float(pr[:, 1].mean()),
            _stat(cx[a:b], np.mean, 0.5),
            _stat(cy[a:b], np.mean, 0.5),
            _stat(cx[a:b], np.std, 0.0),
            _stat(cy[a:b], np.std, 0.0),
            _stat(size[a:b], np.mean, 0.0),
            _stat(size[a:b], np.std, 0.0),
            min(_stat(speed[a + 1 : b], np.mean, 0.0), 10.0),
            min(_stat(speed[a + 1 : b], lambda x: np.percentile(x, 90), 0.0), 10.0),
            _stat(spread[a:b], np.mean, 0.0),
            _stat(opn[a:b], np.mean, 0.0),
            _stat(opn[a:b], np.std, 0.0),
        ])
    out = np.nan_to_num(np.asarray(rows, np.float64).reshape(-1, HAND_DIM), nan=0.0, posinf=0.0, neginf=0.0)
    return out.astype(np.float32)
