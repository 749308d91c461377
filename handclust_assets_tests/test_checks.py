"""Asset checks on model outputs can pass and can fail."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.ingest import assets as ingest
from handclust_assets.defs.modalities import checks, embeddings
from handclust_assets.defs.resources import SceneModelResource
from handclust_assets.video.writer import moving_pattern, write_video
from handclust_assets_tests.support import check_results
from handclust_assets_tests.tiny_models import make_tiny_dinov2


def _emb(rows: list[list[float]]) -> pl.DataFrame:
    return pl.DataFrame({"embedding": rows}, schema={"embedding": pl.List(pl.Float32)})


def test_embedding_problems_counts_each_kind() -> None:
    assert checks.embedding_problems(_emb([[1, 0], [0, 1]])) == {"rows": 2, "non_finite": 0, "zero": 0, "dims": 1}
    assert checks.embedding_problems(_emb([[1, np.nan], [0, 0]]))["non_finite"] == 1
    assert checks.embedding_problems(_emb([[1, 1], [0, 0]]))["zero"] == 1
    assert checks.embedding_problems(_emb([[1, 1], [0, 0, 1]]))["dims"] == 2


def test_scene_check_passes_then_fails_on_a_poisoned_partition(storage: Path, tmp_path: Path, resources) -> None:
    write_video(storage / "videos" / "a_demo.mp4", moving_pattern(15, 96, 64), 15)
    res = resources(scene_model=SceneModelResource(local_path=str(make_tiny_dinov2(tmp_path / "dino"))))
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a_demo"])
    assets = [ingest.clips, ingest.frame_cache, embeddings.scene_embeddings, checks.scene_embeddings_finite]
    r = dg.materialize(assets, partition_key="a_demo", instance=inst, resources=res)
    assert check_results(r) == {"scene_embeddings_finite": True}
    # a broken model (here: the same tiny model with its first output row replaced by NaN) fails the check
    res_bad = {**res, "scene_model": _NanSceneModel(local_path=res["scene_model"].local_path)}
    r2 = dg.materialize(assets, partition_key="a_demo", instance=inst, resources=res_bad,
                        selection=[embeddings.scene_embeddings.key])
    ev2 = r2.get_asset_check_evaluations()
    assert len(ev2) == 1 and not ev2[0].passed and ev2[0].metadata["non_finite"].value == 1


class _NanSceneModel(SceneModelResource):
    def load(self) -> object:
        enc = super().load()

        class Broken:
            name, version = enc.name, enc.version

            def embed(self, frames: np.ndarray) -> np.ndarray:
                e = enc.embed(frames)
                e[0] = np.nan
                return e

        return Broken()
