"""Scheduled re-embedding: a changed model makes exactly the partitions built with the old one stale, and the
sensor requests them in batches; a model that appears fills in the partitions skipped without it; a new hub commit
is noticed (hub = a local fake HF API server)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from handclust_assets.defs.ingest import assets as ingest
from handclust_assets.defs.modalities import embeddings
from handclust_assets.defs.models.sensors import build_model_update_sensor, recorded_model_versions
from handclust_assets.defs.resources import (
    MediaPipeResource,
    SceneModelResource,
    ToolModelResource,
    VideoModelResource,
)
from handclust_assets.lib.reembed import plan_reembed
from handclust_assets.models import spec as spec_mod
from handclust_assets.video.writer import moving_pattern, write_video
from handclust_assets_tests.support import make_resources, materializations, materialize
from handclust_assets_tests.tiny_models import make_tiny_dinov2, make_tiny_vjepa2

ASSETS = [ingest.clips, ingest.frame_cache, embeddings.scene_embeddings]
KEY = dg.AssetKey("scene_embeddings")


def test_plan_reembed_batches_and_pending() -> None:
    rec = {"a": "m@1", "b": "m@1", "c": "m@2", "d": None}
    p = plan_reembed("scene_embeddings", rec, "m@2", [], batch_size=2)
    assert p.stale == ["a", "b", "d"] and p.requested == ["a", "b"] and p.pending == []
    p2 = plan_reembed("scene_embeddings", rec, "m@2", p.requested, batch_size=2)
    assert p2.requested == ["d"] and p2.pending == ["a", "b"]
    assert plan_reembed("scene_embeddings", {"a": "m@2"}, "m@2", [], 4).stale == []


def _model_resources(scene: SceneModelResource, video: VideoModelResource | None = None) -> dict:
    return {"scene_model": scene, "video_model": video or VideoModelResource(), "tool_model": ToolModelResource(),
            "mediapipe": MediaPipeResource()}


def _sensor_tick(sensor: dg.SensorDefinition, inst: dg.DagsterInstance, res: SceneModelResource, cursor: str | None,
                 video: VideoModelResource | None = None):
    ctx = dg.build_sensor_context(instance=inst, cursor=cursor, resources=_model_resources(res, video))
    return sensor(ctx)


def _observed(result: dg.SensorResult) -> dict[str, str]:
    return {e.asset_key.to_user_string(): e.tags["dagster/data_version"] for e in result.asset_events}


def test_changed_local_model_requests_exactly_the_stale_partitions(storage: Path, tmp_path: Path) -> None:
    for name in ("a_prep", "b_demo", "c_transit"):
        write_video(storage / "videos" / f"{name}.mp4", moving_pattern(15, 96, 64, seed=len(name)), 15)
    model_dir = make_tiny_dinov2(tmp_path / "dino", seed=0)
    scene = SceneModelResource(model_id="facebook/dinov2-small", local_path=str(model_dir), allow_fallback=False)
    res = make_resources(storage, scene_model=scene)
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a_prep", "b_demo", "c_transit"])
    for p in ("a_prep", "b_demo"):  # c_transit is never embedded: missing, not stale
        assert dg.materialize(ASSETS, partition_key=p, instance=inst, resources=res).success
    v0 = scene.version()
    assert recorded_model_versions(inst, KEY, {"a_prep", "b_demo", "c_transit"}) == {"a_prep": v0, "b_demo": v0}

    sensor = build_model_update_sensor("process_clip", {"scene_embeddings": "scene_model"},
                                       {"scene_embeddings": []}, max_queued=1)
    first = _sensor_tick(sensor, inst, scene, None)
    assert not first.run_requests and "up to date" in first.skip_reason.skip_message
    assert _observed(first)["scene_model_weights"] == v0  # the model's version, observed at run time
    assert _observed(_sensor_tick(sensor, inst, scene, first.cursor)) == {}  # recorded once per change

    make_tiny_dinov2(model_dir, seed=1)  # the model is updated in place (new weights)
    v1 = scene.version()
    assert v1 != v0 and v1.startswith("facebook/dinov2-small@main#")
    tick1 = _sensor_tick(sensor, inst, scene, first.cursor)
    assert _observed(tick1) == {"scene_model_weights": v1}
    assert [r.partition_key for r in tick1.run_requests] == ["a_prep"]  # batch of 1
    req = tick1.run_requests[0]
    assert req.asset_selection == [KEY] and req.tags["handclust/reembed"] == f"scene_embeddings@{v1}"
    assert req.tags["handclust/clip"] == "a_prep"  # one run per clip at a time, like the folder's runs
    assert req.tags["dagster/priority"] == "-1"  # a clip dropped meanwhile runs first
    job = dg.Definitions(assets=ASSETS, jobs=[dg.define_asset_job("process_clip")],
                         resources=res).resolve_job_def("process_clip")
    pending = inst.create_run_for_job(job, tags=dict(req.tags))  # its run, launched and not started yet
    assert not _sensor_tick(sensor, inst, scene, tick1.cursor).run_requests  # 1 of its runs queued at most
    inst.delete_run(pending.run_id)  # that run ended
    tick2 = _sensor_tick(sensor, inst, scene, tick1.cursor)
    assert [r.partition_key for r in tick2.run_requests] == ["b_demo"]  # next batch; a_prep is pending
    for r in (req, tick2.run_requests[0]):
        assert dg.materialize(ASSETS, partition_key=r.partition_key, selection=r.asset_selection, instance=inst,
                              resources=res).success
    assert set(recorded_model_versions(inst, KEY, {"a_prep", "b_demo"}).values()) == {v1}
    done = _sensor_tick(sensor, inst, scene, tick2.cursor)
    assert not done.run_requests and json.loads(done.cursor)["scene_embeddings"]["requested"] == []
    assert "c_transit" not in recorded_model_versions(inst, KEY, {"c_transit"})  # no frame cache: nothing asked
    # the path the daemon takes: evaluate_tick, resources injected as typed parameters
    job = dg.define_asset_job("process_clip", selection=dg.AssetSelection.assets(*ASSETS))
    defs = dg.Definitions(assets=ASSETS, jobs=[job], sensors=[sensor], resources={**res, **_model_resources(scene)})
    bound = defs.get_sensor_def("model_update_sensor")
    ctx = dg.build_sensor_context(instance=inst, cursor=done.cursor, definitions=defs,
                                  resources=_model_resources(scene))
    again = bound.evaluate_tick(ctx)  # the daemon's entry point (not direct invocation)
    assert not again.run_requests and "up to date" in (again.skip_message or "")


def test_a_model_that_appears_fills_in_the_partitions_skipped_without_it(storage: Path, tmp_path: Path) -> None:
    for name in ("a_prep", "b_demo"):
        write_video(storage / "videos" / f"{name}.mp4", moving_pattern(20, 96, 64, seed=len(name)), 15)
    scene = SceneModelResource(model_id="nobody/no-dinov2-here")  # the offline fallback
    vjepa = tmp_path / "vjepa"  # not there yet
    video = VideoModelResource(local_path=str(vjepa), window_frames=8)
    res = make_resources(storage, scene_model=scene, video_model=video)
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a_prep", "b_demo"])
    for p in ("a_prep", "b_demo"):
        r = materialize(["clips", "frame_cache", "video_embeddings"], res, inst, partition_key=p)
        assert r.success and materializations(r) == {"clips", "frame_cache"}  # video skipped, green
    sensor = build_model_update_sensor("reembed_models", {"video_embeddings": "video_model"},
                                       {"video_embeddings": []}, max_queued=4)
    before = _sensor_tick(sensor, inst, scene, None, video)
    assert not before.run_requests and "model unavailable" in before.skip_reason.skip_message
    assert _observed(before)["video_model_weights"].startswith("unavailable:")
    make_tiny_vjepa2(vjepa)  # the weights arrive
    after = _sensor_tick(sensor, inst, scene, before.cursor, video)
    assert sorted(r.partition_key for r in after.run_requests) == ["a_prep", "b_demo"]
    assert not _observed(after)["video_model_weights"].startswith("unavailable:")
    for req in after.run_requests:
        r = materialize([k.to_user_string() for k in req.asset_selection], res, inst, partition_key=req.partition_key)
        assert materializations(r) == {"video_embeddings"}
    assert not _sensor_tick(sensor, inst, scene, after.cursor, video).run_requests  # filled in, once


class _FakeHub(BaseHTTPRequestHandler):
    sha = "a" * 40

    def do_GET(self) -> None:  # http.server API
        if self.path.startswith("/api/models/facebook/dinov2-small/revision/main"):
            body = json.dumps({"id": "facebook/dinov2-small", "sha": type(self).sha}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


def test_new_hub_commit_changes_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub is outside this machine: a local HTTP server answers the HF model-info API instead."""
    import huggingface_hub.constants as hfc

    from handclust_assets.models import hub

    srv = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{srv.server_port}")
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", False)
        hub._reachable.cache_clear()
        monkeypatch.setattr(spec_mod, "_COMMIT_CACHE", {})
        s = spec_mod.ModelSpec("facebook/dinov2-small")
        assert s.version() == "facebook/dinov2-small@main:aaaaaaaaaaaa"
        _FakeHub.sha = "b" * 40  # someone pushes a new commit to main
        assert s.version() == "facebook/dinov2-small@main:aaaaaaaaaaaa"  # cached within the TTL
        monkeypatch.setattr(spec_mod, "_COMMIT_CACHE", {})
        assert s.version() == "facebook/dinov2-small@main:bbbbbbbbbbbb"
    finally:
        srv.shutdown()
        hub._reachable.cache_clear()


