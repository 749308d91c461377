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
import pytest

from handclust_assets.definitions import defs
from handclust_assets.defs.resources import HandclustSettings
from handclust_assets.lib.tables import connect
from handclust_assets.lib.video_folder import FileState, folder_walk, plan_folder, scan_problems, scan_videos
from handclust_assets.video.writer import moving_pattern, write_video
from handclust_assets_tests.support import make_resources, materialize, step_failures

INGEST = ["clips", "frame_cache", "ground_truth"]


def _materialize(root: Path, instance: dg.DagsterInstance, key: str, raise_on_error: bool = True):
    return materialize(INGEST, make_resources(root), instance, partition_key=key, raise_on_error=raise_on_error)


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
    msg = step_failures(bad)["clips"]
    assert "02_prep_broken.mp4" in msg and "not a readable video" in msg
    con = duckdb.connect()
    rows = con.execute(f"select clip, phase from '{storage}/tables/clips/*.parquet'").fetchall()
    assert rows == [("01_production_good", "production")]


def test_a_clip_cut_behind_its_header_is_cached_and_flagged_in_the_ui(storage: Path) -> None:
    """A file that decodes without error but stops at a third of the duration its header declares: its partition
    succeeds with what could be decoded, and the run's metadata says truncated and why (the asset page shows it)."""
    vids = storage / "videos"
    good = write_video(vids / "src.mkv", moving_pattern(150, 320, 180), 30)
    cut = vids / "05_production_cut.mkv"
    cut.write_bytes(good.read_bytes()[: int(good.stat().st_size * 0.35)])
    good.unlink()
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["05_production_cut"])
    assert _materialize(storage, inst, "05_production_cut").success
    ev = inst.get_latest_materialization_event(dg.AssetKey("frame_cache"))
    meta = ev.asset_materialization.metadata
    assert meta["truncated"].value is True and "truncated file?" in meta["warning"].value
    n = connect(storage).execute("select count(*) from frame_cache where clip = '05_production_cut'").fetchone()[0]
    assert 0 < n < 25


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
    from handclust_assets.definitions import defs
    root, key = sys.argv[1], sys.argv[2]
    inst = dg.DagsterInstance.get()
    r = defs.resolve_job_def("ingest_clips").execute_in_process(partition_key=key, instance=inst)
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
    env = {**os.environ, "DAGSTER_HOME": str(home), "HANDCLUST_HOME": str(storage)}
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


def _files(age_s: float = 0.5, **fps: str) -> dict[str, FileState]:
    return {k: FileState(fp, age_s=age_s) for k, fp in fps.items()}


def test_folder_planning_takes_a_file_only_once_it_stopped_changing() -> None:
    p = plan_folder(_files(a="1:1"), set(), {})
    assert p.to_run == [] and p.waiting == ["a"]  # first look at a file being written: not known to be done
    p = plan_folder(_files(a="5:2"), set(), p.cursor)  # still growing
    assert p.to_run == []
    p = plan_folder(_files(a="5:2"), set(), p.cursor)  # same size and mtime twice: taken
    assert p.new_keys == ["a"] and p.to_run == ["a"]
    p = plan_folder(_files(a="5:2"), {"a"}, p.cursor)
    assert p.to_run == [] and p.new_keys == []  # never twice for one fingerprint
    landed = plan_folder(_files(age_s=30.0, b="1:1"), set(), {}, settle_s=5.0)
    assert landed.to_run == ["b"]  # untouched for longer than settle_s (landed by a rename): taken at first look


