"""The ingest graph on a real Dagster instance, read back with plain duckdb."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import duckdb

from handclust_assets.definitions import defs, ingest_assets
from handclust_assets.defs.io_manager import DuckDBParquetIOManager
from handclust_assets.defs.resources import HandclustSettings
from handclust_assets.defs.sensors import plan_folder_changes
from handclust_assets.lib.tables import connect
from handclust_assets.lib.video_folder import scan_videos
from handclust_assets.video.writer import moving_pattern, write_video


def _resources(root: Path) -> dict:
    return {"io_manager": DuckDBParquetIOManager(root=str(root)), "settings": HandclustSettings(storage=str(root))}


def _materialize(root: Path, instance: dg.DagsterInstance, key: str, raise_on_error: bool = True):
    return dg.materialize(
        ingest_assets, partition_key=key, instance=instance, resources=_resources(root), raise_on_error=raise_on_error
    )


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)
    names = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"clips", "frame_cache", "ground_truth"} <= names


def test_bad_clip_fails_only_its_partition(storage: Path) -> None:
    vids = storage / "videos"
    write_video(vids / "01_production_good.mp4", moving_pattern(30, 320, 180), 15)
    (vids / "02_prep_broken.mp4").write_text("not a video")
    inst = dg.DagsterInstance.ephemeral()
    keys = list(scan_videos(vids))
    inst.add_dynamic_partitions("clips", keys)
    good = _materialize(storage, inst, "01_production_good")
    bad = _materialize(storage, inst, "02_prep_broken", raise_on_error=False)
    assert good.success and not bad.success
    failures = [e for e in bad.all_events if e.event_type_value == "STEP_FAILURE"]
    msg = failures[0].event_specific_data.error.message
    assert "02_prep_broken.mp4" in msg and "not a readable video" in msg
    con = duckdb.connect()
    rows = con.execute(f"select clip, phase from '{storage}/tables/clips/*.parquet'").fetchall()
    assert rows == [("01_production_good", "production")]


def test_rematerializing_twice_keeps_row_counts(storage: Path) -> None:
    write_video(storage / "videos" / "03_transit.mp4", moving_pattern(45, 320, 180), 15)
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["03_transit"])
    counts = []
    for _ in range(3):
        assert _materialize(storage, inst, "03_transit").success
        con = connect(storage)
        counts.append(
            (
                con.execute("select count(*) from clips").fetchone()[0],
                con.execute("select count(*) from frame_cache").fetchone()[0],
            )
        )
    assert counts[0] == counts[1] == counts[2] == (1, 15)


RUN_ONE = textwrap.dedent(
    """
    import sys, dagster as dg
    from handclust_assets.definitions import ingest_assets
    from handclust_assets.defs.io_manager import DuckDBParquetIOManager
    from handclust_assets.defs.resources import HandclustSettings
    root, key = sys.argv[1], sys.argv[2]
    inst = dg.DagsterInstance.get()
    r = dg.materialize(ingest_assets, partition_key=key, instance=inst,
        resources={"io_manager": DuckDBParquetIOManager(root=root), "settings": HandclustSettings(storage=root)})
    sys.exit(0 if r.success else 1)
    """
)


def test_parallel_partition_runs_with_a_reader_open(storage: Path, tmp_path: Path) -> None:
    """Four partition runs in four processes at once while a notebook holds DuckDB connections open."""
    n = 4
    for i in range(n):
        write_video(storage / "videos" / f"{i:02d}_production.mp4", moving_pattern(60, 320, 180, seed=i), 15)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "HANDCLUST_STORAGE": str(storage)}
    keys = list(scan_videos(storage / "videos"))
    inst = dg.DagsterInstance.from_config(str(home))
    inst.add_dynamic_partitions("clips", keys)
    # one partition first, so the catalog file exists and a reader can hold it open during the others
    assert subprocess.run([sys.executable, "-c", RUN_ONE, str(storage), keys[0]], env=env).returncode == 0
    catalog_reader = duckdb.connect(str(storage / "handclust.duckdb"), read_only=True)
    helper_reader = connect(storage)
    procs = [
        subprocess.Popen([sys.executable, "-c", RUN_ONE, str(storage), k], env=env, stderr=subprocess.PIPE)
        for k in keys[1:]
    ]
    seen = []
    while any(p.poll() is None for p in procs):
        seen.append(catalog_reader.execute("select count(*) from frame_cache").fetchone()[0])
        helper_reader.execute("select count(*) from clips").fetchone()
        time.sleep(0.05)
    errs = [p.stderr.read().decode()[-2000:] for p in procs if p.returncode != 0]
    assert not errs, errs
    assert seen, "the reader never ran while the writers were running"
    assert catalog_reader.execute("select count(*) from frame_cache").fetchone()[0] == 20 * n
    assert catalog_reader.execute("select count(distinct clip) from clips").fetchone()[0] == n
    fresh = duckdb.connect(str(storage / "handclust.duckdb"), read_only=True)
    assert fresh.execute("select count(*) from clips").fetchone()[0] == n


def test_folder_planning_handles_new_changed_removed() -> None:
    new, run, removed, cur = plan_folder_changes({"a": "1:1", "b": "2:2"}, set(), {})
    assert new == ["a", "b"] and run == ["a", "b"] and removed == []
    new, run, removed, cur = plan_folder_changes({"a": "1:1", "b": "2:2"}, {"a", "b"}, cur)
    assert (new, run, removed) == ([], [], [])
    new, run, removed, cur = plan_folder_changes({"a": "1:9"}, {"a", "b"}, cur)
    assert new == [] and run == ["a"] and removed == ["b"] and cur["removed"] == ["b"]
    new, run, removed, cur = plan_folder_changes({"a": "1:9"}, {"a", "b"}, cur)
    assert removed == []  # reported once


def test_sensor_adds_partitions_and_requests_runs(storage: Path) -> None:
    vids = storage / "videos"
    write_video(vids / "01_demo.mp4", moving_pattern(10, 64, 64), 15)
    write_video(vids / "sub" / "02 Prep Clip.mov", moving_pattern(10, 64, 64), 15)
    inst = dg.DagsterInstance.ephemeral()
    sensor = defs.get_sensor_def("video_folder_sensor")
    res = sensor(dg.build_sensor_context(instance=inst, resources={"settings": HandclustSettings(storage=str(storage))}))
    assert [r.partition_key for r in res.run_requests] == ["01_demo", "sub__02_prep_clip"]
    added = res.dynamic_partitions_requests[0].partition_keys
    assert list(added) == ["01_demo", "sub__02_prep_clip"]
    inst.add_dynamic_partitions("clips", list(added))
    ctx = dg.build_sensor_context(
        instance=inst, cursor=res.cursor, resources={"settings": HandclustSettings(storage=str(storage))}
    )
    again = sensor(ctx)
    assert not again.run_requests and not again.dynamic_partitions_requests
    write_video(vids / "01_demo.mp4", moving_pattern(20, 64, 64), 15)  # changed file
    ctx = dg.build_sensor_context(
        instance=inst, cursor=again.cursor, resources={"settings": HandclustSettings(storage=str(storage))}
    )
    changed = sensor(ctx)
    assert [r.partition_key for r in changed.run_requests] == ["01_demo"]
    assert not changed.dynamic_partitions_requests
    assert json.loads(changed.cursor)["files"].keys() == {"01_demo", "sub__02_prep_clip"}
