"""The product path end to end, with real processes: `dagster dev` (webserver + daemon + code server) on a temp
HandClust home, clips written slowly into the watched folder (chunked writes, as a copy or a sync does), one bad
file, one modality whose model is unavailable — and nothing launched by hand. What a user sees is what is asserted:
one run per clip, good clips green, the bad one red with its message, the cross-clip graph and the dashboard built
by automation alone, and a notebook connection opened before any result existed sees the new tables."""

from __future__ import annotations

import shutil
import threading
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from handclust_assets.cli.session import CLIP_TAG, DagsterSession
from handclust_assets.lib.synthetic import generate_clip
from handclust_assets.lib.tables import connect

CLIPS = {
    "01_production_a": [("trowel", 5.0), ("idle", 4.0)],
    "02_transit_b": [("walk", 5.0), ("carry", 4.0)],
    "03_prep_c": [("scoop", 5.0), ("walk", 4.0)],
}
BAD = "04_demo_broken"


def write_slowly(src: Path, dst: Path, chunks: int = 4, pause_s: float = 1.5) -> None:
    """Append a file in chunks with pauses, so the folder sensor sees it half-written."""
    data = src.read_bytes()
    step = len(data) // chunks + 1
    with dst.open("wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i:i + step])
            f.flush()
            time.sleep(pause_s)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory):  # yields (session, notebook connection)
    tmp = tmp_path_factory.mktemp("product")
    home = tmp / "home"
    made = tmp / "made"
    for i, (name, plan) in enumerate(CLIPS.items()):
        generate_clip(made / f"{name}.mp4", seed=i, width=320, height=180, fps=10, activities=plan)
    env = {"HANDCLUST_SENSOR_INTERVAL_S": "3", "HANDCLUST_AUTOMATION_INTERVAL_S": "5",
           # the V-JEPA 2 weights are "unavailable" here whatever the machine has cached: the modality is skipped
           "HANDCLUST_VIDEO_MODEL_PATH": str(tmp / "no-vjepa-weights-here")}
    s = DagsterSession(home, max_runs=2, env=env)
    s.start()
    try:
        notebook = connect(home)  # opened before any result exists, held for the whole session
        assert notebook.tables() == []
        videos = home / "videos"
        writers = [threading.Thread(target=write_slowly, args=(made / f"{n}.mp4", videos / f"{n}.mp4"))
                   for n in CLIPS]
        for name in CLIPS:  # the sidecar first, as `handclust generate` lands them
            shutil.copy(made / f"{name}.gt.parquet", videos / f"{name}.gt.parquet")
        for w in writers:
            w.start()
        (videos / f"{BAD}.mp4").write_text("this is not a video")
        for w in writers:
            w.join()
        t0 = time.monotonic()
        progress = s.wait_settled(len(CLIPS) + 1, timeout_s=900)
        yield s, notebook, progress, time.monotonic() - t0
    finally:
        s.stop()


def _runs(s: DagsterSession) -> list[dg.DagsterRun]:
    return [r.dagster_run for r in s.instance().get_run_records(limit=500)]


def test_one_run_per_clip_good_green_bad_red_with_its_message(session) -> None:
    s, _, progress, _ = session
    clip_runs = [r for r in _runs(s) if r.job_name == "process_clip"]
    per_clip = {}
    for r in clip_runs:
        per_clip.setdefault(r.tags[CLIP_TAG], []).append(r)
    assert sorted(per_clip) == sorted([*CLIPS, BAD])
    assert all(len(v) == 1 for v in per_clip.values()), {k: len(v) for k, v in per_clip.items()}  # never twice
    assert {k: v[0].status for k, v in per_clip.items()} == {**{c: dg.DagsterRunStatus.SUCCESS for c in CLIPS},
                                                             BAD: dg.DagsterRunStatus.FAILURE}
    inst = s.instance()
    fails = inst.all_logs(per_clip[BAD][0].run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    msg = fails[0].dagster_event.step_failure_data.error.message
    assert f"{BAD}.mp4" in msg and "not a readable video" in msg
    assert progress.clips_failed == [BAD]


def test_unavailable_model_is_skipped_with_its_reason_not_failed(session) -> None:
    s, _, _, _ = session
    inst = s.instance()
    key = dg.AssetKey("video_embeddings")
    assert not inst.fetch_materializations(key, limit=1).records
    obs = inst.fetch_observations(key, limit=10).records
    assert {o.asset_observation.partition for o in obs} == set(CLIPS)
    reason = str(obs[0].asset_observation.metadata["skipped"].value)
    assert "model unavailable" in reason and "no-vjepa-weights-here" in reason


def test_cross_clip_graph_and_dashboard_by_automation_alone(session) -> None:
    s, _, progress, _ = session
    runs = _runs(s)
    auto = [r for r in runs if r.job_name != "process_clip"]
    assert auto and all(r.tags.get("dagster/sensor_name") == "handclust_automation" for r in auto)
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in auto), [(r.run_id, r.status) for r in auto]
    cross = [r for r in auto if dg.AssetKey("segment_features") in (r.asset_selection or set())]
    assert len(cross) == 1  # the burst of clips became one cross-clip run
    assert {dg.AssetKey(k) for k in ("cross_clip_clusters", "activity_timeline", "activity_overlays",
                                     "lab_dashboard")} <= set(cross[0].asset_selection)
    inst = s.instance()
    dash = inst.fetch_materializations(dg.AssetKey("lab_dashboard"), limit=1).records[0]
    meta = dash.asset_materialization.metadata
    assert meta["clips"].value == len(CLIPS) and meta["section_errors"].value == 0
    left_out = inst.fetch_materializations(dg.AssetKey("segment_features"), limit=1).records[0]
    assert left_out.asset_materialization.metadata["left_out"].value == BAD  # named, not waited for
    with urllib.request.urlopen(f"{s.url}/server_info", timeout=5) as r:
        assert r.status == 200  # the UI was up the whole time


def test_held_notebook_connection_sees_the_new_tables(session) -> None:
    s, notebook, _, _ = session
    tables = set(notebook.tables())
    assert {"clips", "segments", "cross_clip_clusters", "activity_timeline", "cross_clip_entropy"} <= tables
    n = notebook.execute("select count(distinct clip) from activity_timeline").fetchone()[0]
    assert n == len(CLIPS)
