"""Property-based tests: every per-clip science function survives the degenerate input real footage produces
(constant and almost-constant signals, NaN / inf, 0 / 1 / 2 frames, one segment, tiny frames) and keeps its
contract (shapes, dtypes, column order, finite outputs or NaN where documented, values in range).

Clustering and the cross-clip stage: test_science_clustering_properties.py.
"""

from __future__ import annotations

import cv2
import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handclust_assets.science import descriptors
from handclust_assets.science.anomaly import (
    SCORE_SCHEMA,
    SPAN_SCHEMA,
    detect_anomalies,
    ema,
    otsu_threshold,
    recurrence_typicality,
    typicality,
)
from handclust_assets.science.egomotion import egomotion, motion_layout
from handclust_assets.science.flow import compute_flow
from handclust_assets.science.hands import (
    ABSENT,
    DETECTED,
    HAND_DIM,
    TRACKED,
    hand_openness,
    hand_segment_vectors,
    iou,
    propagate_csrt,
    tracks_from_detections,
)
from handclust_assets.science.landmark_types import N_HAND_KEYPOINTS, HandDetection, HandFrames
from handclust_assets.science.metrics import (
    ENTROPY_SCHEMA,
    cluster_alignment_tau,
    cross_clip_entropy,
    edit_score,
    gt_scores,
    kendall_tau_alignment,
    mof_hungarian,
    phase_scores,
    quality_row,
)
from handclust_assets.science.pose import FRAME_FEATURES, POSE_DIM, pose_frame_features, pose_segment_vectors
from handclust_assets.science.segmentation import (
    SEGMENT_SCHEMA,
    check_coverage,
    fuse_boundaries,
    segment_clip,
    statistical_boundaries,
    window_novelty,
)
from handclust_assets_tests.science_strategies import (
    FPS,
    examples,
    labels,
    matrices,
    segment_tables,
    signals,
)

FAST = examples(40)
# relative jitter of a "static" signal: none, almost constant, a few ulps, float32 model noise on repeated frames
JITTER = {"constant": 0.0, "almost_constant": 1e-12, "ulp_jitter": 1e-16, "float32_jitter": 1e-7}
SLOW = examples(15)


def finite_or_nan(x: np.ndarray) -> bool:
    """No +-inf anywhere (NaN allowed)."""
    return not np.isinf(np.asarray(x, np.float64)).any()


# ---------------------------------------------------------------- anomaly (issue 9: Otsu on an almost-constant score)


@FAST
@given(signals(max_len=60))
def test_otsu_threshold_lies_within_the_finite_data(x: np.ndarray) -> None:
    t = otsu_threshold(x)
    fin = x[np.isfinite(x)]
    if len(fin) == 0:
        assert np.isnan(t)
    else:
        assert fin.min() <= t <= fin.max()


def test_otsu_threshold_on_ulp_spread_scores() -> None:
    """The issue-9 crash: a range of a few ulps cannot hold 128 bins (numpy: 'Too many bins for data range')."""
    for x in ([0.5, 0.5 + 1e-16], [1.0, 1.0 + 2.3e-16, 1.0], [100.0, 100.0 + 1.5e-14]):
        t = otsu_threshold(np.asarray(x))
        assert min(x) <= t <= max(x)


@pytest.mark.parametrize(("seed", "n", "d"), [(7, 10, 384), (11, 3, 8), (15, 10, 768)])
def test_detect_anomalies_on_a_static_clip_issue_9(seed: int, n: int, d: int) -> None:
    """Issue 9 as it happened: a short static clip whose window embeddings are identical float32 vectors. Their
    typicality is 1 up to a few ulps, so the score spans a few ulps and numpy raised 'Too many bins for data
    range' (these seeds did, before the fix)."""
    emb = np.tile(np.random.default_rng(seed).normal(size=d).astype(np.float32), (n, 1))
    scores, spans = detect_anomalies(emb, np.arange(n, dtype=np.float64))
    assert scores.height == n and spans.height == 0 and not scores["is_anomaly"].any()
    assert np.isfinite(scores["theta_on"].to_numpy()).all()


@FAST
@given(matrices(max_rows=40, max_cols=12), st.sampled_from((0.0, 3.0, 20.0)), st.sampled_from((0.05, 0.15, 1.0)))
def test_recurrence_typicality_is_a_cosine_or_nan(emb: np.ndarray, exclude_s: float, share: float) -> None:
    n = len(emb)
    typ = recurrence_typicality(emb, np.arange(float(n)), share=share, exclude_s=exclude_s)
    assert typ.shape == (n,)
    ok = np.isfinite(emb).all(axis=1)
    assert np.isnan(typ[~ok]).all(), "a window with a non-finite embedding has no typicality"
    assert np.isfinite(typ[ok]).all() and np.all(np.abs(typ[ok]) <= 1 + 1e-9)


