"""The whole asset graph on a real Dagster instance: synthetic clips -> every asset -> DuckDB."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from handclust_assets.definitions import defs
from handclust_assets.defs.resources import VideoModelResource
from handclust_assets_tests.support import (
    check_results,
    find_models_dir,
    materializations,
    materialize,
    step_failures,
)


@pytest.fixture(scope="module")
def pipeline(whole_graph: dict) -> tuple[Path, dict, dg.DagsterInstance]:
    return whole_graph["root"], whole_graph["res"], whole_graph["inst"]


def test_every_table_is_queryable_with_plain_duckdb(pipeline) -> None:
    root, _, _ = pipeline
    con = duckdb.connect(str(root / "handclust.duckdb"), read_only=True)
    tables = {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()}
    expected = {"clips", "frame_cache", "flow", "flow_rhythm", "egomotion", "scene_embeddings", "video_embeddings",
                "tool_scores", "segments", "repetitions", "segment_features", "clip_clusters", "cross_clip_clusters",
                "cross_clip_entropy", "cluster_entropy", "quality_matrix", "phase_scores", "ground_truth_scores",
                "cluster_labels", "segment_map", "alignment_scores", "anomalies", "anomaly_scores", "ground_truth"}
    assert expected <= tables, expected - tables
    assert con.execute("select count(distinct clip) from segments").fetchone()[0] == 3
    mods = {r[0] for r in con.execute("select distinct modality from segment_features").fetchall()}
    assert {"scene", "video", "tools", "flow", "flow_rhythm", "egomotion"} <= mods
    if find_models_dir() is not None:
        assert {"pose", "hands", "pose_segments", "hand_segments"} <= tables
        # pose / hands describe only segments where they are actually seen (coverage >= MIN_COVERAGE)
        from handclust_assets.science.crossclip import MIN_COVERAGE

        for mod, table in (("pose", "pose_segments"), ("hands", "hand_segments")):
            seen = con.execute(f"select count(*) from {table} where coverage >= {MIN_COVERAGE}").fetchall()[0][0]
            rows = con.execute(f"select count(*) from segment_features where modality = '{mod}'").fetchall()[0][0]
            assert rows == seen
    ent = con.execute("select min(entropy), max(entropy) from cluster_entropy").fetchone()
    assert 0 <= ent[0] <= ent[1] <= 1
    # every segment has exactly one fusion row and a label for its cluster
    n_seg = con.execute("select count(*) from segments").fetchone()[0]
    assert con.execute("select count(*) from cross_clip_clusters where modality='fusion'").fetchone()[0] == n_seg
    gt = con.execute("select modality, mof from ground_truth_scores").fetchall()
    assert gt and all(0 <= m <= 1 for _, m in gt)
    model = con.execute("select distinct model from scene_embeddings").fetchall()
    assert model == [("efficientnet-lite0",)]


def test_asset_checks_pass(pipeline) -> None:
    root, res, inst = pipeline
    r = materialize(["cross_clip_clusters", "cluster_entropy"], res, inst)
    assert check_results(r) == {"one_cluster_row_per_segment_and_modality": True, "entropy_in_unit_interval": True}
    seg = materialize(["segments"], res, inst, partition_key="01_production_a")
    assert check_results(seg) == {"segments_cover_clip": True}


def test_missing_model_skips_only_its_asset_with_the_reason(pipeline, tmp_path: Path) -> None:
    root, res, inst = pipeline
    bad = {**res, "video_model": VideoModelResource(model_id="nobody/no-such-vjepa")}
    r = materialize(["video_embeddings", "flow"], bad, inst, partition_key="02_transit_b", raise_on_error=False)
    assert r.success and step_failures(r) == {}  # a missing model is not a red run
    assert materializations(r) == {"flow"}
    (obs,) = [e.asset_observation_data.asset_observation for e in r.get_asset_observation_events()]
    reason = str(obs.metadata["skipped"].value)
    assert obs.asset_key == dg.AssetKey("video_embeddings") and obs.partition == "02_transit_b"
    assert "nobody/no-such-vjepa" in reason and "model unavailable" in reason
    assert "local_path" in str(obs.metadata["how_to_fix"].value)  # and how to provide it


def test_definitions_hold_the_whole_graph() -> None:
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"flow_rhythm", "segments", "cross_clip_entropy", "cluster_labels", "anomalies"} <= keys
