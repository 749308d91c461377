"""After an upgrade: clip partitions whose results older code made are re-run by `code_update_sensor`, a few at a
time at low priority, each run the changed asset and what is built on it; cross-clip assets whose code changed are
refreshed by their automation condition. A real Dagster instance, real materializations (toy assets where the
point is the versions, the real `clips` asset where it is what Dagster records)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from handclust_assets.defs.common import CROSS_CLIP
from handclust_assets.defs.ingest import assets as ingest
from handclust_assets.defs.jobs import PER_CLIP, per_clip_code_versions
from handclust_assets.defs.jobs.code_update import (
    CODE_UPDATE_TAG,
    build_code_update_sensor,
    code_update_requests,
    recorded_code_versions,
)
from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.lib.reembed import plan_code_rerun
from handclust_assets.video.writer import moving_pattern, write_video
from handclust_assets_tests.support import make_resources


def test_a_partition_is_stale_where_any_asset_was_made_by_other_code() -> None:
    recorded = {"up": {"a": "u1", "b": "u2", "c": "u1"}, "down": {"a": "d1", "b": "d0", "d": None}}
    current = {"up": "u2", "down": "d1"}
    p = plan_code_rerun(recorded, current, already_requested=[], busy=["c"], room=1)
    assert p.stale == {"a": ["up"], "b": ["down"], "c": ["up"], "d": ["down"]}  # None: made without a version
    assert p.requested == ["a"] and p.waiting == ["c"] and not p.settled  # room for one; c's clip is running
    p2 = plan_code_rerun(recorded, current, already_requested=["a"], busy=[], room=5)
    assert p2.requested == ["b", "c", "d"] and p2.pending == ["a"] and p2.settled
    assert not plan_code_rerun(recorded, current, [], [], room=0).settled  # none asked for yet
    assert plan_code_rerun({"up": {"a": "u2"}}, current, [], [], 4).stale == {}


def _toy_assets(up: str, down: str, other: str = "o1") -> list[dg.AssetsDefinition]:
    @dg.asset(partitions_def=clip_partitions, code_version=up)
    def up_asset() -> int:
        return 1

    @dg.asset(partitions_def=clip_partitions, code_version=down, deps=["up_asset"])
    def down_asset() -> int:
        return 2

    @dg.asset(partitions_def=clip_partitions, code_version=other)
    def other_asset() -> int:
        return 3

    return [up_asset, down_asset, other_asset]


def _pending(inst: dg.DagsterInstance, assets: list[dg.AssetsDefinition], tags: dict[str, str]) -> str:
    """A run of the clip job created and not yet started (as a launched run is before its process starts)."""
    job = dg.Definitions(assets=assets, jobs=[dg.define_asset_job("process_clip")]).resolve_job_def("process_clip")
    run = inst.create_run_for_job(job, tags=tags)
    assert run.status == dg.DagsterRunStatus.NOT_STARTED
    return run.run_id


def test_results_of_older_code_are_rerun_a_few_at_a_time_then_nothing_is_read(tmp_path: Path) -> None:
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a", "b", "c", "never"])
    old = _toy_assets("u1", "d1")
    for p in ("a", "b", "c"):  # "never" has no results: nothing to re-run
        assert dg.materialize(old, partition_key=p, instance=inst).success
    key = dg.AssetKey("up_asset")
    assert recorded_code_versions(inst, key, {"a", "b", "c", "never"}) == {"a": "u1", "b": "u1", "c": "u1"}

    new = _toy_assets("u2", "d1")  # the upgrade changed `up_asset` only
    current = {"up_asset": "u2", "down_asset": "d1", "other_asset": "o1"}
    downstream = {"up_asset": [dg.AssetKey("down_asset")]}
    sensor = build_code_update_sensor("process_clip", current, downstream, batch_size=2)

    def tick(cursor: str | None) -> dg.SensorResult:
        return sensor(dg.build_sensor_context(instance=inst, cursor=cursor))

    busy = _pending(inst, new, {"handclust/clip": "c"})  # a folder run of clip c is pending
    t1 = tick(None)
    assert [r.partition_key for r in t1.run_requests] == ["a", "b"]  # two at a time; c waits for its run
    req = t1.run_requests[0]
    assert req.asset_selection == [dg.AssetKey("down_asset"), key]  # the changed asset and what is built on it
    assert req.tags[CODE_UPDATE_TAG] == "up_asset@u2" and req.tags["handclust/clip"] == "a"
    assert req.tags["dagster/priority"] == "-1"  # behind new clips in the queue
    assert req.run_key == t1.run_requests[0].run_key and req.run_key != t1.run_requests[1].run_key
    ours = [_pending(inst, new, {**r.tags}) for r in t1.run_requests]
    inst.delete_run(busy)  # the folder run of c ended
    t2 = tick(t1.cursor)
    assert not t2.run_requests  # two of ours still pending: no room
    assert "3 clip(s) hold results made by older code (up_asset 3)" in t2.skip_reason.skip_message
    for run_id, r in zip(ours, t1.run_requests):
        inst.delete_run(run_id)
        assert dg.materialize(new, partition_key=r.partition_key, selection=r.asset_selection, instance=inst).success
    t3 = tick(t2.cursor)
    assert [r.partition_key for r in t3.run_requests] == ["c"] and json.loads(t3.cursor)["settled"]
    assert dg.materialize(new, partition_key="c", selection=t3.run_requests[0].asset_selection, instance=inst).success
    assert recorded_code_versions(inst, key, {"a", "b", "c"}) == {"a": "u2", "b": "u2", "c": "u2"}
    assert recorded_code_versions(inst, dg.AssetKey("other_asset"), {"a"}) == {"a": "o1"}  # not re-run

    # settled, the same code: the instance is not read at all (None would fail at its first use)
    settled = json.loads(t3.cursor)
    assert code_update_requests(None, current, downstream, settled, 2) == ([], settled, [])  # type: ignore[arg-type]
    # the next upgrade changes `down_asset`: every clip again, the run only `down_asset`
    t4 = build_code_update_sensor("process_clip", {**current, "down_asset": "d2"}, downstream, batch_size=4)(
        dg.build_sensor_context(instance=inst, cursor=t3.cursor))
    assert [r.partition_key for r in t4.run_requests] == ["a", "b", "c"]
    assert {tuple(r.asset_selection) for r in t4.run_requests} == {(dg.AssetKey("down_asset"),)}


def test_a_cross_clip_asset_whose_code_changed_is_refreshed_once() -> None:
    def pooled_def(version: str) -> list[dg.AssetsDefinition]:
        up, *_ = _toy_assets("u1", "d1")

        @dg.asset(code_version=version, deps=[up], automation_condition=CROSS_CLIP)
        def pooled() -> int:
            return 4

        return [up, pooled]

    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a"])
    v1 = pooled_def("p1")
    assert dg.materialize(v1, partition_key="a", selection=["up_asset"], instance=inst).success
    assert dg.materialize(v1, selection=["pooled"], instance=inst).success
    first = dg.evaluate_automation_conditions(defs=v1, instance=inst)
    again = dg.evaluate_automation_conditions(defs=v1, instance=inst, cursor=first.cursor)
    assert again.total_requested == 0  # nothing changed
    upgraded = dg.evaluate_automation_conditions(defs=pooled_def("p2"), instance=inst, cursor=again.cursor)
    assert upgraded.total_requested == 1 and upgraded.get_requested_partitions(dg.AssetKey("pooled")) == {None}
    assert dg.materialize(pooled_def("p2"), selection=["pooled"], instance=inst).success
    settled = dg.evaluate_automation_conditions(defs=pooled_def("p2"), instance=inst, cursor=upgraded.cursor)
    assert settled.total_requested == 0  # refreshed once


def test_the_code_location_rechecks_what_the_clip_assets_record(storage: Path) -> None:
    """The versions the sensor compares with are the code location's, and what Dagster records on a real per-clip
    materialization is what it reads back."""
    from handclust_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    current = per_clip_code_versions()
    assert set(current) == {a.key.to_user_string() for a in PER_CLIP}
    assert all(graph.get(dg.AssetKey(k)).code_version == v and v for k, v in current.items())
    sensor = defs.get_sensor_def("code_update_sensor")
    assert sensor.job_name == "process_clip" and sensor.default_status == dg.DefaultSensorStatus.RUNNING

    write_video(storage / "videos" / "a_prep.mp4", moving_pattern(8, 64, 48, seed=1), 8)
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a_prep"])
    assert dg.materialize([ingest.clips], partition_key="a_prep", instance=inst,
                          resources=make_resources(storage)).success
    assert recorded_code_versions(inst, dg.AssetKey("clips"), {"a_prep"}) == {"a_prep": current["clips"]}
    ctx = dg.build_sensor_context(instance=inst, definitions=defs)
    result = sensor.evaluate_tick(ctx)  # the daemon's entry point
    assert not result.run_requests and "made by the current code" in (result.skip_message or "")
    upgraded = build_code_update_sensor("process_clip", {**current, "clips": "clips-next"}, {}, batch_size=4)
    after = upgraded(dg.build_sensor_context(instance=inst))
    assert [r.partition_key for r in after.run_requests] == ["a_prep"]


@pytest.mark.parametrize("cursor", [None, json.dumps({"versions": "0" * 12, "settled": True})])
def test_a_cursor_of_other_versions_is_checked_again(cursor: str | None) -> None:
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a"])
    assert dg.materialize(_toy_assets("u1", "d1"), partition_key="a", instance=inst).success
    sensor = build_code_update_sensor("process_clip", {"up_asset": "u9"}, {}, batch_size=4)
    got = sensor(dg.build_sensor_context(instance=inst, cursor=cursor))
    assert [r.partition_key for r in got.run_requests] == ["a"]
