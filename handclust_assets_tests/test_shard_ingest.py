"""Tar shards through the product path: the folder sensor takes their members, the ingest assets decode them in
place, a rewritten shard re-runs exactly its changed members, a bad shard fails only its own members (named),
and the hub fetch job fills the watched folder from a local HTTP server (skipped offline)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import av
import dagster as dg
import duckdb
import pytest

from handclust_assets.defs.ingest.assets import SOURCE_TAG
from handclust_assets.defs.resources import HandclustSettings, ShardHubResource
from handclust_assets.video.writer import moving_pattern, write_video
from handclust_assets_tests.support import make_resources, serve_fake_hub, step_failures

CODEC = "libx265" if "libx265" in av.codecs_available else "libx264"
INTRINSICS = {"fx": 70.0, "fy": 70.0, "cx": 80.0, "cy": 48.0, "k1": 0.05, "k2": -0.01, "k3": 0.0, "k4": 0.0}
INGEST = ["clips", "frame_cache", "ground_truth", "anomaly_ground_truth"]


def _video(tmp: Path, seed: int, n: int = 30) -> bytes:
    p = write_video(tmp / f"v{seed}_{n}.mp4", moving_pattern(n, 160, 96, seed=seed), 30.0, codec=CODEC)
    data = p.read_bytes()
    p.unlink()
    return data


def _tar(path: Path, members: list[tuple[str, bytes]], age_s: float = 60.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    os.utime(path, (time.time() - age_s, time.time() - age_s))  # landed a while ago: settled
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("shard_clips")
    return {"a": _video(tmp, 1), "b": _video(tmp, 2), "c": _video(tmp, 3, n=24)}


def _tick(instance: dg.DagsterInstance, folder: Path, cursor: str | None) -> dg.SensorResult:
    from handclust_assets.definitions import defs

    sensor = defs.get_sensor_def("video_folder_sensor")
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor,
                                  resources={"settings": HandclustSettings(video_folder=str(folder))})
    res = sensor(ctx)
    for req in res.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions("clips", list(req.partition_keys))
    return res


def _settle(instance: dg.DagsterInstance, folder: Path, cursor: str | None = None) -> tuple[list, str]:
    """Two looks (a clip is taken once it looked the same twice): the run requests and the cursor."""
    first = _tick(instance, folder, cursor)
    second = _tick(instance, folder, first.cursor)
    return [*(first.run_requests or []), *(second.run_requests or [])], second.cursor


def _run(root: Path, instance: dg.DagsterInstance, req: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """The clip run the sensor asked for (same partition, same tags), ingest assets only."""
    from handclust_assets.definitions import defs

    return dg.materialize([*defs.assets], selection=INGEST, partition_key=req.partition_key, instance=instance,
                          resources=make_resources(root), tags=req.tags, raise_on_error=False)


def test_sensor_takes_members_and_a_rewritten_shard_reruns_exactly_its_changed_members(
        storage: Path, clips: dict[str, bytes]) -> None:
    watched = storage / "videos"
    shard = watched / "factory_001" / "worker_001.tar"
    _tar(shard, [("intrinsics.json", json.dumps(INTRINSICS).encode()), ("00001.mp4", clips["a"]),
                 ("00002.mp4", clips["b"])])
    inst = dg.DagsterInstance.ephemeral()
    reqs, cursor = _settle(inst, watched)
    keys = ["factory_001__worker_001__00001", "factory_001__worker_001__00002"]
    assert [r.partition_key for r in reqs] == keys
    assert reqs[0].tags[SOURCE_TAG] == f"{shard.resolve()}::00001.mp4"
    assert not _tick(inst, watched, cursor).run_requests  # nothing changed: nothing to run
    # rewritten: 00001 the same bytes (moved: a bigger member now precedes it), 00002 replaced, 00003 new
    _tar(shard, [("intrinsics.json", json.dumps(INTRINSICS).encode() + b" " * 4000), ("00001.mp4", clips["a"]),
                 ("00002.mp4", clips["c"]), ("00003.mp4", clips["b"])])
    reqs, cursor = _settle(inst, watched, cursor)
    assert sorted(r.partition_key for r in reqs) == [keys[1], "factory_001__worker_001__00003"]
    assert set(inst.get_dynamic_partitions("clips")) == {*keys, "factory_001__worker_001__00003"}


def test_bad_shards_fail_only_their_own_members_named(storage: Path, clips: dict[str, bytes],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    watched = storage / "videos"
    intr = ("intrinsics.json", json.dumps(INTRINSICS).encode())
    side = ("00001.anomalies.csv", b"start_s,end_s,label\n0.2,0.6,lens covered\n")
    _tar(watched / "good.tar", [intr, ("00001.mp4", clips["a"]), side])
    cut = _tar(watched / "cut.tar", [intr, ("00001.mp4", clips["a"]), ("00002.mp4", clips["b"])])
    data = cut.read_bytes()
    offset = data.index(clips["b"][:64])
    cut.write_bytes(data[: offset + len(clips["b"]) // 2])  # the download stopped inside the second clip
    os.utime(cut, (time.time() - 60, time.time() - 60))
    _tar(watched / "junk.tar", [intr, ("00001.mp4", clips["b"]), ("00002.mp4", b"not a video\n" * 40)])
    _tar(watched / "badintr.tar", [("intrinsics.json", b'{"fx": 70, "fy": '), ("00001.mp4", clips["c"])])
    inst = dg.DagsterInstance.ephemeral()
    reqs, cursor = _settle(inst, watched)
    assert str(cut.resolve()) in json.loads(cursor)["problems"]  # the cut shard is reported by the sensor
    failures = {}
    for req in reqs:
        res = _run(storage, inst, req)
        failed = step_failures(res)
        assert set(failed) <= {"clips"}  # a bad member fails at its first step; the good ones not at all
        failures[req.partition_key] = failed.get("clips")
    assert failures == {"badintr__00001": failures["badintr__00001"], "cut__00001": None,
                        "cut__00002": failures["cut__00002"], "good__00001": None, "junk__00001": None,
                        "junk__00002": failures["junk__00002"]}
    assert "cut.tar::00002.mp4: truncated shard" in failures["cut__00002"]
    assert "junk.tar::00002.mp4" in failures["junk__00002"] and "not a readable video" in failures["junk__00002"]
    assert "badintr.tar::00001.mp4" in failures["badintr__00001"] and "not valid JSON" in failures["badintr__00001"]

    con = duckdb.connect()
    tables = storage / "tables"
    rows = dict(con.execute(f"select clip, source_path from '{tables}/clips/*.parquet'").fetchall())
    assert rows == {"cut__00001": f"{cut.resolve()}::00001.mp4", "good__00001": f"{(watched / 'good.tar').resolve()}"
                    "::00001.mp4", "junk__00001": f"{(watched / 'junk.tar').resolve()}::00001.mp4"}
    meta = json.loads((storage / "frames" / "good__00001" / "meta.json").read_text())
    assert meta["source"] == rows["good__00001"] and meta["rectified"] is True  # decoded from the member
    assert not [p for p in storage.rglob("*") if p.suffix == ".mp4" and p.parent.name != "videos"]  # no copy
    gt = con.execute(f"select clip, start_s, end_s, label from '{tables}/anomaly_ground_truth/*.parquet' "
                     "order by clip").fetchall()
    assert gt == [("good__00001", 0.2, 0.6, "lens covered")]  # from the shard; the others have no sidecar


class _Hub(http.server.BaseHTTPRequestHandler):
    """The hub's resolve endpoint as hf_hub_download uses it: HEAD (metadata) and GET (bytes), token-gated."""

    files: dict[str, bytes] = {}
    requests: list[str] = []

    def _serve(self, body: bool) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        prefix = "/datasets/org/ego/resolve/main/"
        data = self.files.get(self.path.removeprefix(prefix)) if self.path.startswith(prefix) else None
        if self.headers.get("Authorization") != "Bearer hf_test":
            self.send_response(403)
            self.send_header("X-Error-Code", "GatedRepo")
        elif data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
        else:
            self.send_response(200)
            self.send_header("X-Repo-Commit", "b" * 40)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body and data is not None and self.headers.get("Authorization") == "Bearer hf_test":
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        self._serve(False)

    def do_GET(self) -> None:
        self._serve(True)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from serve_fake_hub(monkeypatch, _Hub)


