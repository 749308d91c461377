"""Segment a clip with three boundary detectors that have different blind spots, fused into one boundary set.

- motion: change in the smoothed flow magnitude and direction histogram (sees tempo changes; blind to a new
  scene with the same motion),
- appearance: cosine change of the mean scene embedding before/after each frame (sees a new view or tool;
  blind to a new motion in the same view; fooled by head turns),
- statistical: kernel change points (`ruptures` KernelCPD, rbf) on a standardised stack of low-dimensional
  features at 1-s resolution (sees distribution shifts the two window tests miss).

Fusion: candidates within `tolerance_s` are merged (strength-weighted position); a boundary needs two
detectors, or one with a strong peak. Segment length: at least `min_len_s` (default 2 s; shorter segments
lose their weakest boundary) and at most `max_len_s` (default 6 s, about the seeds' 5-s segments; longer ones are split evenly), so the
segments cover [0, n) exactly, without gaps or overlaps.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks

SEGMENT_SCHEMA = {
    "segment_idx": pl.Int64,
    "start_frame": pl.Int64,
    "end_frame": pl.Int64,
    "start_s": pl.Float64,
    "end_s": pl.Float64,
    "n_frames": pl.Int64,
    "votes": pl.Int64,
    "detectors": pl.Utf8,
}


def fill_nonfinite(x: np.ndarray) -> np.ndarray:
    """A float64 copy with NaN / inf entries replaced by linear interpolation in time between the finite values
    of their column (held at the ends; 0 in a column without any): a frame a model could not measure is not
    a change point."""
    x = np.array(x, np.float64)
    flat = x.reshape(len(x), -1)
    bad = ~np.isfinite(flat)
    if not bad.any():
        return x
    idx = np.arange(len(flat))
    for j in np.flatnonzero(bad.any(axis=0)):
        ok = ~bad[:, j]
        flat[:, j] = np.interp(idx, idx[ok], flat[ok, j]) if ok.any() else 0.0
    return flat.reshape(x.shape)


def _zscore(x: np.ndarray) -> np.ndarray:
    """Columns to zero mean, unit std. A column varying by less than float32 resolution noise (std below 1e-6 of
    its magnitude: a static clip's repeated frames) is only centred: its jitter must not become unit noise."""
    s = x.std(axis=0)
    scale = np.abs(x).max(axis=0, initial=0.0)
    return (x - x.mean(axis=0)) / np.where(s > np.maximum(1e-6 * scale, 1e-12), s, 1.0)


def window_novelty(x: np.ndarray, half: int, metric: str = "euclidean") -> np.ndarray:
    """Per frame, the distance between the mean of `x` over the `half` frames before and after it."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = len(x)
    c = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    out = np.zeros(n)
    for t in range(1, n):
        a0, b1 = max(0, t - half), min(n, t + half)
        before = (c[t] - c[a0]) / (t - a0)
        after = (c[b1] - c[t]) / (b1 - t)
        if metric == "cosine":
            den = np.linalg.norm(before) * np.linalg.norm(after)
            out[t] = 1.0 - float(before @ after / den) if den > 0 else 0.0
        else:
            out[t] = float(np.linalg.norm(before - after))
    return out


def _peaks(novelty: np.ndarray, min_dist: int) -> tuple[np.ndarray, np.ndarray]:
    """Peaks standing out from the curve (prominence > 1 robust std above the median), with z-scored strength.

    The robust std has a floor of 1e-6: novelty is in z-units (motion) or cosine distance (appearance), where
    real changes are >= 1e-3, so a curve of float jitter (a static clip) has no peaks instead of scale-free ones."""
    med = np.median(novelty)
    mad = np.median(np.abs(novelty - med)) * 1.4826 + 1e-6
    z = (novelty - med) / mad
    idx, _ = find_peaks(z, height=1.5, distance=max(1, min_dist), prominence=1.0)
    return idx, z[idx]


def motion_boundaries(flow_mag: np.ndarray, dir_hist: np.ndarray | None, fps: float, window_s: float = 2.0,
                      min_len_s: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    half = max(2, int(round(window_s * fps)))
    feats = [np.log1p(np.maximum(fill_nonfinite(flow_mag), 0.0) * 1000.0)[:, None]]
    if dir_hist is not None and len(dir_hist):
        feats.append(fill_nonfinite(dir_hist))
    x = _zscore(uniform_filter1d(np.hstack(feats), size=max(1, int(fps)), axis=0))
    return _peaks(window_novelty(x, half), int(min_len_s * fps))


def appearance_boundaries(scene_emb: np.ndarray, fps: float, window_s: float = 2.0,
                          min_len_s: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    half = max(2, int(round(window_s * fps)))
    return _peaks(window_novelty(fill_nonfinite(scene_emb), half, "cosine"), int(min_len_s * fps))


def statistical_boundaries(feats: np.ndarray, fps: float, min_len_s: float = 2.0,
                           penalty: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """KernelCPD (rbf) on 1-s means of standardised features; boundaries back in frames, unit strength."""
    import ruptures as rpt

    step = max(1, int(round(fps)))
    n = len(feats)
    nb = n // step
    min_size = max(2, int(min_len_s))
    if nb < max(4, 2 * min_size):  # no room for two segments of min_size (ruptures raises on too short a signal)
        return np.zeros(0, np.int64), np.zeros(0)
    x = _zscore(fill_nonfinite(feats[: nb * step]).reshape(nb, step, -1).mean(axis=1))
    pen = penalty if penalty is not None else 2.0 * np.log(nb)
    bkps = rpt.KernelCPD(kernel="rbf", min_size=min_size).fit(x).predict(pen=pen)
    idx = np.asarray([b * step for b in bkps if b < nb], np.int64)
    return idx, np.full(len(idx), 2.0)


def fuse_boundaries(candidates: dict[str, tuple[np.ndarray, np.ndarray]], n_frames: int, fps: float,
                    min_len_s: float = 2.0, max_len_s: float = 6.0, tolerance_s: float = 1.0,
                    strong_z: float = 4.0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Merge detector candidates -> (boundaries (frames, sorted, excl. 0 and n), votes, detector names)."""
    pts = sorted((int(i), float(s), name) for name, (idx, st) in candidates.items() for i, s in zip(idx, st))
    tol = max(1, int(round(tolerance_s * fps)))
    groups: list[list[tuple[int, float, str]]] = []
    for p in pts:
        if groups and p[0] - groups[-1][-1][0] <= tol:
            groups[-1].append(p)
        else:
            groups.append([p])
    bounds, votes, names = [], [], []
    for g in groups:
        dets = sorted({d for _, _, d in g})
        strength = max(s for _, s, _ in g)
        if len(dets) >= 2 or strength >= strong_z:
            w = np.array([max(s, 1e-3) for _, s, _ in g])
            bounds.append(int(round(np.average([i for i, _, _ in g], weights=w))))
            votes.append(len(dets) * 10 + min(9, int(strength)))
            names.append("+".join(dets))
    b = np.asarray(bounds, np.int64)
    v = np.asarray(votes, np.float64)
    keep = (b > 0) & (b < n_frames)
    b, v, names = b[keep], v[keep], [nm for nm, k in zip(names, keep) if k]
    min_len = max(1, int(round(min_len_s * fps)))
    while len(b):
        edges = np.concatenate([[0], b, [n_frames]])
        lens = np.diff(edges)
        short = np.flatnonzero(lens < min_len)
        if not len(short):
            break
        s = short[0]
        # drop the weaker of the boundaries around the short segment
        cand = [j for j in (s - 1, s) if 0 <= j < len(b)]
        j = min(cand, key=lambda k: v[k])
        b, v = np.delete(b, j), np.delete(v, j)
        names.pop(j)
    out_b, out_n = [], []
    max_len = max(min_len, int(round(max_len_s * fps)))
    edges = np.concatenate([[0], b, [n_frames]])
    for a, z, nm in zip(edges[:-1], edges[1:], [*names, ""]):
        pieces = int(np.ceil((z - a) / max_len))
        for k in range(1, pieces):
            out_b.append(int(a + round(k * (z - a) / pieces)))
            out_n.append("max-length")
        if z < n_frames:
            out_b.append(int(z))
            out_n.append(nm)
    order = np.argsort(out_b, kind="stable")
    return np.asarray(out_b, np.int64)[order], np.zeros(len(out_b)), [out_n[i] for i in order]


def segment_clip(flow_mag: np.ndarray, dir_hist: np.ndarray | None, scene_emb: np.ndarray | None, fps: float,
                 times_s: np.ndarray | None = None, min_len_s: float = 2.0, max_len_s: float = 6.0,
                 tolerance_s: float = 1.0) -> pl.DataFrame:
    """Segments covering frames [0, n) with fixed columns (SEGMENT_SCHEMA); no rows for a clip without frames.
    NaN / inf in the signals are interpolated over (`fill_nonfinite`)."""
    n = len(flow_mag)
    if n == 0:
        return pl.DataFrame(schema=SEGMENT_SCHEMA)
    t = np.asarray(times_s, np.float64) if times_s is not None else np.arange(n) / fps
    cands: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if n >= 4:
        flow_mag = np.maximum(fill_nonfinite(flow_mag), 0.0)
        dir_hist = fill_nonfinite(dir_hist) if dir_hist is not None else None
        cands["motion"] = motion_boundaries(flow_mag, dir_hist, fps, min_len_s=min_len_s)
        stat_feats = [np.log1p(flow_mag * 1000.0)[:, None]]
        if dir_hist is not None:
            stat_feats.append(dir_hist)
        if scene_emb is not None and len(scene_emb) == n:
            scene_emb = fill_nonfinite(scene_emb)
            cands["appearance"] = appearance_boundaries(scene_emb, fps, min_len_s=min_len_s)
            e = scene_emb - np.mean(scene_emb, axis=0)
            u, sv, _ = np.linalg.svd(e, full_matrices=False)
            sv = np.where(sv > 1e-6 * np.linalg.norm(scene_emb), sv, 0.0)  # float jitter of a static view: no axis
            stat_feats.append(u[:, :4] * sv[:4])
        cands["statistical"] = statistical_boundaries(np.hstack(stat_feats), fps, min_len_s=min_len_s)
    b, _, names = fuse_boundaries(cands, n, fps, min_len_s, max_len_s, tolerance_s)
    edges = np.concatenate([[0], b, [n]]).astype(np.int64)
    step = float(np.median(np.diff(t))) if n > 1 else 1.0 / fps
    t_end = np.append(t, t[-1] + step)
    dets = ["start", *names]
    return pl.DataFrame(
        {
            "segment_idx": np.arange(len(edges) - 1),
            "start_frame": edges[:-1],
            "end_frame": edges[1:],
            "start_s": t_end[edges[:-1]],
            "end_s": t_end[edges[1:]],
            "n_frames": np.diff(edges),
            "votes": [d.count("+") + 1 if d not in ("start", "max-length") else 0 for d in dets],
            "detectors": dets,
        },
        schema=SEGMENT_SCHEMA,
    )


def check_coverage(segs: pl.DataFrame, n_frames: int) -> list[str]:
    """Problems with a segmentation (empty list = covers [0, n) exactly, no gaps, no overlaps)."""
    problems = []
    if segs.height == 0:
        return [] if n_frames == 0 else ["no segments"]
    s = segs.sort("start_frame")
    if s["start_frame"][0] != 0:
        problems.append(f"first segment starts at frame {s['start_frame'][0]}, not 0")
    if s["end_frame"][-1] != n_frames:
        problems.append(f"last segment ends at {s['end_frame'][-1]}, not {n_frames}")
    gaps = (s["start_frame"][1:].to_numpy() != s["end_frame"][:-1].to_numpy()).sum()
    if gaps:
        problems.append(f"{gaps} gaps/overlaps between consecutive segments")
    if (s["n_frames"] <= 0).any():
        problems.append("empty segments")
    return problems