def test_folder_planning_batches_a_burst_and_never_runs_a_busy_clip() -> None:
    cur = plan_folder(_files(a="1:1", b="1:1"), set(), {}).cursor
    p = plan_folder(_files(a="1:1", b="2:2"), set(), cur, now=100.0)  # a settled, b still landing
    assert p.to_run == [] and p.cursor["held_since"] == 100.0
    p = plan_folder(_files(a="1:1", b="2:2"), set(), p.cursor, now=110.0)  # the burst has landed
    assert p.to_run == ["a", "b"] and p.new_keys == ["a", "b"]
    held = plan_folder(_files(a="1:1", b="2:2"), set(), cur, now=0.0, max_hold_s=5.0)
    late = plan_folder(_files(a="1:1", b="3:3"), set(), held.cursor, now=10.0, max_hold_s=5.0)
    assert late.to_run == ["a"]  # a file that keeps changing does not hold the others forever
    changed = plan_folder(_files(a="9:9", b="3:3"), {"a", "b"}, {**late.cursor, "seen": {"a": "9:9", "b": "3:3"}},
                          busy={"a"}, now=20.0)
    assert "a" not in changed.to_run and "a" in changed.waiting  # its run is still going: wait
    again = plan_folder(_files(a="9:9", b="3:3"), {"a", "b"}, changed.cursor, now=30.0)
    assert "a" in again.to_run


def test_folder_planning_reports_a_removed_file_once() -> None:
    cur = {"seen": {"a": "1:1", "b": "1:1"}, "done": {"a": "1:1", "b": "1:1"}}
    p = plan_folder(_files(a="1:1"), {"a", "b"}, cur)
    assert p.removed == ["b"] and p.to_run == []
    assert plan_folder(_files(a="1:1"), {"a", "b"}, p.cursor).removed == []


def test_a_renamed_file_is_told_from_a_removed_one() -> None:
    from handclust_assets.lib.video_folder import renamed_to

    done = {"a": "10:5", "b": "20:6", "c": "30:7"}
    files = _files(a2="10:5", c="30:7", x="20:6", y="20:6")  # a moved; b's print now on two files (copies)
    assert renamed_to(["a", "b"], done, files) == {"a": "a2"}
    assert renamed_to(["gone"], done, files) == {}


def test_the_sensor_says_where_a_renamed_video_went(storage: Path, capfd: pytest.CaptureFixture) -> None:
    vids = storage / "videos"
    write_video(vids / "03_blocks.mp4", moving_pattern(10, 64, 64), 15)
    os.utime(vids / "03_blocks.mp4", (time.time() - 60, time.time() - 60))
    inst = dg.DagsterInstance.ephemeral()
    sensor = defs.get_sensor_def("video_folder_sensor")
    first = sensor(dg.build_sensor_context(instance=inst, resources={"settings": HandclustSettings()}))
    assert [r.partition_key for r in first.run_requests] == ["03_blocks"]
    inst.add_dynamic_partitions("clips", ["03_blocks"])
    (vids / "day1").mkdir()
    (vids / "03_blocks.mp4").rename(vids / "day1" / "blocks.mp4")
    capfd.readouterr()
    second = sensor(dg.build_sensor_context(instance=inst, cursor=first.cursor,
                                            resources={"settings": HandclustSettings()}))
    assert [r.partition_key for r in second.run_requests] == ["day1__blocks"]
    said = " ".join(capfd.readouterr())  # the sensor's log, as the daemon's console shows it
    assert "'03_blocks' was renamed or moved: it is now" in said and "day1/blocks.mp4" in said
    assert "was removed from" not in said


