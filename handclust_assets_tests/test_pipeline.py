"""The whole asset graph on a real Dagster instance: synthetic clips -> every asset -> DuckDB."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from handclust_assets.definitions import asset_checks, cross_clip_assets, defs, per_clip_assets
from handclust_assets.defs.clusters.assets import LabelerResource
from handclust_assets.defs.io_manager import DuckDBParquetIOManager
from handclust_assets.defs.resources import (
    HandclustSettings,
    MediaPipeResource,
    SceneModelResource,
    ToolModelResource,
    VideoModelResource,
)
from handclust_assets.lib.synthetic import generate_clip
from handclust_assets.models.tools import DEFAULT_TOOL_PROMPTS
from handclust_assets_tests.test_pose_hands import find_models_dir
from handclust_assets_tests.tiny_models import make_tiny_owlv2, make_tiny_vjepa2

CLIPS = [
    ("01_production_a", [("trowel", 8.0), ("idle", 6.0), ("scoop", 8.0)]),
    ("02_transit_b", [("walk", 8.0), ("carry", 8.0), ("idle", 6.0)]),
    ("03_production_c", [("scoop", 8.0), ("trowel", 8.0), ("walk", 6.0)]),
]


def _resources(root: Path, tmp: Path, video_path: str | None, tool_path: str | None) -> dict:
    return {
        "io_manager": DuckDBParquetIOManager(root=str(root)),
        "settings": HandclustSettings(storage=str(root)),
        "scene_model": SceneModelResource(model_id="nobody/no-dinov2-here"),  # -> offline EfficientNet fallback
        "video_model": VideoModelResource(model_id="facebook/vjepa2-vitl-fpc64-256", local_path=video_path,
                                          window_frames=8),
        "tool_model": ToolModelResource(model_id="google/owlv2-base-patch16-ensemble", local_path=tool_path),
        "labeler": LabelerResource(),
        "mediapipe": _mediapipe(),
    }


def _mediapipe() -> MediaPipeResource:
    d = find_models_dir()  # scripts/setup.sh fetches the models; without them pose/hands fail, named, alone
    if d is None:
        return MediaPipeResource()
    return MediaPipeResource(pose_model_path=str(d / "pose_landmarker_full.task"),
                             hand_model_path=str(d / "hand_landmarker.task"))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dg.DagsterInstance]:
    tmp = tmp_path_factory.mktemp("pipe")
    root = tmp / "storage"
    for i, (name, plan) in enumerate(CLIPS):
        generate_clip(root / "videos" / f"{name}.mp4", seed=i, width=320, height=180, fps=10, activities=plan)
    res = _resources(root, tmp, str(make_tiny_vjepa2(tmp / "vjepa")),
                     str(make_tiny_owlv2(tmp / "owl", DEFAULT_TOOL_PROMPTS)))
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", [c for c, _ in CLIPS])
    for name, _ in CLIPS:
        r = dg.materialize(per_clip_assets, partition_key=name, instance=inst, resources=res,
                           selection=[k for a in per_clip_assets for k in a.keys])
        assert r.success
    r = dg.materialize([*cross_clip_assets, *per_clip_assets], instance=inst, resources=res,
                       selection=[k for a in cross_clip_assets for k in a.keys])
    assert r.success
    return root, res, inst


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
    r = dg.materialize([*cross_clip_assets, *per_clip_assets, *asset_checks], instance=inst, resources=res,
                       selection=[dg.AssetKey("cross_clip_clusters"), dg.AssetKey("cluster_entropy")])
    evals = [e.event_specific_data for e in r.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert evals and all(ev.passed for ev in evals)
    seg = dg.materialize([*per_clip_assets], instance=inst, resources=res, partition_key="01_production_a",
                         selection=[dg.AssetKey("segments")])
    assert seg.success
    check = next(c for c in asset_checks if "segments_cover_clip" in str(c.check_keys))
    assert check is not None


def test_missing_model_fails_only_its_asset(pipeline, tmp_path: Path) -> None:
    root, res, inst = pipeline
    bad = {**res, "video_model": VideoModelResource(model_id="nobody/no-such-vjepa")}
    r = dg.materialize(per_clip_assets, partition_key="02_transit_b", instance=inst, resources=bad,
                       raise_on_error=False, selection=[dg.AssetKey("video_embeddings"), dg.AssetKey("flow")])
    failures = {e.step_key: e.event_specific_data.error.message for e in r.all_events
                if e.event_type_value == "STEP_FAILURE"}
    assert list(failures) == ["video_embeddings"]
    assert "nobody/no-such-vjepa" in failures["video_embeddings"] and "local_path" in failures["video_embeddings"]
    ok = [e.step_key for e in r.all_events if e.event_type_value == "STEP_SUCCESS"]
    assert "flow" in ok


def test_definitions_hold_the_whole_graph() -> None:
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"flow_rhythm", "segments", "cross_clip_entropy", "cluster_labels", "anomalies"} <= keys
