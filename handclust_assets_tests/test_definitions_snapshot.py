"""A snapshot of every asset spec, check, job selection and sensor of the code location: a change to the graph
shows up in review as a diff of `snapshots/definitions.json` (regenerate with HANDCLUST_UPDATE_SNAPSHOT=1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from handclust_assets.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe(d: dg.Definitions) -> dict:
    graph = d.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitioned": node.partitions_def is not None,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
            "code_version": node.code_version,
            "kinds": sorted(node.kinds),
            "freshness": node.freshness_policy is not None,
            "executable": node.is_executable,
        }
    checks = sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys)
    jobs = {}
    for job in d.resolve_all_job_defs():
        if job.name.startswith("__"):
            continue
        keys = job.asset_layer.selected_asset_keys if job.asset_layer else set()
        jobs[job.name] = sorted(k.to_user_string() for k in keys)
    sensors = {s.name: {"job": ", ".join(sorted(t.job_name for t in s.targets)) if s.has_jobs else None,
                        "interval_s": s.minimum_interval_seconds,
                        "default_status": s.default_status.value} for s in d.sensors or []}
    return {"assets": assets, "checks": checks, "jobs": jobs, "sensors": sensors,
            "resources": sorted(d.resources or {})}


def test_definitions_match_the_snapshot() -> None:
    dg.Definitions.validate_loadable(defs)
    got = describe(defs)
    if os.environ.get("HANDCLUST_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert SNAPSHOT.exists(), f"{SNAPSHOT} is missing: write it with HANDCLUST_UPDATE_SNAPSHOT=1"
    want = json.loads(SNAPSHOT.read_text())
    assert got == want, "the code location changed: review the diff and regenerate with HANDCLUST_UPDATE_SNAPSHOT=1"


def test_every_per_clip_asset_is_in_the_clip_run_and_every_cross_clip_asset_follows_new_clips() -> None:
    """The product-path invariants the snapshot alone would not explain."""
    d = describe(defs)["assets"]
    clip_run = set(describe(defs)["jobs"]["process_clip"])
    for name, a in d.items():
        if a["partitioned"]:
            assert name in clip_run, name  # no per-clip asset waits for a hand-launched run
            assert a["automation"] is None, name  # and none is launched twice (sensor + automation)
        elif a["executable"] and a["group"] in ("clusters", "evaluation", "dashboard"):
            assert a["automation"] in ("clip results changed, no clip run in progress", "follows the cross-clip root")