@FAST
@given(matrices(min_rows=2, max_rows=30, max_cols=8, nonfinite=False))
def test_recurrence_typicality_over_every_other_window_is_the_row_mean_without_itself(emb: np.ndarray) -> None:
    """No exclusion and every window a partner: the seed's row mean, the window's own similarity taken out."""
    n = len(emb)
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    own = (unit * unit).sum(axis=1)
    everyone = recurrence_typicality(emb, np.arange(float(n)), share=1.0, exclude_s=0.0, min_neighbours=n)
    np.testing.assert_allclose(everyone, (n * typicality(emb) - own) / (n - 1), atol=1e-9)


@FAST
@given(matrices(min_rows=1, max_rows=40, max_cols=8), st.sampled_from((0.0, 3.0, 20.0)),
       st.sampled_from((0.05, 0.15, 1.0)))
def test_recurrence_typicality_is_each_window_against_its_own_partners(emb: np.ndarray, exclude_s: float,
                                                                        share: float) -> None:
    """The row-block computation (flat memory on long clips) against the definition, one window at a time: the
    mean of its k most similar partners more than `reach` away, else its row mean with itself."""
    n = len(emb)
    typ = recurrence_typicality(emb, np.arange(float(n)), share=share, exclude_s=exclude_s)
    ok = np.flatnonzero(np.isfinite(emb).all(axis=1))
    if len(ok) == 0:
        assert np.isnan(typ).all()
        return
    unit = emb[ok] / np.maximum(np.linalg.norm(emb[ok], axis=1, keepdims=True), 1e-12)
    t = ok.astype(np.float64)
    reach = min(exclude_s, (t.max() - t.min()) / 3) if len(ok) > 1 else 0.0
    k = min(len(ok), max(5, int(round(share * len(ok)))))
    for i in range(len(ok)):
        sims = unit @ unit[i]
        partners = np.sort(sims[(np.abs(t - t[i]) > reach) & (np.arange(len(ok)) != i)])[::-1][:k]
        want = partners.mean() if len(partners) else sims.mean()
        assert abs(typ[ok[i]] - want) < 1e-9


def test_recurrence_typicality_memory_stays_flat_on_long_clips() -> None:
    """1-s windows: 9,000 windows (2.5 h) took 2.0 GB at once (the n x n similarity and its masks), now blocks
    of rows: three times the windows must not cost three times the memory (measured x1.0; before, x9)."""
    import tracemalloc

    def peak(n: int) -> int:
        emb = np.random.default_rng(n).normal(size=(n, 16))
        tracemalloc.start()
        try:
            recurrence_typicality(emb, np.arange(float(n)))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert peak(6000) < 2.0 * peak(2000)


@FAST
@given(signals(max_len=40), st.sampled_from((0.1, 0.3, 1.0)))
def test_ema_keeps_length_and_carries_over_gaps(x: np.ndarray, alpha: float) -> None:
    y = ema(x, alpha)
    assert y.shape == x.shape
    fin = np.isfinite(x)
    if fin.any():  # a non-finite sample does not move the average: NaN before the first finite one only
        first = int(np.argmax(fin))
        assert np.isfinite(y[first:]).all() and np.isnan(y[:first]).all()
        assert np.nanmin(x[fin]) - 1e-9 * abs(np.nanmin(x[fin])) <= y[first:].min()
        assert y[first:].max() <= np.nanmax(x[fin]) + 1e-9 * abs(np.nanmax(x[fin]))
    else:
        assert np.isnan(y).all()


