"""A renamed, moved or copied video's clip run copies the per-clip results of the partition already holding the
same video, where they were made from the same code, settings and models (`lib.adopt`, `defs.adoption`): real clip
runs on a real Dagster instance, real Parquet tables read back with DuckDB, real frame caches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from handclust_assets.defs.adoption import RECOMPUTE_TAG
from handclust_assets.defs.resources import HandclustSettings
from handclust_assets.lib.adopt import step_key, video_identity
from handclust_assets.video.frame_cache import FrameCache
from handclust_assets.video.writer import moving_pattern, write_video
from handclust_assets_tests.support import make_resources, run_clips, step_failures

INTR = {"fx": 80.0, "fy": 80.0, "cx": 80.0, "cy": 48.0, "k1": -0.05, "k2": 0.01, "k3": 0.0, "k4": 0.0}


def _meta(result, asset: str) -> dict:
    mats = result.asset_materializations_for_node(asset)
    assert mats, f"{asset} was not materialized"
    return {k: v.value for k, v in mats[0].metadata.items()}


def _materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def _rows(storage: Path, table: str, clip: str) -> pl.DataFrame:
    """A table partition's rows, its `clip` column left out, in file order (read with DuckDB)."""
    return duckdb.sql(f"select * exclude (clip) from read_parquet('{storage}/tables/{table}/{clip}.parquet')").pl()


@pytest.fixture
def processed(storage: Path) -> tuple[Path, dict, object, object]:
    """One clip, `a`, through its clip run; its resources, instance and result."""
    write_video(storage / "videos" / "a.mp4", moving_pattern(40, 160, 96), 10)
    res = make_resources(storage)
    inst, runs = run_clips(res, ["a"])
    assert runs["a"].success, step_failures(runs["a"])
    return storage, res, inst, runs["a"]


def test_a_renamed_video_copies_its_clip_results_instead_of_computing_them(processed) -> None:
    storage, res, inst, first = processed
    vids = storage / "videos"
    (vids / "a.mp4").rename(vids / "b.mp4")
    _, runs = run_clips(res, ["b"], inst)
    second = runs["b"]
    assert second.success, step_failures(second)

    steps = _materialized(first)
    assert _materialized(second) == steps
    own = {"clips", "ground_truth", "anomaly_ground_truth"}  # they read the file and what lies beside it
    copied = steps - own
    assert {"frame_cache", "flow", "scene_embeddings", "period_track", "segments", "repetitions"} <= copied
    for step in sorted(copied):
        m, m0 = _meta(second, step), _meta(first, step)
        assert m["adopted_from"] == "a", step
        assert m["made_from"] == m0["made_from"], step  # what it was made from: the same
        assert m0["adopted_from"] == "-"
        assert m["rows"] == m0["rows"]
        assert_frame_equal(_rows(storage, step, "b"), _rows(storage, step, "a"))  # NaN equal to NaN
        got = duckdb.connect().execute(f"select distinct clip from '{storage}/tables/{step}/b.parquet'").fetchall()
        assert got == [("b",)], step
    for step in own:
        assert "adopted_from" not in _meta(second, step)
    assert _meta(second, "clips")["made_from"] == _meta(first, "clips")["made_from"]
    assert _meta(second, "clips")["source"].endswith("b.mp4")

    fa, fb = storage / "frames" / "a", storage / "frames" / "b"  # the frame cache: linked, not decoded again
    assert (fb / "frames.jpgpack").stat().st_ino == (fa / "frames.jpgpack").stat().st_ino
    assert json.loads((fb / "meta.json").read_text())["source"].endswith("b.mp4")
    assert json.loads((fa / "meta.json").read_text())["source"].endswith("a.mp4")  # the twin's left as it was
    assert (storage / "arrays/flow/b.npz").read_bytes() == (storage / "arrays/flow/a.npz").read_bytes()
    shutil.rmtree(fa)  # the twin's results deleted (`handclust forget a`): the copy's frames are still whole
    cache = FrameCache(fb)
    assert cache.read(len(cache) - 1).shape[2] == 3 and cache.motion_track() is not None
    said = " ".join(e.user_message for e in inst.all_logs(second.run_id))
    assert "frame_cache copied from clip partition 'a'" in said