def test_a_model_unchanged_since_its_partitions_were_current_is_not_read_again(
        storage: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading what every partition recorded is one query over all of them (~1 s per 10,000 clips): done when the
    model changed, not at every tick; a clip cached without a result is still found (cheap queries)."""
    from handclust_assets.defs.models import sensors

    for name in ("a_prep", "b_demo", "c_new"):
        write_video(storage / "videos" / f"{name}.mp4", moving_pattern(15, 96, 64, seed=len(name)), 15)
    scene = SceneModelResource(model_id="facebook/dinov2-small", local_path=str(make_tiny_dinov2(tmp_path / "d")),
                               allow_fallback=False)
    res = make_resources(storage, scene_model=scene)
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a_prep", "b_demo"])
    for p in ("a_prep", "b_demo"):
        assert dg.materialize(ASSETS, partition_key=p, instance=inst, resources=res).success
    reads: list[str] = []
    read = sensors.recorded_model_versions
    monkeypatch.setattr(sensors, "recorded_model_versions",
                        lambda i, k, p: reads.append(k.to_user_string()) or read(i, k, p))
    v0 = scene.version()

    def tick(version: str, cursor: dict) -> tuple[list[dg.RunRequest], dict, list[str]]:
        return sensors.reembed_requests(inst, {"scene_embeddings": "scene_model"}, {"scene_embeddings": []},
                                        {"scene_model": (version, None)}, cursor, 4)

    runs, cur, _ = tick(v0, {})
    assert not runs and reads == ["scene_embeddings"] and cur["scene_embeddings"]["confirmed"] == v0
    reads.clear()
    assert tick(v0, cur)[0] == [] and reads == []  # unchanged: no full read
    inst.add_dynamic_partitions("clips", ["c_new"])  # a clip run while the model was unavailable: cached only
    assert dg.materialize(ASSETS[:2], partition_key="c_new", instance=inst, resources=res).success
    runs, cur, _ = tick(v0, cur)
    assert [r.partition_key for r in runs] == ["c_new"] and reads == []  # found without reading every partition
    runs, cur, _ = tick("facebook/dinov2-small@main#other", cur)  # the model changed: every partition is read
    assert reads == ["scene_embeddings"] and sorted(r.partition_key for r in runs) == ["a_prep", "b_demo", "c_new"]
    reads.clear()
    two = {"scene_embeddings": "scene_model", "video_embeddings": "video_model"}
    _, _, notes = sensors.reembed_requests(inst, two, {}, {"scene_model": (v0, None), "video_model": ("v@1", None)},
                                           {}, 4, budget_s=0.0)
    assert reads == ["scene_embeddings"]  # out of time: the other asset's full read waits for the next tick
    assert "video_embeddings: its partitions' model versions are read next tick" in notes
