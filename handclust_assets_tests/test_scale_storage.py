"""The whole per-clip and cross-clip graph with its results on an object store: an S3-compatible server (moto in
server mode, a child process) started here. What the pipeline writes lands in the bucket (tables, frame caches,
flow arrays, the cluster model, the label cache, the dashboard and its videos), nothing in the local results
folder but the scratch mirror, and `hc.connect("s3://...")` reads back the same rows as a run on a folder."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import polars as pl
import pytest

import handclust_assets as hc
from handclust_assets.defs.resources import (
    HandclustSettings,
    LabelerResource,
    SceneModelResource,
    StorageResource,
    ToolModelResource,
    VideoModelResource,
)
from handclust_assets.lib.storage import Storage
from handclust_assets.lib.synthetic import generate_clip
from handclust_assets.models.tools import DEFAULT_TOOL_PROMPTS
from handclust_assets_tests.scale_support import S3_ENV, frame_differences, moto_server, relative_to_root
from handclust_assets_tests.support import (
    cross_clip_selection,
    make_resources,
    materialize,
    run_clips,
    step_failures,
)
from handclust_assets_tests.tiny_models import make_tiny_dinov2, make_tiny_owlv2, make_tiny_vjepa2

CLIPS = [("01_production_a", [("trowel", 6.0), ("idle", 6.0)]), ("02_transit_b", [("walk", 6.0), ("trowel", 6.0)])]
BUCKET_ROOT = "s3://lab/handclust"
# measured per run (wall/CPU seconds, memory), not results: they differ between any two runs
RUN_DEPENDENT = {"cost_report", "clip_cost"}


class FakeVLM:
    """An OpenAI-compatible chat-completions endpoint on a local port that names every cluster the same way."""

    def __init__(self) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests += 1
                body = json.dumps({"choices": [{"message": {"content": "Laying blocks."}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        Thread(target=self.httpd.serve_forever, daemon=True).start()


def _run_graph(storage: StorageResource, videos: Path, models: dict, labeler: LabelerResource) -> None:
    res = make_resources(videos.parent, storage=storage, settings=HandclustSettings(video_folder=str(videos)),
                         labeler=labeler, **models)
    inst, runs = run_clips(res, [c for c, _ in CLIPS])
    for clip, r in runs.items():
        assert r.success, (clip, step_failures(r))
    assert materialize(cross_clip_selection(), res, inst).success


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("scale_s3")
    videos = tmp / "videos"
    for i, (name, plan) in enumerate(CLIPS):
        generate_clip(videos / f"{name}.mp4", seed=i, width=192, height=108, fps=10, activities=plan)
    models = {
        "scene_model": SceneModelResource(model_id="tiny/dinov2", local_path=str(make_tiny_dinov2(tmp / "dino"))),
        "video_model": VideoModelResource(model_id="tiny/vjepa2", local_path=str(make_tiny_vjepa2(tmp / "vjepa")),
                                          window_frames=8),
        "tool_model": ToolModelResource(model_id="tiny/owlv2",
                                        local_path=str(make_tiny_owlv2(tmp / "owl", DEFAULT_TOOL_PROMPTS))),
    }
    vlm = FakeVLM()
    labeler = LabelerResource(kind="openai", base_url=vlm.url, api_key="sk-test", model="vlm-test")
    with pytest.MonkeyPatch.context() as mp, moto_server(tmp) as endpoint:
        mp.setenv("HANDCLUST_HOME", str(tmp / "home"))  # scratch mirrors of the bucket live here
        for k, v in S3_ENV.items():
            mp.setenv(k, v)
        for var in ("HANDCLUST_STORAGE", "HANDCLUST_VIDEO_DIR", "DAGSTER_HOME", "AWS_ENDPOINT_URL"):
            mp.delenv(var, raising=False)
        local = tmp / "local"
        _run_graph(StorageResource(root=str(local)), videos, models, labeler)
        _run_graph(StorageResource(root=BUCKET_ROOT, endpoint_url=endpoint), videos, models, labeler)
        mp.setenv("AWS_ENDPOINT_URL", endpoint)  # what a notebook has: the endpoint from its environment
        yield {"local": local, "home": tmp / "home", "endpoint": endpoint, "vlm": vlm}
    vlm.httpd.shutdown()


def test_object_store_run_reads_back_the_same_rows_as_a_local_run(runs: dict) -> None:
    with hc.connect(str(runs["local"])) as here, hc.connect(BUCKET_ROOT) as there:
        tables = here.tables()
        assert {"clips", "frame_cache", "flow", "egomotion", "scene_embeddings", "video_embeddings", "tool_scores",
                "segments", "segment_features", "cross_clip_clusters", "cluster_labels", "segment_map",
                "anomalies"} <= set(tables)
        assert there.tables() == tables
        differences = {}
        for t in sorted(set(tables) - RUN_DEPENDENT):
            # addresses of files the pipeline wrote (e.g. diagnostics PNGs) name their root: compare what is under it
            a = relative_to_root(here.sql(f'select * from "{t}"').pl(), str(runs["local"]))
            b = relative_to_root(there.sql(f'select * from "{t}"').pl(), BUCKET_ROOT)
            diff = frame_differences(a, b)
            if diff:
                differences[t] = diff
        assert differences == {}
        n_seg = there.sql("select count(*) from segments").fetchall()[0][0]
        assert n_seg > 0
        assert there.sql("select count(*) from cross_clip_clusters where modality = 'fusion'").fetchall()[0][0] == n_seg
        labels = there.sql("select distinct source from cluster_labels").fetchall()
        assert labels and all(s in ("vlm-test", "cache:vlm-test") for (s,) in labels)


def test_a_few_columns_read_alike_from_the_bucket_and_the_folder(runs: dict) -> None:
    """`tables.read_columns` (how the cross-clip graph finds clips holding the same video): one lazy scan on a
    folder, `read_table`'s GETs on a bucket, the same frame either way (a column no partition has: nulls)."""
    from handclust_assets.lib.tables import read_columns

    schema = {"clip": pl.Utf8, "content_hash": pl.Utf8, "no_such_column": pl.Float64}
    here = read_columns(Storage(str(runs["local"])), "clips", schema).sort("clip")
    there = read_columns(Storage(BUCKET_ROOT), "clips", schema).sort("clip")
    assert here.height == len(CLIPS) and here.equals(there)
    assert here["no_such_column"].null_count() == len(CLIPS)


