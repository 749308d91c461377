"""A renamed or copied video's clip run, copying its twin's results, against computing them, in one run.

    python benchmarks/bench_adopt.py [--duration 60] [--width 1280] [--height 720] [--keep DIR]

One synthetic clip (the demo's generator, sidecars left out) and two copies of it, each through the whole clip run
(`process_clip`'s selection, in process, one instance, one Python process: imports and model loads paid before
the timed runs):
- `a`: the first clip run (warm-up: models loaded, results made);
- `b`, a copy, run with the tag `handclust/recompute=1`: every step computed (the baseline);
- `c`, a copy, run as the folder sensor runs it: every step that can copies `a`'s results.

Printed: wall seconds of each run, seconds per second of footage, the ratio computed / copied, the bytes the copy
added on disk (the frame cache is hard-linked), and how many steps were copied.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def folder_bytes(root: Path) -> int:
    """Bytes on disk under root, each inode once (hard links counted once)."""
    seen, total = set(), 0
    for f in root.rglob("*"):
        if f.is_file():
            st = f.stat()
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = ap.parse_args(argv)

    from handclust_assets.defs.adoption import RECOMPUTE_TAG
    from handclust_assets.lib.synthetic import generate_clip
    from handclust_assets_tests.support import make_resources, run_clips, step_failures

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_adopt."))
    vids = root / "videos"
    vids.mkdir(parents=True, exist_ok=True)
    plan = [("trowel", args.duration / 3), ("idle", args.duration / 3), ("scoop", args.duration / 3)]
    generate_clip(vids / "a.mp4", seed=1, width=args.width, height=args.height, fps=30, activities=plan)
    for side in vids.glob("a.*"):
        if side.suffix != ".mp4":
            side.unlink()  # no ground truth: a user's footage
    for name in ("b", "c"):
        shutil.copy2(vids / "a.mp4", vids / f"{name}.mp4")
    res = make_resources(root)
    try:
        t0 = time.perf_counter()
        inst, runs = run_clips(res, ["a"])
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, runs_b = run_clips(res, ["b"], inst, tags={RECOMPUTE_TAG: "1"})
        computed = time.perf_counter() - t0
        before = folder_bytes(root / "frames")
        t0 = time.perf_counter()
        _, runs_c = run_clips(res, ["c"], inst)
        copied = time.perf_counter() - t0
        added = folder_bytes(root / "frames") - before
        for k, r in {**runs, **runs_b, **runs_c}.items():
            if not r.success:
                print(f"clip run {k} failed: {step_failures(r)}", file=sys.stderr)
                return 1
        mats = runs_c["c"].get_asset_materialization_events()
        n_copied = sum(1 for e in mats if e.materialization.metadata.get("adopted_from") and
                       e.materialization.metadata["adopted_from"].value == "a")
        print(f"clip: {args.duration:.0f} s at {args.width}x{args.height}, 30 fps")
        print(f"first run (warm-up, models loaded): {warm:.1f} s")
        print(f"computed (tag {RECOMPUTE_TAG}=1):     {computed:.1f} s ({computed / args.duration:.3f} s per footage s)")
        print(f"copied from the twin:               {copied:.1f} s ({copied / args.duration:.3f} s per footage s)")
        print(f"ratio computed / copied: {computed / max(copied, 1e-9):.1f}x; steps copied: {n_copied} of "
              f"{len(mats)} materialized; frame cache bytes the copy added: {added / 1e6:.2f} MB "
              f"(the twin's: {folder_bytes(root / 'frames' / 'a') / 1e6:.2f} MB)")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
