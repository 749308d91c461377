"""Dense optical flow between consecutive sampled frames (OpenCV DIS, or Farneback)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class FlowResult:
    """Per frame (frame 0 = zeros). Magnitudes are in frame widths per sampled frame (resolution independent).

    mag:      (N,) mean flow magnitude
    dir_hist: (N, B) magnitude-weighted direction histogram, rows sum to 1 (0 where no flow)
    field:    (N, gh, gw, 2) float16 flow block-averaged onto a grid (x right, y down), same units
    """

    mag: np.ndarray
    dir_hist: np.ndarray
    field: np.ndarray


# OpenCV's DIS crashes (segfault) on frames with a short side below ~32 px and a wide aspect (e.g. 24 x 300,
# 12 x 40); a thumbnail GIF is stretched per axis to at least this, and the flow converted back to its units.
MIN_SIDE = 32


def _gray(frame: np.ndarray, work_width: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(grey working image, (height, width) it stands for): downscaled to `work_width`, then each side below
    MIN_SIDE stretched to it."""
    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    if g.shape[1] > work_width:
        h = max(8, int(round(g.shape[0] * work_width / g.shape[1])))
        g = cv2.resize(g, (work_width, h), interpolation=cv2.INTER_AREA)
    shape = (int(g.shape[0]), int(g.shape[1]))
    if min(shape) < MIN_SIDE:
        g = cv2.resize(g, (max(MIN_SIDE, shape[1]), max(MIN_SIDE, shape[0])), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(g), shape  # DIS asserts a continuous buffer (a cropped view is not)


def _in_frame_widths(f: np.ndarray, shape: tuple[int, int], g: np.ndarray) -> np.ndarray:
    """Pixel flow on the (possibly stretched) working image -> frame widths of the image it stands for."""
    (h0, w0), (h1, w1) = shape, g.shape[:2]
    if (h0, w0) == (h1, w1):
        return f / float(w1)
    return f * np.asarray([1.0 / w1, h0 / (h1 * w0)], np.float32)


def compute_flow(
    frames: np.ndarray | Iterable[np.ndarray],
    grid: tuple[int, int] = (32, 18),
    n_dir_bins: int = 8,
    method: str = "dis",
    work_width: int = 320,
) -> FlowResult:
    """Flow between each sampled frame and the previous one; streaming over an iterable of RGB frames."""
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        flow_fn = lambda a, b: dis.calc(a, b, None)  # noqa: E731
    elif method == "farneback":
        flow_fn = lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # noqa: E731
    else:
        raise ValueError(f"unknown flow method {method!r} (dis | farneback)")
    gw, gh = grid
    mags: list[float] = []
    hists: list[np.ndarray] = []
    fields: list[np.ndarray] = []
    prev, prev_shape = None, None
    for frame in frames:
        g, shape = _gray(np.asarray(frame), work_width)
        if prev is None or prev_shape != shape:
            mags.append(0.0)
            hists.append(np.zeros(n_dir_bins, np.float32))
            fields.append(np.zeros((gh, gw, 2), np.float16))
            prev, prev_shape = g, shape
            continue
        f = _in_frame_widths(flow_fn(prev, g), shape, g)
        prev = g
        mag, ang = cv2.cartToPolar(f[..., 0], f[..., 1])
        mags.append(float(mag.mean()))
        # bins centred on the principal directions (bin 0 = rightwards, bin B/2 = leftwards)
        bins = np.floor(ang / (2 * np.pi) * n_dir_bins + 0.5).astype(np.int64) % n_dir_bins
        h = np.bincount(bins.ravel(), weights=mag.ravel(), minlength=n_dir_bins).astype(np.float32)
        s = h.sum()
        hists.append(h / s if s > 0 else h)
        fields.append(cv2.resize(f, (gw, gh), interpolation=cv2.INTER_AREA).astype(np.float16))
    if not mags:
        return FlowResult(np.zeros(0, np.float32), np.zeros((0, n_dir_bins), np.float32),
                          np.zeros((0, gh, gw, 2), np.float16))
    return FlowResult(np.asarray(mags, np.float32), np.stack(hists), np.stack(fields))
