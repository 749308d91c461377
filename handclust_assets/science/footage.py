"""The same footage under other bytes: a re-encoded, resized, letterboxed, rotated or re-wrapped copy of a clip.

A copy with the same bytes has the same content hash (`lib.same_video`); one written again by an encoder does not.
What stays is the picture over time. A clip's `signature` is its picture as 8 x 8 gray thumbnails at 2 Hz, taken
from the motion track (`video.motion_track`: the picture inside any bars or side panels, at the source rate), so
size, aspect, bars and the codec do not matter. Two clips are the same footage (`footage_match`) when, for one of
the 8 quarter turns and flips and a shift of at most 1 s, both
- their pictures agree: the median cosine of the mean-removed thumbnails, sample by sample (a gain or an offset in
  brightness does not matter), and
- their changes agree: the correlation of the signed 2-Hz differences of every thumbnail cell, i.e. where in the
  picture what changed, and which way. Two recordings of one scene (a fixed camera, a helmet on the same wall)
  agree in their pictures; only a copy of one recording agrees in its changes, sample by sample.
Durations must agree within max(0.5 s, 1 %) for that.

A piece cut out of a clip without encoding it again (`ffmpeg -ss ... -c copy`, a splitter, a camera's own chunks of
one recording kept beside it) is the same footage over part of the longer clip: its keyframes are the longer clip's
keyframes, decoded to the same pixels. `keyframe_hashes` keeps a hash of each keyframe's motion-track thumbnail
(the exact bytes) with its time, and `within` finds a clip all of whose keyframes with detail come in the longer
clip, at one offset, with at least `MIN_KEYFRAMES` of them and that many different pictures among them. Two
recordings never share a thumbnail to the byte (the sensor's noise and the encoder's choices differ: a still scene
recorded twice shares none, see the tests); the different pictures guard against a picture repeated by value (a
frame frozen or looped). A piece encoded again has other keyframes and other pixels: not found (the cross-clip
graph pools it as a clip of its own, as before).

Plain numpy / OpenCV; no Dagster.
"""

from __future__ import annotations

import cv2
import numpy as np

SIGNATURE_HZ = 2.0
SIDE = 8
MIN_SAMPLES = 8  # 4 s: a shorter clip is never called a copy
MAX_SHIFT = 2  # samples (1 s): a copy may start a frame or a few later
SAME_FOOTAGE = 0.8  # both agreements at least this (copies: 0.9-1.0; other recordings of one scene: see tests)
_FLAT = 1.5  # grey levels: a thumbnail with less spread than this is flat (black, white, a lens covered)


def signature(t_s: np.ndarray, intensity: np.ndarray, hz: float = SIGNATURE_HZ, side: int = SIDE) -> np.ndarray:
    """(n, side * side) uint8: the frames nearest each 1/hz s from the first, as side x side gray thumbnails
    (area-averaged). `intensity` is (T, h, w) gray images at times `t_s` (T,); frames at a time that is not a
    finite number are skipped. Empty where there is no frame."""
    t = np.asarray(t_s, np.float64)
    imgs = np.asarray(intensity)
    ok = np.isfinite(t)
    if imgs.ndim != 3 or len(imgs) != len(t) or not ok.any() or min(imgs.shape[1:]) < 1:
        return np.zeros((0, side * side), np.uint8)
    t, imgs = t[ok], imgs[ok]
    order = np.argsort(t, kind="stable")
    t, imgs = t[order], imgs[order]
    span = (t[-1] - t[0]) * hz
    if span + 1 > len(t):  # frames rarer than `hz`, or a timeline with a jump: each frame once, no more
        idx = np.arange(len(t))
    else:
        grid = t[0] + np.arange(int(np.floor(span + 1e-9)) + 1) / hz
        idx = np.clip(np.searchsorted(t, grid), 0, len(t) - 1)
        prev = np.clip(idx - 1, 0, len(t) - 1)
        idx = np.where(np.abs(t[prev] - grid) < np.abs(t[idx] - grid), prev, idx)
    thumbs = [cv2.resize(np.ascontiguousarray(imgs[i]).astype(np.uint8), (side, side), interpolation=cv2.INTER_AREA)
              for i in idx]
    return np.stack(thumbs).reshape(len(idx), side * side).astype(np.uint8)


