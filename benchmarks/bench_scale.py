"""Scale-out ratios from one run (docs/scale-out.md):

1. storage overhead: the same clips through the whole graph (one in-process run per clip, then the cross-clip
   run) with results on a local folder vs on an S3-compatible object store (moto in server mode, a child process
   on this machine): overhead = object-store wall / local wall (target <= 1.2x). Runs alternate local / object
   store after a warm-up run, so imports and model loading are not charged to either.
2. Celery throughput: the same clips, one run per clip launched at once (`dagster job execute`, what the run
   queue does), through 1 vs 2 Celery worker processes (each `-q dagster,gpu`, concurrency 1) on a real Redis
   broker: throughput ratio = clips/s with 2 workers / clips/s with 1.
3. cost per footage hour per step from the local runs' `cost_report` (the steps' measured CPU seconds).

    python benchmarks/bench_scale.py [--clips 4] [--seconds 12] [--repeats 2]

Tiny random models stand in for DINOv2 / V-JEPA 2 / OWLv2 (no weights offline), so model steps here cost far less
than real ones; the storage and executor overheads are what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from handclust_assets_tests.scale_support import (  # noqa: E402
    S3_ENV,
    moto_server,
    redis_server,
    start_celery_worker,
    stop,
    wait_for_workers,
)

CLIP_PLANS = [[("trowel", 6.0), ("idle", 6.0)], [("walk", 6.0), ("trowel", 6.0)], [("scoop", 6.0), ("walk", 6.0)],
              [("carry", 6.0), ("scoop", 6.0)]]


def make_clips(videos: Path, n: int, seconds: float) -> list[str]:
    from handclust_assets.lib.synthetic import generate_clip

    names = []
    for i in range(n):
        plan = [(a, seconds / 2) for a, _ in CLIP_PLANS[i % len(CLIP_PLANS)]]
        name = f"{i:02d}_{'production' if i % 2 == 0 else 'transit'}_{i}"
        generate_clip(videos / f"{name}.mp4", seed=i, width=320, height=180, fps=10, activities=plan)
        names.append(name)
    return names


def make_models(tmp: Path) -> dict[str, dict]:
    from handclust_assets.models.tools import DEFAULT_TOOL_PROMPTS
    from handclust_assets_tests.tiny_models import make_tiny_dinov2, make_tiny_owlv2, make_tiny_vjepa2

    return {"scene_model": {"model_id": "tiny/dinov2", "local_path": str(make_tiny_dinov2(tmp / "dino"))},
            "video_model": {"model_id": "tiny/vjepa2", "local_path": str(make_tiny_vjepa2(tmp / "vjepa")),
                            "window_frames": 8},
            "tool_model": {"model_id": "tiny/owlv2",
                           "local_path": str(make_tiny_owlv2(tmp / "owl", DEFAULT_TOOL_PROMPTS))}}


def run_graph(storage, videos: Path, clips: list[str], models: dict[str, dict]) -> dict[str, float]:
    """The whole graph in process on `storage`: wall seconds of the clip runs and of the cross-clip run."""

    from handclust_assets.defs.resources import (
        HandclustSettings,
        SceneModelResource,
        ToolModelResource,
        VideoModelResource,
    )
    from handclust_assets_tests.support import (
        cross_clip_selection,
        make_resources,
        materialize,
        run_clips,
        step_failures,
    )

    res = make_resources(videos.parent, storage=storage, settings=HandclustSettings(video_folder=str(videos)),
                         scene_model=SceneModelResource(**models["scene_model"]),
                         video_model=VideoModelResource(**models["video_model"]),
                         tool_model=ToolModelResource(**models["tool_model"]))
    t0 = time.perf_counter()
    inst, runs = run_clips(res, clips)
    assert all(r.success for r in runs.values()), {c: step_failures(r) for c, r in runs.items()}
    t1 = time.perf_counter()
    assert materialize(cross_clip_selection(), res, inst).success
    return {"clip_runs_s": t1 - t0, "cross_clip_s": time.perf_counter() - t1}


def storage_overhead(tmp: Path, videos: Path, clips: list[str], models: dict, repeats: int) -> dict:
    from handclust_assets.defs.resources import StorageResource

    os.environ.update(S3_ENV)
    with moto_server(tmp) as endpoint:
        run_graph(StorageResource(root=str(tmp / "warmup")), videos, clips[:1], models)
        local, remote = [], []
        for i in range(repeats):
            local.append(run_graph(StorageResource(root=str(tmp / f"local{i}")), videos, clips, models))
            remote.append(run_graph(StorageResource(root=f"s3://lab/run{i}", endpoint_url=endpoint), videos, clips,
                                    models))
    total = {name: sum(r["clip_runs_s"] + r["cross_clip_s"] for r in runs) for name, runs in
             (("local", local), ("object_store", remote))}
    return {"local": local, "object_store": remote, "overhead": total["object_store"] / total["local"],
            "clip_runs_overhead": sum(r["clip_runs_s"] for r in remote) / sum(r["clip_runs_s"] for r in local),
            "cross_clip_overhead": sum(r["cross_clip_s"] for r in remote) / sum(r["cross_clip_s"] for r in local)}


def celery_wall(tmp: Path, videos: Path, clips: list[str], models: dict, n_workers: int) -> float:
    """Wall seconds for every clip's run (all launched at once) through n Celery workers."""
    import dagster as dg

    from handclust_assets.lib.home import instance_config

    work = tmp / f"celery{n_workers}"
    (work / "dagster_home").mkdir(parents=True)
    # the pool "models" is one step at a time per machine on a laptop; with n workers, n at once
    cfg = yaml.safe_load(instance_config(len(clips)))
    cfg["concurrency"]["pools"]["default_limit"] = n_workers
    (work / "dagster_home" / "dagster.yaml").write_text(yaml.safe_dump(cfg))
    instance = dg.DagsterInstance.from_config(str(work / "dagster_home"))
    instance.add_dynamic_partitions("clips", clips)
    run_config = work / "run_config.yaml"
    run_config.write_text(yaml.safe_dump({"resources": {k: {"config": v} for k, v in models.items()}}))
    with redis_server(work / "redis") as redis:
        broker, backend = f"{redis}/0", f"{redis}/1"
        env = {k: v for k, v in os.environ.items() if k not in ("HANDCLUST_STORAGE",)}
        env.update(HANDCLUST_HOME=str(work / "home"), HANDCLUST_VIDEO_DIR=str(videos),
                   DAGSTER_HOME=str(work / "dagster_home"), HANDCLUST_EXECUTOR="celery",
                   HANDCLUST_CELERY_BROKER=broker, HANDCLUST_CELERY_BACKEND=backend)
        celery_yaml = work / "celery.yaml"
        celery_yaml.write_text(yaml.safe_dump({"execution": {"config": {"broker": broker, "backend": backend}}}))
        names = [f"w{i}" for i in range(n_workers)]
        workers = [start_celery_worker(n, ["dagster", "gpu"], celery_yaml, env, work / f"{n}.log") for n in names]
        runs = []
        try:
            wait_for_workers(broker, backend, names, workers)
            dagster = str(Path(sys.executable).with_name("dagster"))
            t0 = time.perf_counter()
            for clip in clips:
                runs.append(subprocess.Popen(
                    [dagster, "job", "execute", "-m", "handclust_assets.definitions", "-a", "defs", "-j",
                     "process_clip", "--tags", json.dumps({"dagster/partition": clip}), "-c", str(run_config)],
                    env=env, stdout=subprocess.DEVNULL, stderr=(work / f"run_{clip}.log").open("w"),
                    start_new_session=True))
            codes = [r.wait(timeout=1800) for r in runs]
            wall = time.perf_counter() - t0
        finally:
            for p in [*runs, *workers]:
                stop(p)
    failed = [c for c, code in zip(clips, codes) if code != 0]
    if failed:
        raise RuntimeError(f"celery runs failed for {failed}: see {work}")
    return wall