def _fetch(storage: Path, hub_res: ShardHubResource) -> tuple[dg.ExecuteInProcessResult, str]:
    from handclust_assets.definitions import defs

    inst = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("fetch_hub_shards")
    res = job.execute_in_process(instance=inst, raise_on_error=False, resources={
        "hub_shards": hub_res, "settings": HandclustSettings(video_folder=str(storage / "videos"))})
    logs = "\n".join(e.user_message for e in inst.all_logs(res.run_id))
    return res, logs


def test_fetch_job_fills_the_watched_folder_from_a_local_hub(storage: Path, clips: dict[str, bytes], hub: str,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tar(tmp_path / "src.tar", [("intrinsics.json", json.dumps(INTRINSICS).encode()), ("00001.mp4", clips["a"])])
    _Hub.files = {"factory_001/worker_001.tar": src.read_bytes()}
    cfg = {"repo_id": "org/ego", "endpoint": hub, "token": "hf_test"}
    res, logs = _fetch(storage, ShardHubResource(shards=["factory_001/worker_001.tar"], **cfg))
    assert res.success, logs
    fetched = storage / "videos" / "factory_001" / "worker_001.tar"
    assert fetched.read_bytes() == src.read_bytes() and f"fetched {fetched}" in logs
    os.utime(fetched, (time.time() - 60, time.time() - 60))
    reqs, _ = _settle(dg.DagsterInstance.ephemeral(), storage / "videos")
    assert [r.partition_key for r in reqs] == ["factory_001__worker_001__00001"]
    bad, logs = _fetch(storage, ShardHubResource(shards=["factory_001/worker_404.tar"], **cfg))
    assert not bad.success and "no file 'factory_001/worker_404.tar'" in step_failures(bad)["fetch_shards_op"]


def test_fetch_job_without_token_or_network_is_skipped_with_the_reason(storage: Path, hub: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_KEY", raising=False)
    res, logs = _fetch(storage, ShardHubResource(repo_id="org/ego", shards=["a.tar"], endpoint=hub))
    assert res.success and "no Hugging Face token configured" in logs
    res, logs = _fetch(storage, ShardHubResource(repo_id="org/ego", shards=["a.tar"], token="hf_test",
                                                 endpoint="http://127.0.0.1:9"))  # discard port: nobody listens
    assert res.success and "hub not reachable" in logs
    assert _Hub.requests == [] and not list((storage / "videos").rglob("*.tar"))
