"""The code location: every group under `handclust_assets/defs/<group>/definitions.py` merged into one, with the
project-wide policy applied once (cross-clip automation and freshness), the resources from the environment and
the executor (`defs/executor.py`: HANDCLUST_EXECUTOR = in_process (default) | multiprocess | celery | k8s).

Nothing is loaded or contacted at import: model versions are observed at run time (`defs/models`).
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings

import dagster as dg

import handclust_assets.defs
from handclust_assets.defs.common import CROSS_CLIP, DAILY, FOLLOWS_POOLING
from handclust_assets.defs.executor import executor_from_env
from handclust_assets.defs.io_manager import TablesIOManager
from handclust_assets.defs.resources import default_resources

# Partitioned asset checks are a preview feature in 1.13: say so once here, not once per step in every run log.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

CROSS_CLIP_GROUPS = {"clusters", "evaluation", "dashboard"}
FRESH_DAILY = {"cross_clip_clusters", "cross_clip_entropy"}


CROSS_CLIP_ROOT = "segment_features"


def project_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Unpartitioned assets of the cross-clip groups: the root follows new clip results (`CROSS_CLIP`), the rest
    follow the root (`FOLLOWS_POOLING`); the pooled clustering and its entropy scores are expected at most a day
    old."""
    if spec.partitions_def is not None or spec.group_name not in CROSS_CLIP_GROUPS:
        return spec
    policy = CROSS_CLIP if spec.key.to_user_string() == CROSS_CLIP_ROOT else FOLLOWS_POOLING
    spec = spec.replace_attributes(automation_condition=spec.automation_condition or policy)
    if spec.key.to_user_string() in FRESH_DAILY:
        spec = spec.replace_attributes(freshness_policy=DAILY)
    return spec


def group_definitions() -> list[dg.Definitions]:
    """The `defs` of every `handclust_assets/defs/<group>/definitions.py`, in name order."""
    out = []
    for info in sorted(pkgutil.iter_modules(handclust_assets.defs.__path__), key=lambda i: i.name):
        if info.ispkg:
            module = importlib.import_module(f"handclust_assets.defs.{info.name}.definitions")
            out.append(module.defs)
    return out


def build_defs() -> dg.Definitions:
    groups = dg.Definitions.merge(*group_definitions())
    resources = default_resources()
    io_manager = TablesIOManager(storage=resources["storage"])
    merged = dg.Definitions.merge(
        groups, dg.Definitions(resources={**resources, "io_manager": io_manager}, executor=executor_from_env()))
    return merged.map_resolved_asset_specs(func=project_policy, selection=dg.AssetSelection.groups(*CROSS_CLIP_GROUPS))


defs = build_defs()
