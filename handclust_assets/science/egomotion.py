"""Ego-motion: RANSAC affine on the grid flow field -> camera motion, residual (hand/object) motion, ratio."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class EgoResult:
    """Per frame. Units as the flow field (frame widths per sampled frame).

    camera_mag:   mean |A p - p| over the grid: motion explained by the head (affine)
    residual_mag: mean |flow - (A p - p)|: camera-compensated residual flow (hand / object motion)
    ratio:        residual / (camera + eps)
    affine:       (N, 2, 3) in grid-normalised coordinates
    inlier_frac:  RANSAC inlier share
    residual_field: (N, gh, gw, 2) float16
    """

    camera_mag: np.ndarray
    residual_mag: np.ndarray
    ratio: np.ndarray
    affine: np.ndarray
    inlier_frac: np.ndarray
    residual_field: np.ndarray


IDENTITY = np.array([[1, 0, 0], [0, 1, 0]], np.float32)


def _fit_camera(pts: np.ndarray, f: np.ndarray, ransac_thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """(affine (2, 3), inlier mask (P,)) for grid points `pts` moving by `f`. Fewer than 3 points cannot fix an
    affine: their mean displacement is taken as a pure camera translation."""
    if len(pts) < 3:
        a = IDENTITY.copy()
        a[:, 2] = f.mean(axis=0)
        return a, np.ones(len(pts), bool)
    a, mask = cv2.estimateAffine2D(pts, pts + f, method=cv2.RANSAC, ransacReprojThreshold=ransac_thresh,
                                   maxIters=500, confidence=0.98, refineIters=5)
    if a is None or not np.isfinite(a).all():
        return IDENTITY.copy(), np.zeros(len(pts), bool)
    return a.astype(np.float32), (mask.ravel() > 0 if mask is not None else np.zeros(len(pts), bool))


def egomotion(field: np.ndarray, ransac_thresh: float = 0.004, eps: float = 1e-4) -> EgoResult:
    """Fit a RANSAC affine per frame to the (N, gh, gw, 2) flow field; frame 0 and flow-free frames -> identity.

    Non-finite flow vectors are unknown: left out of the fit and of the means, residual 0 there."""
    field = np.asarray(field, np.float32)
    n, gh, gw, _ = field.shape
    xs, ys = np.meshgrid((np.arange(gw) + 0.5) / gw, (np.arange(gh) + 0.5) / gw)  # width-normalised coords
    pts = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    cam = np.zeros(n, np.float32)
    res = np.zeros(n, np.float32)
    inl = np.zeros(n, np.float32)
    aff = np.tile(IDENTITY, (n, 1, 1))
    rfield = np.zeros_like(field, dtype=np.float16)
    for i in range(n):
        f = field[i].reshape(-1, 2)
        ok = np.isfinite(f).all(axis=1)
        if not np.any(np.abs(f[ok]) > 1e-7):
            continue
        a, inliers = _fit_camera(pts[ok], f[ok], ransac_thresh)
        pred = pts[ok] @ a[:, :2].T + a[:, 2] - pts[ok]
        r = np.zeros_like(f)
        r[ok] = f[ok] - pred
        aff[i] = a
        cam[i] = float(np.linalg.norm(pred, axis=1).mean())
        res[i] = float(np.linalg.norm(r[ok], axis=1).mean())
        inl[i] = float(inliers.sum() / len(f))
        rfield[i] = r.reshape(gh, gw, 2).astype(np.float16)
    return EgoResult(cam, res, res / (cam + eps), aff, inl, rfield)


def motion_layout(field: np.ndarray, cells: tuple[int, int] = (4, 3)) -> np.ndarray:
    """(N, cx * cy) mean flow magnitude per cell of a coarse grid over the frame (row-major, top-left first).

    On the camera-compensated residual field this says *where* hands and objects move (low centre for
    trowelling, a low corner for scooping, the sides for arm swing while walking) independently of the head.
    """
    f = np.asarray(field, np.float32)
    n, gh, gw, _ = f.shape
    cx, cy = cells
    mag = np.sqrt((f.astype(np.float32) ** 2).sum(-1))  # (N, gh, gw)
    ok = np.isfinite(mag)  # a non-finite vector is unknown; a cell without a known vector (more cells than grid
    mag = np.where(ok, mag, 0.0).astype(np.float32)  # points, or all unknown) reads 0
    ys = np.array_split(np.arange(gh), cy)
    xs = np.array_split(np.arange(gw), cx)
    out = np.zeros((n, cx * cy), np.float32)
    for j, yy in enumerate(ys):
        for i, xx in enumerate(xs):
            cell, known = mag[:, yy][:, :, xx], ok[:, yy][:, :, xx].sum(axis=(1, 2))
            if known.size and known.min() == cell[0].size > 0:
                out[:, j * cx + i] = cell.mean(axis=(1, 2))
            else:
                out[:, j * cx + i] = cell.sum(axis=(1, 2)) / np.maximum(known, 1)
    return out
