"""Evaluation: every score is a table in DuckDB and numeric metadata in the UI (so its history plots).

Each evaluation asset is load -> compute -> metadata: `evaluation_asset` builds it from a plain compute function
(science, no Dagster) and a metadata function over its result.
"""

from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from handclust_assets.defs.common import measured, numeric_metadata

GT_EMPTY = {"clip": pl.Utf8, "frame_idx": pl.Int64, "activity": pl.Utf8, "period_s": pl.Float64}


def science(name: str) -> Callable[..., Any]:
    """A science function imported when a run needs it (scipy/sklearn stay out of the definitions' import)."""
    import importlib

    module, fn = name.rsplit(".", 1)
    return getattr(importlib.import_module(f"handclust_assets.science.{module}"), fn)


def evaluation_asset(name: str, *, ins: Sequence[str], compute: Callable[..., pl.DataFrame],
                     metadata: Callable[[pl.DataFrame], dict[str, Any]], description: str, code_version: str,
                     deps: Sequence[str] = ()) -> dg.AssetsDefinition:
    """An unpartitioned evaluation asset: its inputs (every clip partition with results, or None for a table that
    no clip has) go to `compute`; `metadata(result)` becomes the materialization's metadata."""

    @dg.asset(name=name, group_name="evaluation", kinds={"python", "duckdb"}, code_version=code_version,
              description=description, deps=list(deps), ins={k: dg.AssetIn(k) for k in ins})
    @measured
    def _asset(**inputs: pl.DataFrame | None) -> dg.Output[pl.DataFrame]:
        df = compute(**inputs)
        return dg.Output(df, metadata={"rows": dg.MetadataValue.int(df.height), **metadata(df)})

    return _asset


def _per_modality(df: pl.DataFrame, columns: Sequence[str], key: str = "modality") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in df.iter_rows(named=True):
        out.update(numeric_metadata({c: r[c] for c in columns}, prefix=f"{str(r[key]).replace(' ', '_')}_"))
    return out


cross_clip_entropy = evaluation_asset(
    "cross_clip_entropy", ins=["cross_clip_clusters"], code_version="entropy-v1",
    compute=lambda cross_clip_clusters: science("evaluation.entropy_tables")(cross_clip_clusters)[1],
    metadata=lambda df: _per_modality(df, ("mean_entropy", "multi_clip_share", "k", "noise", "n")),
    description="Cross-clip mixing entropy per modality: size-weighted mean over clusters of H(p_clip)/log(n clips "
    "in the cluster), share of clusters spanning >= 2 clips, k and noise.")

cluster_entropy = evaluation_asset(
    "cluster_entropy", ins=["cross_clip_clusters"], code_version="cluster-entropy-v1",
    compute=lambda cross_clip_clusters: science("evaluation.entropy_tables")(cross_clip_clusters)[0],
    metadata=lambda df: {"clusters": dg.MetadataValue.int(df.height)},
    description="Per cluster: size, clips it spans, mixing entropy.")

quality_matrix = evaluation_asset(
    "quality_matrix", ins=["clip_clusters"], code_version="quality-v1",
    compute=lambda clip_clusters: science("evaluation.quality_table")(clip_clusters),
    metadata=lambda df: {f"noise_{m}": dg.MetadataValue.float(float(g["noise_rate"].mean()))
                         for (m,), g in df.group_by(["modality"])},
    description="Per clip x modality: noise rate and number of clusters (the seed's quality matrix).")


def _phase_metadata(df: pl.DataFrame) -> dict[str, Any]:
    keyed = df.with_columns(pl.col("ablation").str.replace_all(" \\+ ", "_").str.replace_all(" ", "_"))
    return _per_modality(keyed.rename({"ablation": "key"}), ("nmi", "ari"), key="key")


phase_scores = evaluation_asset(
    "phase_scores", ins=["segment_features", "clips"], code_version="phase-v1",
    compute=lambda segment_features, clips: science("crossclip.ablation_phase_scores")(segment_features, clips),
    metadata=_phase_metadata,
    description="Agreement (NMI, ARI) of clusters with the file-name phase for the feature ablations: motion only, "
    "scene only, video only, motion + scene, all.")


def _gt_or_empty(ground_truth: pl.DataFrame | None) -> pl.DataFrame:
    return ground_truth if ground_truth is not None else pl.DataFrame(schema=GT_EMPTY)


