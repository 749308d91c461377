"""EgoClean's anomaly pass and the cost report through the graph, on a synthetic set with injected anomalies.

Two synthetic clips, each with one injected anomaly of a known span (`<clip>.anomalies.csv`), go through the
real assets: ingest, offline scene embeddings (1 frame/s keeps it short), anomaly detection, diagnostics, the
evaluation against the known spans, and the cost report read back from the Dagster instance.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from handclust_assets.defs.resources import CostSettings, HandclustSettings, SceneModelResource
from handclust_assets.lib.synthetic import generate_demo_set
from handclust_assets.science.anomaly_eval import load_anomaly_ground_truth
from handclust_assets_tests.support import make_resources, materialize, step_failures

PER_CLIP = ["clips", "frame_cache", "scene_embeddings", "anomaly_ground_truth"]
CROSS = ["anomaly_scores", "anomalies", "anomaly_diagnostics", "anomaly_evaluation", "anomaly_matches",
         "cost_report", "clip_cost"]


def _meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    mats = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey(asset)]
    assert mats, f"{asset} was not materialized"
    return {k: v.value for k, v in mats[-1].materialization.metadata.items()}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("anomalies") / "storage"
    paths = generate_demo_set(root / "videos", n_clips=2, duration_s=90, width=320, height=180, fps=10,
                              anomalies_per_clip=1)
    res = make_resources(root, settings=HandclustSettings(video_folder=str(root / "videos"), sample_fps=1.0),
                         scene_model=SceneModelResource(model_id="nobody/no-dinov2-here"),  # offline fallback
                         cost_settings=CostSettings(cpu_core_hour_usd=0.04, gpu_hour_usd=2.0))
    inst = dg.DagsterInstance.ephemeral()
    keys = [p.stem for p in paths]
    inst.add_dynamic_partitions("clips", keys)
    for k in keys:
        r = materialize(PER_CLIP, res, inst, partition_key=k, raise_on_error=False)
        assert r.success, step_failures(r)
    # the launchpad's threshold reaches the detector: a contrast no window reaches flags nothing (then the
    # default run below replaces these tables)
    strict = materialize(["anomaly_scores", "anomalies"], res, inst,
                         run_config={"ops": {"anomaly_detection": {"config": {"min_contrast": 5.0}}}})
    strict_tables = {t: pl.read_parquet(root / "tables" / t / "_all.parquet") for t in ("anomaly_scores", "anomalies")}
    assert strict.success
    cross = materialize(CROSS, res, inst)
    again = materialize(["anomaly_diagnostics"], res, inst)
    truth = pl.concat([load_anomaly_ground_truth(p).with_columns(pl.lit(p.stem).alias("clip")) for p in paths])
    return {"root": root, "keys": keys, "cross": cross, "again": again, "truth": truth, "per_clip": r,
            "strict": strict_tables}


def test_spans_are_scored_against_the_injected_anomalies(run: dict) -> None:
    root, truth = run["root"], run["truth"]
    assert truth.height == 2  # one injected anomaly per clip, exact spans from the generator
    gt = pl.read_parquet(root / "tables" / "anomaly_ground_truth" / "*.parquet").sort("clip")
    assert gt.select("clip", "start_s", "end_s", "label").equals(truth.select("clip", "start_s", "end_s", "label")
                                                                 .sort("clip"))
    matches = pl.read_parquet(root / "tables" / "anomaly_matches" / "_all.parquet")
    det = pl.read_parquet(root / "tables" / "anomalies" / "_all.parquet")
    meta = _meta(run["cross"], "anomaly_evaluation")
    hits = matches.filter(pl.col("outcome") == "detected")
    # the evaluation agrees with the spans themselves: a hit overlaps its known span, a false positive none
    assert meta["n_gt"] == 2 and meta["n_hit"] == hits.height and meta["n_detected"] == det.height
    assert meta["recall"] == pytest.approx(hits.height / 2)
    assert meta["n_false_positive"] == det.height - hits.height
    for h in hits.iter_rows(named=True):
        known = truth.filter(pl.col("clip") == h["clip"]).row(0, named=True)
        assert h["gt_start_s"] == known["start_s"] and h["det_start_s"] < known["end_s"] < h["det_end_s"] + 30
        assert abs(h["start_error_s"]) <= 5.0
    # what the detector achieves on this set (offline scene embeddings, 1-s windows): both, no false positive
    assert meta["recall"] == 1.0 and meta["n_false_positive"] == 0, matches
    ev = pl.read_parquet(root / "tables" / "anomaly_evaluation" / "_all.parquet")
    assert ev["scope"].to_list() == ["clip", "clip", "overall"] and ev["n_gt"].to_list() == [1, 1, 2]


def test_the_detector_threshold_is_a_launchpad_setting(run: dict) -> None:
    strict, default = run["strict"], pl.read_parquet(run["root"] / "tables" / "anomalies" / "_all.parquet")
    assert strict["anomalies"].height == 0 and default.height >= 2  # same embeddings, only the threshold differs
    scores = pl.read_parquet(run["root"] / "tables" / "anomaly_scores" / "_all.parquet")
    assert strict["anomaly_scores"].select("clip", "raw_score").equals(scores.select("clip", "raw_score"))
    # theta_on is median + contrast capped at the clip's top score: the strict run's sits at the top
    top = strict["anomaly_scores"].group_by("clip").agg(pl.col("smoothed").max(), pl.col("theta_on").first())
    assert (top["theta_on"] == top["smoothed"]).all()


def test_diagnostics_images_and_numbers_per_clip(run: dict) -> None:
    root = run["root"]
    meta = _meta(run["cross"], "anomaly_diagnostics")
    assert meta["clips"] == 2 and meta["rendered"] == 2 and meta["embedding_source"].startswith("offline scene")
    diag = pl.read_parquet(root / "tables" / "anomaly_diagnostics" / "_all.parquet")
    assert diag["clip"].to_list() == sorted(run["keys"]) and (diag["n_windows"] >= 85).all()
    for r in diag.iter_rows(named=True):
        assert meta[f"{r['clip']}/n_windows"] == r["n_windows"]
        for col in ("diagnostics_png", "detection_png"):
            png = Path(r[col])
            assert png.parent == root / "dashboard" / "diagnostics" and png.read_bytes()[:4] == b"\x89PNG"
    again = _meta(run["again"], "anomaly_diagnostics")
    assert again["rendered"] == 0 and again["unchanged"] == 2  # nothing changed: nothing re-rendered


def test_every_asset_is_measured_and_the_cost_report_has_a_row_per_asset(run: dict) -> None:
    root = run["root"]
    clip_meta = _meta(run["per_clip"], "frame_cache")
    assert clip_meta["cpu_s"] > 0 and clip_meta["wall_s"] > 0 and clip_meta["peak_rss_mb"] > 50
    assert clip_meta["gpu_s"] == 0.0  # CPU only here: no CUDA section ran
    report = pl.read_parquet(root / "tables" / "cost_report" / "_all.parquet")
    assets = report.filter(pl.col("row_kind") == "asset")
    # every measured step of this instance: the clip runs' assets, and the cross-clip steps before the report
    assert set(assets["asset"]) == {*PER_CLIP, "anomaly_detection", "anomaly_diagnostics", "anomaly_evaluation",
                                    "anomaly_matches"}
    assert (assets["cpu_s"] > 0).all() and (assets["wall_s"] > 0).all(), assets
    per_clip = assets.filter(pl.col("asset") == "scene_embeddings").row(0, named=True)
    assert per_clip["n_clips"] == 2 and per_clip["footage_s"] == pytest.approx(180, abs=1)
    total = report.filter(pl.col("row_kind") == "total").row(0, named=True)
    assert total["cpu_s"] == pytest.approx(assets["cpu_s"].sum())
    assert total["cpu_usd_per_footage_h"] == pytest.approx(total["cpu_s_per_footage_h"] / 3600 * 0.04)
    anchor = report.filter(pl.col("row_kind") == "anchor")
    assert anchor["usd_per_footage_h"][0] == pytest.approx(0.21)
    meta = _meta(run["cross"], "cost_report")
    assert meta["total_usd_per_footage_h"] == pytest.approx(total["usd_per_footage_h"])
    assert meta["usd_per_footage_h__scene_embeddings"] > 0
    clip_cost = pl.read_parquet(root / "tables" / "clip_cost" / "_all.parquet")
    assert clip_cost["clip"].to_list() == sorted(run["keys"]) and (clip_cost["cpu_s"] > 0).all()