@FAST
@given(matrices(max_rows=40, max_cols=12), st.sampled_from((1.0, 0.5, 2.0)))
def test_detect_anomalies_contract(emb: np.ndarray, step: float) -> None:
    n = len(emb)
    t = np.arange(n) * step
    scores, spans = detect_anomalies(emb, t, t + step)
    assert scores.schema == pl.Schema(SCORE_SCHEMA) and spans.schema == pl.Schema(SPAN_SCHEMA)
    assert scores.height == n
    if n == 0:
        assert spans.height == 0
        return
    ok = np.isfinite(emb).all(axis=1)
    raw = scores["raw_score"].to_numpy()
    assert np.isnan(raw[~ok]).all(), "a window with a non-finite embedding has no score"
    assert np.all((raw[ok] >= -1e-9) & (raw[ok] <= 2 + 1e-9))
    on, off = scores["theta_on"].to_numpy(), scores["theta_off"].to_numpy()
    if ok.any():
        sm = scores["smoothed"].to_numpy()
        fin = sm[np.isfinite(sm)]
        assert np.isfinite(on).all() and np.isfinite(off).all()
        assert fin.min() - 1e-12 <= on[0] <= fin.max() + 1e-12
    else:
        assert spans.height == 0 and not scores["is_anomaly"].any()
    s0, s1 = spans["start_s"].to_numpy(), spans["end_s"].to_numpy()
    assert np.all(s0 < s1) and np.all(s0 >= t[0]) and np.all(s1 <= t[-1] + step + 1e-9)
    assert np.all(s1[:-1] <= s0[1:]), "spans are sorted and disjoint"
    assert spans["span_idx"].to_list() == list(range(spans.height))
    assert np.isfinite(spans["peak_score"].to_numpy()).all() and np.isfinite(spans["mean_score"].to_numpy()).all()


@FAST
@given(st.integers(1, 30), st.integers(1, 12), st.sampled_from(tuple(JITTER)),
       st.integers(0, 2**32 - 1))
def test_detect_anomalies_finds_nothing_in_a_homogeneous_clip(n: int, d: int, kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=d)
    jitter = JITTER[kind]
    emb = base * (1 + jitter * rng.normal(size=(n, d)))
    scores, spans = detect_anomalies(emb, np.arange(float(n)))
    assert spans.height == 0 and not scores["is_anomaly"].any()


# ---------------------------------------------------------------- descriptors


@FAST
@given(st.data(), matrices(max_rows=30, max_cols=8), st.booleans())
def test_describe_mean_is_finite_and_unit_or_zero(data: st.DataObject, emb: np.ndarray, normalise: bool) -> None:
    segs = data.draw(segment_tables(len(emb)))
    out = descriptors.describe_mean(emb, segs, normalise)
    assert out.shape == (segs.height, emb.shape[1]) and out.dtype == np.float32
    assert np.isfinite(out).all()
    if normalise:
        norms = np.linalg.norm(out, axis=1)
        assert np.all((np.abs(norms - 1) < 1e-4) | (norms == 0))


def test_describe_mean_of_no_segments() -> None:
    segs = pl.DataFrame(schema={"start_frame": pl.Int64, "end_frame": pl.Int64})
    assert descriptors.describe_mean(np.ones((5, 3)), segs).shape == (0, 3)


@FAST
@given(st.data(), matrices(max_rows=12, max_cols=6), st.integers(1, 40))
def test_describe_windows_finite_or_nan_without_windows(data: st.DataObject, win: np.ndarray, n: int) -> None:
    segs = data.draw(segment_tables(n))
    t0 = np.arange(len(win)) * 2.0
    out = descriptors.describe_windows(win, t0, t0 + 4.0, segs)
    assert out.shape == (segs.height, win.shape[1]) and out.dtype == np.float32
    if np.isfinite(win).all(axis=1).any():
        assert np.isfinite(out).all()
    else:  # no usable window: no evidence (NaN rows; the cross-clip stage then skips the modality)
        assert np.isnan(out).all()


@FAST
@given(st.data(), matrices(max_rows=30, max_cols=6, nonnegative=True))
def test_describe_tools_is_a_histogram(data: st.DataObject, scores: np.ndarray) -> None:
    segs = data.draw(segment_tables(len(scores)))
    out = descriptors.describe_tools(scores, segs)
    assert out.shape == (segs.height, scores.shape[1]) and np.isfinite(out).all() and (out >= 0).all()
    sums = out.sum(axis=1)
    assert np.all((np.abs(sums - 1) < 1e-4) | (sums == 0))


@FAST
@given(st.data(), matrices(max_rows=30, max_cols=4))
def test_describe_stats_finite(data: st.DataObject, x: np.ndarray) -> None:
    segs = data.draw(segment_tables(len(x)))
    out = descriptors.describe_stats(x, segs)
    assert out.shape == (segs.height, 2 * x.shape[1]) and np.isfinite(out).all()
    assert (out[:, x.shape[1]:] >= 0).all()
    one = descriptors.describe_stats(x[:, 0], segs)
    assert one.shape == (segs.height, 2)