ground_truth_scores = evaluation_asset(
    "ground_truth_scores", ins=["cross_clip_clusters", "segments", "ground_truth"], code_version="gt-scores-v1",
    compute=lambda cross_clip_clusters, segments, ground_truth: science("crossclip.ground_truth_table")(
        cross_clip_clusters, segments, _gt_or_empty(ground_truth)),
    metadata=lambda df: {**_per_modality(df, ("mof", "nmi", "ari", "edit")),
                         **({"best": df["modality"][0]} if df.height else {})},
    description="On clips with ground truth (synthetic): frame-level MoF after Hungarian matching, NMI, ARI and "
    "segmental edit score, per modality and for the fusion.")


def _repetition_metadata(df: pl.DataFrame) -> dict[str, Any]:
    return _per_modality(df, ("accepted_share", "median_count_error", "within_10pct"), key="activity")


repetition_scores_asset = evaluation_asset(
    "repetition_scores", ins=["repetitions", "segments", "ground_truth"], code_version="repetition-scores-v1",
    deps=["segment_features"],
    compute=lambda repetitions, segments, ground_truth: science("metrics.repetition_scores")(
        repetitions, segments, _gt_or_empty(ground_truth)),
    metadata=_repetition_metadata,
    description="On clips with ground truth: per activity, the share of segments whose repetition period was "
    "accepted (scene-SSM and flow autocorrelation agree within 30 %) and the relative error of the count (length / "
    "period); for aperiodic activities (idle) the accepted share is the false-acceptance rate.")

alignment_scores = evaluation_asset(
    "alignment_scores", ins=["cross_clip_clusters", "segments", "scene_embeddings"], code_version="alignment-v1",
    compute=lambda cross_clip_clusters, segments, scene_embeddings: science("evaluation.alignment_table")(
        cross_clip_clusters, segments, scene_embeddings),
    metadata=lambda df: {f"tau_{m}": dg.MetadataValue.float(float(g["mean_tau"].drop_nans().mean() or 0.0))
                         for (m,), g in df.group_by(["modality"])},
    description="Kendall's tau of nearest-neighbour frame alignment between repetitions (segments) of each cluster, "
    "on scene embeddings, averaged over pairs (MASA / LA2DS evaluation).")


class AnomalyConfig(dg.Config):
    """The EgoClean detector's threshold (launchpad): recall against false spans on clean footage."""

    min_contrast: float = Field(
        default=0.12, gt=0.0, description="theta_on = clip median + this (cosine-distance units of the window "
        "embeddings; 0.12 chosen on a train split for the offline scene embeddings). Raise it (0.14-0.16) to flag "
        "fewer spans on footage without anomalies, at the cost of missing weak ones (docs/results.md).")


@dg.multi_asset(
    group_name="evaluation",
    outs={"anomaly_scores": dg.AssetOut(kinds={"python", "duckdb"}), "anomalies": dg.AssetOut(kinds={"python", "duckdb"})},
    code_version="anomalies-v2",
    deps=["segment_features"],
    description="EgoClean anomalies per clip: typicality of each window against the clip's recurring content (mean "
    "cosine similarity to its most similar windows more than 20 s away) on V-JEPA 2 windows (scene embeddings "
    "pooled over 1-s windows when V-JEPA is absent: the `source` column says which), 1 - typicality, EMA, "
    "theta_on = median + contrast with hysteresis -> spans (science/anomaly.py says why not the seed's Otsu).",
)
@measured
def anomaly_detection(config: AnomalyConfig, video_embeddings: pl.DataFrame | None,
                      scene_embeddings: pl.DataFrame | None):
    scores, spans, source = science("evaluation.anomaly_tables")(video_embeddings, scene_embeddings,
                                                                 min_contrast=config.min_contrast)
    yield dg.Output(scores, output_name="anomaly_scores", metadata={"source": source,
                                                                     "clips": dg.MetadataValue.int(scores["clip"].n_unique())})
    yield dg.Output(spans, output_name="anomalies", metadata={"spans": dg.MetadataValue.int(spans.height),
                                                              "source": source})


@dg.asset_check(asset=cluster_entropy, description="Every entropy lies in [0, 1].")
def entropy_in_unit_interval(cluster_entropy: pl.DataFrame) -> dg.AssetCheckResult:
    bad = cluster_entropy.filter((pl.col("entropy") < 0) | (pl.col("entropy") > 1 + 1e-9) | pl.col("entropy").is_nan())
    return dg.AssetCheckResult(passed=bad.height == 0, metadata={"out_of_range": dg.MetadataValue.int(bad.height)})


assets = [cross_clip_entropy, cluster_entropy, quality_matrix, phase_scores, ground_truth_scores,
          repetition_scores_asset, alignment_scores, anomaly_detection]
checks = [entropy_in_unit_interval]