def cost_per_footage_hour(root: Path) -> list[tuple[str, float, float]]:
    """(asset, CPU-s, wall-s per footage hour) from a local run's cost_report, most expensive first."""
    from handclust_assets.lib.tables import read_table

    rep = read_table(root, "cost_report")
    rows = rep.filter(rep["row_kind"] == "asset").sort("cpu_s_per_footage_h", descending=True)
    return [(r["asset"], r["cpu_s_per_footage_h"], r["wall_s_per_footage_h"]) for r in rows.iter_rows(named=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=12.0, help="length of each synthetic clip")
    ap.add_argument("--repeats", type=int, default=2, help="local / object-store runs each")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as d:
        tmp = Path(d)
        os.environ["HANDCLUST_HOME"] = str(tmp / "home")
        for var in ("HANDCLUST_STORAGE", "HANDCLUST_VIDEO_DIR", "DAGSTER_HOME", "HANDCLUST_EXECUTOR"):
            os.environ.pop(var, None)
        videos = tmp / "videos"
        clips = make_clips(videos, args.clips, args.seconds)
        models = make_models(tmp)
        footage_s = args.clips * args.seconds
        print(f"{args.clips} clips x {args.seconds:g} s (320x180, 10 fps), {os.cpu_count()} cores")

        st = storage_overhead(tmp, videos, clips, models, args.repeats)
        for name in ("local", "object_store"):
            for r in st[name]:
                print(f"  {name:12s} clip runs {r['clip_runs_s']:6.1f} s   cross-clip {r['cross_clip_s']:6.1f} s")
        print(f"storage overhead (object store / local, whole graph): {st['overhead']:.2f}x "
              f"(clip runs {st['clip_runs_overhead']:.2f}x, cross-clip {st['cross_clip_overhead']:.2f}x)")

        one = celery_wall(tmp, videos, clips, models, 1)
        two = celery_wall(tmp, videos, clips, models, 2)
        print(f"  celery 1 worker : {one:6.1f} s for {args.clips} clip runs ({footage_s / one:.2f} footage-s/s)")
        print(f"  celery 2 workers: {two:6.1f} s for {args.clips} clip runs ({footage_s / two:.2f} footage-s/s)")
        print(f"celery throughput ratio (2 workers / 1 worker): {one / two:.2f}x")

        print("cost per footage hour (local run, tiny models): asset, CPU-s, wall-s")
        for asset, cpu, wall in cost_per_footage_hour(tmp / "local0")[:12]:
            print(f"  {asset:28s} {cpu:9.0f} {wall:9.0f}")


if __name__ == "__main__":
    main()