def durations_agree(a_s: float, b_s: float) -> bool:
    """Whether two clips are long enough alike to be one footage: within max(0.5 s, 1 %)."""
    if not (np.isfinite(a_s) and np.isfinite(b_s)):
        return False
    return abs(a_s - b_s) <= max(0.5, 0.01 * max(a_s, b_s))


def _dihedral(sig: np.ndarray, side: int) -> list[np.ndarray]:
    """The 8 quarter turns and flips of each thumbnail of a signature, (n, side * side) float each."""
    imgs = sig.reshape(-1, side, side).astype(np.float64)
    out = []
    for flip in (False, True):
        base = imgs[:, :, ::-1] if flip else imgs
        for k in range(4):
            out.append(np.rot90(base, k, axes=(1, 2)).reshape(len(imgs), side * side))
    return out


def _picture_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Median over samples of the cosine of mean-removed thumbnails; a pair of flat thumbnails agrees where
    their levels are within 16 grey levels, a flat one and a detailed one do not."""
    da, db = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    na, nb = np.linalg.norm(da, axis=1), np.linalg.norm(db, axis=1)
    flat_a, flat_b = a.std(1) < _FLAT, b.std(1) < _FLAT
    cos = np.einsum("ij,ij->i", da, db) / np.maximum(na * nb, 1e-9)
    both_flat = flat_a & flat_b
    cos = np.where(both_flat, (np.abs(a.mean(1) - b.mean(1)) < 16).astype(float), cos)
    cos = np.where(flat_a ^ flat_b, 0.0, cos)
    return float(np.median(cos))


def _change_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of the signed sample-to-sample differences of every cell (NaN where either does not change)."""
    ca, cb = np.diff(a, axis=0).ravel(), np.diff(b, axis=0).ravel()
    if ca.size < 2 or ca.std() < 0.25 or cb.std() < 0.25:
        return float("nan")
    return float(np.corrcoef(ca, cb)[0, 1])


