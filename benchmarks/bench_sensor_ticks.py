"""What a tick of `code_update_sensor` and `model_update_sensor` costs on a large instance.

    python benchmarks/bench_sensor_ticks.py [--clips 3000] [--assets 3]

Builds a SQLite Dagster instance (a temp DAGSTER_HOME) with CLIPS clip partitions, each materialized for ASSETS
per-clip assets (plus `frame_cache` and `scene_embeddings` with a model version, for the model sensor), then times
the sensors' planning functions as the daemon calls them:

- code sensor, first look (no cursor: every asset read), one asset upgraded (that asset read), settled (nothing
  read);
- model sensor, after a model change (every partition's version read) and with the model unchanged (only the
  clips cached without a result are looked for), against the per-tick full read it did before (the baseline,
  measured in the same run: `confirmed` left out of its cursor).

A Dagster sensor tick times out at 60 s; the full reads cost ~0.1 ms per partition per asset here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

warnings.filterwarnings("ignore")


def build(home: Path, clips: int, assets: list[str]) -> dg.DagsterInstance:
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    inst = dg.DagsterInstance.from_config(str(home))
    parts = [f"clip_{i:06d}" for i in range(clips)]
    inst.add_dynamic_partitions("clips", parts)
    t = time.perf_counter()
    for a in assets:
        for p in parts:
            inst.report_runless_asset_event(dg.AssetMaterialization(
                a, partition=p, tags={"dagster/code_version": f"{a}-v1"}, metadata={"model_version": "m@1"}))
    print(f"instance: {clips} clips x {len(assets)} assets written in {time.perf_counter() - t:.0f} s")
    return inst


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=3000)
    ap.add_argument("--assets", type=int, default=3, help="per-clip assets besides frame_cache and scene_embeddings")
    args = ap.parse_args()

    from handclust_assets.defs.jobs.code_update import code_update_requests
    from handclust_assets.defs.models.sensors import reembed_requests

    clip_assets = [f"asset_{i}" for i in range(args.assets)]
    with tempfile.TemporaryDirectory() as d:
        inst = build(Path(d), args.clips, [*clip_assets, "frame_cache", "scene_embeddings"])
        current = {a: f"{a}-v1" for a in clip_assets}
        (_, cur, _), first = timed(code_update_requests, inst, current, {}, {}, {}, {}, 200)
        (_, cur, _), second = timed(code_update_requests, inst, current, {}, {}, {}, cur, 200)
        (_, cur, _), settled = timed(code_update_requests, inst, current, {}, {}, {}, cur, 200)
        upgraded = {**current, clip_assets[0]: "v2"}
        (runs, _, _), one = timed(code_update_requests, inst, upgraded, {}, {}, {}, cur, 200)
        print(f"code_update_sensor, {args.clips} clips: first look ({args.assets} assets read) {first:.2f} s; "
              f"settled {settled * 1000:.1f} ms; one asset upgraded {one:.2f} s ({len(runs)} runs asked for)")

        model = {"scene_embeddings": "scene_model"}
        states = {"scene_model": ("m@1", None)}
        (_, nxt, _), full = timed(reembed_requests, inst, model, {}, states, {}, 4)
        (_, _, _), cheap = timed(reembed_requests, inst, model, {}, states, nxt, 4)
        baseline = {"scene_embeddings": {k: v for k, v in nxt["scene_embeddings"].items() if k != "confirmed"}}
        (_, _, _), before = timed(reembed_requests, inst, model, {}, states, baseline, 4)
        print(f"model_update_sensor, {args.clips} clips: model unchanged {cheap:.3f} s against {before:.3f} s when "
              f"every tick read every partition ({before / max(cheap, 1e-6):.1f}x); after a model change {full:.3f} s")
        inst.dispose()


if __name__ == "__main__":
    main()
