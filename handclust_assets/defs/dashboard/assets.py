"""Dashboard: the lab dashboard (static site), the cluster preview reel and per-clip activity overlays.

Thin wiring over `handclust_assets.report` (plain functions). The builders read the result tables from storage,
so a missing table or modality makes a section say why instead of failing the asset.
"""

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from handclust_assets.defs.common import measured
from handclust_assets.defs.resources import (
    MediaPipeResource,
    SceneModelResource,
    StorageResource,
    ToolModelResource,
    VideoModelResource,
)

# The cross-clip tables the dashboard reads (per-clip tables are read too, but through these: every one of them
# is rebuilt when a clip's results change). Unpartitioned deps only, so one failed clip never blocks the page.
DASHBOARD_DEPS = ("cross_clip_clusters", "clip_clusters", "cluster_labels", "cross_clip_entropy", "cluster_entropy",
                  "quality_matrix", "phase_scores", "ground_truth_scores", "segment_map", "alignment_scores",
                  "anomalies", "anomaly_scores", "segment_features", "repetition_scores", "anomaly_diagnostics",
                  "anomaly_evaluation", "anomaly_matches", "cost_report", "clip_cost", "repetition_counts")


def modality_reasons(instance: dg.DagsterInstance, models: dict[str, Any]) -> dict[str, str]:
    """Why each modality without results is absent: its model's reason (the resource says it cannot be loaded
    here), else that its asset was never materialized in this instance. `models`: modality -> model resource."""
    from handclust_assets.report.data import MODALITY_SOURCE

    out: dict[str, str] = {}
    for m, asset in MODALITY_SOURCE.items():
        if instance.fetch_materializations(dg.AssetKey(asset), limit=1).records:
            continue  # it has run: the builder judges from the tables
        reason = models[m].unavailable_reason() if m in models else None
        out[m] = (f"model unavailable: {reason}" if reason else
                  f"`{asset}` was never materialized in this Dagster instance")
    return out


@dg.asset(
    group_name="dashboard",
    kinds={"python", "html"},
    deps=[*DASHBOARD_DEPS, "preview_reel", "activity_timeline", "activity_overlays"],
    code_version="lab-dashboard-v1",

    description="The lab dashboard (seed 000 made live): cross-clip ranking with medoid grids, quality matrix, "
    "per-clip drilldowns (timelines, SSM, flow rhythm, tools, anomalies, repetitions, coverage), 2-D segment map, "
    "phase and ground-truth scores, computed take-aways. Static site at <storage>/dashboard/index.html "
    "(serve: `handclust dashboard`).",
)
@measured
def lab_dashboard(context: dg.AssetExecutionContext, storage: StorageResource, scene_model: SceneModelResource,
                  video_model: VideoModelResource, tool_model: ToolModelResource,
                  mediapipe: MediaPipeResource) -> dg.MaterializeResult:
    from handclust_assets.report import build_dashboard

    store = storage.store()
    models = {"scene": scene_model, "video": video_model, "tools": tool_model, "pose": mediapipe, "hands": mediapipe}
    res = build_dashboard(store, modality_reasons=modality_reasons(context.instance, models))
    if not store.is_local:
        store.publish_dir(res.index.parent, "dashboard", prune=False)
    for err in res.errors:
        context.log.warning(f"dashboard section failed: {err}")
    take = "\n".join(f"{i}. **{h}** {ev}" for i, (h, ev) in enumerate(res.takeaways, start=1)) or "none yet"
    empty = sorted(k for k in res.missing if k.startswith("sec-"))
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(store.uri("dashboard", "index.html")),
        "url": dg.MetadataValue.url(res.index.as_uri()),
        "serve": dg.MetadataValue.text("handclust dashboard"),
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


def render_or_skip(context: dg.AssetExecutionContext, storage: StorageResource, render: Callable[[], Any],
                   path: Path, what: str, extra: Callable[[Any], dict]) -> dg.MaterializeResult:
    """Render one video; when there is nothing to render, remove a stale file and say why in the metadata."""
    from handclust_assets.report import NothingToRender

    store = storage.store()
    rel = ("dashboard", "videos", path.name)
    t0 = time.perf_counter()
    try:
        v = render()
    except NothingToRender as e:
        path.unlink(missing_ok=True)
        store.rm(*rel)
        context.log.warning(f"{what} not rendered: {e}")
        return dg.MaterializeResult(metadata={"skipped": dg.MetadataValue.text(str(e)),
                                              "frames": dg.MetadataValue.int(0)})
    if not store.is_local:
        store.write_bytes(v.path.read_bytes(), *rel)
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(store.uri(*rel)),
        "frames": dg.MetadataValue.int(v.n_frames),
        **extra(v),
        "duration_s": dg.MetadataValue.float(round(v.duration_s, 2)),
        "megabytes": dg.MetadataValue.float(round(v.path.stat().st_size / 1e6, 3)),
        "render_seconds": dg.MetadataValue.float(round(time.perf_counter() - t0, 2)),
    })