def test_everything_the_pipeline_writes_is_in_the_bucket(runs: dict) -> None:
    store = Storage(BUCKET_ROOT)
    assert set(store.listdir()) >= {"tables", "frames", "arrays", "models", "label_cache", "dashboard"}
    for clip, _ in CLIPS:
        assert {"meta.json"} <= set(store.listdir("frames", clip))
        assert store.exists("arrays", "flow", f"{clip}.npz")
    assert store.load_cluster_model()["clips"] == sorted(c for c, _ in CLIPS)
    assert store.listdir("label_cache") and all(n.endswith(".json") for n in store.listdir("label_cache"))
    assert b"HandClust lab" in store.read_bytes("dashboard", "index.html")
    videos = store.listdir("dashboard", "videos")
    assert "preview_reel.mp4" in videos and {f"overlay_{c}.mp4" for c, _ in CLIPS} <= set(videos)
    # the local home holds only the scratch mirror (and no results of its own)
    assert sorted(os.listdir(runs["home"])) == ["scratch"]


def test_label_cache_in_the_bucket_answers_a_fresh_labeler(runs: dict) -> None:
    from handclust_assets.lib.labeling import ClusterEvidence, OpenAICompatibleLabeler

    before = runs["vlm"].requests
    ev = ClusterEvidence(cluster_id=0, modality="fusion", top_tools=[("mason trowel", 0.8)], n_segments=3, n_clips=2)
    cache = Storage(BUCKET_ROOT).sub("label_cache")
    first = OpenAICompatibleLabeler(runs["vlm"].url, "sk-test", "vlm-test", cache_dir=cache)
    assert first.label(ev) == ("Laying blocks", "vlm-test")
    fresh = OpenAICompatibleLabeler(runs["vlm"].url, "sk-test", "vlm-test", cache_dir=Storage(BUCKET_ROOT).sub(
        "label_cache"))
    assert fresh.label(ev) == ("Laying blocks", "cache:vlm-test")
    assert runs["vlm"].requests == before + 1


