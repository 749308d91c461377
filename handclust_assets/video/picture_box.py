"""Where the picture is in the frame: black bars (letterbox, pillarbox, windowbox: `content_box`) and flat panels
beside the picture (a blurred, magnified copy of it, or bars of a colour, as uploads fill the sides of an upright
phone video: `fill_box`), found on `probe_gray` images of the first second's frames and confirmed on keyframes
spread over the clip (`sample_probes`); then, while the rest is decoded, whether the bars stay dark
(`lit_in_bars`, `SourceCut.lit`) and the panels flat (`detail_in_panels`), and the picture inside them as the
motion image (`inside_bars`, `SourceCut.motion_image`). The motion track (`MotionTrackBuilder`) keeps the state;
these are its plain functions."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from handclust_assets.video.frame_gray import (
    PROBE_OVERSAMPLE,
    ROW_OVERSAMPLE,
    halved,
    probe_gray,
    small_height,
)

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


def lit_in_bars(probe: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int] | None) -> bool:
    """Whether a pixel of `probe` (a `probe_gray` image) inside the bars cropped off `box` (found on probe images of
    `shape`) is lit (over `BORDER_DARK`), leaving out the 4 lines beside the picture: an encoder's ringing reaches a
    macroblock into the bar (measured: 25 grey levels 2 probe px from the picture of a 600-px-wide windowboxed clip
    at CRF 18). False for a probe of another shape (the stream changed size: not judged)."""
    if probe.shape != shape:
        return False
    top, bottom, left, right = box
    h, w = probe.shape
    m = BARS_EDGE_PX
    parts = [probe[:max(0, top - m)], probe[min(h, bottom + m):], probe[:, :max(0, left - m)],
             probe[:, min(w, right + m):]]
    return any(part.size and int(part.max()) > BORDER_DARK for part in parts)


def detail_in_panels(probe: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int] | None) -> bool:
    """Whether the panels cropped off `box` (`fill_box`, on probe images of `shape`) hold detail in `probe` (a
    `probe_gray` image): their texture over `FILL_TEXTURE` x the picture's in it (at least `FILL_MIN_TEXTURE`; a dark
    frame's blurred fill stays under it). The keyframes checked over the clip are few in a long GOP; an edit to the
    whole frame after them shows here. False for a probe of another shape (the stream changed size: not judged)."""
    if probe.shape != shape:
        return False
    top, bottom, left, right = box
    img = probe.astype(np.float32)
    if left == 0 and right == img.shape[1]:  # panels above and below: looked at as columns
        img, (left, right) = img.T, (top, bottom)
    panels, ref = _panel_texture(_column_texture(img[None]), left, right)  # (`fill_box` leaves 7 px at least
    return float(panels[0]) > FILL_TEXTURE * max(ref, FILL_MIN_TEXTURE)  # beside each panel, 20 % between)


def inside_bars(probe: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int], width: int) -> np.ndarray:
    """The motion image (`width` px wide) of the picture inside `box` in `probe` (a `probe_gray` image; one of
    another shape than the `shape` the box was found on is resized to it: the stream changed size, and the bars are
    placed proportionally)."""
    if probe.shape != shape:
        probe = cv2.resize(probe, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    top, bottom, left, right = box
    height = small_height(bottom - top, right - left, width)
    # a bar's edge rarely falls on a probe px, so the picture's first line beside a bar is part bar: a dark line
    # that the motion image and the thumbnails would hold; it is left out too (a quarter of a motion-image px,
    # stretched over; the image keeps the picture's shape)
    ph, pw = probe.shape
    inner = probe[top + (top > 0):bottom - (bottom < ph), left + (left > 0):right - (right < pw)]
    return cv2.resize(inner, (width, height), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class SourceCut:
    """The picture inside black bars (`content_box`, found in probe px) and the bars beside it, in px of a frame's
    own luma, so each frame's motion image is cut from the frame, not from its probe image."""

    picture: tuple[int, int, int, int]  # rows r0:r1, columns c0:c1 of the picture (its partly-bar lines left out)
    height: int  # the motion image's height (as `inside_bars` makes it)
    bars: tuple[tuple[slice, slice], ...]  # the bars, less `BARS_EDGE_PX` probe px beside the picture
    row_step: int  # the probe's row step (`probe_gray` reads every n-th row)
    block: tuple[int, int]  # (rows of `row_step`, columns) averaged for a probe pixel's worth in the bars

    @staticmethod
    def of(box: tuple[int, int, int, int], probe_shape: tuple[int, int], frame_shape: tuple[int, int],
           width: int) -> SourceCut:
        top, bottom, left, right = box
        ph, pw = probe_shape
        h, w = frame_shape
        sy, sx = h / ph, w / pw
        # the probe's cut, in source px: its partly-bar lines left out (`inside_bars`), rounded inwards
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
        return SourceCut((r0, max(r1, r0 + 1), c0, max(c1, c0 + 1)), height, tuple(bars), row_step, block)

    def motion_image(self, y: np.ndarray, width: int) -> np.ndarray:
        """The motion image (`width` px wide) of the picture, made from the frame's luma `y` as `small_gray` makes a
        whole frame's: the probe image's cut, made over (its 4-x-wider area resize cost as much again as the rest
        of the frame's motion image)."""
        r0, r1, c0, c1 = self.picture
        rows = y[r0:r1:max(1, (r1 - r0) // (self.height * ROW_OVERSAMPLE))]
        g = halved(rows[:, c0:c1], (2 * self.height, 2 * width))
        return cv2.resize(g, (width, self.height), interpolation=cv2.INTER_AREA)

    def lit(self, y: np.ndarray) -> bool:
        """`lit_in_bars` on the frame's luma `y`: a mean over blocks of about a probe pixel's source pixels in the
        bars (every few rows, as the probe reads them) over `BORDER_DARK`."""
        fy, fx = self.block
        for rs, cs in self.bars:
            part = y[rs, cs][::self.row_step]
            if not part.size or int(part.max()) <= BORDER_DARK:
                continue  # no pixel over it, so no mean (the usual case: one pass, no resize)
            n, m = part.shape[0] // fy * fy, part.shape[1] // fx * fx
            if n and m:
                part = cv2.resize(part[:n, :m], (m // fx, n // fy), interpolation=cv2.INTER_AREA)
            if part.size and int(part.max()) > BORDER_DARK:
                return True
        return False