def test_a_copy_is_computed_where_settings_calibration_or_the_run_tag_differ(processed) -> None:
    storage, res, inst, first = processed
    vids = storage / "videos"
    for name in ("c", "d", "e"):
        shutil.copy2(vids / "a.mp4", vids / f"{name}.mp4")

    # other settings: the frame cache and everything after it computed again, at the new rate
    res_c = make_resources(storage, settings=HandclustSettings(video_folder=str(vids), sample_fps=4.0))
    _, runs = run_clips(res_c, ["c"], inst)
    c = runs["c"]
    assert c.success, step_failures(c)
    assert _meta(c, "frame_cache")["adopted_from"] == "-"
    assert _meta(c, "frame_cache")["n_frames"] < _meta(first, "frame_cache")["n_frames"]
    assert {_meta(c, s)["adopted_from"] for s in ("flow", "segments", "period_track")} == {"-"}

    # another calibration beside the copy: the video's identity differs, so nothing is copied
    (vids / "d.intrinsics.json").write_text(json.dumps({**INTR, "width": 160, "height": 96}))
    _, runs = run_clips(res, ["d"], inst)
    d = runs["d"]
    assert d.success, step_failures(d)
    assert _meta(d, "clips")["made_from"] != _meta(first, "clips")["made_from"]
    assert _meta(d, "frame_cache")["rectified"] is True
    assert {_meta(d, s)["adopted_from"] for s in ("frame_cache", "flow", "period_track")} == {"-"}

    # the run tag: computed although a twin would do, and made from the same as the twin's
    _, runs = run_clips(res, ["e"], inst, tags={RECOMPUTE_TAG: "1"})
    e = runs["e"]
    assert e.success, step_failures(e)
    for step in ("frame_cache", "flow", "segments"):
        assert _meta(e, step)["adopted_from"] == "-"
        assert _meta(e, step)["made_from"] == _meta(first, step)["made_from"]
    assert (storage / "frames/e/frames.jpgpack").stat().st_ino != (storage / "frames/a/frames.jpgpack").stat().st_ino


def test_a_twin_whose_files_are_gone_is_not_copied(processed) -> None:
    storage, res, inst, first = processed
    vids = storage / "videos"
    shutil.copy2(vids / "a.mp4", vids / "f.mp4")
    shutil.rmtree(storage / "frames" / "a")  # the twin's frame cache deleted by hand
    _, runs = run_clips(res, ["f"], inst)
    f = runs["f"]
    assert f.success, step_failures(f)
    assert _meta(f, "frame_cache")["adopted_from"] == "-"  # decoded again
    assert (storage / "frames/f/frames.jpgpack").is_file()
    # the same frames made again: what follows them is still the twin's, and copied
    assert _meta(f, "frame_cache")["made_from"] == _meta(first, "frame_cache")["made_from"]
    assert _meta(f, "flow")["adopted_from"] == "a"

    # a twin's table that cannot be read (damaged since): the step computes, and says why
    (storage / "tables" / "period_track" / "a.parquet").write_bytes(b"not parquet")
    (storage / "tables" / "period_track" / "f.parquet").write_bytes(b"not parquet")
    shutil.copy2(vids / "a.mp4", vids / "g.mp4")
    _, runs = run_clips(res, ["g"], inst)
    g = runs["g"]
    assert g.success, step_failures(g)
    assert _meta(g, "period_track")["adopted_from"] == "-"
    assert _meta(g, "flow")["adopted_from"] in ("a", "f")
    said = " ".join(e.user_message for e in inst.all_logs(g.run_id))
    assert "period_track: copying clip partition" in said and "computed instead" in said
    assert duckdb.sql(f"select count(*) from '{storage}/tables/period_track/g.parquet'").fetchall()[0][0] > 0


def test_what_a_result_is_made_from_ignores_the_path_and_nothing_else() -> None:
    probe = {"duration_s": 4.0, "frame_count": 40, "width": 160, "height": 96, "codec": "h264"}
    base = video_identity("h1", probe, None, "clips-v2")
    assert base == video_identity("h1", dict(reversed(probe.items())), None, "clips-v2")  # key order
    assert len({base, video_identity("h2", probe, None, "clips-v2"),
                video_identity("h1", {**probe, "frame_count": 41}, None, "clips-v2"),
                video_identity("h1", probe, {"K": [[1.0]], "D": [0.0]}, "clips-v2"),
                video_identity("h1", probe, None, "clips-v3")}) == 5
    step = step_key("flow", "flow-v1", {"frame_cache": "x"}, {"settings": {"sample_fps": 5.0}})
    assert len({step, step_key("flow", "flow-v2", {"frame_cache": "x"}, {"settings": {"sample_fps": 5.0}}),
                step_key("flow", "flow-v1", {"frame_cache": "y"}, {"settings": {"sample_fps": 5.0}}),
                step_key("flow", "flow-v1", {"frame_cache": "x"}, {"settings": {"sample_fps": 4.0}}),
                step_key("egomotion", "flow-v1", {"frame_cache": "x"}, {"settings": {"sample_fps": 5.0}})}) == 5
