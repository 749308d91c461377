"""The product path against the in-process run on the same clips, in one run (issue 9's target: <= 1.3x).

    python benchmarks/bench_product_path.py [--clips 4] [--duration 45] [--max-runs N] [--keep DIR]

- in-process: a fresh Python process runs every clip's `process_clip` job, then `cross_clip`, one after another
  (`handclust_assets.cli.session.run_in_process`: what the demo used to do; imports and model loads paid once).
- product path: `dagster dev` (webserver + daemon + code server) is already up, as when a user has the UI open; the
  clips land in the watched folder; the folder sensor, the run queue and automation do the rest. Timed from landing
  to settled (every clip run ended, the pooled clustering, overlays and dashboard rebuilt, nothing running).

Printed: wall seconds and seconds of wall time per second of footage for each path, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(folder: Path, clips: int, duration: float) -> list[Path]:
    from handclust_assets.lib.synthetic import generate_demo_set

    return generate_demo_set(folder, n_clips=clips, duration_s=duration)


def copy_set(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir(), key=lambda p: p.suffix == ".mp4"):  # sidecars before videos
        if f.is_file():
            shutil.copy2(f, dst / f.name)


def in_process(src: Path, home: Path) -> float:
    copy_set(src, home / "videos")
    code = ("import sys; from pathlib import Path; from handclust_assets.cli.session import run_in_process; "
            "r = run_in_process(Path(sys.argv[1])); print(r); sys.exit(1 if r['failed_clips'] or "
            "r['failed_cross_clip_steps'] else 0)")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(home)], check=True, env={**os.environ, "GLOG_minloglevel": "2"})
    return time.perf_counter() - t0


def product_path(src: Path, home: Path, n: int, max_runs: int | None) -> tuple[float, object]:
    from handclust_assets.cli.session import DagsterSession, land

    s = DagsterSession(home, max_runs=max_runs)
    s.start()
    try:
        stage = home / "videos" / ".incoming"
        copy_set(src, stage)
        t0 = time.perf_counter()
        land([(f, home / "videos" / f.name) for f in stage.iterdir()])
        p = s.wait_settled(n, timeout_s=7200, poll_s=1.0, quiet_s=1.0)
        return time.perf_counter() - t0, p
    finally:
        s.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--duration", type=float, default=45.0)
    ap.add_argument("--max-runs", type=int, default=0, help="concurrent runs (0: the default for this machine)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the product path's home here (for screenshots)")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="bench_product_"))
    try:
        src = work / "clips"
        generate(src, a.clips, a.duration)
        footage = a.clips * a.duration
        t_in = in_process(src, work / "inproc")
        ui_home = a.keep or work / "ui"
        if ui_home.exists():
            shutil.rmtree(ui_home)
        t_ui, prog = product_path(src, ui_home, a.clips, a.max_runs or None)
        print(f"\n{a.clips} clips x {a.duration:.0f} s = {footage:.0f} s of footage, {os.cpu_count()} cores")
        print(f"in-process     : {t_in:7.1f} s wall, {t_in / footage:.3f} s per footage second")
        print(f"product path   : {t_ui:7.1f} s wall, {t_ui / footage:.3f} s per footage second "
              f"({prog.cross_clip_runs} cross-clip run(s), failed clips: {prog.clips_failed or 'none'})")
        print(f"ratio (product path / in-process): {t_ui / t_in:.2f}x (target <= 1.3x)")
        if a.keep:
            print(f"product path home kept at {a.keep}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