def test_a_copied_video_copies_its_clip_results_in_the_bucket(runs: dict, tmp_path: Path) -> None:
    """On an object store a copy's clip run copies its twin's results too: the table partitions, the frame cache
    (uploaded under the new key, its meta.json naming the new file) and the flow array, all in the bucket."""
    from handclust_assets.video.writer import moving_pattern, write_video

    videos = tmp_path / "videos"
    write_video(videos / "a.mp4", moving_pattern(30, 160, 96), 10)
    (videos / "b.mp4").write_bytes((videos / "a.mp4").read_bytes())
    storage = StorageResource(root="s3://lab/adopt", endpoint_url=runs["endpoint"])
    res = make_resources(tmp_path, storage=storage, settings=HandclustSettings(video_folder=str(videos)))
    inst, done = run_clips(res, ["a"])
    _, done_b = run_clips(res, ["b"], inst)
    assert done["a"].success and done_b["b"].success, (step_failures(done["a"]), step_failures(done_b["b"]))
    for step in ("frame_cache", "flow", "period_track", "segments"):
        assert done_b["b"].asset_materializations_for_node(step)[0].metadata["adopted_from"].value == "a", step
    store = storage.store()
    assert json.loads(store.read_bytes("frames", "b", "meta.json"))["source"].endswith("b.mp4")
    assert store.read_bytes("frames", "b", "frames.jpgpack") == store.read_bytes("frames", "a", "frames.jpgpack")
    assert store.read_bytes("arrays", "flow", "b.npz") == store.read_bytes("arrays", "flow", "a.npz")
    with hc.connect("s3://lab/adopt") as there:
        rows = there.sql("select clip, count(*) from period_track group by clip order by clip").fetchall()
    assert [c for c, _ in rows] == ["a", "b"] and rows[0][1] == rows[1][1] > 0


