"""A clip that arrives after the cross-clip clustering is placed into the existing activities without re-clustering,
and cluster ids stay the same when the clustering is re-run on unchanged data."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from handclust_assets.defs.resources import SceneModelResource
from handclust_assets.lib.synthetic import generate_clip
from handclust_assets.lib.tables import connect
from handclust_assets_tests.support import make_resources, materialize
from handclust_assets_tests.tiny_models import make_tiny_dinov2

PER_CLIP = ["clips", "frame_cache", "ground_truth", "flow", "flow_rhythm", "egomotion", "scene_embeddings", "segments"]
CROSS = ["segment_features", "cross_clip_clusters", "cluster_labels"]
REFERENCE = {
    "01_production_a": [("trowel", 12.0), ("walk", 12.0), ("idle", 12.0)],
    "02_transit_b": [("walk", 12.0), ("idle", 12.0), ("trowel", 12.0)],
    "03_prep_c": [("idle", 12.0), ("trowel", 12.0), ("walk", 12.0)],
}
NEW = ("04_demo_new", [("walk", 12.0), ("trowel", 12.0), ("idle", 12.0)])


def _run(assets: list[str], inst: dg.DagsterInstance, res: dict, partition: str | None = None) -> None:
    assert materialize(assets, res, inst, partition_key=partition).success


@pytest.fixture(scope="module")
def clustered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.DagsterInstance, dict]:
    tmp = tmp_path_factory.mktemp("timeline")
    root = tmp / "storage"
    for i, (name, plan) in enumerate([*REFERENCE.items(), NEW]):
        generate_clip(root / "videos" / f"{name}.mp4", seed=10 + i, width=320, height=180, fps=10, activities=plan)
    # scene is a fast tiny DINOv2 here: the fusion gates clip-fingerprinting scene features out anyway
    res = make_resources(root, scene_model=SceneModelResource(local_path=str(make_tiny_dinov2(tmp / "dino"))))
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", list(REFERENCE))
    for name in REFERENCE:
        _run(PER_CLIP, inst, res, name)
    _run(CROSS, inst, res)
    return root, inst, res


def _majority_gt(root: Path) -> pl.DataFrame:
    con = connect(root)
    return con.sql("""
        select s.clip, s.segment_idx, mode(g.activity) as truth
        from segments s join ground_truth g on g.clip = s.clip
         and g.frame_idx >= s.start_frame and g.frame_idx < s.end_frame
        group by all""").pl()


def test_new_clip_is_classified_without_reclustering(clustered) -> None:
    root, inst, res = clustered
    model_file = root / "models" / "cluster_model.json"
    before = model_file.read_bytes()
    name = NEW[0]
    inst.add_dynamic_partitions("clips", [name])
    _run(PER_CLIP, inst, res, name)
    _run(["activity_timeline"], inst, res)
    assert model_file.read_bytes() == before  # nothing was re-clustered
    con = connect(root)
    tl = con.sql(f"select * from activity_timeline where clip = '{name}' order by segment_idx").pl()
    assert tl.height == con.sql(f"select count(*) from segments where clip = '{name}'").fetchall()[0][0]
    assert set(tl["source"]) == {"classified"} and tl["activity"].min() >= 0 and tl["label"].null_count() == 0
    assert (tl["end_s"].to_numpy()[:-1] == tl["start_s"].to_numpy()[1:]).all()
    # the activity each known cluster stands for, from the reference clips' ground truth
    truth = _majority_gt(root)
    ref = (con.sql("select clip, segment_idx, cluster_full from cross_clip_clusters where modality = 'fusion'").pl()
           .join(truth, on=["clip", "segment_idx"]).group_by("cluster_full")
           .agg(pl.col("truth").mode().first().alias("meaning")))
    got = tl.join(truth, on=["clip", "segment_idx"]).join(ref, left_on="activity", right_on="cluster_full")
    agreement = float((got["truth"] == got["meaning"]).mean())
    assert agreement >= 0.7, got.select("segment_idx", "truth", "meaning", "distance")


def test_cluster_ids_stable_when_rerun_on_unchanged_data(clustered) -> None:
    root, inst, res = clustered
    con = connect(root)
    q = "select clip, segment_idx, modality, cluster from cross_clip_clusters order by all"
    first = con.sql(q).pl()
    _run(["cross_clip_clusters"], inst, res)
    assert connect(root).sql(q).pl().equals(first)
    model = json.loads((root / "models" / "cluster_model.json").read_text())
    assert {"fusion", "flow", "egomotion"} <= set(model["modalities"])
    # clustered clips take their pooled cluster, not a re-classification
    _run(["activity_timeline"], inst, res)
    tl = connect(root).sql("select source from activity_timeline where clip = '01_production_a'").pl()
    assert set(tl["source"]) == {"clustered"}