def test_a_video_under_a_name_the_folder_does_not_take_is_reported_not_passed_over(storage: Path) -> None:
    """A GoPro proxy (.LRV), an Insta360 clip (.insv), a camera dump with no extension, a WebM and an AVI under
    other names are real videos the folder does not take: the sensor says so once, naming each and its container,
    instead of skipping them without a word. A partial download, a photo (HEIC), a song (M4A), text and sidecars
    are not reported; none of them gets a run."""
    from handclust_assets_tests.test_hostile_video import _audio_only

    vids = storage / "videos"
    mp4 = write_video(vids / "GX010001.mp4", moving_pattern(10, 64, 64), 15)
    for name in ("GL010001.LRV", "VID_0001.insv", "camera_dump", "clip.mp4.part"):
        (vids / name).write_bytes(mp4.read_bytes())
    for name, made, codec in (("web.vid", "w.webm", "libvpx-vp9"), ("old.dat", "o.avi", "mjpeg")):
        (vids / name).write_bytes(write_video(storage / made, moving_pattern(10, 64, 64), 15, codec=codec).read_bytes())
    (vids / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    _audio_only(vids / "song.m4a")
    (vids / "notes.txt").write_text("trowel strokes\n")
    (vids / "GX010001.reps.json").write_text("{}")
    problems = scan_problems(vids)
    named = {Path(k).name: v for k, v in problems.items()}
    assert set(named) == {"GL010001.LRV", "VID_0001.insv", "camera_dump", "web.vid", "old.dat"}
    assert "MP4 / QuickTime container" in named["GL010001.LRV"] and "its extension .lrv" in named["GL010001.LRV"]
    assert "it has no extension" in named["camera_dump"] and "Matroska / WebM" in named["web.vid"]
    assert "AVI container" in named["old.dat"]
    for f in vids.rglob("*"):
        os.utime(f, (time.time() - 60, time.time() - 60))
    sensor = defs.get_sensor_def("video_folder_sensor")
    res = sensor(dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(),
                                         resources={"settings": HandclustSettings()}))
    assert [r.partition_key for r in res.run_requests] == ["gx010001"]
    assert sorted(Path(k).name for k in json.loads(res.cursor)["problems"]) == sorted(named)  # warned once


def test_a_linked_folder_is_watched_like_any_other(storage: Path, tmp_path: Path) -> None:
    """A folder of clips linked into the watched folder (a NAS share, a dataset not copied) is taken as if it were
    there; a folder reachable by its own path too is taken under it, and one linked twice under its older link
    (a link added later moves no clip to another key); a link back up the tree (a loop) ends; the sensor runs
    every clip of it."""
    vids = storage / "videos"
    nas = tmp_path / "nas" / "day1"
    write_video(nas / "a.mp4", moving_pattern(10, 64, 64), 15)
    write_video(nas / "deeper" / "b.mp4", moving_pattern(10, 64, 64, seed=1), 15)
    write_video(vids / "raw" / "c.mp4", moving_pattern(10, 64, 64, seed=2), 15)
    (vids / "day1").symlink_to(nas)
    (nas / "loop").symlink_to(vids)  # back to the top
    (vids / "everything").symlink_to("/")  # the whole disk, and a folder holding the watched one: not walked
    (vids / "up").symlink_to(storage)
    t0 = time.perf_counter()
    assert sorted(scan_videos(vids)) == ["day1__a", "day1__deeper__b", "raw__c"]
    assert time.perf_counter() - t0 < 5
    said = scan_problems(vids) | folder_walk(vids).problems
    assert "which holds the watched folder: not followed" in said[str(vids / "everything")]
    assert "which holds the watched folder" in said[str(vids / "up")]
    os.utime(vids / "day1", (time.time() - 120, time.time() - 120), follow_symlinks=False)
    (vids / "again").symlink_to(nas)  # the same folder under a second, newer link that sorts first
    (vids / "0_raw_link").symlink_to(vids / "raw")  # sorts first, but raw/ has its own path
    assert sorted(scan_videos(vids)) == ["day1__a", "day1__deeper__b", "raw__c"]
    for f in [*vids.rglob("*.mp4"), *nas.rglob("*.mp4")]:  # landed a minute ago (the links keep their ages)
        os.utime(f, (time.time() - 60, time.time() - 60))
    sensor = defs.get_sensor_def("video_folder_sensor")
    res = sensor(dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(),
                                         resources={"settings": HandclustSettings()}))
    assert sorted(r.partition_key for r in res.run_requests) == ["day1__a", "day1__deeper__b", "raw__c"]