@FAST
@given(st.data(), matrices(min_cols=3, max_cols=3, max_rows=30, nonnegative=True))
def test_describe_rhythm_finite(data: st.DataObject, x: np.ndarray) -> None:
    segs = data.draw(segment_tables(len(x)))
    out = descriptors.describe_rhythm(x[:, 0], np.clip(x[:, 1], 0, 1), x[:, 2], segs)
    assert out.shape == (segs.height, 4) and np.isfinite(out).all()
    assert (out[:, 0] >= 0).all()


@FAST
@given(st.data(), matrices(min_cols=3, max_cols=3, max_rows=30, nonnegative=True), st.integers(0, 12))
def test_describe_egomotion_finite_with_shares(data: st.DataObject, x: np.ndarray, cells: int) -> None:
    segs = data.draw(segment_tables(len(x)))
    layout = np.abs(data.draw(matrices(min_rows=len(x), max_rows=len(x), min_cols=max(cells, 1),
                                       max_cols=max(cells, 1)))) if cells else None
    out = descriptors.describe_egomotion(x[:, 0], x[:, 1], x[:, 2], segs, layout)
    extra = 0 if layout is None or len(layout) == 0 else layout.shape[1]
    assert out.shape == (segs.height, 6 + extra) and np.isfinite(out).all()
    if extra:
        share = out[:, 6:]
        assert (share >= 0).all() and np.all((np.abs(share.sum(1) - 1) < 1e-4) | (share.sum(1) == 0))


@FAST
@given(st.data(), signals(max_len=30, nonnegative=True), st.integers(1, 8))
def test_describe_flow_finite(data: st.DataObject, mag: np.ndarray, bins: int) -> None:
    segs = data.draw(segment_tables(len(mag)))
    hist = np.abs(data.draw(matrices(min_rows=len(mag), max_rows=len(mag), min_cols=bins, max_cols=bins)))
    out = descriptors.describe_flow(mag, hist, segs)
    assert out.shape == (segs.height, bins + 3) and np.isfinite(out).all()


# ---------------------------------------------------------------- segmentation


