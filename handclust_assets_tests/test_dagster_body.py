"""`pose`, `hands`, `pose_segments`, `hand_segments` on a real Dagster instance with the REAL MediaPipe models,
on a real shared clip and a generated one; a missing/corrupt model skips only those assets, with the reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from handclust_assets.definitions import defs
from handclust_assets.defs.clusters.assets import DESCRIPTOR_TABLES
from handclust_assets.defs.jobs import PER_CLIP
from handclust_assets.defs.modalities import body
from handclust_assets.defs.resources import MediaPipeResource, SceneModelResource
from handclust_assets.lib.synthetic import generate_clip
from handclust_assets.lib.tables import read_table
from handclust_assets.science import crossclip
from handclust_assets.science.hands import HAND_DIM
from handclust_assets.science.pose import POSE_DIM
from handclust_assets_tests.support import make_resources, materializations, materialize, step_failures

ASSETS = ["clips", "frame_cache", "flow", "scene_embeddings", "segments", "pose", "hands", "pose_segments",
          "hand_segments"]
CLIPS = ["03_blocks", "09_synthetic"]


def _resources(root: Path, mediapipe: MediaPipeResource) -> dict:
    # scene: a model id that is nowhere -> the offline EfficientNet-Lite0
    return make_resources(root, scene_model=SceneModelResource(model_id="nobody/no-dinov2-here"), mediapipe=mediapipe)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, shared_clips: Path, mediapipe_dir: Path
        ) -> tuple[Path, dict, dg.DagsterInstance]:
    models = mediapipe_dir
    root = tmp_path_factory.mktemp("body") / "storage"
    (root / "videos").mkdir(parents=True)
    shutil.copy(shared_clips / "03_blocks.mp4", root / "videos" / "03_blocks.mp4")  # a temp copy, never in the repo
    generate_clip(root / "videos" / "09_synthetic.mp4", seed=1, width=320, height=180, fps=10,
                  activities=[("trowel", 5.0), ("walk", 5.0)])
    mp = MediaPipeResource(pose_model_path=str(models / "pose_landmarker_full.task"),
                           hand_model_path=str(models / "hand_landmarker.task"))
    res = _resources(root, mp)
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", CLIPS)
    results = {}
    for clip in CLIPS:
        r = materialize(ASSETS, res, inst, partition_key=clip)
        assert r.success
        results[clip] = r
    return root, results, inst


def _meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    mats = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mats[-1].metadata.items()}


def test_tables_schemas_and_one_row_per_segment(run) -> None:
    root, results, _ = run
    con = duckdb.connect()
    for clip in CLIPS:
        n_frames = con.execute(f"select count(*) from '{root}/tables/frame_cache/{clip}.parquet'").fetchone()
        pose = pl.read_parquet(root / "tables" / "pose" / f"{clip}.parquet")
        hands = pl.read_parquet(root / "tables" / "hands" / f"{clip}.parquet")
        assert list(pose.schema.items()) == list(body.POSE_SCHEMA.items())
        assert list(hands.schema.items()) == list(body.HANDS_SCHEMA.items())
        assert pose["frame_idx"].to_list() == list(range(pose.height)) == hands["frame_idx"].to_list()
        assert n_frames is not None
        seg = pl.read_parquet(root / "tables" / "segments" / f"{clip}.parquet")
        for name, schema, dim in (("pose_segments", body.POSE_SEGMENTS_SCHEMA, POSE_DIM),
                                  ("hand_segments", body.HAND_SEGMENTS_SCHEMA, HAND_DIM)):
            t = pl.read_parquet(root / "tables" / name / f"{clip}.parquet")
            assert list(t.schema.items()) == list(schema.items())
            assert t["segment_idx"].to_list() == seg.sort("segment_idx")["segment_idx"].to_list()
            vec = np.asarray(t["vector"].to_list(), np.float32)
            assert vec.shape == (seg.height, dim) and np.all(np.isfinite(vec))
        # the state column agrees with the coverage metadata
        m = _meta(results[clip], "hands")
        assert 0 <= m["coverage_detected"] <= m["coverage"] <= 1
        assert m["coverage"] == pytest.approx(float((hands["state"] != "absent").mean()), abs=1e-4)
        assert m["frames_per_s"] > 0 and m["x_realtime"] > 0 and "hand_landmarker@" in m["model_version"]
        pm = _meta(results[clip], "pose")
        assert pm["coverage"] == pytest.approx(float(pose["detected"].mean()), abs=1e-4)
    real = _meta(results["03_blocks"], "hands")
    assert real["coverage"] > real["coverage_detected"] > 0.3  # CSRT lifts the real clip's coverage
    # null keypoints where nothing was detected, 33x4 / 21x3 values where something was
    pose = pl.read_parquet(root / "tables" / "pose" / "03_blocks.parquet")
    assert pose.filter(pl.col("detected"))["keypoints"].list.len().unique().to_list() in ([132], [])
    assert pose.filter(~pl.col("detected"))["keypoints"].null_count() == (~pose["detected"]).sum()
    hands = pl.read_parquet(root / "tables" / "hands" / "03_blocks.parquet")
    det = hands.filter(pl.col("left_source") == "detected")
    assert det.height and det["left_keypoints"].list.len().unique().to_list() == [63]
    assert hands.filter(pl.col("left_source") == "tracked")["left_keypoints"].null_count() == \
        hands.filter(pl.col("left_source") == "tracked").height


def test_segment_features_pick_up_pose_and_hands(run) -> None:
    root, _, _ = run
    tables = {name: read_table(str(root), name, CLIPS) for name in
              ("segments", "flow_rhythm", "pose_segments", "hand_segments") if (root / "tables" / name).is_dir()}
    feats = crossclip.segment_features(tables["segments"], tables)
    mods = set(feats["modality"].unique().to_list())
    assert {"pose", "hands"} <= mods
    # a segment gets a pose / hands descriptor only where they are seen (coverage >= MIN_COVERAGE)
    for m, table, dim in (("pose", "pose_segments", POSE_DIM), ("hands", "hand_segments", HAND_DIM)):
        f = feats.filter(pl.col("modality") == m)
        seen = tables[table].filter(pl.col("coverage") >= crossclip.MIN_COVERAGE)
        assert f.height == seen.height > 0 and set(f["vector"].list.len().to_list()) == {dim}
        assert set(zip(f["clip"], f["segment_idx"])) == set(zip(seen["clip"], seen["segment_idx"]))
    assert {"pose_segments", "hand_segments"} <= set(DESCRIPTOR_TABLES)


def test_missing_or_corrupt_model_skips_only_that_asset_with_the_reason(run, tmp_path: Path, monkeypatch) -> None:
    root, _, inst = run
    monkeypatch.setenv("HANDCLUST_MODEL_CACHE", str(tmp_path / "no_models"))
    bad = tmp_path / "hand_landmarker.task"
    bad.write_bytes(b"\x00" * 1000)
    mp = MediaPipeResource(pose_model_path=str(tmp_path / "missing_pose.task"), hand_model_path=str(bad))
    r = materialize(["pose", "hands", "pose_segments", "hand_segments", "flow"], _resources(root, mp), inst,
                    partition_key="09_synthetic", raise_on_error=False)
    assert r.success and step_failures(r) == {}  # a missing model is not a red run
    assert materializations(r) == {"flow"}
    reasons = {e.asset_key.to_user_string(): str(e.asset_observation_data.asset_observation.metadata["skipped"].value)
               for e in r.get_asset_observation_events()}
    assert set(reasons) == {"pose", "hands"}
    assert "pose_landmarker_full" in reasons["pose"] and "model unavailable" in reasons["pose"]
    assert "hand_landmarker" in reasons["hands"] and "sha256" in reasons["hands"]
    skipped = {e.step_key for e in r.get_step_skipped_events()}
    assert {"pose_segments", "hand_segments"} <= skipped  # their downstream waits for the model too


def test_registered_in_the_code_location() -> None:
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"pose", "hands", "pose_segments", "hand_segments", "mediapipe_model_files"} <= keys
    assert {body.pose, body.hands, body.pose_segments, body.hand_segments} <= set(PER_CLIP)
    graph = defs.resolve_asset_graph()
    for a in (body.pose, body.hands):
        (key,) = a.keys
        assert a.op.pool == "models"
        assert dg.AssetKey("mediapipe_model_files") in graph.get(key).parent_keys  # the model is an upstream
