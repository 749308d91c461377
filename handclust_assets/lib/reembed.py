"""Re-embedding when a model changes: which clip partitions are stale, and which batch to run next.

Every model-backed asset records the version of the model it was asked to use (`model_version` metadata:
model id @ revision plus the hub commit, or the local weights folder's fingerprint; MediaPipe: the .task
file's sha256). A partition is stale when that recorded version differs from what the configured resource
resolves to now. The `model_update_sensor` requests the stale partitions a batch at a time (so a model
update re-embeds hours of footage as a queue of ordinary runs, visible in the UI, behind the `models` pool).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class ReembedPlan:
    asset: str
    current_version: str
    stale: list[str]  # partitions whose recorded model version differs from the current one
    requested: list[str]  # the batch to request now
    pending: list[str] = field(default_factory=list)  # stale, already requested earlier (run queued/running)


def plan_reembed(asset: str, recorded: dict[str, str | None], current_version: str, already_requested: Iterable[str],
                 batch_size: int) -> ReembedPlan:
    """Pure planning. `recorded`: partition -> the model version its latest materialization recorded (None
    when it recorded none, e.g. it predates versioning: treated as stale). `already_requested`: partitions
    requested for this same version by an earlier tick."""
    stale = sorted(p for p, v in recorded.items() if v != current_version)
    done_before = set(already_requested)
    pending = [p for p in stale if p in done_before]
    todo = [p for p in stale if p not in done_before]
    return ReembedPlan(asset, current_version, stale, todo[: max(0, batch_size)], pending)


def run_key(asset: str, partition: str, version: str) -> str:
    return f"reembed:{asset}:{partition}:{version}"