def _clip_signals(data: st.DataObject, n: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    mag = data.draw(signals(min_len=n, max_len=n, nonnegative=True, scales=(1e-3, 1e-12, 1.0)))
    dirs = data.draw(st.none() | matrices(min_rows=n, max_rows=n, min_cols=8, max_cols=8, nonnegative=True))
    emb = data.draw(st.none() | matrices(min_rows=n, max_rows=n, min_cols=2, max_cols=12))
    return mag, dirs, emb


@SLOW
@given(st.data(), st.integers(0, 90), FPS, st.sampled_from((0.5, 2.0, 5.0)), st.sampled_from((1.0, 6.0, 30.0)))
def test_segment_clip_covers_every_frame_exactly(data: st.DataObject, n: int, fps: float, min_len_s: float,
                                                 max_len_s: float) -> None:
    mag, dirs, emb = _clip_signals(data, n)
    segs = segment_clip(mag, dirs, emb, fps, min_len_s=min_len_s, max_len_s=max_len_s)
    assert segs.schema == pl.Schema(SEGMENT_SCHEMA)
    assert check_coverage(segs, n) == []
    assert segs["segment_idx"].to_list() == list(range(segs.height))
    assert (segs["n_frames"] == segs["end_frame"] - segs["start_frame"]).all()
    max_len = max(max(1, round(min_len_s * fps)), round(max_len_s * fps))
    assert (segs["n_frames"] <= max_len).all()
    s0, s1 = segs["start_s"].to_numpy(), segs["end_s"].to_numpy()
    assert np.isfinite(s0).all() and np.isfinite(s1).all() and np.all(s0 < s1)
    assert np.all(s1[:-1] == s0[1:])


@SLOW
@given(st.integers(1, 90), FPS, st.sampled_from(tuple(JITTER)),
       st.integers(0, 2**32 - 1))
def test_a_homogeneous_clip_gets_only_length_splits(n: int, fps: float, kind: str, seed: int) -> None:
    """A static clip (a GIF loop, a parked camera: the same frame over and over, up to float noise) has no
    content boundaries; only the maximum segment length cuts it."""
    rng = np.random.default_rng(seed)
    jitter = JITTER[kind]
    mag = 1e-3 * (1 + jitter * rng.normal(size=n))
    dirs = np.tile(rng.dirichlet(np.ones(8)), (n, 1)) * (1 + jitter * rng.normal(size=(n, 8)))
    emb = np.tile(rng.normal(size=16), (n, 1)) * (1 + jitter * rng.normal(size=(n, 16)))
    segs = segment_clip(mag.astype(np.float32), dirs.astype(np.float32), emb.astype(np.float32), fps, max_len_s=6.0)
    assert check_coverage(segs, n) == []
    assert set(segs["detectors"].to_list()) <= {"start", "max-length"}, segs


def test_segment_clip_of_no_frames_has_no_segments() -> None:
    segs = segment_clip(np.zeros(0), None, None, 5.0)
    assert segs.height == 0 and segs.schema == pl.Schema(SEGMENT_SCHEMA)
    assert check_coverage(segs, 0) == []


@FAST
@given(matrices(max_rows=40, max_cols=4), st.integers(1, 6), st.sampled_from(("euclidean", "cosine")))
def test_window_novelty_is_finite_and_nonnegative(x: np.ndarray, half: int, metric: str) -> None:
    x = np.where(np.isfinite(x), x, 0.0)  # callers clean non-finite values first (see segment_clip)
    out = window_novelty(x, half, metric)
    assert out.shape == (len(x),) and np.isfinite(out).all() and (out >= -1e-9).all()


@FAST
@given(st.data(), st.integers(0, 120), FPS, st.sampled_from((0.5, 2.0, 6.0)), st.sampled_from((1.0, 6.0)))
def test_fuse_boundaries_are_sorted_inside_and_bounded(data: st.DataObject, n: int, fps: float, min_len_s: float,
                                                       max_len_s: float) -> None:
    cands = {}
    for name in data.draw(st.sets(st.sampled_from(("motion", "appearance", "statistical")))):
        idx = np.asarray(data.draw(st.lists(st.integers(-5, n + 5), max_size=8)), np.int64)
        cands[name] = (idx, np.asarray(data.draw(st.lists(st.floats(0, 10), min_size=len(idx), max_size=len(idx)))))
    b, _, names = fuse_boundaries(cands, n, fps, min_len_s, max_len_s)
    assert len(names) == len(b)
    assert np.all(np.diff(b) > 0) and np.all((b > 0) & (b < n))
    lens = np.diff(np.concatenate([[0], b, [n]]))
    assert (lens <= max(max(1, round(min_len_s * fps)), round(max_len_s * fps))).all()


@FAST
@given(matrices(max_rows=60, max_cols=4), st.sampled_from((1.0, 5.0)), st.sampled_from((0.5, 2.0, 5.0, 12.0)))
def test_statistical_boundaries_inside_the_clip(x: np.ndarray, fps: float, min_len_s: float) -> None:
    x = np.where(np.isfinite(x), x, 0.0)
    idx, strength = statistical_boundaries(x, fps, min_len_s=min_len_s)
    assert len(idx) == len(strength) and np.all((idx > 0) & (idx < max(len(x), 1)))


# ---------------------------------------------------------------- optical flow and ego-motion


@st.composite
def frame_stacks(draw: st.DrawFn) -> list[np.ndarray]:
    n = draw(st.integers(0, 4))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    kind = draw(st.sampled_from(("noise", "constant", "shift", "sizes")))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = rng.integers(0, 256, (h + 4, w + 4, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        if kind == "noise":
            f = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        elif kind == "constant":
            f = np.full((h, w, 3), 128, np.uint8)
        elif kind == "shift":
            f = base[i % 4 : i % 4 + h, :w]
        else:  # the frame size changes mid-clip (a broken stream)
            f = rng.integers(0, 256, (h + i, w, 3), dtype=np.uint8)
        out.append(f if draw(st.booleans()) else f[..., 0].copy())
    return out


@SLOW
@given(frame_stacks(), st.sampled_from(("dis", "farneback")), st.integers(1, 9))
def test_compute_flow_contract(frames: list[np.ndarray], method: str, bins: int) -> None:
    res = compute_flow(frames, grid=(8, 6), n_dir_bins=bins, method=method)
    n = len(frames)
    assert res.mag.shape == (n,) and res.dir_hist.shape == (n, bins) and res.field.shape == (n, 6, 8, 2)
    assert np.isfinite(res.mag).all() and (res.mag >= 0).all()
    assert np.isfinite(res.dir_hist).all() and np.isfinite(res.field.astype(np.float32)).all()
    sums = res.dir_hist.sum(axis=1)
    assert np.all((np.abs(sums - 1) < 1e-4) | (sums == 0))
    if n:
        assert res.mag[0] == 0 and not res.field[0].any()


@pytest.mark.parametrize(("h", "w", "dx", "dy"), [(180, 320, 3, 0), (24, 300, 3, 0), (24, 300, 0, 1), (12, 40, 1, 0),
                                                 (20, 20, 0, 1), (300, 24, 0, 3)])
def test_compute_flow_measures_frame_widths_on_thin_and_tiny_frames(h: int, w: int, dx: int, dy: int) -> None:
    """Thin strips and thumbnails (DIS segfaulted on 24 x 300 and 12 x 40) are stretched for DIS; the flow still
    comes back in frame widths of the frame itself. The crops are views (not contiguous: DIS asserted)."""
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.integers(0, 256, (h + 20, w + 20)).astype(np.uint8), (5, 5), 1.5)
    res = compute_flow([big[10 : 10 + h, 10 : 10 + w], big[10 - dy : 10 - dy + h, 10 - dx : 10 - dx + w]], grid=(8, 6))
    got = res.field[1].astype(np.float64).reshape(-1, 2).mean(axis=0)
    assert got == pytest.approx([dx / w, dy / w], abs=0.1 * max(dx, dy) / w + 1e-3)


def test_compute_flow_rejects_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown flow method"):
        compute_flow([], method="lucas")


@st.composite
def flow_fields(draw: st.DrawFn) -> np.ndarray:
    n, gh, gw = draw(st.integers(0, 4)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    x = draw(matrices(min_rows=n * gh * gw, max_rows=n * gh * gw, min_cols=2, max_cols=2,
                      scales=(1e-3, 1e-9, 1.0, 1e3)))
    return x.reshape(n, gh, gw, 2)


@FAST
@given(flow_fields())
def test_egomotion_contract(field: np.ndarray) -> None:
    n, gh, gw, _ = field.shape
    r = egomotion(field)
    for a in (r.camera_mag, r.residual_mag, r.ratio, r.inlier_frac):
        assert a.shape == (n,) and np.isfinite(a).all() and (a >= 0).all()
    assert (r.inlier_frac <= 1).all()
    assert r.affine.shape == (n, 2, 3) and np.isfinite(r.affine).all()
    assert r.residual_field.shape == field.shape and np.isfinite(r.residual_field.astype(np.float32)).all()


@FAST
@given(st.integers(1, 3), st.integers(3, 8), st.integers(3, 8), st.floats(-0.05, 0.05), st.floats(-0.05, 0.05))
def test_egomotion_explains_a_pure_pan_as_camera_motion(n: int, gh: int, gw: int, dx: float, dy: float) -> None:
    field = np.tile(np.asarray([dx, dy], np.float32), (n, gh, gw, 1))
    r = egomotion(field)
    mag = float(np.hypot(dx, dy))
    if mag > 1e-6:
        assert np.allclose(r.camera_mag, mag, rtol=1e-3, atol=1e-6)
    assert (r.residual_mag <= 1e-3 * mag + 1e-6).all()


@FAST
@given(flow_fields(), st.integers(1, 5), st.integers(1, 5))
def test_motion_layout_is_finite_for_any_grid(field: np.ndarray, cx: int, cy: int) -> None:
    out = motion_layout(field, (cx, cy))
    assert out.shape == (len(field), cx * cy) and np.isfinite(out).all() and (out >= 0).all()


# ---------------------------------------------------------------- pose


@st.composite
def pose_inputs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    n = draw(st.integers(0, 40))
    fps = draw(FPS)
    kind = draw(st.sampled_from(("random", "constant", "collapsed", "nan")))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kps = rng.uniform(0, 1, (n, 33, 4))
    if kind == "constant":
        kps[:] = kps[:1] if n else kps
    elif kind == "collapsed":  # every keypoint at one spot (a mis-detection): zero-length limbs and spans
        kps[..., :2] = 0.5
    elif kind == "nan":
        kps[rng.random((n, 33)) < 0.3] = np.nan
    det = {"all": np.ones(n, bool), "none": np.zeros(n, bool), "some": rng.random(n) < 0.5}[
        draw(st.sampled_from(("all", "none", "some")))]
    kps[~det] = np.nan
    t = np.arange(n) / fps
    if draw(st.booleans()) and n > 1:
        t[1] = t[0]  # a repeated timestamp (variable frame rate): dt = 0
    return kps.astype(np.float32), det, t, draw(st.sampled_from((0.5, 16 / 9, 1.0))), fps


@SLOW
@given(st.data(), pose_inputs())
def test_pose_features_and_segment_vectors(data: st.DataObject, inp: tuple) -> None:
    kps, det, t, aspect, fps = inp
    n = len(det)
    f = pose_frame_features(kps, det, t, aspect, fps)
    assert set(FRAME_FEATURES) <= set(f) and f["detected"].dtype == bool
    for k in FRAME_FEATURES:
        v = f[k]
        assert v.shape == (n,) and v.dtype == np.float32 and finite_or_nan(v), k
    assert np.all((f["bob_strength"] >= 0) & (f["bob_strength"] <= 1))
    assert np.all((f["upper_visibility"] >= 0) & (f["upper_visibility"] <= 1))
    for k in ("elbow_angle_l", "elbow_angle_r"):
        v = f[k][np.isfinite(f[k])]
        assert np.all((v >= 0) & (v <= np.pi + 1e-6))
    assert np.isnan(f["shoulder_span"][~det]).all()
    segs = data.draw(segment_tables(n))
    vec = pose_segment_vectors(f, segs)
    assert vec.shape == (segs.height, POSE_DIM) and vec.dtype == np.float32 and np.isfinite(vec).all()
    assert np.all((vec[:, 0] >= 0) & (vec[:, 0] <= 1))


def test_pose_features_reject_a_wrong_shape() -> None:
    with pytest.raises(ValueError, match="keypoints must be"):
        pose_frame_features(np.zeros((3, 17, 4)), np.ones(3, bool), np.arange(3.0), 1.0, 5.0)


# ---------------------------------------------------------------- hands


@st.composite
def hand_frames(draw: st.DrawFn, n: int | None = None) -> HandFrames:
    n = draw(st.integers(0, 12)) if n is None else n
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frames = []
    for _ in range(n):
        hands = []
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(("normal", "degenerate", "outside", "nan")))
            k = rng.uniform(0.2, 0.8, (N_HAND_KEYPOINTS, 3))
            if kind == "degenerate":
                k[:] = k[0]
            elif kind == "outside":
                k[..., :2] = k[..., :2] * 3 - 1  # partly beyond the frame
            elif kind == "nan":
                k[rng.random(N_HAND_KEYPOINTS) < 0.5] = np.nan
            box = np.asarray([np.nanmin(k[:, 0]), np.nanmin(k[:, 1]), np.nanmax(k[:, 0]), np.nanmax(k[:, 1])])
            score = draw(st.sampled_from((0.9, 0.5, float("nan"))))
            hands.append(HandDetection(draw(st.sampled_from(("Left", "Right"))), score, k.astype(np.float32),
                                       box.astype(np.float32)))
        frames.append(hands)
    return HandFrames(frames)


@FAST
@given(st.data(), hand_frames())
def test_hand_tracks_and_segment_vectors(data: st.DataObject, frames: HandFrames) -> None:
    n = len(frames)
    tr = tracks_from_detections(frames)
    assert tr.boxes.shape == (n, 2, 4) and tr.source.shape == (n, 2) and tr.keypoints.shape == (n, 2, 21, 3)
    assert np.array_equal(tr.n_detected, [min(2, len(h)) for h in frames.hands])
    b = tr.boxes[tr.source == DETECTED]
    b = b[np.isfinite(b)]
    assert np.all((b >= 0) & (b <= 1))
    assert 0 <= tr.coverage_detected <= tr.coverage <= 1
    opn = hand_openness(tr.keypoints, 16 / 9)
    assert opn.shape == (n, 2) and finite_or_nan(opn) and np.all(opn[np.isfinite(opn)] >= 0)
    segs = data.draw(segment_tables(n))
    vec = hand_segment_vectors(tr.boxes, tr.source, opn, np.arange(n) / 5.0, segs)
    assert vec.shape == (segs.height, HAND_DIM) and vec.dtype == np.float32 and np.isfinite(vec).all()
    assert np.all((vec[:, :5] >= 0) & (vec[:, :5] <= 1))


box_values = st.floats(-0.5, 1.5) | st.just(float("nan"))


@FAST
@given(st.lists(box_values, min_size=4, max_size=4), st.lists(box_values, min_size=4, max_size=4))
def test_iou_in_unit_interval_and_symmetric(a: list[float], b: list[float]) -> None:
    a, b = np.asarray(a), np.asarray(b)
    v = iou(a, b)
    assert 0.0 <= v <= 1.0 and v == pytest.approx(iou(b, a))


@examples(12)
@given(st.data(), st.integers(1, 8), st.sampled_from(((24, 32), (8, 8), (3, 5))))
def test_propagate_csrt_only_adds_boxes(data: st.DataObject, n: int, hw: tuple[int, int]) -> None:
    frames = data.draw(hand_frames(n))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, *hw, 3), dtype=np.uint8)
    tr = tracks_from_detections(frames)
    out = propagate_csrt(tr, images.__getitem__, max_gap_frames=data.draw(st.integers(0, 5)))
    det = tr.source == DETECTED
    assert np.array_equal(out.source == DETECTED, det)
    assert np.array_equal(out.boxes[det], tr.boxes[det], equal_nan=True)
    assert set(np.unique(out.source).tolist()) <= {ABSENT, DETECTED, TRACKED}
    tracked = out.boxes[out.source == TRACKED]
    assert np.isfinite(tracked).all() and np.all((tracked >= 0) & (tracked <= 1))
    assert out.coverage >= tr.coverage