def _shifted(a: np.ndarray, b: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = (a[shift:], b) if shift >= 0 else (a, b[-shift:])
    n = min(len(x), len(y))
    return x[:n], y[:n]


def level_agreement(a: np.ndarray, b: np.ndarray, max_shift: int = MAX_SHIFT, min_samples: int = MIN_SAMPLES
                    ) -> float:
    """The best, over shifts, correlation of the two signatures' sample-to-sample changes of mean level: cheap,
    and the same under any turn or flip, so it rules most pairs out before `footage_match` looks closer. NaN where
    a level never changes (or too few samples)."""
    la, lb = np.asarray(a, np.float64).mean(1), np.asarray(b, np.float64).mean(1)
    best = float("nan")
    for shift in range(-max_shift, max_shift + 1):
        x, y = _shifted(la, lb, shift)
        if len(x) < min_samples:
            continue
        dx, dy = np.diff(x), np.diff(y)
        if dx.std() < 0.05 or dy.std() < 0.05:
            continue
        r = float(np.corrcoef(dx, dy)[0, 1])
        best = r if not np.isfinite(best) else max(best, r)
    return best


def footage_match(a: np.ndarray, b: np.ndarray, side: int = SIDE, max_shift: int = MAX_SHIFT,
                  min_samples: int = MIN_SAMPLES) -> float:
    """How surely two signatures are the same footage: the best, over the 8 turns and flips of `b` and shifts of
    up to `max_shift` samples, of the smaller of the picture and the change agreements (at most 1). NaN where it
    cannot be told: fewer than `min_samples` samples in common, or a picture that never changes. Where the mean
    levels change unlike each other (`level_agreement` under 0.5) that agreement is returned at once."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != side * side or b.shape[1] != side * side:
        return float("nan")
    level = level_agreement(a, b, max_shift, min_samples)
    if np.isfinite(level) and level < 0.5:
        return level
    best = float("nan")
    for bt in _dihedral(b, side):
        for shift in range(-max_shift, max_shift + 1):
            x, y = _shifted(a, bt, shift)
            if len(x) < min_samples:
                continue
            change = _change_agreement(x, y)
            if not np.isfinite(change):
                continue
            score = min(_picture_agreement(x, y), change)
            if not np.isfinite(best) or score > best:
                best = score
    return best


MIN_KEYFRAMES = 3  # keyframes (and different pictures among them) a piece must share with the longer clip
MAX_KEYFRAMES = 20_000  # an all-intra clip (every frame a keyframe: MJPEG, ProRes) longer than 11 min at 30 fps
# keeps none: its row would be megabytes that every other clip's run reads


def keyframe_hashes(t_s: np.ndarray, intensity: np.ndarray, keyframes: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(times s, hashes int64) of the keyframes whose thumbnail has detail (spread of at least `_FLAT` grey levels:
    a black or covered frame is anybody's): a hash of the thumbnail's exact bytes and shape. Empty without
    keyframes, where the track's arrays do not line up, or past `MAX_KEYFRAMES` keyframes."""
    import hashlib

    t = np.asarray(t_s, np.float64)
    imgs = np.asarray(intensity)
    if keyframes is None or imgs.ndim != 3 or len(imgs) != len(t) or len(np.asarray(keyframes)) != len(t):
        return np.zeros(0), np.zeros(0, np.int64)
    times, hashes = [], []
    rows = np.flatnonzero(np.asarray(keyframes, bool) & np.isfinite(t))
    if len(rows) > MAX_KEYFRAMES:
        return np.zeros(0), np.zeros(0, np.int64)
    for i in rows:
        img = np.ascontiguousarray(imgs[i]).astype(np.uint8)
        if img.size == 0 or float(img.std()) < _FLAT:
            continue
        digest = hashlib.blake2b(img.tobytes() + np.asarray(img.shape, np.int64).tobytes(), digest_size=8).digest()
        times.append(t[i])
        hashes.append(int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF)  # fits Parquet's int64
    return np.asarray(times, np.float64), np.asarray(hashes, np.int64)


def within(inner_t: np.ndarray, inner_h: np.ndarray, inner_s: float, outer_t: np.ndarray, outer_h: np.ndarray,
           outer_s: float, tol_s: float = 0.02) -> float | None:
    """Where (s into the longer clip) a clip of `inner_s` seconds, with keyframe hashes (`keyframe_hashes`) at
    times `inner_t`, lies inside one of `outer_s` seconds, or None. It does when it is shorter (by more than
    `durations_agree` allows: clips of one length are `footage_match`'s), and every one of its keyframes with
    detail has its picture in the longer clip at one offset (within `tol_s`), with at least `MIN_KEYFRAMES` of
    them and as many different pictures; the offset puts the piece inside the longer clip."""
    it, ih = np.asarray(inner_t, np.float64), np.asarray(inner_h, np.int64)
    ot, oh = np.asarray(outer_t, np.float64), np.asarray(outer_h, np.int64)
    if not (np.isfinite(inner_s) and np.isfinite(outer_s)) or durations_agree(inner_s, outer_s) \
            or inner_s >= outer_s or len(it) != len(ih) or len(ot) != len(oh):
        return None
    if len(ih) < MIN_KEYFRAMES or len(np.unique(ih)) < MIN_KEYFRAMES or not np.isfinite(it).all():
        return None
    at: dict[int, list[float]] = {}
    for t, h in zip(ot, oh):
        at.setdefault(int(h), []).append(float(t))
    if any(int(h) not in at for h in ih):
        return None
    for offset in (t - it[0] for t in at[int(ih[0])]):  # each place the first keyframe's picture comes
        if offset < -tol_s or offset + inner_s > outer_s + max(tol_s, 0.5):
            continue
        if all(any(abs(t - (ti + offset)) <= tol_s for t in at[int(h)]) for ti, h in zip(it, ih)):
            return float(max(offset, 0.0))
    return None
