"""Dashboard group: the lab dashboard (static site), the cluster preview reel and per-clip activity overlays.

Thin wiring over `handclust_assets.report` (plain functions). Like the cross-clip assets, they read the result
tables directly from storage, so a missing table or modality makes a section say why instead of failing.
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.defs.resources import (
    HandclustSettings,
    MediaPipeResource,
    SceneModelResource,
    ToolModelResource,
    VideoModelResource,
)
from handclust_assets.report import (
    NothingToRender,
    build_dashboard,
    overlay_path,
    reel_path,
    render_activity_overlay,
    render_preview_reel,
)
from handclust_assets.report.data import MODALITY_SOURCE

AUTO = dg.AutomationCondition.eager()
# The cross-clip tables the dashboard reads (per-clip tables are read too, but through these: every one of them
# is rebuilt when a clip's results change). Unpartitioned deps only, so one failed clip never blocks the page.
DASHBOARD_DEPS = [dg.AssetKey(k) for k in (
    "cross_clip_clusters", "clip_clusters", "cluster_labels", "cross_clip_entropy", "cluster_entropy",
    "quality_matrix", "phase_scores", "ground_truth_scores", "segment_map", "alignment_scores", "anomalies",
    "anomaly_scores", "segment_features")]


def _graph_keys(context: dg.AssetExecutionContext) -> set[str] | None:
    try:
        return {k.to_user_string() for k in context.repository_def.asset_graph.get_all_asset_keys()}
    except Exception:  # noqa: BLE001 - no repository in some execution contexts: skip that check
        return None


def _failure_message(instance: dg.DagsterInstance, run_id: str, step: str) -> str:
    try:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            ev = entry.dagster_event
            if ev is not None and ev.step_key == step and ev.step_failure_data and ev.step_failure_data.error:
                lines = [ln.strip() for ln in ev.step_failure_data.error.message.splitlines() if ln.strip()]
                return lines[0][:300] if lines else "no message"
    except Exception:  # noqa: BLE001
        pass
    return "see the run's logs"


def model_probe(resource: object) -> str | None:
    """Why a model resource cannot provide its model here, checked cheaply (no weights loaded): a missing local
    folder, a hub id that is neither in the Hugging Face cache nor reachable, a missing MediaPipe .task file.
    None when the model looks available (or the check itself is not possible)."""
    from handclust_assets.lib.errors import ModelUnavailableError

    if isinstance(resource, MediaPipeResource):
        try:
            resource.pose_model()
            resource.hand_model()
        except ModelUnavailableError as e:
            return f"model unavailable: MediaPipe {e.model} {e.reason}"
        except Exception:  # noqa: BLE001
            return None
        return None
    spec = getattr(resource, "spec", None)
    if spec is None:
        return None
    try:
        from handclust_assets.models.hub import hub_reachable

        sp = spec()
        src = sp.resolve_source()
        if src != sp.model_id:
            return None if Path(src).exists() else f"model unavailable: local weights {src} do not exist"
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(sp.model_id, "config.json", revision=sp.revision), str):
            return None
        if hub_reachable():
            return None
        return (f"model unavailable: {sp.model_id} is not in the Hugging Face cache and the hub cannot be reached "
                "(set the resource's local_path or $HANDCLUST_MODEL_DIR)")
    except Exception:  # noqa: BLE001 - the probe is advisory
        return None


def modality_reasons(context: dg.AssetExecutionContext, models: dict[str, object] | None = None) -> dict[str, str]:
    """Why each modality without results is absent, from this Dagster instance: the last failure of its asset
    (a missing model names itself there), or that it was never materialized (with the model probe's finding), or
    that the asset does not exist. `models` maps modality -> its model resource."""
    models = models or {}
    graph = _graph_keys(context)
    out: dict[str, str] = {}
    for m, asset in MODALITY_SOURCE.items():
        if graph is not None and asset not in graph:
            out[m] = f"no `{asset}` asset in this code location"
            continue
        key = dg.AssetKey(asset)
        try:
            if context.instance.fetch_materializations(key, limit=1).records:
                continue  # it has run: the builder judges from the tables
            fails = context.instance.fetch_failed_materializations(key, limit=1).records
        except Exception:  # noqa: BLE001 - event storage without failure records
            continue
        if fails:
            msg = _failure_message(context.instance, fails[0].run_id, asset)
            low = msg.lower()
            prefix = "model unavailable: " if "could not be loaded" in low or "modelunavailable" in low else ""
            out[m] = f"{prefix}`{asset}` failed (run {fails[0].run_id[:8]}): {msg}"
        else:
            probe = model_probe(models[m]) if m in models else None
            out[m] = (f"{probe}; `{asset}` was never materialized in this Dagster instance" if probe else
                      f"`{asset}` was never materialized in this Dagster instance")
    return out


@dg.asset(
    group_name="dashboard",
    kinds={"python", "html"},
    deps=[*DASHBOARD_DEPS, "preview_reel"],
    code_version="lab-dashboard-v1",
    automation_condition=AUTO,
    description="The lab dashboard (seed 000 made live): cross-clip ranking with medoid grids, quality matrix, "
    "per-clip drilldowns (timelines, SSM, flow rhythm, tools, anomalies, repetitions, coverage), 2-D segment map, "
    "phase and ground-truth scores, computed take-aways. Static site at storage/dashboard/index.html "
    "(serve: `handclust dashboard`).",
)
def lab_dashboard(context: dg.AssetExecutionContext, settings: HandclustSettings, scene_model: SceneModelResource,
                  video_model: VideoModelResource, tool_model: ToolModelResource,
                  mediapipe: MediaPipeResource) -> dg.MaterializeResult:
    root = settings.root()
    models = {"scene": scene_model, "video": video_model, "tools": tool_model, "pose": mediapipe, "hands": mediapipe}
    res = build_dashboard(root, modality_reasons=modality_reasons(context, models))
    for err in res.errors:
        context.log.warning(f"dashboard section failed: {err}")
    take = "\n".join(f"{i}. **{h}** {ev}" for i, (h, ev) in enumerate(res.takeaways, start=1)) or "none yet"
    empty = sorted(k for k in res.missing if k.startswith("sec-"))
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(res.index)),
        "url": dg.MetadataValue.url(res.index.as_uri()),
        "serve": dg.MetadataValue.text(f"handclust dashboard --storage {root}"),
        "sections": dg.MetadataValue.int(len(res.sections)),
        "sections_empty": dg.MetadataValue.int(len(empty)),
        "empty_sections": dg.MetadataValue.text(", ".join(empty) or "none"),
        "section_errors": dg.MetadataValue.int(len(res.errors)),
        "images": dg.MetadataValue.int(res.images),
        "clusters": dg.MetadataValue.int(res.clusters),
        "fusion_clusters": dg.MetadataValue.int(res.fusion_clusters),
        "clips": dg.MetadataValue.int(res.clips),
        "segments": dg.MetadataValue.int(res.segments),
        "modalities_present": dg.MetadataValue.text(", ".join(res.modalities_present) or "none"),
        "modalities_absent": dg.MetadataValue.text(", ".join(res.modalities_absent) or "none"),
        "build_seconds": dg.MetadataValue.float(round(res.seconds, 2)),
        "takeaways": dg.MetadataValue.md(take),
    })


@dg.asset(
    group_name="dashboard",
    kinds={"python", "video"},
    deps=[dg.AssetKey("cross_clip_clusters"), dg.AssetKey("cluster_labels"), dg.AssetKey("cluster_entropy")],
    code_version="preview-reel-v1",
    automation_condition=AUTO,
    description="Cluster preview reel (H.264, 5 fps, 480 px): per fusion cluster a title card with its label, "
    "then up to 3 example segments (3 s each) from different clips, from the frame cache.",
)
def preview_reel(context: dg.AssetExecutionContext, settings: HandclustSettings) -> dg.MaterializeResult:
    root = settings.root()
    return _render_video(context, lambda: render_preview_reel(root), reel_path(root), "preview reel",
                         lambda v: {"clusters": dg.MetadataValue.int(v.clusters),
                                    "examples": dg.MetadataValue.int(len(v.examples))})


@dg.asset(
    group_name="dashboard",
    partitions_def=clip_partitions,
    kinds={"python", "video"},
    deps=[dg.AssetKey("cross_clip_clusters"), dg.AssetKey("cluster_labels"), dg.AssetKey("frame_cache")],
    code_version="activity-overlay-v1",
    automation_condition=AUTO,
    description="Per clip: every cached frame with its activity (fusion cluster label; noise shows its nearest "
    "cluster) and a rolling 30-s timeline strip (anomaly spans in red), H.264 at the cache's 5 fps.",
)
def activity_overlays(context: dg.AssetExecutionContext, settings: HandclustSettings) -> dg.MaterializeResult:
    clip = context.partition_key
    root = settings.root()
    return _render_video(context, lambda: render_activity_overlay(root, clip), overlay_path(root, clip),
                         f"overlay for {clip}", lambda v: {"activities": dg.MetadataValue.int(v.clusters)})


def _render_video(context: dg.AssetExecutionContext, render: Callable[[], Any], path: Path, what: str,
                  extra: Callable[[Any], dict]) -> dg.MaterializeResult:
    """Render one video; when there is nothing to render, remove a stale file and say why in the metadata."""
    t0 = time.perf_counter()
    try:
        v = render()
    except NothingToRender as e:
        if path.exists():
            path.unlink()
        context.log.warning(f"{what} not rendered: {e}")
        return dg.MaterializeResult(metadata={"skipped": dg.MetadataValue.text(str(e)),
                                              "frames": dg.MetadataValue.int(0)})
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(v.path)),
        "frames": dg.MetadataValue.int(v.n_frames),
        **extra(v),
        "duration_s": dg.MetadataValue.float(round(v.duration_s, 2)),
        "megabytes": dg.MetadataValue.float(round(v.path.stat().st_size / 1e6, 3)),
        "render_seconds": dg.MetadataValue.float(round(time.perf_counter() - t0, 2)),
    })


# the unpartitioned ones run in the `cross_clip` job; the partitioned overlays get their own job
cross_clip_dashboard_assets = [preview_reel, lab_dashboard]
dashboard_assets = [*cross_clip_dashboard_assets, activity_overlays]
