"""Metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from handclust_assets.science.anomaly import detect_anomalies, otsu_threshold
from handclust_assets.science.metrics import (
    cluster_alignment_tau,
    cross_clip_entropy,
    edit_score,
    gt_scores,
    kendall_tau_alignment,
    mof_hungarian,
    phase_scores,
    quality_row,
)
from handclust_assets.science.repetition import consensus_repetitions, flow_period, ssm_period


def test_cross_clip_entropy_hand_computed() -> None:
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, -1])
    clips = np.array(["a", "b", "a", "a", "a", "a", "a", "b", "c", "b"])
    df, s = cross_clip_entropy(labels, clips)
    ent = dict(zip(df["cluster"].to_list(), df["entropy"].to_list()))
    h2 = -(0.5 * np.log(0.5) + 0.25 * np.log(0.25) * 2) / np.log(3)
    assert ent[0] == pytest.approx(1.0) and ent[1] == 0.0 and ent[2] == pytest.approx(h2)
    assert s["mean_entropy"] == pytest.approx((2 * 1.0 + 3 * 0 + 4 * h2) / 9)
    assert s["multi_clip_share"] == pytest.approx(2 / 3) and s["k"] == 3 and s["noise"] == 1
    _, empty = cross_clip_entropy(np.array([-1, -1]), np.array(["a", "b"]))
    assert empty["k"] == 0 and np.isnan(empty["mean_entropy"])


def test_quality_and_phase() -> None:
    assert quality_row(np.array([0, 0, 1, -1])) == {"noise_rate": 0.25, "k": 2, "n": 4}
    s = phase_scores(np.array([5, 5, 7, 7]), np.array(["p", "p", "t", "t"]))
    assert s["nmi"] == pytest.approx(1.0) and s["ari"] == pytest.approx(1.0)


def test_mof_edit_and_gt_scores() -> None:
    gt = np.array(["walk"] * 4 + ["idle"] * 4)
    mof, mapping = mof_hungarian(np.array([3, 3, 3, 3, 1, 1, 1, 1]), gt)
    assert mof == 1.0 and mapping == {3: "walk", 1: "idle"}
    assert mof_hungarian(np.array([0, 0, 0, 0, 0, 0, 0, 0]), gt)[0] == 0.5
    assert mof_hungarian(np.array([-1] * 8), gt)[0] == 0.0
    assert edit_score([1, 1, 2, 2], [1, 2]) == 100.0
    assert edit_score([1, 2, 1], [1, 2]) == pytest.approx(100 * (1 - 1 / 3))
    s = gt_scores(np.array([3, 3, 3, 3, 1, 1, 1, 1]), gt)
    assert s["mof"] == 1.0 and s["edit"] == 100.0 and s["ari"] == pytest.approx(1.0)


def test_kendall_tau_alignment() -> None:
    t = np.linspace(0, 1, 20)
    seq = np.stack([np.cos(2 * t), np.sin(2 * t), t], 1)
    assert kendall_tau_alignment(seq, seq) == pytest.approx(1.0)
    assert kendall_tau_alignment(seq, seq[::-1]) == pytest.approx(-1.0)
    tau, n = cluster_alignment_tau([seq, seq[::2], seq[1::2]])
    assert n == 6 and tau > 0.9


@pytest.mark.parametrize("period", [1.2, 2.0, 3.5])
def test_periods_from_ssm_and_flow(period: float) -> None:
    fps, n = 5.0, 150
    t = np.arange(n) / fps
    rng = np.random.default_rng(0)
    emb = np.stack([np.cos(2 * np.pi * t / period), np.sin(2 * np.pi * t / period), np.ones(n)], 1)
    emb += rng.normal(0, 0.05, emb.shape)
    ps, _ = ssm_period(emb, fps)
    pf, _ = flow_period(1 + np.sin(2 * np.pi * t / period) + rng.normal(0, 0.1, n), fps)
    assert abs(ps - period) / period < 0.1 and abs(pf - period) / period < 0.1
    c = consensus_repetitions(ps, pf, 30.0)
    assert c["accepted"] and abs(c["count"] - 30.0 / period) / (30.0 / period) < 0.1


def test_consensus_rejects_disagreement() -> None:
    assert not consensus_repetitions(1.0, 2.0, 10.0)["accepted"]
    assert not consensus_repetitions(float("nan"), 2.0, 10.0)["accepted"]
    assert consensus_repetitions(1.0, 1.25, 10.0)["accepted"]


def test_anomaly_span_found_and_none_in_homogeneous() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 32)
    emb = base + rng.normal(0, 0.3, (120, 32))
    emb[60:75] = rng.normal(0, 1, 32) + rng.normal(0, 0.3, (15, 32))
    t = np.arange(120, dtype=float)
    scores, spans = detect_anomalies(emb, t, t + 1)
    assert spans.height == 1
    assert abs(spans["start_s"][0] - 60) <= 2 and abs(spans["end_s"][0] - 75) <= 4
    _, none = detect_anomalies(base + rng.normal(0, 0.3, (120, 32)), t, t + 1)
    assert none.height == 0 and none.columns == spans.columns
    assert otsu_threshold(np.r_[np.zeros(50), np.ones(50)]) == pytest.approx(0.5, abs=0.02)


def test_ssm_period_survives_drift() -> None:
    """Walking forward: appearance drifts away steadily while the head bob repeats; the lag profile falls with
    lag and the periodic bumps ride on that slope (a bump in the second half of the lag range sits below the
    profile's mean, so removing only a constant offset loses it)."""
    fps, period, n = 5.0, 2.0, 30
    t = np.arange(n) / fps
    rng = np.random.default_rng(0)
    u = rng.normal(0, 1, (3, 64))
    emb = 4 * u[0] + 3 * np.outer(t / t[-1], u[1]) + 0.6 * np.outer(np.sin(2 * np.pi * t / period), u[2])
    p, _ = ssm_period(emb, fps, 0.6, n / fps / 2)
    assert abs(p - period) / period < 0.1, p


def test_repetition_scores_against_ground_truth() -> None:
    import polars as pl

    from handclust_assets.science.metrics import repetition_scores

    # two segments of 20 frames (4 s at 5 fps): one periodic (1 s), one idle
    gt = pl.DataFrame({"clip": ["c"] * 40, "frame_idx": list(range(40)), "activity": ["walk"] * 20 + ["idle"] * 20,
                       "period_s": [1.0] * 20 + [float("nan")] * 20})
    segs = pl.DataFrame({"clip": ["c", "c"], "segment_idx": [0, 1], "start_frame": [0, 20], "end_frame": [20, 40],
                         "start_s": [0.0, 4.0], "end_s": [4.0, 8.0]})
    reps = pl.DataFrame({"clip": ["c", "c"], "segment_idx": [0, 1], "accepted": [True, True],
                         "rep_count": [4.4, 2.0]})
    df = repetition_scores(reps, segs, gt)
    walk = df.filter(pl.col("activity") == "walk").row(0, named=True)
    idle = df.filter(pl.col("activity") == "idle").row(0, named=True)
    assert walk["periodic"] and abs(walk["median_count_error"] - 0.1) < 1e-9 and walk["within_10pct"] == 0.0
    assert not idle["periodic"] and idle["accepted_share"] == 1.0  # a false acceptance on an idle segment
    assert df["activity"].to_list()[-1] == "all periodic"
