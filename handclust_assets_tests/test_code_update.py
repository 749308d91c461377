"""After an upgrade: clip partitions whose results older code made are re-run by `code_update_sensor`, a few at a
time at low priority, each run the changed asset and what is built on it; then, once every clip is current, the
cross-clip assets still made by older code. A real Dagster instance, real materializations (toy assets where the
point is the versions, the real `clips` asset where it is what Dagster records)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from handclust_assets.defs.ingest import assets as ingest
from handclust_assets.defs.jobs import (
    CROSS_CLIP_ASSETS,
    PER_CLIP,
    cross_clip_code_versions,
    cross_clip_downstream,
    per_clip_code_versions,
)
from handclust_assets.defs.jobs.code_update import (
    CODE_UPDATE_TAG,
    build_code_update_sensor,
    code_update_requests,
    recorded_code_versions,
)
from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.lib.reembed import cross_clip_to_rerun, plan_code_rerun
from handclust_assets.video.writer import moving_pattern, write_video
from handclust_assets_tests.support import make_resources


def test_a_partition_is_stale_where_any_asset_was_made_by_other_code() -> None:
    recorded = {"up": {"a": "u1", "b": "u2", "c": "u1"}, "down": {"a": "d1", "b": "d0", "d": None}}
    current = {"up": "u2", "down": "d1"}
    p = plan_code_rerun(recorded, current, already_requested=[], busy=["c"], room=1)
    assert p.stale == {"a": ["up"], "b": ["down"], "c": ["up"], "d": ["down"]}  # None: made without a version
    assert p.requested == ["a"] and p.waiting == ["c"]  # room for one; c's clip is running
    p2 = plan_code_rerun(recorded, current, already_requested=["a"], busy=[], room=5)
    assert p2.requested == ["b", "c", "d"] and p2.pending == ["a"] and p2.waiting == []
    assert plan_code_rerun(recorded, current, [], [], room=0).requested == []  # no room
    assert plan_code_rerun({"up": {"a": "u2"}}, current, [], [], 4).stale == {}


JOBS = [dg.define_asset_job("process_clip"), dg.define_asset_job("cross_clip")]


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


def test_results_of_older_code_are_rerun_a_few_at_a_time_then_nothing_is_read() -> None:
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
    sensor = build_code_update_sensor(JOBS, current, downstream, {}, {}, max_queued=2)

    def tick(cursor: str | None) -> dg.SensorResult:
        return sensor(dg.build_sensor_context(instance=inst, cursor=cursor))

    busy = _pending(inst, new, {"handclust/clip": "c"})  # a folder run of clip c is pending
    t1 = tick(None)
    assert [r.partition_key for r in t1.run_requests] == ["a", "b"]  # two at a time; c waits for its run
    req = t1.run_requests[0]
    assert req.asset_selection == [dg.AssetKey("down_asset"), key]  # the changed asset and what is built on it
    assert req.tags[CODE_UPDATE_TAG] == "up_asset@u2" and req.tags["handclust/clip"] == "a"
    assert req.tags["dagster/priority"] == "-1" and req.job_name == "process_clip"  # behind new clips
    assert req.run_key.startswith("code:a:") and t1.run_requests[1].run_key.startswith("code:b:")  # once per version
    ours = [_pending(inst, new, {**r.tags}) for r in t1.run_requests]
    inst.delete_run(busy)  # the folder run of c ended
    t2 = tick(t1.cursor)
    assert not t2.run_requests  # two of ours still pending: no room
    assert "3 clip(s) hold results made by older code (up_asset 3)" in t2.skip_reason.skip_message
    for run_id, r in zip(ours, t1.run_requests):
        inst.delete_run(run_id)
        assert dg.materialize(new, partition_key=r.partition_key, selection=r.asset_selection, instance=inst).success
    t3 = tick(t2.cursor)
    assert [r.partition_key for r in t3.run_requests] == ["c"]  # its run fails: c keeps its old results
    assert recorded_code_versions(inst, key, {"a", "b", "c"}) == {"a": "u2", "b": "u2", "c": "u1"}
    assert recorded_code_versions(inst, dg.AssetKey("other_asset"), {"a"}) == {"a": "o1"}  # not re-run
    t4 = tick(t3.cursor)
    assert not t4.run_requests and not json.loads(t4.cursor)["settled"]  # one tick with nothing to ask for
    assert "still hold results made by older code after their re-run ended" in t4.skip_reason.skip_message
    t5 = tick(t4.cursor)
    assert not t5.run_requests and json.loads(t5.cursor)["settled"]  # two: no cross-clip asset to look at
    # settled, the same code: the instance is not read at all (None would fail at its first use)
    settled = json.loads(t5.cursor)
    assert code_update_requests(None, current, downstream, {}, {}, settled, 2) == ([], settled, [])  # type: ignore
    # the next upgrade changes `down_asset`: every clip again, the run only `down_asset`
    t6 = build_code_update_sensor(JOBS, {**current, "down_asset": "d2"}, downstream, {}, {}, max_queued=4)(
        dg.build_sensor_context(instance=inst, cursor=t5.cursor))
    assert [r.partition_key for r in t6.run_requests] == ["a", "b", "c"]
    # only `down_asset` is read again: `up_asset` was confirmed at u2 once c's re-run ended (not asked for again)
    assert {tuple(r.asset_selection) for r in t6.run_requests} == {(dg.AssetKey("down_asset"),)}


def test_cross_clip_assets_of_older_code_are_rerun_once_every_clip_is_current() -> None:
    def assets(pooled_version: str, up_version: str = "u1") -> list[dg.AssetsDefinition]:
        up, *_ = _toy_assets(up_version, "d1")

        @dg.asset(code_version=pooled_version, deps=[up])
        def pooled() -> int:
            return 4

        @dg.asset(code_version="r1", deps=[pooled])
        def report() -> int:
            return 5

        return [up, pooled, report]

    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a"])
    assert dg.materialize(assets("p1"), partition_key="a", selection=["up_asset"], instance=inst).success
    assert dg.materialize(assets("p1"), selection=["pooled", "report"], instance=inst).success
    clip, cross = {"up_asset": "u1"}, {"pooled": "p2", "report": "r1"}
    sensor = build_code_update_sensor(JOBS, clip, {}, cross, {"pooled": ["report"]}, max_queued=4)

    def tick(cursor: str | None) -> dg.SensorResult:
        return sensor(dg.build_sensor_context(instance=inst, cursor=cursor))

    t1 = tick(None)
    assert not t1.run_requests and "looked at once no run is in progress" in t1.skip_reason.skip_message
    busy = _pending(inst, assets("p2"), {"dagster/sensor_name": "handclust_automation"})  # an automation run
    t2 = tick(t1.cursor)
    assert not t2.run_requests  # a run in progress: it may be the automation's refresh, so wait
    inst.delete_run(busy)
    t3 = tick(t2.cursor)
    assert len(t3.run_requests) == 1
    req = t3.run_requests[0]
    assert req.job_name == "cross_clip" and req.partition_key is None
    assert req.asset_selection == [dg.AssetKey("pooled"), dg.AssetKey("report")]  # and what is built on it
    assert req.tags[CODE_UPDATE_TAG] == "pooled@p2"
    assert json.loads(t3.cursor)["settled"] and not tick(t3.cursor).run_requests  # asked for once

    # the next upgrade changes a clip asset too: the clip runs first, and the automation's refresh after them
    # leaves nothing for the sensor to ask for
    both = build_code_update_sensor(JOBS, {"up_asset": "u2"}, {}, {"pooled": "p3", "report": "r1"},
                                    {"pooled": ["report"]}, max_queued=4)

    def tick_both(cursor: str | None) -> dg.SensorResult:
        return both(dg.build_sensor_context(instance=inst, cursor=cursor))

    b1 = tick_both(t3.cursor)
    assert [(r.job_name, r.partition_key) for r in b1.run_requests] == [("process_clip", "a")]
    assert dg.materialize(assets("p3", "u2"), partition_key="a", selection=["up_asset"], instance=inst).success
    assert dg.materialize(assets("p3", "u2"), selection=["pooled", "report"], instance=inst).success  # automation
    b2 = tick_both(b1.cursor)
    b3 = tick_both(b2.cursor)
    assert not b2.run_requests and not b3.run_requests and json.loads(b3.cursor)["settled"]


def test_what_is_built_on_a_stale_cross_clip_asset_is_rerun_with_it() -> None:
    down = {"root": ["mid", "leaf"], "mid": ["leaf"], "leaf": []}
    current = {"root": "r2", "mid": "m1", "leaf": "l1", "never": "n1"}
    assert cross_clip_to_rerun({"root": "r1", "mid": "m1", "leaf": "l1"}, current, down) == ["leaf", "mid", "root"]
    assert cross_clip_to_rerun({"root": "r2", "mid": "m1", "leaf": None}, current, down) == ["leaf"]
    assert cross_clip_to_rerun({"root": "r2", "gone": "g1"}, current, down) == []  # not ours any more


def test_the_code_location_rechecks_what_the_clip_assets_record(storage: Path) -> None:
    """The versions the sensor compares with are the code location's, and what Dagster records on a real per-clip
    materialization is what it reads back."""
    from handclust_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    current = per_clip_code_versions()
    assert set(current) == {a.key.to_user_string() for a in PER_CLIP}
    assert all(graph.get(dg.AssetKey(k)).code_version == v and v for k, v in current.items())
    cross = cross_clip_code_versions()
    assert set(cross) == {k.to_user_string() for a in CROSS_CLIP_ASSETS for k in a.keys} and all(cross.values())
    assert cross_clip_downstream()["repetition_counts"] == ["clip_cost", "cost_report", "lab_dashboard"]
    sensor = defs.get_sensor_def("code_update_sensor")
    assert {t.job_name for t in sensor.targets} == {"process_clip", "cross_clip"}
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING

    write_video(storage / "videos" / "a_prep.mp4", moving_pattern(8, 64, 48, seed=1), 8)
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a_prep"])
    assert dg.materialize([ingest.clips], partition_key="a_prep", instance=inst,
                          resources=make_resources(storage)).success
    assert recorded_code_versions(inst, dg.AssetKey("clips"), {"a_prep"}) == {"a_prep": current["clips"]}
    ctx = dg.build_sensor_context(instance=inst, definitions=defs)
    result = sensor.evaluate_tick(ctx)  # the daemon's entry point
    assert not result.run_requests and "made by the current code" in (result.skip_message or "")
    upgraded = build_code_update_sensor(JOBS, {**current, "clips": "clips-next"}, {}, {}, {}, max_queued=4)
    after = upgraded(dg.build_sensor_context(instance=inst))
    assert [r.partition_key for r in after.run_requests] == ["a_prep"]


@pytest.mark.parametrize("cursor", [None, json.dumps({"versions": "0" * 12, "settled": True})])
def test_a_cursor_of_other_versions_is_checked_again(cursor: str | None) -> None:
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a"])
    assert dg.materialize(_toy_assets("u1", "d1"), partition_key="a", instance=inst).success
    sensor = build_code_update_sensor(JOBS, {"up_asset": "u9"}, {}, {}, {}, max_queued=4)
    got = sensor(dg.build_sensor_context(instance=inst, cursor=cursor))
    assert [r.partition_key for r in got.run_requests] == ["a"]


def test_an_upgrade_through_the_real_daemon(tmp_path: Path) -> None:
    """The daemon, its run queue and its automation (not in-process calls): results made by older code are re-run
    at low priority, the automation refreshes the cross-clip asset after them, and the sensor then asks once for
    the cross-clip asset that only a code change re-runs."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from handclust_assets_tests import upgrade_location as loc
    from handclust_assets_tests.support import REPO

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text().replace("max_concurrent_runs: 2",
                                                                                   "max_concurrent_runs: 1"))
    with dg.DagsterInstance.from_config(str(home)) as inst:  # results made by the old code, before the upgrade
        inst.add_dynamic_partitions("clips", ["a", "b", "c"])
        for p in ("a", "b", "c"):
            assert dg.materialize([loc.clip_result], partition_key=p, instance=inst).success
        assert dg.materialize([loc.clip_result, loc.pooled_result, loc.report], selection=["pooled_result", "report"],
                              instance=inst).success
    env = {**os.environ, "DAGSTER_HOME": str(home), "TOY_CLIP_VERSION": "clip-v2", "TOY_REPORT_VERSION": "report-v2",
           "HANDCLUST_CODE_CHECK_S": "1"}
    daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m",
                               "handclust_assets_tests.upgrade_location"], cwd=REPO, env=env,
                              stdout=open(tmp_path / "daemon.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        with dg.DagsterInstance.from_config(str(home)) as inst:
            deadline, runs = time.monotonic() + 150, []
            while time.monotonic() < deadline:
                time.sleep(2)
                recs = inst.get_run_records(dg.RunsFilter(tags={}), limit=100)
                runs = [r for r in recs if "dagster/sensor_name" in r.dagster_run.tags]
                report = inst.get_latest_materialization_event(dg.AssetKey("report"))
                if (report and report.asset_materialization.tags.get("dagster/code_version") == "report-v2"
                        and all(r.dagster_run.is_finished for r in runs)):
                    break
            time.sleep(4)  # a few more ticks: nothing more is asked for
            runs = sorted((r for r in inst.get_run_records(limit=100) if "dagster/sensor_name" in r.dagster_run.tags),
                          key=lambda r: r.create_timestamp)
            assert runs and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs), \
                (tmp_path / "daemon.log").read_text()[-3000:]
            clip_runs = [r for r in runs if r.dagster_run.job_name == "process_clip"]
            assert sorted(r.dagster_run.tags["handclust/clip"] for r in clip_runs) == ["a", "b", "c"]
            assert all(r.dagster_run.tags["dagster/priority"] == "-1" for r in clip_runs)
            refreshes = [r for r in runs if dg.AssetKey("pooled_result") in (r.dagster_run.asset_selection or ())]
            assert len(refreshes) == 1 and refreshes[0].dagster_run.tags["dagster/sensor_name"] == "automation"
            last_clip_end = max(r.end_time for r in clip_runs)
            assert refreshes[0].create_timestamp.timestamp() >= last_clip_end  # after the clip re-runs, once
            reports = [r for r in runs if dg.AssetKey("report") in (r.dagster_run.asset_selection or ())]
            assert len(reports) == 1 and reports[0].dagster_run.tags["dagster/sensor_name"] == "code_update_sensor"
            assert set(reports[0].dagster_run.asset_selection) == {dg.AssetKey("report")}
            assert reports[0].create_timestamp.timestamp() >= refreshes[0].end_time  # never raced it
            versions = recorded_code_versions(inst, dg.AssetKey("clip_result"), {"a", "b", "c"})
            assert versions == {"a": "clip-v2", "b": "clip-v2", "c": "clip-v2"}
    finally:
        os.killpg(daemon.pid, signal.SIGINT)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(10)


