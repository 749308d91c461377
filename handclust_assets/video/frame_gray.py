"""A decoded frame's luma as small gray images: the motion image (`small_gray`, 64 px wide) and the 4-x-wider probe
image that black bars and flat side panels are found on (`probe_gray`), read from the Y plane without a colour
conversion where the format allows (`luma`); and any image turned upright by the stream's display rotation."""

from __future__ import annotations

import av
import cv2
import numpy as np

WORK_WIDTH = 64  # the motion image's width (px)
ROW_OVERSAMPLE = 8  # the motion image's rows come from at least 8 x as many source rows (memory traffic on 1080p)
MAX_ASPECT = 2  # a frame taller than 2:1 (a sliver of a video) is squeezed to that, so the track stays small
PROBE_WIDTH = 4 * WORK_WIDTH  # the bars are found (and cropped) on the luma at this width
PROBE_OVERSAMPLE = max(1, ROW_OVERSAMPLE * WORK_WIDTH // PROBE_WIDTH)  # ... from the same source rows
LUMA_FORMATS = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "yuv410p",
                "nv12", "nv21", "gray", "yuva420p"}  # Y plane read directly (`luma`)


def rotate_upright(img: np.ndarray, rotation: int) -> np.ndarray:
    """`img` turned by the stream's display rotation (0, 90, 180, 270 degrees clockwise), as a player shows it."""
    if rotation == 90:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if rotation == 180:
        return cv2.rotate(img, cv2.ROTATE_180)
    if rotation == 270:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def luma(frame: av.VideoFrame) -> np.ndarray | None:
    """The frame's Y plane as a uint8 (H, W) view, or None where its format has none to read directly."""
    if frame.format.name not in LUMA_FORMATS:
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
    if (y := luma(frame)) is not None:
        y = y[::max(1, h // (height * oversample))]  # rows of a tall frame: every 2nd / 3rd (720p / 1080p)
        y = halved(y, (halve_over * height / 2, halve_over * width / 2), trim_odd=False)  # 2 x 2 means (fast),
        return cv2.resize(y, (width, height), interpolation=cv2.INTER_AREA)  # then one area resize
    return frame.to_ndarray(format="gray", width=width, height=height)


def halved(y: np.ndarray, until: tuple[float, float], trim_odd: bool = True) -> np.ndarray:
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
