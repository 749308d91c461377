"""Plain helpers shared by the tests (not a test module): model files, Dagster event lookups, count rows."""

from __future__ import annotations

import http.server
import importlib.util
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dagster as dg
import pytest

from handclust_assets.models.mediapipe_models import MEDIAPIPE_MODELS

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.is_dir():
    SHARED = Path(os.environ.get("HANDCLUST_SHARED", "/work/shared"))


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """A script of benchmarks/ (not a package) imported as a module, for its functions."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def find_models_dir() -> Path | None:
    """The first folder holding both MediaPipe .task files: the shared model cache (`handclust fetch-models`, run
    by scripts/setup.sh), $HANDCLUST_MODEL_CACHE/mediapipe, /work/shared/data/models."""
    from handclust_assets.lib.home import model_cache

    cands = [model_cache() / "mediapipe", SHARED / "data" / "models"]
    files = [f for f, _, _ in MEDIAPIPE_MODELS.values()]
    return next((c for c in cands if all((c / f).is_file() for f in files)), None)


def whole_count(track: Any) -> float:
    """The clip's count of a motion track, counted whole (first moment to last, as trimmed clips are scored)."""
    from handclust_assets.lib.rep_eval import count_motion_track
    from handclust_assets.science.counting import CountingParams

    return float(clip_row(count_motion_track(track, params=CountingParams(count_to_edges=True)))["count_estimate"])


def clip_row(res: Any) -> dict:
    """The whole-clip row of a `RepetitionCounts` (its `counts` table)."""
    return res.counts.filter(res.counts["scope"] == "clip").row(0, named=True)


