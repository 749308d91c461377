"""The jobs users launch from the UI (and the sensors target). Runs execute a job's steps in one process (the
code location's executor), so a clip's models are loaded once per run."""

import graphlib

import dagster as dg

from handclust_assets.defs.clusters import assets as clusters
from handclust_assets.defs.clusters import timeline
from handclust_assets.defs.counting import assets as counting
from handclust_assets.defs.dashboard import assets as dashboard
from handclust_assets.defs.evaluation import anomalies as anomaly_evaluation
from handclust_assets.defs.evaluation import assets as evaluation
from handclust_assets.defs.evaluation import cost
from handclust_assets.defs.ingest import assets as ingest
from handclust_assets.defs.ingest import footage
from handclust_assets.defs.modalities import body, embeddings, motion
from handclust_assets.defs.models import assets as models
from handclust_assets.defs.segments import assets as segments

CLIP_JOB, CROSS_JOB, REEMBED_JOB = "process_clip", "cross_clip", "reembed_models"
# every asset partitioned by clip that a clip's own run builds (timelines and overlays follow the pooled clustering)
PER_CLIP = [*ingest.assets, *footage.assets, *motion.assets, *embeddings.assets, *body.assets, *segments.assets,
            counting.period_track, counting.period_curve]
CROSS_CLIP_ASSETS = [*clusters.assets, *timeline.assets, *evaluation.assets, *dashboard.assets,
                     counting.repetition_counts]
CROSS_CLIP_ASSETS += [*anomaly_evaluation.assets, *cost.assets]  # anomaly diagnostics/evaluation, cost per footage hour
# model-backed asset -> the resource whose version says which model it should be built with now
MODEL_RESOURCES = {"scene_embeddings": "scene_model", "video_embeddings": "video_model", "tool_scores": "tool_model",
                   "pose": "mediapipe", "hands": "mediapipe"}


def _downstream_within(names: list[str], within: list[dg.AssetsDefinition]) -> dict[str, list[dg.AssetKey]]:
    """Per asset named, every asset of `within` that (transitively) depends on it, sorted."""
    every = [*PER_CLIP, *CROSS_CLIP_ASSETS, *models.assets]
    group = dg.AssetSelection.assets(*within)
    out = {}
    for name in names:
        sel = dg.AssetSelection.assets(name).downstream() & group
        out[name] = sorted((k for k in sel.resolve(every) if k != dg.AssetKey(name)), key=lambda k: k.path)
    return out


def per_clip_downstream(names: list[str]) -> dict[str, list[dg.AssetKey]]:
    """Per asset named, every per-clip asset that (transitively) depends on it: what a run re-making it rebuilds."""
    return _downstream_within(names, PER_CLIP)


def reembed_downstream() -> dict[str, list[dg.AssetKey]]:
    """Per model asset, every per-clip asset built on it: what a re-embed run rebuilds."""
    return per_clip_downstream(list(MODEL_RESOURCES))


def code_versions(assets: list[dg.AssetsDefinition]) -> dict[str, str | None]:
    """Each asset's code version now, upstream before downstream."""
    own = {k: a for a in assets for k in a.keys}
    order = graphlib.TopologicalSorter({k: sorted((d for d in a.dependency_keys if d in own), key=str)
                                       for k, a in own.items()})
    return {k.to_user_string(): own[k].code_versions_by_key.get(k) for k in order.static_order()}


def per_clip_code_versions() -> dict[str, str | None]:
    """Every per-clip asset's code version now, upstream before downstream."""
    return code_versions(PER_CLIP)


def cross_clip_code_versions() -> dict[str, str | None]:
    """Every cross-clip asset's code version now, upstream before downstream."""
    return code_versions(CROSS_CLIP_ASSETS)


def cross_clip_downstream() -> dict[str, list[str]]:
    """Per cross-clip asset, every cross-clip asset built on it (transitively)."""
    names = [k.to_user_string() for a in CROSS_CLIP_ASSETS for k in a.keys]
    return {n: [k.to_user_string() for k in keys] for n, keys in _downstream_within(names, CROSS_CLIP_ASSETS).items()}


process_clip = dg.define_asset_job(
    CLIP_JOB, selection=dg.AssetSelection.assets(*PER_CLIP), tags={"handclust/kind": "clip"},
    description="Every per-clip asset for one clip partition: ingest, frame cache, every modality (a modality whose "
    "model is unavailable is skipped, named), segments, repetitions. What the video folder sensor launches for each "
    "new or changed video; the cross-clip graph follows by automation.")
ingest_clips = dg.define_asset_job(
    "ingest_clips", selection=dg.AssetSelection.assets(*ingest.assets),
    description="Per clip partition: probe, phase, fisheye rectification and the frame cache (decode once).")
reembed_models = dg.define_asset_job(
    REEMBED_JOB,
    selection=(dg.AssetSelection.assets(*MODEL_RESOURCES).downstream() & dg.AssetSelection.assets(*PER_CLIP)),
    description="Per clip partition: every model-backed modality (scene, video, tools, pose, hands) and the per-clip "
    "assets built on them; what model_update_sensor runs for stale or skipped partitions.")
cross_clip = dg.define_asset_job(
    CROSS_JOB, selection=dg.AssetSelection.assets(*CROSS_CLIP_ASSETS),
    description="Cross-clip clustering, evaluation and the dashboard over every clip partition with results (what "
    "automation runs after a burst of clips; launch it by hand to refresh now).")
classify_clips = dg.define_asset_job(
    "classify_clips", selection=dg.AssetSelection.assets(*timeline.assets),
    description="The activity timeline of every clip; clips not yet in the pooled clustering are classified against "
    "the saved cluster model without re-clustering.")
render_overlays = dg.define_asset_job(
    "render_overlays", selection=dg.AssetSelection.assets(dashboard.activity_overlays),
    description="The activity overlay videos (fusion cluster label + rolling timeline) of clips whose timeline "
    "changed.")

jobs = [process_clip, ingest_clips, reembed_models, cross_clip, classify_clips, render_overlays]
