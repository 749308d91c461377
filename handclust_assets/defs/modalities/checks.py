"""Asset checks on the model outputs, per clip partition: they can fail, and the UI shows them beside the asset."""

import dagster as dg
import numpy as np
import polars as pl

from handclust_assets.defs.modalities import embeddings
from handclust_assets.defs.partitions import clip_partitions


def embedding_problems(df: pl.DataFrame, column: str = "embedding") -> dict:
    """Counts of rows that would poison clustering: non-finite values, zero vectors, inconsistent dimensions."""
    if df.height == 0:
        return {"rows": 0, "non_finite": 0, "zero": 0, "dims": 0}
    lens = df[column].list.len()
    dims = int(lens.n_unique())
    if dims != 1:
        return {"rows": df.height, "non_finite": 0, "zero": 0, "dims": dims}
    x = df[column].list.to_array(int(lens[0])).to_numpy().astype(np.float64)
    finite = np.isfinite(x).all(axis=1)
    norms = np.linalg.norm(np.where(np.isfinite(x), x, 0.0), axis=1)
    return {"rows": df.height, "non_finite": int((~finite).sum()), "zero": int((norms < 1e-9).sum()), "dims": dims}


def _check(df: pl.DataFrame) -> dg.AssetCheckResult:
    p = embedding_problems(df)
    passed = p["rows"] > 0 and p["non_finite"] == 0 and p["zero"] == 0 and p["dims"] == 1
    return dg.AssetCheckResult(passed=passed, metadata={k: dg.MetadataValue.int(v) for k, v in p.items()})


@dg.asset_check(asset=embeddings.scene_embeddings, partitions_def=clip_partitions,
                description="Every scene embedding is finite, non-zero and of one dimension.")
def scene_embeddings_finite(scene_embeddings: pl.DataFrame) -> dg.AssetCheckResult:
    return _check(scene_embeddings)


@dg.asset_check(asset=embeddings.video_embeddings, partitions_def=clip_partitions,
                description="Every V-JEPA 2 window embedding is finite, non-zero and of one dimension.")
def video_embeddings_finite(video_embeddings: pl.DataFrame) -> dg.AssetCheckResult:
    return _check(video_embeddings)


@dg.asset_check(asset=embeddings.tool_scores, partitions_def=clip_partitions,
                description="Tool presence scores are probabilities in [0, 1], one per frame and prompt.")
def tool_scores_are_probabilities(tool_scores: pl.DataFrame) -> dg.AssetCheckResult:
    s = tool_scores["score"].to_numpy()
    bad = int((~np.isfinite(s) | (s < 0) | (s > 1)).sum())
    dup = tool_scores.group_by("frame_idx", "prompt").len().filter(pl.col("len") > 1).height
    return dg.AssetCheckResult(passed=bad == 0 and dup == 0 and tool_scores.height > 0, metadata={
        "out_of_range": dg.MetadataValue.int(bad), "duplicate_frame_prompt": dg.MetadataValue.int(dup)})


model_checks = [scene_embeddings_finite, video_embeddings_finite, tool_scores_are_probabilities]