# ---------------------------------------------------------------- metrics


@FAST
@given(st.data(), st.integers(0, 40))
def test_cross_clip_entropy_in_unit_interval(data: st.DataObject, n: int) -> None:
    lab = data.draw(labels(n))
    clips = np.asarray(data.draw(st.lists(st.sampled_from("abcde"), min_size=n, max_size=n)), dtype=object)
    df, s = cross_clip_entropy(lab, clips)
    assert df.schema == pl.Schema(ENTROPY_SCHEMA)
    ent = df["entropy"].to_numpy()
    assert np.all((ent >= 0) & (ent <= 1))
    assert df["size"].sum() == int((lab >= 0).sum()) and s["noise"] == int((lab < 0).sum()) and s["n"] == n
    assert s["k"] == len(np.unique(lab[lab >= 0]))
    assert np.isnan(s["mean_entropy"]) if s["k"] == 0 else 0 <= s["mean_entropy"] <= 1
    assert 0 <= s["multi_clip_share"] <= 1
    q = quality_row(lab)
    assert q["n"] == n and q["k"] == s["k"] and (np.isnan(q["noise_rate"]) if n == 0 else 0 <= q["noise_rate"] <= 1)


def test_entropy_of_an_evenly_mixed_cluster_is_one_never_more() -> None:
    """-(p log p).sum() / log k rounds to 1 + 4e-16 for some k (198 clips, one segment each): clipped to 1."""
    for k in (3, 6, 198, 199):
        df, _ = cross_clip_entropy(np.zeros(k, np.int64), np.arange(k))
        assert df["entropy"][0] == pytest.approx(1.0) and df["entropy"][0] <= 1.0


