"""A renamed, moved or copied video's per-clip steps copy the results of its twin partition (`lib.adopt`).

`clip_asset` asks `plan_adoption` before each per-clip step: the step's `made_from` (its code version, its per-clip
upstream steps' `made_from` as their latest materializations recorded them, the configuration and model versions
of the resources it takes), and a twin partition to copy from: one the `clips` step found holding the same video
(`same_video_as`) whose latest materialization of this step was made from the same and whose files are there.
Every per-clip materialization records `made_from`; a copied one says `adopted_from`. The run tag
`handclust/recompute` (any value but "0" / "false") computes every step of the run instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from handclust_assets.defs.common import COST_KEYS, measured
from handclust_assets.defs.io_manager import table_name
from handclust_assets.lib.adopt import adopt_partition, can_adopt, step_key
from handclust_assets.lib.same_video import named_clips
from handclust_assets.lib.storage import Storage

MADE_FROM = "made_from"  # metadata of every per-clip materialization: what it was made from (`lib.adopt`)
ADOPTED_FROM = "adopted_from"  # metadata of a copied one: the partition it was copied from
SAME_VIDEO_AS = "same_video_as"  # metadata of a `clips` materialization: other partitions holding the video
RECOMPUTE_TAG = "handclust/recompute"
_NOT_COPIED = {*COST_KEYS, "rows", MADE_FROM, ADOPTED_FROM}  # measured anew, or said anew


@dataclass(frozen=True)
class Adoption:
    """A step's `made_from`, and the twin to copy its result from (None: compute it)."""

    made_from: str
    twin: str | None = None
    twin_metadata: Mapping[str, dg.MetadataValue] = field(default_factory=dict)


def latest_materializations(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Iterable[str]
                            ) -> dict[str, dg.AssetMaterialization]:
    """partition -> its latest materialization of the asset (two storage queries)."""
    ids = instance.get_latest_storage_id_by_partition(asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION,
                                                      set(partitions))
    if not ids:
        return {}
    res = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(ids.values())),
                                          limit=len(ids))
    return {rec.asset_materialization.partition: rec.asset_materialization for rec in res.records
            if rec.asset_materialization is not None and rec.asset_materialization.partition is not None}


def latest_metadata(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Iterable[str]
                    ) -> dict[str, Mapping[str, dg.MetadataValue]]:
    """partition -> the metadata of its latest materialization of the asset (two storage queries)."""
    return {p: m.metadata for p, m in latest_materializations(instance, asset_key, partitions).items()}


def _text(meta: Mapping[str, dg.MetadataValue] | None, key: str) -> str | None:
    v = (meta or {}).get(key)
    return None if v is None else str(v.value)


