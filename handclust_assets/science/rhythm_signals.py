"""The rhythm signals the repetition counter listens to, built from what the graph already has (`counting` pools them).

| name                | from                                              | rate        | kind     |
| ------------------- | ------------------------------------------------- | ----------- | -------- |
| motion_energy       | |frame difference| per grid cell, while decoding  | source fps  | speed    |
| appearance          | gray intensity per grid cell, while decoding      | source fps  | position |
| appearance_velocity | its change over +-0.07 s (drift and sway fade)    | source fps  | position |
| camera_motion       | the camera's per-frame translation                | source fps  | position |
| flow                | dense-flow magnitude (+ direction histogram)      | 5 fps cache | speed    |
| scene               | scene embeddings (PCA)                            | 5 fps cache | position |
| egomotion           | camera / residual motion magnitudes               | 5 fps cache | speed    |
| pose, hands         | keypoint coordinates where seen (NaN elsewhere)   | 5 fps cache | position |

A "speed" signal (a magnitude) peaks twice per back-and-forth cycle, so on its own it may show half the period;
a "position" signal (where things are) repeats once per cycle. Before the appearance is read, the picture's global
motion (hand-held sway, zoom, roll) is taken out of the thumbnails (`steady_thumbnails`).

The graph's `period_track` counts from the four source-rate signals (`motion_signals`, via
`counting.track_located`); the 5-fps ones are for callers of `counting.count_repetitions` (`rep_eval` adds flow on
request). Pose as a further signal was measured and not kept (docs/results.md).

Plain numpy / OpenCV; no Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handclust_assets.science.localize import principal_scores
from handclust_assets.science.periodicity import frames_in

SPEED, POSITION = "speed", "position"


@dataclass(frozen=True)
class RhythmSignal:
    """One signal: values (T, C) at times t_s (seconds from the clip start), NaN where unseen."""

    name: str
    t_s: np.ndarray
    values: np.ndarray
    kind: str = POSITION
    prior: float = 1.0
    same_unit: bool = False  # the channels share one unit (pixels of one picture): the counter keeps their relative
    # scale (`CountingParams.keep_channel_scale`), so a channel that barely moves weighs little


def motion_signals(t_s: np.ndarray, energy: np.ndarray | None, intensity: np.ndarray | None,
                   camera: np.ndarray | None = None, energy_raw: np.ndarray | None = None, pool: int = 3,
                   normalise_frames: bool = True, appearance_components: int = 0, velocity_s: float = 0.07
                   ) -> list[RhythmSignal]:
    """The source-rate signals from the frame cache's motion track: energy (T, cells) -> "motion_energy",
    (with `energy_raw`, the uncompensated cells ride along as more channels: whichever repeats gets the weight),
    intensity (T, cells) or (T, h, w) images (`pool` x `pool` averaged: 3 x 3 cells of the 32-px thumbnail are
    coarse enough that sub-pixel camera shake barely changes them, while a moving hand or tool still does; with
    `normalise_frames` each image to zero mean and unit s.d., so exposure and lighting drift do not pass for
    motion; then its main `appearance_components` principal components, 0 = every pixel; the counter takes the
    picture's global motion out of the images beforehand, `steady_thumbnails`) -> "appearance"; with `velocity_s`
    > 0 also its change over +-velocity_s (x(t + d) - x(t - d)) -> "appearance_velocity": signed, so it still turns
    once per cycle, while slow drift and sway, which can outweigh a small repetition in the appearance itself,
    shrink to nearly nothing; its cells keep their relative scale in the counter (`same_unit`: where the picture
    is still, its cells are noise and weigh little); the camera's per-frame translation (T, 2) -> "camera_motion"
    (signed: turns once per cycle, like a position)."""
    out = []
    t = np.asarray(t_s, np.float64)
    if energy is not None and len(energy):
        e = np.asarray(energy, np.float64).reshape(len(t), -1)
        if energy_raw is not None and len(energy_raw) == len(t) and camera is not None and np.any(camera):
            e = np.concatenate([e, np.asarray(energy_raw, np.float64).reshape(len(t), -1)], axis=1)
        out.append(RhythmSignal("motion_energy", t, e, SPEED))
    if intensity is not None and len(intensity):
        img = np.asarray(intensity, np.float64)
        if img.ndim == 3 and pool > 1 and img.shape[1] >= 2 * pool and img.shape[2] >= 2 * pool:
            h, w = img.shape[1] // pool * pool, img.shape[2] // pool * pool
            img = img[:, :h, :w].reshape(len(img), h // pool, pool, w // pool, pool).mean(axis=(2, 4))
        flat = img.reshape(len(t), -1)
        if normalise_frames and flat.shape[1] >= 4:  # exposure / lighting changes move every pixel together
            sd = flat.std(axis=1, keepdims=True)
            flat = (flat - flat.mean(axis=1, keepdims=True)) / np.where(sd > 1e-6, sd, 1.0)
        app = _components(flat, appearance_components)
        out.append(RhythmSignal("appearance", t, app, POSITION))
        if velocity_s > 0 and len(t) > 4:
            d = frames_in(t, velocity_s)
            vel = np.full_like(app, np.nan)
            if len(app) > 2 * d:
                vel[d:-d] = app[2 * d:] - app[:-2 * d]
            out.append(RhythmSignal("appearance_velocity", t, vel, POSITION, same_unit=True))
    if camera is not None and len(camera) == len(t) and np.any(np.abs(np.asarray(camera)) > 0):
        out.append(RhythmSignal("camera_motion", t, np.asarray(camera, np.float64).reshape(len(t), -1), POSITION,
                                prior=0.7))
    return out


UNSWAY_ITERATIONS = 3
UNSWAY_C = 2.0
UNSWAY_CHUNK = 2048  # frames per block (plus half a window each side): memory stays flat on hour-long clips


def steady_thumbnails(img: np.ndarray, t_s: np.ndarray, window_s: float, modes: int = 4, blur: float = 1.0,
                      photometric: bool = False, shift: np.ndarray | None = None) -> np.ndarray:
    """Thumbnails (T, h, w) without the change a global motion of the picture explains: hand-held sway, zoom and
    roll; float32, worked through blocks of frames.

    Each image is first smoothed by a Gaussian of `blur` px (0: not; the fit is more nearly linear on a smoother
    picture, and the counter pools 3 x 3 cells anyway). Then, linearised about the images' centred moving mean over
    `window_s` (the reference R): a small shift (dx, dy), zoom s and roll r change pixel p by about
    Gx dx + Gy dy + (x Gx + y Gy) s + (x Gy - y Gx) r, with G the reference's gradient and (x, y) from the centre.
    Those `modes` (2: shift; 3: + zoom; 4: + roll) are fitted to each frame's difference from R by reweighted least
    squares over every pixel (pixels the fit leaves far off, a moving hand, count less), and the fit is subtracted.
    A hand or tool moving in part of the picture projects little on these whole-picture patterns and stays; the
    camera's sway, which moves every pixel at once, goes. Needs no camera estimate, so a large moving subject cannot
    mislead one. The fit is linear: it holds up to ~2 px of a 32-px thumbnail (~6 % of the frame's width); larger
    sway stays. With `photometric`, a gain (the pattern R - mean(R)) and an offset join the modes: an
    auto-exposure's or a flickering light's slow swing changes every pixel with the picture's own brightness, which
    no shift explains; the first round then fits the motion and the offset alone, so that its weights hold a moving
    hand down before the gain, whose pattern holds the hand's mean place, can take the hand in. With `shift`
    (T, 2; `camera_shift`), each frame is first moved back by its row, block by block (a pan too large for the
    linear fit; the same values as shifting them all first, `shifted_back`, would give, without a whole float
    copy)."""
    import cv2
    from scipy.ndimage import uniform_filter1d

    img = np.asarray(img)
    n = len(img)
    if shift is not None and np.shape(shift) != (n, 2):
        raise ValueError(f"shift must be one (dx, dy) per frame, ({n}, 2); got {np.shape(shift)}")

    def smoothed(a: int, b: int) -> np.ndarray:  # frames a..b as float32, shifted back, blurred
        x = np.asarray(img[a:b], np.float32) if shift is None else shifted_back(img[a:b], shift[a:b])
        if blur > 0 and x.ndim == 3 and x.shape[1] > 1 and x.shape[2] > 1:
            x = np.stack([cv2.GaussianBlur(f, (0, 0), blur, borderType=cv2.BORDER_REPLICATE) for f in x])
        return x

    if img.ndim != 3 or n < 8:
        return smoothed(0, n)
    _, h, w = img.shape
    if h < 3 or w < 3 or h * w < 16 * max(1, min(modes, 4)):  # too few pixels to tell a motion from a change
        return smoothed(0, n)
    k = frames_in(t_s, window_s)
    whole = None
    if k >= n:  # one reference for the whole clip: the mean frame
        whole = sum(smoothed(a, min(n, a + UNSWAY_CHUNK)).sum(axis=0, dtype=np.float64)
                    for a in range(0, n, UNSWAY_CHUNK)) / n
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    xx = (xx - (w - 1) / 2) / (w / 2)
    yy = (yy - (h - 1) / 2) / (w / 2)
    n_geo = max(1, min(modes, 4))
    n_modes = n_geo + (2 if photometric else 0)
    first = [*range(n_geo), n_modes - 1]  # photometric: the first round's modes (motion and offset); the last
    # round always fits every mode, and its fit is the one taken out
    out = np.empty((n, h, w), np.float32)
    half = k // 2 + 1
    step = max(1, k // 8)  # the reference changes slowly: its gradients are taken every `step` frames
    chunk = max(1, UNSWAY_CHUNK // step) * step  # blocks hold whole steps: the same values as in one piece
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        lo, hi = (c0, c1) if whole is not None else (max(0, c0 - half), min(n, c1 + half))
        block = smoothed(lo, hi)
        ref = (np.broadcast_to(whole, block.shape) if whole is not None
               else uniform_filter1d(block.astype(np.float64), size=k, axis=0, mode="nearest"))
        for a in range(c0, c1, step):
            b = min(c1, a + step)
            r = np.asarray(ref[(a + b - 1) // 2 - lo], np.float32)
            gx = cv2.Sobel(r, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE).astype(np.float64) / 8
            gy = cv2.Sobel(r, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE).astype(np.float64) / 8
            basis = [gx, gy, xx * gx + yy * gy, xx * gy - yy * gx][:n_geo]
            if photometric:  # exposure / flicker: a gain on the picture and an offset
                basis += [r.astype(np.float64) - float(r.mean()), np.ones_like(gx)]
            m = np.stack([v.ravel() for v in basis], axis=1)  # (P, modes)
            d = (block[a - lo:b - lo] - ref[a - lo:b - lo]).reshape(b - a, -1).astype(np.float64)  # (frames, P)
            wts = np.ones_like(d)
            for it in range(UNSWAY_ITERATIONS + (1 if photometric else 0)):
                mm = m[:, first] if photometric and it == 0 else m
                gram = np.einsum("pk,fp,pl->fkl", mm, wts, mm)
                gram += np.eye(mm.shape[1])[None] * (1e-6 * np.trace(gram, axis1=1, axis2=2)[:, None, None] + 1e-12)
                theta = np.linalg.solve(gram, np.einsum("pk,fp->fk", mm, wts * d)[..., None])[..., 0]
                resid = d - theta @ mm.T
                scale = 1.4826 * np.median(np.abs(resid), axis=1, keepdims=True) + 1e-6
                wts = 1.0 / (1.0 + (resid / (UNSWAY_C * scale)) ** 2)
            out[a:b] = block[a - lo:b - lo] - (theta @ m.T).reshape(b - a, h, w)
    return out


def camera_shift(path: np.ndarray, n_frames: int, thumb_width: int, t_s: np.ndarray, window_s: float,
                 min_shift_px: float = 1.0, work_width: int = 64) -> np.ndarray | None:
    """How far each of `n_frames` thumbnails (`thumb_width` px wide) is to be shifted back (T, 2) to undo a pan or
    a head turn larger than `steady_thumbnails`' linear fit can explain (a few px of a 32-px thumbnail): the
    picture's `path` about its moving mean over `window_s`, in thumbnail px. `path` is the motion track's (T, 2)
    displacement of the picture since the first frame, in px of the `work_width`-px image. None where the path
    never leaves its moving mean by `min_shift_px` thumbnail px (nothing to undo) or is unusable."""
    from scipy.ndimage import uniform_filter1d

    pos = np.asarray(path, np.float64)
    if n_frames < 8 or pos.shape != (n_frames, 2) or not np.all(np.isfinite(pos)) or len(t_s) != n_frames:
        return None
    pos = pos * (thumb_width / float(work_width))
    k = frames_in(t_s, window_s)
    dev = pos - uniform_filter1d(pos, size=min(k, len(pos)), axis=0, mode="nearest")
    if float(np.max(np.abs(dev))) < min_shift_px:
        return None
    return dev


def shifted_back(frames: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Frames (F, h, w) as float32, each moved back by its row of `shift` (F, 2) (bilinear; the edges
    replicated)."""
    import cv2

    x = np.asarray(frames, np.float32)
    if x.ndim != 3 or len(x) == 0:
        return x
    h, w = x.shape[1:]
    out = np.empty(x.shape, np.float32)
    for i in range(len(x)):
        m = np.float32([[1, 0, -shift[i, 0]], [0, 1, -shift[i, 1]]])
        out[i] = cv2.warpAffine(x[i], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def camera_speed(path: np.ndarray, t_s: np.ndarray, smooth_s: float = 0.5) -> np.ndarray | None:
    """The speed of the picture's `path` (T, 2; px per frame), smoothed over `smooth_s` (`without_camera_speed`'s
    regressor); None where the path is unusable (fewer than 8 frames, another length than `t_s`, not finite)."""
    from scipy.ndimage import uniform_filter1d

    pos = np.asarray(path, np.float64)
    n = len(pos)
    if n < 8 or pos.shape != (n, 2) or len(t_s) != n or not np.all(np.isfinite(pos)):
        return None
    k = frames_in(t_s, smooth_s)
    return uniform_filter1d(np.r_[0.0, np.hypot(*np.diff(pos, axis=0).T)], size=min(k, n), mode="nearest")


def without_camera_speed(energy: np.ndarray, path: np.ndarray, t_s: np.ndarray, smooth_s: float = 0.5,
                         speed: np.ndarray | None = None) -> np.ndarray:
    """Motion energy cells (T, ...) less the part that rises with the camera's speed: a moving camera's picture
    changes by more than a shift (its coding noise, the resampling of every edge, motion blur), so the energy
    follows the camera's speed even where each frame is compensated, and a camera sweeping to and fro paints a
    speed rhythm of its own (two humps per sweep) over the whole picture. Each cell's slope on the speed of the
    picture's `path` (T, 2; both smoothed over `smooth_s`) is fitted by least squares and, where positive, its
    part taken out (floored at 0). A camera whose own motion repeats (a head bobbing with each step) still votes
    through the camera track's signal. float32; the energy unchanged where the path is unusable or still. `speed`:
    `camera_speed(path, t_s, smooth_s)` where the caller has it already (the compensated and the raw energy share
    it)."""
    from scipy.ndimage import uniform_filter1d

    e = np.asarray(energy, np.float64)
    n = len(e)
    if speed is None:
        speed = camera_speed(path, t_s, smooth_s)
    if speed is None or len(speed) != n:
        return np.asarray(energy, np.float32)
    k = frames_in(t_s, smooth_s)
    flat = e.reshape(n, -1)
    ok = np.isfinite(flat).all(axis=1)
    sc = speed[ok] - speed[ok].mean()
    if ok.sum() < 8 or float(sc @ sc) <= 1e-12:
        return np.asarray(energy, np.float32)
    w = uniform_filter1d(ok.astype(np.float64), size=min(k, n), mode="nearest")  # frames without energy: the mean
    ys = (uniform_filter1d(np.where(ok[:, None], flat, 0.0), size=min(k, n), axis=0, mode="nearest")  # of the rest
          / np.maximum(w, 1e-9)[:, None])[ok]
    slope = np.maximum(sc @ (ys - ys.mean(axis=0)) / float(sc @ sc), 0.0)
    return np.maximum(flat - np.outer(speed, slope), 0.0).reshape(e.shape).astype(np.float32)


FLICKER_MIN_LEVEL = 16.0  # grey levels: a darker cell's relative change is mostly noise (its gain is not read)


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights averaging n_in samples into n_out equal intervals by their overlap (area resampling)."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    px = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def cell_means(images: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Each image of (T, h, w) averaged over a (rows, columns) `grid` of equal cells (by area, as the motion
    track's energy cells are made from its image), float32 (T, rows, columns)."""
    imgs = np.asarray(images)
    ry = _area_weights(imgs.shape[1], grid[0]).astype(np.float32)
    rx = _area_weights(imgs.shape[2], grid[1]).astype(np.float32).T
    out = np.empty((len(imgs), grid[0], grid[1]), np.float32)
    for a in range(0, len(imgs), 4096):  # blocks: memory stays flat on hour-long clips
        out[a:a + 4096] = ry @ imgs[a:a + 4096].astype(np.float32) @ rx
    return out


def _quantile_last(v: np.ndarray, q: float) -> np.ndarray:
    """The `q` quantile over the last axis (linear, as numpy's default), by one sort: `np.quantile` costs ~10x."""
    s = np.sort(v, axis=-1)
    pos = q * (s.shape[-1] - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, s.shape[-1] - 1)
    return s[..., lo] + (pos - lo) * (s[..., hi] - s[..., lo])


def _light_part(strips: np.ndarray, to_rows: np.ndarray | None, agree: float) -> np.ndarray:
    """`photometric_change` read on strips (T >= 2, strip rows, columns: their mean levels), averaged into the
    energy's rows by `to_rows` ((rows, strip rows) area weights; None: the strips are the rows)."""
    before = strips[:-1]
    rel = np.where(before >= FLICKER_MIN_LEVEL, (strips[1:] - before) / np.maximum(before, FLICKER_MIN_LEVEL), 0.0)
    lo, hi = _quantile_last(rel, agree), _quantile_last(rel, 1.0 - agree)
    gain = np.where(lo > 0, lo, np.where(hi < 0, hi, 0.0))  # (T - 1, strip rows)
    light = (np.abs(gain)[:, :, None] * before).astype(np.float32)
    out = np.zeros((len(strips), len(to_rows) if to_rows is not None else strips.shape[1], strips.shape[2]),
                   np.float32)
    out[1:] = light if to_rows is None else np.einsum("rh,thc->trc", to_rows, light)
    return out


def photometric_change(intensity: np.ndarray, grid: tuple[int, int], agree: float = 0.2) -> np.ndarray:
    """How much of each energy cell's frame difference a change of light explains, float32 (T, rows, columns).

    A flickering lamp, a light's rolling bands or an auto-exposure swing brightens or darkens every pixel of a
    line of the picture together, so a strip of it changes on average by as much as its pixels do
    (|mean change| = mean |change|), while a moving hand or tool brightens some pixels and darkens others, or
    changes only a few strips. Each thumbnail row (`intensity`: the motion track's raw thumbnails, (T, h, w)) is
    cut into the energy grid's columns, and so is each row of cells apart (larger strips, which read a slow swing
    through less noise; the larger of the two parts is taken). Each strip's relative change from the frame before
    is read, and in each row the gain all but `agree` of its strips share on either side (the `agree` quantile
    nearest to zero, where both quantiles have one sign; else none): a change of one sign through the whole row.
    That gain times each strip's level is the light's part of its difference, averaged into the energy's cells.
    Row by row, as a rolling shutter sees a lamp on mains (bands across the picture, several to a frame); a global
    flicker moves every row alike. A strip darker than `FLICKER_MIN_LEVEL` reads as unchanged (its relative change
    is mostly noise), so it takes no part."""
    imgs = np.asarray(intensity)
    if imgs.ndim != 3 or len(imgs) < 2:
        return np.zeros((len(imgs), *grid), np.float32)
    rows, cols = grid
    fine = cell_means(imgs, (imgs.shape[1], cols))  # each thumbnail row cut into the grid's columns
    to_rows = _area_weights(imgs.shape[1], rows).astype(np.float32)  # thumbnail rows -> rows of cells
    part = _light_part(fine, to_rows, agree)
    if imgs.shape[1] <= rows:
        return part
    coarse = np.einsum("rh,thc->trc", to_rows, fine)  # rows of cells
    return np.maximum(part, _light_part(coarse, None, agree))


def without_flicker(energy: np.ndarray, intensity: np.ndarray | None, agree: float = 0.2,
                    light: np.ndarray | None = None) -> np.ndarray:
    """Motion energy cells (T, rows, columns) less the part a change of light explains (`photometric_change`),
    floored at 0; unchanged where `intensity` is not the same frames' (T, h, w) thumbnails. float32. `light`:
    `photometric_change(intensity, (rows, columns), agree)` where the caller has it already (the compensated and
    the raw energy share it)."""
    e = np.asarray(energy, np.float32)
    if intensity is None or e.ndim != 3 or np.asarray(intensity).ndim != 3 or len(intensity) != len(e) or len(e) < 2:
        return e
    if light is None or light.shape != e.shape:
        light = photometric_change(intensity, (e.shape[1], e.shape[2]), agree)
    return np.maximum(e - light, 0.0)


def _components(v: np.ndarray, k: int) -> np.ndarray:
    """The first k principal component scores of (T, C) rows (NaN rows stay NaN); all columns when k <= 0 or
    k >= C."""
    if k <= 0 or v.shape[1] <= k:
        return v
    ok = np.isfinite(v).all(axis=1)
    out = np.full((len(v), k), np.nan)
    if ok.sum() >= 3:
        out[ok] = principal_scores(v[ok] - v[ok].mean(axis=0), k)
    return out


def flow_signal(t_s: np.ndarray, flow_mag: np.ndarray, dir_hist: np.ndarray | None = None) -> RhythmSignal:
    """Flow magnitude (speed); with the direction histogram (T, B) the motion's direction rides along, which
    turns back and forth once per cycle."""
    mag = np.asarray(flow_mag, np.float64).reshape(len(t_s), 1)
    vals = mag if dir_hist is None else np.concatenate([mag, np.asarray(dir_hist, np.float64) * mag], axis=1)
    return RhythmSignal("flow", np.asarray(t_s, np.float64), vals, SPEED, prior=0.8)


def scene_signal(t_s: np.ndarray, embeddings: np.ndarray, n_components: int = 8) -> RhythmSignal:
    """Scene embeddings reduced to their main components (the SSM's periodic structure lives there)."""
    e = np.asarray(embeddings, np.float64)
    ok = np.isfinite(e).all(axis=1)
    vals = np.full((len(e), n_components), np.nan)
    if ok.sum() >= 3:
        z = e[ok] / np.maximum(np.linalg.norm(e[ok], axis=1, keepdims=True), 1e-12)
        z = z - z.mean(axis=0)
        u, s, _ = np.linalg.svd(z, full_matrices=False)
        k = min(n_components, len(s))
        vals[ok, :k] = u[:, :k] * s[:k]
        vals = vals[:, :k]
    return RhythmSignal("scene", np.asarray(t_s, np.float64), vals, POSITION, prior=0.8)


def egomotion_signal(t_s: np.ndarray, camera_mag: np.ndarray, residual_mag: np.ndarray) -> RhythmSignal:
    vals = np.stack([np.asarray(camera_mag, np.float64), np.asarray(residual_mag, np.float64)], axis=1)
    return RhythmSignal("egomotion", np.asarray(t_s, np.float64), vals, SPEED, prior=0.6)


def keypoint_signal(name: str, t_s: np.ndarray, keypoints: np.ndarray, min_seen: float = 0.5) -> RhythmSignal:
    """Keypoints (T, K, 2 or 3) with NaN where unseen; a frame counts as seen when >= min_seen of the
    coordinates are finite (the rest are interpolated in time later)."""
    k = np.asarray(keypoints, np.float64)
    vals = k[..., :2].reshape(len(k), -1)
    seen = np.isfinite(vals).mean(axis=1) >= min_seen
    vals = vals[:, np.isfinite(vals[seen]).mean(axis=0) >= 0.5] if seen.any() else vals[:, :0]
    vals = _fill_columns(vals)
    vals[~seen] = np.nan
    return RhythmSignal(name, np.asarray(t_s, np.float64), vals, POSITION)


def _fill_columns(v: np.ndarray) -> np.ndarray:
    out = v.copy()
    pos = np.arange(len(v))
    for c in range(v.shape[1]):
        ok = np.isfinite(v[:, c])
        if ok.sum() >= 2:
            out[:, c] = np.interp(pos, pos[ok], v[ok, c])
    return out