@FAST
@given(st.data(), st.integers(0, 40), st.booleans())
def test_phase_and_ground_truth_scores_in_range(data: st.DataObject, n: int, include_noise: bool) -> None:
    pred = data.draw(labels(n))
    gt = np.asarray(data.draw(st.lists(st.sampled_from(("dig", "walk", "idle")), min_size=n, max_size=n)), object)
    ph = phase_scores(pred, gt, include_noise)
    for k in ("nmi", "ari"):
        assert np.isnan(ph[k]) or -1 <= ph[k] <= 1
    mof, mapping = mof_hungarian(pred, gt)
    assert 0 <= mof <= 1 and all(k >= 0 for k in mapping) and len(set(mapping.values())) == len(mapping)
    seqs = np.asarray(data.draw(st.lists(st.sampled_from(("c1", "c2")), min_size=n, max_size=n)), object)
    s = gt_scores(pred, gt, seqs)
    assert set(s) == {"mof", "nmi", "ari", "edit"}
    assert 0 <= s["mof"] <= 1 and (np.isnan(s["edit"]) if n == 0 else 0 <= s["edit"] <= 100)
    for k in ("nmi", "ari"):
        assert np.isnan(s[k]) or -1 <= s[k] <= 1


@FAST
@given(st.lists(st.integers(0, 3), max_size=15), st.lists(st.integers(0, 3), max_size=15))
def test_edit_score_in_range_and_perfect_on_itself(a: list[int], b: list[int]) -> None:
    assert 0 <= edit_score(np.asarray(a), np.asarray(b)) <= 100
    assert edit_score(np.asarray(a), np.asarray(a)) == 100.0


@FAST
@given(matrices(max_rows=12, max_cols=5), matrices(max_rows=12, max_cols=5))
def test_kendall_tau_alignment_in_range_or_nan(a: np.ndarray, b: np.ndarray) -> None:
    b = b[:, : a.shape[1]] if b.shape[1] >= a.shape[1] else np.hstack([b, np.zeros((len(b), a.shape[1] - b.shape[1]))])
    tau = kendall_tau_alignment(a, b)
    assert np.isnan(tau) or -1 <= tau <= 1
    if len(a) < 2 or len(b) < 2:
        assert np.isnan(tau)
    mean, used = cluster_alignment_tau([a, b, a])
    assert (np.isnan(mean) and used == 0) or (-1 <= mean <= 1 and used > 0)
