"""Long clips on the rhythm path: wall time and peak memory of the counting work (`track_located` + `count_spans`,
what `period_track` / `repetition_counts` do per clip) on a synthetic source-rate motion track of N minutes, against
a short track measured in the same run.

    python benchmarks/bench_long_clip.py [--minutes 20] [--baseline-minutes 2] [--fps 30] [--threads 2] [--sweep-px 6]

Prints seconds per video-minute and the peak of traced numpy memory (`tracemalloc`) for both lengths, and their
ratios. Before the blockwise lag correlation an hour-long clip needed 3.7 GB (maxrss) and a clip with an hour's
timestamp gap failed for want of 9.7 GiB (a centres x centres matrix); the target is memory that does not grow
with the clip beyond its inputs, i.e. a peak ratio well below the length ratio. With `--sweep-px`, the picture's path
sweeps back and forth by that many px of the 64-px motion image every 4 s (a head turning), so the counter shifts
the thumbnails back before the sway fit (`align_camera`).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

from bench_rhythm import _cap_threads  # benchmarks/ is on the path when this script runs


def motion_inputs(seconds: float, fps: float, seed: int = 0, sweep_px: float = 0.0) -> dict:
    """A motion track's arrays as the frame cache stores them (energy cells, 18 x 32 intensity thumbnails, camera
    translations, the picture's path: a sweep of `sweep_px`, or still), for a stroke whose period drifts 0.6 -> 1.0
    s with a pause in the middle, in noise."""
    import numpy as np

    n = int(seconds * fps)
    t = np.arange(n) / fps
    rng = np.random.default_rng(seed)
    period = 0.8 + 0.2 * np.sin(2 * np.pi * t / max(seconds, 1.0))
    phase = 2 * np.pi * np.cumsum(1.0 / period) / fps
    moving = ~((t > 0.45 * seconds) & (t < 0.5 * seconds))
    wave = np.sin(phase) * moving
    energy = ((1 + wave)[:, None, None] * rng.random((1, 6, 8)) + 0.2 * rng.random((n, 6, 8))).astype(np.float32)
    shade = np.linspace(0.0, 1.0, 18 * 32).reshape(1, 18, 32)
    intensity = (wave[:, None, None] * shade + 0.1 * rng.standard_normal((n, 18, 32))).astype(np.float32)
    camera = (0.02 * rng.standard_normal((n, 2))).astype(np.float32)
    path = np.zeros((n, 2), np.float32)
    if sweep_px:  # the thumbnails (half the motion image's width) move with the picture
        import cv2

        path[:, 0] = sweep_px * np.sin(2 * np.pi * t / 4.0)
        for i in range(n):
            m = np.float32([[1, 0, path[i, 0] / 2], [0, 1, 0]])
            intensity[i] = cv2.warpAffine(intensity[i], m, (32, 18), borderMode=cv2.BORDER_REPLICATE)
    true_count = float(np.sum(moving / period) / fps)
    return {"t_s": t, "energy": energy, "intensity": intensity, "camera": camera, "energy_raw": energy,
            "path": path, "duration_s": seconds, "true_count": true_count}


def measure(seconds: float, fps: float, sweep_px: float = 0.0) -> tuple[float, float, float, float]:
    """(wall s, peak traced MB, clip count, true count) of the counting work on a track of `seconds`."""
    from handclust_assets.science.counting import count_spans, track_located

    x = motion_inputs(seconds, fps, sweep_px=sweep_px)
    tracemalloc.start()
    t0 = time.perf_counter()
    track, _ = track_located(x["t_s"], x["energy"], x["intensity"], x["camera"], x["energy_raw"], x["duration_s"],
                               path=x["path"])
    counts = count_spans(track)
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    count = counts["count"][0]
    return wall, peak, float("nan") if count is None else float(count), x["true_count"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--baseline-minutes", type=float, default=2.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sweep-px", type=float, default=0.0, help="the picture's sweep (px of the 64-px image)")
    a = ap.parse_args()
    _cap_threads(a.threads)
    rows = []
    for minutes in (a.baseline_minutes, a.minutes):
        wall, peak, count, truth = measure(60.0 * minutes, a.fps, a.sweep_px)
        rows.append((minutes, wall, peak))
        print(f"{minutes:6.1f} min track at {a.fps:g} fps: {wall:7.1f} s wall = {60 * minutes / wall:5.1f}x realtime, "
              f"{wall / minutes:5.2f} s per video-minute, peak traced memory {peak:7.0f} MB; "
              f"count {count:.1f} vs {truth:.1f} true", flush=True)
    (m0, w0, p0), (m1, w1, p1) = rows
    print(f"length x{m1 / m0:.1f}: time x{w1 / w0:.2f} (per minute x{(w1 / m1) / (w0 / m0):.2f}), "
          f"peak memory x{p1 / p0:.2f}")


if __name__ == "__main__":
    main()
