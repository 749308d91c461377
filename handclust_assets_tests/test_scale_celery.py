"""A clip run through the Celery executor, configured only by the environment (HANDCLUST_EXECUTOR=celery) and run
config: a real Redis broker and two real `dagster-celery` worker processes started here, one on the default
queue (`dagster`) and one on the `gpu` queue. The run writes the same rows as the in-process run, and its event
log shows every model step executed by the gpu-queue worker and every other step by the CPU worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from handclust_assets.defs.resources import (
    HandclustSettings,
    SceneModelResource,
    ToolModelResource,
    VideoModelResource,
)
from handclust_assets.lib import tables
from handclust_assets.lib.home import instance_config
from handclust_assets.lib.synthetic import generate_clip
from handclust_assets.models.tools import DEFAULT_TOOL_PROMPTS
from handclust_assets_tests.scale_support import (
    frame_differences,
    redis_server,
    start_celery_worker,
    stop,
    wait_for_workers,
)
from handclust_assets_tests.support import make_resources, run_clips, step_failures
from handclust_assets_tests.tiny_models import make_tiny_dinov2, make_tiny_owlv2, make_tiny_vjepa2

pytest.importorskip("dagster_celery", reason="the [scale] extra (dagster-celery) is not installed")

CLIP = "01_production_a"
MODEL_STEPS = {"scene_embeddings", "video_embeddings", "tool_scores"}
RUN_DEPENDENT = {"clip_cost"}  # measured seconds and memory, not results


def _model_config(tmp: Path) -> dict[str, dict]:
    return {
        "scene_model": {"model_id": "tiny/dinov2", "local_path": str(make_tiny_dinov2(tmp / "dino"))},
        "video_model": {"model_id": "tiny/vjepa2", "local_path": str(make_tiny_vjepa2(tmp / "vjepa")),
                        "window_frames": 8},
        "tool_model": {"model_id": "tiny/owlv2",
                       "local_path": str(make_tiny_owlv2(tmp / "owl", DEFAULT_TOOL_PROMPTS))},
    }


def _celery_env(tmp: Path, home: Path, broker: str, backend: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HANDCLUST_STORAGE", "HANDCLUST_VIDEO_DIR")}
    env.update(HANDCLUST_HOME=str(home), DAGSTER_HOME=str(tmp / "dagster_home"), HANDCLUST_EXECUTOR="celery",
               HANDCLUST_CELERY_BROKER=broker, HANDCLUST_CELERY_BACKEND=backend, HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    return env


def _step_workers(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """step key -> the Celery worker that executed it (from the run's engine events)."""
    out = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        ev = entry.dagster_event
        meta = ev.event_specific_data.metadata if ev.event_specific_data else {}
        if "Celery worker" in meta:
            out[ev.step_key] = str(meta["Celery worker"].value)
    return out


def _in_process_reference(root: Path, videos: Path, models: dict[str, dict]) -> None:
    """The same clip run in process (the default executor) on another root."""
    res = make_resources(root, settings=HandclustSettings(video_folder=str(videos)),
                         scene_model=SceneModelResource(**models["scene_model"]),
                         video_model=VideoModelResource(**models["video_model"]),
                         tool_model=ToolModelResource(**models["tool_model"]))
    _, runs = run_clips(res, [CLIP])
    assert runs[CLIP].success, step_failures(runs[CLIP])


@pytest.fixture(scope="module")
def celery_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("scale_celery")
    home = tmp / "home"
    (tmp / "dagster_home").mkdir()
    (tmp / "dagster_home" / "dagster.yaml").write_text(instance_config(1))
    # the instance's storage is created here, before two worker CLIs would race to create it
    instance = dg.DagsterInstance.from_config(str(tmp / "dagster_home"))
    instance.add_dynamic_partitions("clips", [CLIP])
    with redis_server(tmp / "redis") as redis:
        broker, backend = f"{redis}/0", f"{redis}/1"
        env = _celery_env(tmp, home, broker, backend)
        cfg = tmp / "celery.yaml"
        cfg.write_text(yaml.safe_dump({"execution": {"config": {"broker": broker, "backend": backend}}}))
        workers = [start_celery_worker("cpu", ["dagster"], cfg, env, tmp / "cpu_worker.log"),
                   start_celery_worker("gpu", ["gpu"], cfg, env, tmp / "gpu_worker.log")]
        try:  # the clip and the models are made while the workers start
            generate_clip(home / "videos" / f"{CLIP}.mp4", seed=3, width=192, height=108, fps=10,
                          activities=[("trowel", 6.0), ("walk", 6.0)])
            models = _model_config(tmp)
            run_config = tmp / "run_config.yaml"
            run_config.write_text(yaml.safe_dump({"resources": {name: {"config": c} for name, c in models.items()}}))
            wait_for_workers(broker, backend, ["cpu", "gpu"], workers)
            dagster = Path(sys.executable).with_name("dagster")
            with (tmp / "run.log").open("w") as log:
                launch = subprocess.Popen(
                    [str(dagster), "job", "execute", "-m", "handclust_assets.definitions", "-a", "defs",
                     "-j", "process_clip", "--tags", json.dumps({"dagster/partition": CLIP}), "-c", str(run_config)],
                    env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                try:  # the in-process reference runs while the Celery run waits on its workers
                    _in_process_reference(tmp / "in_process", home / "videos", models)
                    returncode = launch.wait(timeout=300)
                finally:
                    stop(launch)
            runs = instance.get_runs()
            assert returncode == 0 and len(runs) == 1, (tmp / "run.log").read_text()[-3000:]
            yield {"tmp": tmp, "home": home, "reference": tmp / "in_process", "instance": instance, "run": runs[0]}
        finally:
            for w in workers:
                stop(w)


def test_celery_run_writes_the_same_rows_as_the_in_process_run(celery_run: dict) -> None:
    assert celery_run["run"].status == dg.DagsterRunStatus.SUCCESS
    reference, celery_root = celery_run["reference"], celery_run["home"]
    names = set(tables.table_names(reference)) - RUN_DEPENDENT
    assert {"clips", "frame_cache", "flow", "scene_embeddings", "video_embeddings", "tool_scores", "segments"} <= names
    assert set(tables.table_names(celery_root)) - RUN_DEPENDENT == names
    differences = {t: d for t in sorted(names) if (d := frame_differences(
        tables.read_table(reference, t), tables.read_table(celery_root, t)))}
    assert differences == {}


def test_model_steps_ran_on_the_gpu_queue_worker_and_the_rest_on_the_cpu_worker(celery_run: dict) -> None:
    instance, run = celery_run["instance"], celery_run["run"]
    by_step = _step_workers(instance, run.run_id)
    succeeded = {e.dagster_event.step_key for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}
    assert MODEL_STEPS <= succeeded and set(by_step) == succeeded  # every step went through a Celery worker
    on_gpu = {s for s, w in by_step.items() if w.startswith("gpu@")}
    on_cpu = {s for s, w in by_step.items() if w.startswith("cpu@")}
    assert on_gpu == MODEL_STEPS
    assert on_cpu == succeeded - MODEL_STEPS and {"frame_cache", "flow", "pose", "hands", "segments"} <= on_cpu