def test_only_the_assets_whose_code_changed_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from handclust_assets.defs.jobs import code_update

    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a"])
    assert dg.materialize(_toy_assets("u1", "d1"), partition_key="a", instance=inst).success
    reads: list[str] = []
    read = code_update.recorded_code_versions
    monkeypatch.setattr(code_update, "recorded_code_versions",
                        lambda i, k, p: reads.append(k.to_user_string()) or read(i, k, p))
    current = {"up_asset": "u1", "down_asset": "d1", "other_asset": "o1"}
    runs, cur, _ = code_update_requests(inst, current, {}, {}, {}, {}, 4)
    assert not runs and reads == ["up_asset", "down_asset", "other_asset"]  # first look: every asset
    assert cur["confirmed"] == current
    reads.clear()
    runs, cur, _ = code_update_requests(inst, {**current, "down_asset": "d2"}, {}, {}, {}, cur, 4)
    assert reads == ["down_asset"]  # an upgrade of one asset reads that asset only
    assert [(r.partition_key, r.asset_selection) for r in runs] == [("a", [dg.AssetKey("down_asset")])]
    reads.clear()
    runs, cur, notes = code_update_requests(inst, {"up_asset": "u9", "down_asset": "d9", "other_asset": "o1"},
                                            {}, {}, {}, {}, 4, budget_s=0.0)
    assert reads == ["up_asset"] and not cur["settled"]  # out of time: one asset this tick, the rest the next
    assert any("left to read next tick: down_asset, other_asset" in n for n in notes)
    reads.clear()
    code_update_requests(inst, {"up_asset": "u9", "down_asset": "d9", "other_asset": "o1"}, {}, {}, {}, cur, 4,
                         budget_s=0.0)
    assert reads == ["up_asset"]  # its requested run has not ended, so it is not confirmed current yet