def test_a_few_columns_of_a_bucket_table_are_downloaded_once_per_version(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`tables.read_columns` on a bucket (what every clip run does to find the clips that hold the same video, over
    all clips' rows): the first call downloads each partition in one batch; later calls download only what was
    written since (here nothing, then the two partitions new or rewritten), and read what the bucket holds now (a
    new partition, a rewritten one, a removed one). `read_table` of several partitions (a cross-clip step's inputs)
    reads the same copies; of one partition (a clip step's own input) it is one GET. The objects read are counted
    in the S3 filesystem client (moto server)."""
    from handclust_assets.lib.tables import delete_partition, read_columns, read_table, write_table
    from handclust_assets_tests.scale_support import S3_ENV, bucket_store, count_object_reads, moto_server

    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    schema = {"clip": pl.Utf8, "n": pl.Int64, "absent": pl.Float64}
    with moto_server(tmp_path) as endpoint:
        store = bucket_store(endpoint, tmp_path / "scratch")
        for i in range(6):
            write_table(pl.DataFrame({"clip": [f"c{i}"], "n": [i], "other": ["x"]}), store, "probe", f"c{i}")
        got: list[str] = []  # every object the S3 client reads
        count_object_reads(store, got, monkeypatch.setattr)

        def read() -> pl.DataFrame:
            return read_columns(store, "probe", schema).sort("clip")

        first = read()
        assert first["n"].to_list() == list(range(6)) and first["absent"].null_count() == 6
        assert first.columns == list(schema) and len(got) == 6
        got.clear()
        assert read().equals(first) and got == []  # nothing new: nothing downloaded
        write_table(pl.DataFrame({"clip": ["c2"], "n": [20], "other": ["y"]}), store, "probe", "c2")
        write_table(pl.DataFrame({"clip": ["c6"], "n": [6], "other": ["z"]}), store, "probe", "c6")
        delete_partition(store, "c0")
        now = read()
        assert now["clip"].to_list() == [f"c{i}" for i in range(1, 7)] and now["n"].to_list() == [1, 20, 3, 4, 5, 6]
        assert sorted(r.rsplit("/", 1)[-1] for r in got) == ["c2.parquet", "c6.parquet"]
        copies = sorted(p.name.split("@")[0] for p in (tmp_path / "scratch").rglob("c2.parquet@*"))
        assert copies == ["c2.parquet"]  # the old version's copy is gone
        assert read_columns(store, "probe", schema, ["c3", "c9"])["n"].to_list() == [3]
        got.clear()  # whole partitions (a cross-clip step's inputs) come from the same copies
        whole = read_table(store, "probe").sort("clip")
        assert got == [] and whole.columns == ["clip", "n", "other"] and whole["n"].to_list() == [1, 20, 3, 4, 5, 6]
        assert read_table(store, "probe", ["c4"])["other"].to_list() == ["x"] and len(got) == 1  # one: a GET
        # another machine's empty mirror, asked in no sorted order: each copy holds its own object's rows
        other = bucket_store(endpoint, tmp_path / "fresh_scratch")
        asked = ["c5", "c1", "c6", "c3"]
        assert read_columns(other, "probe", schema, asked)[["clip", "n"]].rows() == [
            ("c5", 5), ("c1", 1), ("c6", 6), ("c3", 3)]


def test_processes_sharing_a_scratch_mirror_read_whole_tables_while_partitions_are_rewritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes on one machine (parallel runs) read a bucket table through one scratch mirror, one a few
    columns, one whole partitions, while another machine rewrites partitions all the while: a copy may be replaced
    by a newer version under a reader. Every read has every partition once, each row a version of its own
    partition (n = index + 1000 x version), and nothing raised."""
    import multiprocessing
    import random
    import threading
    from concurrent.futures import ProcessPoolExecutor

    from handclust_assets.lib.tables import write_table
    from handclust_assets_tests.scale_support import S3_ENV, bucket_store, mirror_reads, moto_server

    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    n = 40
    with moto_server(tmp_path) as endpoint:
        writer = bucket_store(endpoint, tmp_path / "other_machine")
        for i in range(n):
            write_table(pl.DataFrame({"clip": [f"c{i:02d}"], "n": [i]}), writer, "probe", f"c{i:02d}")
        done, writes = threading.Event(), [0]

        def rewrite() -> None:
            rng = random.Random(0)
            while not done.is_set():
                i = rng.randrange(n)
                writes[0] += 1
                write_table(pl.DataFrame({"clip": [f"c{i:02d}"], "n": [i + 1000 * writes[0]]}), writer, "probe",
                            f"c{i:02d}")

        thread = threading.Thread(target=rewrite, daemon=True)
        thread.start()
        try:
            with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
                jobs = [pool.submit(mirror_reads, endpoint, str(tmp_path / "scratch"), "probe", 12, whole)
                        for whole in (False, True)]
                reads = [r for job in jobs for r in job.result(timeout=240)]
        finally:
            done.set()
            thread.join(30)
    assert writes[0] > 20  # the rewrites went on through the reads
    errors = [r for r in reads if isinstance(r, str)]
    assert errors == []
    for rows in reads:
        assert [c for c, _ in rows] == [f"c{i:02d}" for i in range(n)]
        assert all(v % 1000 == int(c[1:]) for c, v in rows)
