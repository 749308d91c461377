"""Re-running clip partitions made stale by a model change or a code change: which are stale, which batch to run next.

Every model-backed asset records the version of the model it was asked to use (`model_version` metadata:
model id @ revision plus the hub commit, or the local weights folder's fingerprint; MediaPipe: the .task
file's sha256). A partition is stale when that recorded version differs from what the configured resource
resolves to now. The `model_update_sensor` requests the stale partitions a batch at a time (so a model
update re-embeds hours of footage as a queue of ordinary runs, visible in the UI, behind the `models` pool).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
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


@dataclass
class CodeRerunPlan:
    stale: dict[str, list[str]]  # partition -> its assets last materialized by other code, in the given order
    requested: list[str]  # the partitions to request now
    pending: list[str]  # stale, requested by an earlier tick (its run is queued, running, or ended)
    waiting: list[str]  # stale, but a run of the clip is in progress: asked again at a later tick


def plan_code_rerun(recorded: Mapping[str, Mapping[str, str | None]], current: Mapping[str, str | None],
                    already_requested: Iterable[str], busy: Iterable[str], room: int) -> CodeRerunPlan:
    """Pure planning of the re-runs a code change asks for. `recorded`: asset -> partition -> the code version of
    the partition's latest materialization (materialized partitions only: one never made is not stale, it is the
    folder's or the model sensor's business). `current`: asset -> its code version now, in graph order. A
    partition is stale where any asset's recorded version differs; `room` of them (name order) are requested, not
    those requested for these same versions before, nor a clip with a run in progress (`busy`)."""
    stale: dict[str, list[str]] = {}
    for asset, version in current.items():
        for partition, made_by in recorded.get(asset, {}).items():
            if made_by != version:
                stale.setdefault(partition, []).append(asset)
    stale = dict(sorted(stale.items()))
    done_before, in_progress = set(already_requested), set(busy)
    pending = [p for p in stale if p in done_before]
    waiting = [p for p in stale if p not in done_before and p in in_progress]
    todo = [p for p in stale if p not in done_before and p not in in_progress]
    requested = todo[: max(0, room)]
    return CodeRerunPlan(stale, requested, pending, waiting)


def cross_clip_to_rerun(recorded: Mapping[str, str | None], current: Mapping[str, str | None],
                        downstream: Mapping[str, Iterable[str]]) -> list[str]:
    """The cross-clip assets made by other code (`recorded`: asset -> the code version of its latest
    materialization, materialized ones only) and every cross-clip asset built on them, sorted."""
    stale = {a for a, v in recorded.items() if a in current and v != current[a]}
    return sorted(stale | {d for a in stale for d in downstream.get(a, [])})


def versions_digest(versions: Mapping[str, str | None]) -> str:
    """A short fingerprint of asset -> code version pairs (order does not matter)."""
    text = ";".join(f"{a}@{v}" for a, v in sorted(versions.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