def test_links_stop_being_followed_past_a_budget_and_say_so(tmp_path: Path) -> None:
    watched, big, more = tmp_path / "watched", tmp_path / "big", tmp_path / "more"
    for d, n in ((big, 5), (more, 2)):
        d.mkdir()
        for i in range(n):
            (d / f"c{i}.mp4").write_bytes(b"")
    watched.mkdir()
    (watched / "a_big").symlink_to(big)
    (watched / "b_more").symlink_to(more)
    os.utime(watched / "a_big", (1, 1), follow_symlinks=False)  # the older link is walked first
    walk = folder_walk(watched, linked_max_entries=3)
    assert [p.name for p in walk.files] == [f"c{i}.mp4" for i in range(5)]
    assert list(walk.problems) == [str(watched / "b_more")] and "over 3 entries" in walk.problems[str(watched / "b_more")]
    assert len(folder_walk(watched).files) == 7


def test_a_file_is_looked_into_again_only_once_it_changed(storage: Path) -> None:
    """The sensor reads the first bytes of files under names it does not take on every look; one it has read is
    not read again until its size or mtime changes (the folder may hold thousands of sidecars and frames)."""
    from handclust_assets.lib.video_folder import _container_of

    vids = storage / "videos"
    odd = vids / "GL010001.LRV"
    odd.write_bytes(b"not yet a video" + bytes(400))
    assert scan_problems(vids) == {}
    before = _container_of.cache_info()
    assert scan_problems(vids) == {}
    after = _container_of.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 0)  # remembered, not read
    odd.write_bytes(write_video(storage / "x.mp4", moving_pattern(10, 64, 64), 15).read_bytes())
    assert "MP4 / QuickTime container" in scan_problems(vids)[str(odd)]  # changed: read again


def test_sensor_adds_partitions_and_requests_runs(storage: Path) -> None:
    vids = storage / "videos"
    write_video(vids / "01_demo.mp4", moving_pattern(10, 64, 64), 15)
    write_video(vids / "sub" / "02 Prep Clip.mov", moving_pattern(10, 64, 64), 15)
    (vids / "dangling.mp4").symlink_to(vids / "nowhere.mp4")
    for f in vids.rglob("*"):
        if f.is_file():
            os.utime(f, (time.time() - 60, time.time() - 60))
    inst = dg.DagsterInstance.ephemeral()
    sensor = defs.get_sensor_def("video_folder_sensor")
    settings = {"settings": HandclustSettings()}
    res = sensor(dg.build_sensor_context(instance=inst, resources=settings))  # untouched for a minute: settled
    assert [r.partition_key for r in res.run_requests] == ["01_demo", "sub__02_prep_clip"]
    assert all(r.tags["handclust/clip"] == r.partition_key for r in res.run_requests)
    added = res.dynamic_partitions_requests[0].partition_keys
    assert list(added) == ["01_demo", "sub__02_prep_clip"]
    assert "dangling.mp4" in json.loads(res.cursor)["problems"][0]  # reported, not silently ignored
    inst.add_dynamic_partitions("clips", list(added))
    again = sensor(dg.build_sensor_context(instance=inst, cursor=res.cursor, resources=settings))
    assert not again.run_requests and not again.dynamic_partitions_requests
    write_video(vids / "01_demo.mp4", moving_pattern(20, 64, 64), 15)  # changed file, just written
    seen = sensor(dg.build_sensor_context(instance=inst, cursor=again.cursor, resources=settings))
    assert not seen.run_requests  # modified a moment ago and seen once: it may still be growing
    changed = sensor(dg.build_sensor_context(instance=inst, cursor=seen.cursor, resources=settings))
    assert [r.partition_key for r in changed.run_requests] == ["01_demo"]  # unchanged at the next look
    assert not changed.dynamic_partitions_requests
    assert json.loads(changed.cursor)["done"].keys() == {"01_demo", "sub__02_prep_clip"}