def cut_without_encoding(src: Path, dst: Path, start_s: float, end_s: float) -> Path:
    """A piece of `src` as `ffmpeg -ss START -to END -c copy` writes it: its packets from the keyframe at or before
    `start_s` up to `end_s`, copied (nothing decoded or encoded), timestamps from 0."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        inp.seek(int(start_s / ist.time_base), stream=ist, backward=True, any_frame=False)
        first = None
        for pkt in inp.demux(ist):
            if pkt.dts is None:
                continue
            if first is None:
                if not pkt.is_keyframe:
                    continue
                first = pkt.pts
            if pkt.pts is not None and float(pkt.pts * ist.time_base) > end_s:
                break
            pkt.pts -= first
            pkt.dts -= first
            pkt.stream = ost
            out.mux(pkt)
    return dst


def step_failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """step key -> the failure message, from the run's failure events."""
    return {e.step_key: e.step_failure_data.error.message for e in result.get_step_failure_events()}


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """check name -> passed, from the run's asset check evaluations."""
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def materializations(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def materialize(selection: list[str] | str, resources: dict, instance: dg.DagsterInstance,
                partition_key: str | None = None, raise_on_error: bool = True,
                run_config: dict | None = None, tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
    """Materialize a selection of the code location's graph (assets and checks) in process."""
    from handclust_assets.definitions import defs

    graph = [*defs.assets, *(defs.asset_checks or [])]
    return dg.materialize(graph, selection=selection, partition_key=partition_key, instance=instance,
                          resources=resources, raise_on_error=raise_on_error, run_config=run_config, tags=tags)


def run_clips(res: dict, clips: list[str], instance: dg.DagsterInstance | None = None,
              tags: dict[str, str] | None = None) -> tuple[dg.DagsterInstance, dict[str, dg.ExecuteInProcessResult]]:
    """Each clip's own run (`clip_run_selection`, as `process_clip` runs it) in process, one after another, on
    `instance` (default: a new ephemeral one) with the clips added as partitions. Returns the instance and each
    clip's result (failures are reported, not raised: callers assert what they expect)."""
    inst = instance or dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", [c for c in clips if not inst.has_dynamic_partition("clips", c)])
    return inst, {c: materialize(clip_run_selection(), res, inst, partition_key=c, raise_on_error=False, tags=tags)
                  for c in clips}


def clip_run_selection() -> list[str]:
    """Every asset a clip's own run (`process_clip`) builds."""
    from handclust_assets.defs.jobs import PER_CLIP

    return [k.to_user_string() for a in PER_CLIP for k in a.keys]


def cross_clip_selection() -> list[str]:
    from handclust_assets.defs.jobs import CROSS_CLIP_ASSETS

    return [k.to_user_string() for a in CROSS_CLIP_ASSETS for k in a.keys]


def make_resources(root: Path | str, **overrides: Any) -> dict[str, Any]:
    """The code location's resources on `root`, with overrides (e.g. a tiny model)."""
    from handclust_assets.defs.io_manager import TablesIOManager
    from handclust_assets.defs.resources import (
        HandclustSettings,
        MediaPipeResource,
        StorageResource,
        default_resources,
    )

    res = default_resources()
    res["storage"] = StorageResource(root=str(root))
    res["settings"] = HandclustSettings(video_folder=str(Path(root) / "videos"))
    d = find_models_dir()
    if d is not None:
        res["mediapipe"] = MediaPipeResource(pose_model_path=str(d / "pose_landmarker_full.task"),
                                             hand_model_path=str(d / "hand_landmarker.task"))
    res.update(overrides)
    res["io_manager"] = TablesIOManager(storage=res["storage"])
    return res


# The whole graph on three small synthetic clips (tiny random V-JEPA 2 and OWLv2, the offline scene backbone, the real
# MediaPipe models when present, one injected anomaly with a known span): built once per test session, read by the
# pipeline, dashboard and notebook tests.
GRAPH_CLIPS = [
    ("01_production_a", [("trowel", 8.0), ("idle", 6.0), ("scoop", 8.0)]),
    ("02_transit_b", [("walk", 8.0), ("carry", 8.0), ("idle", 6.0)]),
    ("03_production_c", [("scoop", 8.0), ("trowel", 8.0), ("walk", 6.0)]),
]
GRAPH_ANOMALIES = {"03_production_c": [("lens_covered", 9.0, 13.0)]}
CORE = {"clips", "frame_cache", "flow", "flow_rhythm", "egomotion", "scene_embeddings", "segments", "repetitions"}


def build_whole_graph(tmp: Path) -> dict[str, Any]:
    from handclust_assets.defs.resources import SceneModelResource, ToolModelResource, VideoModelResource
    from handclust_assets.lib.synthetic import generate_clip
    from handclust_assets.models.tools import DEFAULT_TOOL_PROMPTS
    from handclust_assets_tests.tiny_models import make_tiny_owlv2, make_tiny_vjepa2

    root = tmp / "storage"
    for i, (name, plan) in enumerate(GRAPH_CLIPS):
        generate_clip(root / "videos" / f"{name}.mp4", seed=i, width=320, height=180, fps=10, activities=plan,
                      anomalies=GRAPH_ANOMALIES.get(name))
    res = make_resources(
        root,
        scene_model=SceneModelResource(model_id="nobody/no-dinov2-here"),  # -> offline EfficientNet fallback
        video_model=VideoModelResource(model_id="facebook/vjepa2-vitl-fpc64-256", window_frames=8,
                                       local_path=str(make_tiny_vjepa2(tmp / "vjepa"))),
        tool_model=ToolModelResource(model_id="google/owlv2-base-patch16-ensemble",
                                     local_path=str(make_tiny_owlv2(tmp / "owl", DEFAULT_TOOL_PROMPTS))))
    inst, runs = run_clips(res, [c for c, _ in GRAPH_CLIPS])
    failed = {step for r in runs.values() for step in step_failures(r)}
    assert not failed & CORE, f"core per-clip assets failed: {failed & CORE}"
    # the cross-clip job in one run, as automation runs it: clustering ... timelines, overlays, the dashboard
    cross = materialize(cross_clip_selection(), res, inst)
    assert cross.success
    return {"root": root, "tmp": tmp, "res": res, "inst": inst, "cross": cross, "dash": cross, "failed": failed,
            "mediapipe": find_models_dir()}


def serve_fake_hub(monkeypatch: pytest.MonkeyPatch, handler: type[http.server.BaseHTTPRequestHandler]
                   ) -> Iterator[str]:
    """A local HTTP server with `handler` standing in for the Hugging Face hub (the only thing outside our machine
    these tests talk to), with huggingface_hub switched online and to plain HTTP downloads: yields its URL.
    `handler.requests` is reset to an empty list first."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.requests = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