@dg.asset(
    group_name="dashboard",
    kinds={"python", "video"},
    deps=["cross_clip_clusters", "cluster_labels", "cluster_entropy"],
    code_version="preview-reel-v1",

    description="Cluster preview reel (H.264, 5 fps, 480 px): per fusion cluster a title card with its label, "
    "then up to 3 example segments (3 s each) from different clips, from the frame cache.",
)
@measured
def preview_reel(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    from handclust_assets.report import reel_path, render_preview_reel

    store = storage.store()
    return render_or_skip(context, storage, lambda: render_preview_reel(store), reel_path(store), "preview reel",
                          lambda v: {"clusters": dg.MetadataValue.int(v.clusters),
                                     "examples": dg.MetadataValue.int(len(v.examples))})


def overlay_inputs_digest(clip: str, timeline: pl.DataFrame, anomalies: pl.DataFrame | None,
                          clips: pl.DataFrame | None) -> str:
    """What a clip's overlay shows: its timeline (activities, labels), anomaly spans and video content. A clip whose
    digest did not change keeps its overlay."""
    parts = [timeline.filter(pl.col("clip") == clip).select("segment_idx", "activity", "label").sort("segment_idx")]
    if anomalies is not None:
        parts.append(anomalies.filter(pl.col("clip") == clip).select("start_s", "end_s").sort("start_s"))
    if clips is not None:
        parts.append(clips.filter(pl.col("clip") == clip).select("content_hash"))
    h = hashlib.sha256()
    for df in parts:
        h.update(df.write_csv().encode())
    return h.hexdigest()[:16]


@dg.asset(
    group_name="dashboard",
    kinds={"python", "video"},
    code_version="activity-overlay-v2",
    deps=["cluster_labels", "frame_cache"],
    description="Per clip: every cached frame with its activity (fusion cluster label; noise shows its nearest "
    "cluster) and a rolling 30-s timeline strip (anomaly spans in red), H.264 at the cache's 5 fps. Only clips "
    "whose timeline, anomalies or video changed are re-rendered (<storage>/dashboard/videos/overlays.json).",
)
@measured
def activity_overlays(context: dg.AssetExecutionContext, storage: StorageResource, activity_timeline: pl.DataFrame,
                      anomalies: pl.DataFrame | None, clips: pl.DataFrame | None) -> dg.MaterializeResult:
    from handclust_assets.report import overlay_path, render_activity_overlay

    store = storage.store()
    manifest_key = ("dashboard", "videos", "overlays.json")
    done = store.read_json(*manifest_key) or {}
    todo, kept, skipped = [], 0, 0
    for clip in sorted(activity_timeline["clip"].unique().to_list()):
        digest = overlay_inputs_digest(clip, activity_timeline, anomalies, clips)
        if done.get(clip) == digest and store.exists("dashboard", "videos", overlay_path(store, clip).name):
            kept += 1
        else:
            todo.append((clip, digest))
    frames = 0
    for i, (clip, digest) in enumerate(todo, start=1):
        res = render_or_skip(context, storage, lambda c=clip: render_activity_overlay(store, c),
                             overlay_path(store, clip), f"overlay for {clip}",
                             lambda v: {"activities": dg.MetadataValue.int(v.clusters)})
        if "skipped" in (res.metadata or {}):
            skipped += 1
            continue
        frames += int(res.metadata["frames"].value)
        done[clip] = digest
        context.log.info(f"overlay {i}/{len(todo)}: {clip}")
    store.write_json(done, *manifest_key)
    return dg.MaterializeResult(metadata={"rendered": dg.MetadataValue.int(len(todo) - skipped),
                                          "unchanged": dg.MetadataValue.int(kept),
                                          "not_rendered": dg.MetadataValue.int(skipped),
                                          "frames": dg.MetadataValue.int(frames)})


assets = [lab_dashboard, preview_reel, activity_overlays]