def resource_config(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration (and `version()`, where a resource has one: model weights) of the resources among a
    step's arguments, by parameter name. The storage resource is left out (it is where the results are, and it
    holds secrets)."""
    from handclust_assets.defs.resources import StorageResource

    out: dict[str, Any] = {}
    for name, res in sorted(kwargs.items()):
        if not isinstance(res, dg.ConfigurableResource) or isinstance(res, StorageResource):
            continue
        version = getattr(res, "version", None)
        out[name] = {"type": type(res).__name__, "config": res.model_dump(mode="json"),
                     "version": version() if callable(version) else None}
    return out


def recompute_asked(context: dg.AssetExecutionContext) -> bool:
    v = context.run.tags.get(RECOMPUTE_TAG)
    return v is not None and v.strip().lower() not in ("0", "false", "no", "")


def plan_adoption(context: dg.AssetExecutionContext, kwargs: Mapping[str, Any], code_version: str,
                  side_files: Iterable[str]) -> Adoption | None:
    """This step's `made_from` and a twin to copy from, or None where its upstream's `made_from` is unknown (made
    before steps recorded it: compute, and record it from now on)."""
    clip, key, instance = context.partition_key, context.asset_key, context.instance
    graph = context.job_def.asset_layer.asset_graph
    clips_key = dg.AssetKey("clips")
    clips_meta = latest_metadata(instance, clips_key, [clip]).get(clip)  # its `made_from` and `same_video_as`
    upstream: dict[str, str] = {}
    for dep in context.assets_def.get_asset_spec(key).deps:
        if graph.get(dep.asset_key).partitions_def is None:
            continue  # model weights: their versions are in the resources' `version()`
        meta = clips_meta if dep.asset_key == clips_key else latest_metadata(instance, dep.asset_key, [clip]).get(clip)
        made = _text(meta, MADE_FROM)
        if made is None:
            return None
        upstream[dep.asset_key.to_user_string()] = made
    made = step_key(key.to_user_string(), code_version, upstream, resource_config(kwargs))
    if recompute_asked(context):
        return Adoption(made)
    twins = [t for t in named_clips(_text(clips_meta, SAME_VIDEO_AS)) if t != clip]
    if not twins:
        return Adoption(made)
    store = tables_store(context)
    table = table_name(key)
    recorded = latest_metadata(instance, key, twins)
    for twin in twins:
        if _text(recorded.get(twin), MADE_FROM) == made and can_adopt(store, table, twin, side_files):
            return Adoption(made, twin, recorded[twin])
    return Adoption(made)


def planned(context: dg.AssetExecutionContext, kwargs: Mapping[str, Any], code_version: str,
            side_files: Iterable[str]) -> Adoption | None:
    """`plan_adoption`, or None (compute, and say why) where the instance or the storage could not be asked."""
    try:
        return plan_adoption(context, kwargs, code_version, side_files)
    except Exception as e:  # a model whose version cannot be told, an unreachable store: compute as before
        context.log.warning(f"{context.asset_key.to_user_string()}: not looked for a partition holding the same "
                            f"video to copy from ({type(e).__name__}: {e}); computed")
        return None


def tables_store(context: dg.AssetExecutionContext) -> Storage:
    """The storage the step's table is written to: its IO manager's (`defs.io_manager`)."""
    return context.resources.io_manager.store


def adopted_output(context: dg.AssetExecutionContext, adoption: Adoption, side_files: Iterable[str],
                   kwargs: Mapping[str, Any]) -> dg.Output:
    """Copy the twin's result as this partition's: its table partition (returned, for the IO manager to write),
    its side files, and its materialization's metadata but for cost and paths; `adopted_from` names the twin."""
    import polars as pl

    clip, twin = context.partition_key, adoption.twin
    assert twin is not None
    source = None
    clips = kwargs.get("clips")
    if isinstance(clips, pl.DataFrame) and clips.height:  # the frame cache's meta.json names the new file
        row = clips.row(0, named=True)
        source = {"source": row.get("source_path"), "intrinsics": row.get("intrinsics_path")}
    df = adopt_partition(tables_store(context), table_name(context.asset_key), twin, clip, side_files, source)
    meta = {k: v for k, v in adoption.twin_metadata.items()
            if k not in _NOT_COPIED and not isinstance(v, dg.PathMetadataValue)}
    context.log.info(f"{clip}: {context.asset_key.to_user_string()} copied from clip partition {twin!r} (the same "
                     f"video, made from the same code, settings and models; {df.height} row(s)); run with tag "
                     f"{RECOMPUTE_TAG}=1 to compute it instead")
    return dg.Output(df, metadata={**meta, ADOPTED_FROM: dg.MetadataValue.text(twin)})


def copied(context: dg.AssetExecutionContext, adoption: Adoption, side_files: Iterable[str],
           kwargs: Mapping[str, Any]) -> list[Any] | None:
    """The measured events of copying the twin's result, or None (compute it: no twin, or the copy failed, e.g. the
    twin's files were replaced or deleted meanwhile; said in the log)."""
    if adoption.twin is None:
        return None
    try:
        return list(measured(adopted_output)(context, adoption, side_files, kwargs))
    except Exception as e:
        context.log.warning(f"{context.asset_key.to_user_string()}: copying clip partition {adoption.twin!r}'s "
                            f"result failed ({type(e).__name__}: {e}); computed instead")
        return None


def with_made_from(events: list[Any], made: str) -> list[Any]:
    """The events, each Output carrying `made_from` (and `adopted_from` "-" unless copied)."""
    out = []
    for ev in events:
        if isinstance(ev, dg.Output):
            extra = {MADE_FROM: dg.MetadataValue.text(made)}
            if ADOPTED_FROM not in (ev.metadata or {}):
                extra[ADOPTED_FROM] = dg.MetadataValue.text("-")
            ev = ev.with_metadata({**(ev.metadata or {}), **extra})
        out.append(ev)
    return out
