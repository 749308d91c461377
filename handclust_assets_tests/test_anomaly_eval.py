"""Anomaly spans vs ground truth: sidecar, matching, scores, the seed's table; injected synthetic anomalies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handclust_assets.lib.errors import ClipError
from handclust_assets.lib.synthetic import (
    ANOMALY_KINDS,
    generate_clip,
    generate_demo_set,
    load_ground_truth,
    random_anomaly_spans,
)
from handclust_assets.science.anomaly import detect_anomalies
from handclust_assets.science.anomaly_diagnostics import pool_windows
from handclust_assets.science.anomaly_eval import (
    CLIP_SCORE_SCHEMA,
    GT_SPAN_SCHEMA,
    MATCH_SCHEMA,
    SEED_TABLE_SCHEMA,
    load_anomaly_ground_truth,
    match_clip,
    match_spans,
    parse_anomaly_csv,
    parse_time,
    read_anomaly_sidecar,
    score_anomalies,
    seed_table,
    span_iou,
    time_iou,
)
from handclust_assets.video.frame_cache import sample_frames


def _spans(clip: str, spans: list[tuple[float, float]], labels: list[str] | None = None) -> pl.DataFrame:
    labels = labels or ["anomaly"] * len(spans)
    return pl.DataFrame([(clip, a, b, lab) for (a, b), lab in zip(spans, labels)],
                        schema={"clip": pl.Utf8, **GT_SPAN_SCHEMA}, orient="row")


def test_parse_time_forms() -> None:
    assert parse_time("12.5") == 12.5 and parse_time("03:28") == 208.0 and parse_time("1:03:28.5") == 3808.5
    for bad in ("", "ab", "03:75", "1:75:00", "inf", "nan"):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_sidecar_reading(tmp_path: Path) -> None:
    p = tmp_path / "clip.anomalies.csv"
    p.write_text("start_s,end_s,label\n# checked by hand\n07:00,07:13,ending work\n208,262,\"handling, not assembling\"\n")
    gt = read_anomaly_sidecar(p)
    assert gt.schema == pl.Schema(GT_SPAN_SCHEMA)
    assert gt.rows() == [(208.0, 262.0, "handling, not assembling"), (420.0, 433.0, "ending work")]
    assert load_anomaly_ground_truth(tmp_path / "clip.mp4").equals(gt)
    assert load_anomaly_ground_truth(tmp_path / "other.mp4") is None
    assert parse_anomaly_csv("start_s,end_s,label\n", "x").height == 0  # checked: no anomaly
    assert parse_anomaly_csv("1,2\n", "x").rows() == [(1.0, 2.0, "anomaly")]  # no header, no label


@pytest.mark.parametrize(("text", "problem"), [
    ("start_s,end_s,label\n10,5,x\n", "line 2: need 0 <= start < end"),
    ("start_s,end_s,label\n3,3,x\n", "line 2: need 0 <= start < end"),
    ("start_s,end_s,label\n-1,5,x\n", "need 0 <= start < end"),
    ("start_s,end_s,label\n1,abc,x\n", "line 2: bad time"),
    ("start_s,end_s,label\n1,02:99,x\n", "bad time"),
    ("start_s,end_s,label\n1\n", "line 2: need start_s,end_s"),
    ("start,stop,label\n1,2,x\n", "header must be start_s,end_s,label"),
])
def test_malformed_sidecars_name_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    p = tmp_path / "c.anomalies.csv"
    p.write_text(text)
    with pytest.raises(ClipError) as e:
        read_anomaly_sidecar(p)
    assert str(p) in str(e.value) and problem in str(e.value)


def test_the_seeds_table_is_reproduced() -> None:
    gt = pl.concat([
        _spans("1", [(parse_time("03:28"), parse_time("04:22")), (parse_time("07:00"), parse_time("07:13"))],
               ["Material handling (not assembling)", "Ending work"]),
        _spans("2", [(parse_time("02:07"), parse_time("02:54")), (parse_time("16:09"), parse_time("17:03"))],
               ["Not working", "Gets up"])])
    det = _spans("1", [(209, 264), (416, 431)]).vstack(_spans("2", [(125, 182), (974, 1027)]))
    ev = score_anomalies(gt, det)
    assert ev.overall["n_hit"] == 4 and ev.overall["n_false_positive"] == 0 and ev.overall["recall"] == 1.0
    table = seed_table(ev.matches)
    assert table.schema == pl.Schema(SEED_TABLE_SCHEMA)
    assert table.rows() == [
        ("1", "03:28–04:22", "Material handling (not assembling)", "03:29–04:24"),
        ("1", "07:00–07:13", "Ending work", "06:56–07:11"),
        ("2", "02:07–02:54", "Not working", "02:05–03:02"),
        ("2", "16:09–17:03", "Gets up", "16:14–17:07"),
    ]
    m = ev.matches.filter(pl.col("clip") == "2")
    assert m["start_error_s"].to_list() == [-2.0, 5.0] and m["end_error_s"].to_list() == [8.0, 4.0]


def test_misses_false_positives_and_fragments() -> None:
    gt = _spans("c", [(10, 20), (50, 60), (100, 130)])
    det = _spans("c", [(11, 21), (75, 80), (100, 112), (114, 129)])  # (75,80) FP; 100-130 fragmented in two
    ev = score_anomalies(gt, det)
    r = ev.per_clip.row(0, named=True)
    assert (r["n_gt"], r["n_detected"], r["n_hit"], r["n_missed"], r["n_false_positive"]) == (3, 4, 2, 1, 2)
    assert r["precision"] == 0.5 and r["recall"] == pytest.approx(2 / 3)
    assert ev.matches.filter(pl.col("outcome") == "missed")["gt_start_s"].to_list() == [50.0]
    assert ev.per_clip.schema == pl.Schema(CLIP_SCORE_SCHEMA) and ev.matches.schema == pl.Schema(MATCH_SCHEMA)
    assert seed_table(ev.matches)["detected"].to_list() == ["00:11–00:21", "missed", "01:15–01:20", "01:54–02:09",
                                                             "01:40–01:52"]  # the better-overlapping half hits


def test_clip_without_gt_spans_and_without_detections() -> None:
    empty = _spans("a", [])
    ev = score_anomalies(empty, _spans("a", [(5, 9)]), clips=["a", "b"])
    a, b = ev.per_clip.rows(named=True)
    assert a["n_false_positive"] == 1 and a["precision"] == 0.0 and np.isnan(a["recall"])
    assert b["n_gt"] == 0 and b["n_detected"] == 0 and np.isnan(b["precision"]) and np.isnan(b["time_iou"])
    assert score_anomalies(empty, empty, clips=[]).per_clip.height == 0


span = st.tuples(st.floats(0, 500, allow_nan=False), st.floats(0, 60, allow_nan=False)).map(lambda p: (p[0],
                                                                                                        p[0] + p[1]))


@settings(max_examples=150, deadline=None)
@given(st.lists(span, max_size=6), st.lists(span, max_size=6), st.floats(0.0, 0.9))
def test_matching_invariants(gt: list, det: list, min_iou: float) -> None:
    pairs = match_spans(gt, det, min_iou)
    assert len({g for g, _, _ in pairs}) == len(pairs) == len({d for _, d, _ in pairs})  # one-to-one
    assert all(v >= min_iou and v > 0 and gt[g][1] > gt[g][0] and det[d][1] > det[d][0] for g, d, v in pairs)
    m = match_clip("c", _spans("c", gt), _spans("c", det), min_iou)
    counts = m["outcome"].value_counts()
    n = dict(zip(counts["outcome"].to_list(), counts["count"].to_list()))
    assert n.get("detected", 0) == len(pairs)
    assert n.get("detected", 0) + n.get("missed", 0) == len(gt)
    assert n.get("detected", 0) + n.get("false_positive", 0) == len(det)
    v = time_iou(gt, det)
    assert np.isnan(v) or 0.0 <= v <= 1.0 + 1e-12
    assert np.isnan(v) == np.isnan(time_iou(det, gt)) and (np.isnan(v) or v == pytest.approx(time_iou(det, gt)))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 30), st.floats(1, 20)), min_size=1, max_size=5), st.floats(-0.5, 0.5))
def test_exact_and_shifted_detections(starts: list, shift: float) -> None:
    gt = [(i * 100 + a, i * 100 + a + length) for i, (a, length) in enumerate(starts)]  # disjoint GT spans
    ev = score_anomalies(_spans("c", gt), _spans("c", gt))
    assert ev.overall["recall"] == 1.0 and ev.overall["precision"] == 1.0 and ev.overall["mean_iou"] == 1.0
    det = [(a + shift, b + shift) for a, b in gt]
    m = match_clip("c", _spans("c", gt), _spans("c", det))
    assert (m["outcome"] == "detected").all()
    assert np.allclose(m["start_error_s"].to_numpy(), shift, atol=1e-6)


def test_degenerate_spans_never_match() -> None:
    assert span_iou((5, 5), (5, 5)) == 0.0 and span_iou((0, 10), (10, 20)) == 0.0
    assert span_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    m = match_clip("c", _spans("c", [(0, 10)]), _spans("c", [(3, 3)]))
    assert m["outcome"].to_list() == ["missed", "false_positive"]
    overlapping_gt = _spans("c", [(0, 20), (10, 30)])  # overlapping GT spans: still one detection each at most
    m = match_clip("c", overlapping_gt, _spans("c", [(0, 30)]))
    assert sorted(m["outcome"].to_list()) == ["detected", "missed"]


# ---------------------------------------------------------------- injected synthetic anomalies -----------------

def test_injected_anomalies_have_exact_spans_and_sidecars(tmp_path: Path) -> None:
    spans = [("lens_covered", 4.0, 6.0), ("getting_up", 8.0, 9.5)]
    gt = generate_clip(tmp_path / "a.mp4", seed=5, width=160, height=96, fps=10,
                       activities=[("trowel", 6.0), ("idle", 6.0)], anomalies=spans)
    side = load_anomaly_ground_truth(tmp_path / "a.mp4")
    assert side.rows() == [(4.0, 6.0, "lens covered"), (8.0, 9.5, "getting up")]
    act = gt["activity"].to_list()
    assert act[39] == "trowel" and act[40:60] == ["lens_covered"] * 20 and act[60] == "idle"
    assert act[80:95] == ["getting_up"] * 15 and act[95] == "idle"
    frames, t = sample_frames(tmp_path / "a.mp4", 10, 160)
    bright = frames.reshape(len(frames), -1).mean(axis=1)
    assert bright[40:60].max() < 0.5 * np.median(bright[:40])  # the covered lens is dark
    generate_clip(tmp_path / "b.mp4", seed=5, width=160, height=96, fps=10, activities=[("trowel", 6.0), ("idle", 6.0)])
    fb, _ = sample_frames(tmp_path / "b.mp4", 10, 160)
    assert load_anomaly_ground_truth(tmp_path / "b.mp4") is None
    assert np.abs(fb[:40].astype(int) - frames[:40]).mean() < 2.0  # outside the spans: the same clip
    assert np.abs(fb[40:60].astype(int) - frames[40:60]).mean() > 20.0
    with pytest.raises(ValueError, match="bad anomaly"):
        generate_clip(tmp_path / "c.mp4", seed=1, duration_s=4, width=64, height=48, anomalies=[("sneeze", 1, 2)])


def test_random_spans_and_demo_set_switch(tmp_path: Path) -> None:
    spans = random_anomaly_spans(7, 150.0, 3)
    assert len(spans) == 3 and {k for k, _, _ in spans} <= set(ANOMALY_KINDS)
    assert all(10.0 <= a < b <= 140.0 for _, a, b in spans)
    assert all(s1[2] + 10.0 <= s2[1] for s1, s2 in zip(spans, spans[1:]))
    assert random_anomaly_spans(7, 150.0, 3) == spans and random_anomaly_spans(1, 25.0, 2) == []
    (p,) = generate_demo_set(tmp_path, n_clips=1, duration_s=40, width=96, height=64, fps=5, anomalies_per_clip=1)
    assert load_anomaly_ground_truth(p).height == 1
    (q,) = generate_demo_set(tmp_path, n_clips=1, duration_s=40, width=96, height=64, fps=5)
    assert q == p and load_anomaly_ground_truth(p) is None  # back to the plain clip: the stale sidecar is gone
    assert set(load_ground_truth(p)["activity"].unique()) <= {"trowel", "scoop", "carry", "walk", "idle"}


def test_injected_anomalies_are_detected_and_scored(tmp_path: Path) -> None:
    """The real path on a synthetic clip: decode, offline scene embeddings, 1-s windows, EgoClean detector, score."""
    from handclust_assets.models.scene import EfficientNetLiteSceneEncoder

    truth = [("lens_covered", 14.0, 24.0), ("not_working", 38.0, 48.0)]
    generate_clip(tmp_path / "s.mp4", seed=11, duration_s=60, width=320, height=180, fps=10,
                  phase="production", anomalies=truth)
    frames, t = sample_frames(tmp_path / "s.mp4", 1, 224)  # one frame per 1-s window keeps the test short
    emb = EfficientNetLiteSceneEncoder(batch_size=32).load().embed(frames)
    w, ts, te = pool_windows(emb, t, 1.0)
    _, spans = detect_anomalies(w, ts, te)
    gt = load_anomaly_ground_truth(tmp_path / "s.mp4").with_columns(pl.lit("s").alias("clip"))
    ev = score_anomalies(gt, spans.with_columns(pl.lit("s").alias("clip")))
    o = ev.overall
    assert o["n_hit"] == 2 and o["recall"] == 1.0, seed_table(ev.matches)
    assert o["n_false_positive"] == 0, seed_table(ev.matches)
    assert ev.matches["start_error_s"].abs().max() <= 3.0
