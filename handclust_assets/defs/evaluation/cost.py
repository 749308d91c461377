"""Cost per footage hour: what every asset's compute measured (`defs.common.measured`: wall, CPU and GPU seconds,
peak memory, as metadata of each materialization), read back from the Dagster instance — the latest
materialization per asset and clip partition — and priced with `CostSettings`.
"""

from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg
import polars as pl

from handclust_assets.defs.adoption import ADOPTED_FROM
from handclust_assets.defs.common import COST_KEYS, measured, numeric_metadata
from handclust_assets.defs.resources import CostSettings

# Every cross-clip asset the report should include from this very run (it runs after them); the dashboard runs
# after the report, so its own cost shows from the previous run.
COST_AFTER = ("segment_features", "clip_clusters", "cross_clip_clusters", "cluster_labels", "segment_map",
              "activity_timeline", "cross_clip_entropy", "cluster_entropy", "quality_matrix", "phase_scores",
              "ground_truth_scores", "repetition_scores", "alignment_scores", "anomaly_scores", "anomaly_diagnostics",
              "anomaly_evaluation", "anomaly_matches", "repetition_counts", "preview_reel", "activity_overlays")
_CHUNK = 500


def _latest_records(instance: dg.DagsterInstance, key: dg.AssetKey) -> Iterator[Any]:
    """The latest materialization record of every partition of `key` (or the latest one, unpartitioned)."""
    by_partition = instance.get_latest_storage_id_by_partition(key, dg.DagsterEventType.ASSET_MATERIALIZATION)
    if not by_partition:
        yield from instance.fetch_materializations(key, limit=1).records
        return
    ids = sorted(by_partition.values())
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i: i + _CHUNK]
        yield from instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, storage_ids=chunk),
                                                   limit=len(chunk)).records


def read_measurements(instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey]) -> pl.DataFrame:
    """MEASUREMENT_SCHEMA rows: per step (the op: one per asset, one per multi-asset) and clip partition (null
    for a cross-clip asset), the latest measured materialization's cost metadata. A result copied from a partition
    holding the same video is left out: the cost per footage hour is of footage computed, which a copy would
    dilute."""
    from handclust_assets.lib.cost import MEASUREMENT_SCHEMA

    rows = []
    for key in keys:
        for rec in _latest_records(instance, key):
            mat = rec.asset_materialization
            meta = mat.metadata if mat is not None else {}
            if not all(k in meta for k in COST_KEYS):
                continue  # not measured (before measuring existed), or a multi-asset's second output
            if str(getattr(meta.get(ADOPTED_FROM), "value", "-")) != "-":
                continue  # copied from a partition holding the same video (`defs.adoption`): nothing was computed
            rows.append({"asset": rec.event_log_entry.step_key or key.to_user_string(), "clip": mat.partition,
                         "wall_s": float(meta["wall_s"].value), "cpu_s": float(meta["cpu_s"].value),
                         "gpu_s": float(meta["gpu_s"].value),
                         "peak_rss_bytes": int(float(meta["peak_rss_mb"].value) * 1e6)})
    return pl.DataFrame(rows, schema=MEASUREMENT_SCHEMA) if rows else pl.DataFrame(schema=MEASUREMENT_SCHEMA)


def asset_keys(context: dg.AssetExecutionContext) -> list[dg.AssetKey]:
    """The materializable assets of this code location (every key with events when the graph is not at hand)."""
    try:
        keys = context.repository_def.asset_graph.materializable_asset_keys
    except Exception:  # an execution context without a repository
        keys = context.instance.get_asset_keys()
    return sorted(keys, key=lambda k: k.to_user_string())


def _report_md(report: pl.DataFrame) -> str:
    head = "| asset | clips | CPU s / footage h | GPU s / footage h | $ / footage h |\n|---|---:|---:|---:|---:|\n"
    rows = report.filter(pl.col("row_kind") != "anchor").sort("usd_per_footage_h", descending=True, nulls_last=True)
    body = "".join(f"| {r['asset']} | {r['n_clips']} | {r['cpu_s_per_footage_h']:.0f} | {r['gpu_s_per_footage_h']:.0f}"
                   f" | {r['usd_per_footage_h']:.4f} |\n" for r in rows.iter_rows(named=True))
    return head + body


@dg.multi_asset(
    group_name="evaluation",
    outs={"cost_report": dg.AssetOut(kinds={"python", "duckdb"}), "clip_cost": dg.AssetOut(kinds={"python", "duckdb"})},
    deps=list(COST_AFTER),
    code_version="cost-report-v1",
    description="Cost per footage hour. `cost_report`: per asset (latest run of each clip partition), wall, CPU and "
    "GPU seconds and peak memory as measured by the runs themselves, in seconds and dollars per footage hour at "
    "the CostSettings prices (CPU core-hour, GPU-hour), a total row and the seed's anchor ($0.07 per 20-min video "
    "for EgoClean's V-JEPA 2 pass). `clip_cost`: per clip, all per-clip assets summed.",
)
@measured
def cost_report(context: dg.AssetExecutionContext, cost_settings: CostSettings, clips: pl.DataFrame | None):
    from handclust_assets.lib import cost

    prices = cost.Prices(cpu_core_hour_usd=cost_settings.cpu_core_hour_usd, gpu_hour_usd=cost_settings.gpu_hour_usd)
    measurements = read_measurements(context.instance, asset_keys(context))
    footage = (clips.select("clip", pl.col("duration_s").cast(pl.Float64)) if clips is not None
               else pl.DataFrame(schema=cost.FOOTAGE_SCHEMA))
    left_out = cost.unmatched_clips(measurements, footage)
    if left_out:
        context.log.warning(f"cost_report: {len(left_out)} measured clip(s) without a duration left out: "
                            f"{', '.join(left_out[:10])}")
    report = cost.cost_report(measurements, footage, prices)
    per_clip = cost.clip_cost(measurements, footage, prices)
    meta = {"footage_h": dg.MetadataValue.float(round(float(footage["duration_s"].sum()) / 3600, 4)),
            "measured_steps": dg.MetadataValue.int(measurements.height),
            "prices": dg.MetadataValue.text(f"${prices.cpu_core_hour_usd}/CPU core-h, ${prices.gpu_hour_usd}/GPU-h"),
            "report": dg.MetadataValue.md(_report_md(report)),
            **numeric_metadata(cost.report_metadata(report))}
    yield dg.Output(report, output_name="cost_report", metadata=meta)
    yield dg.Output(per_clip, output_name="clip_cost", metadata={
        "clips": dg.MetadataValue.int(per_clip.height),
        **numeric_metadata({"max_usd_per_footage_h": per_clip["usd_per_footage_h"].max()})})


assets = [cost_report]
