"""Rhythm-path speed: the added per-clip work of repetition counting, and the frame-cache overhead of keeping
the source-rate motion track.

    python benchmarks/bench_rhythm.py [--seconds 38] [--fps 30] [--threads 2] [--cache-seconds 20]

1. Counting (the per-clip rhythm path, from stored signals): motion track at the source rate (motion_energy +
   appearance) plus 5-fps flow magnitude / direction and scene embeddings, counted for the clip and 4 spans.
   Printed as video-seconds per wall-second ("x realtime"; target >= 10x on 2 cores). Thread pools are capped
   at --threads.
2. Frame-cache overhead: the frame cache build (decode + 5-fps JPEG + motion track) against the same decode
   with the motion track switched off, and against `ffmpeg -f null` decode-only, on the same file in the
   same run (issue 2's target: cache build within 1.3x of ffmpeg decode-only).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def _cap_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)


def bench_counting(seconds: float, fps: float, repeats: int) -> None:
    import numpy as np
    import polars as pl

    from handclust_assets.science.counting import count_repetitions, flow_signal, motion_signals, scene_signal

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * fps)) / fps
    phase = t / 0.9 + 0.05 * np.sin(t / 3)
    a = 2 * np.pi * phase
    energy = (np.abs(np.sin(a))[:, None, None] * rng.uniform(0.2, 2, (1, 4, 8)) + rng.random((len(t), 4, 8)))
    intensity = (120 + 30 * np.cos(a)[:, None, None] * rng.normal(size=(1, 18, 32))
                 + 5 * rng.normal(size=(len(t), 18, 32))).clip(0, 255).astype(np.uint8)
    t5 = np.arange(0, seconds, 0.2)
    a5 = 2 * np.pi * np.interp(t5, t, phase)
    flow = flow_signal(t5, np.abs(np.sin(a5)) + 0.1 * rng.random(len(t5)), rng.dirichlet(np.ones(8), len(t5)))
    emb = np.stack([np.cos(a5), np.sin(a5)], 1) @ rng.normal(size=(2, 384)) + rng.normal(size=(len(t5), 384))
    spans = pl.DataFrame({"start_s": np.linspace(0, seconds, 5)[:-1], "end_s": np.linspace(0, seconds, 5)[1:],
                          "activity": [0, 1, 0, 1]})
    sig = [*motion_signals(t, energy, intensity), flow, scene_signal(t5, emb)]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = count_repetitions(sig, seconds, spans)
        best = min(best, time.perf_counter() - t0)
    row = res.counts.row(0, named=True)
    print(f"counting: {seconds:.0f}s clip at {fps:.0f} fps, 4 signals, clip + 4 spans: {best:.2f}s wall "
          f"= {seconds / best:.1f}x realtime (target >= 10x): {'PASS' if seconds / best >= 10 else 'MISS'}"
          f"   [count {row['count']:.1f} vs {phase[-1]:.1f} true, {row['status']}]")


def bench_cache(cache_seconds: float, repeats: int) -> None:
    import handclust_assets.video.frame_cache as fcm
    from handclust_assets.video.writer import write_video

    clip = Path(tempfile.gettempdir()) / f"handclust_bench_rhythm_{int(cache_seconds)}s_1080p.mp4"
    if not clip.exists():
        import cv2
        import numpy as np

        rng = np.random.default_rng(0)
        big = cv2.resize(rng.integers(0, 255, (270, 960, 3), dtype=np.uint8), (3840, 1080),
                         interpolation=cv2.INTER_CUBIC)
        n = int(cache_seconds * 30)
        write_video(clip, (big[:, int(200 + 150 * np.sin(i / 30 * 2 * np.pi / 1.5) + 2 * i) % 1900:][:, :1920]
                           for i in range(n)), 30.0, codec="libx264", preset="ultrafast", crf=26)

    def best_of(fn) -> float:
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return min(out)

    rows = []
    ff = shutil.which("ffmpeg")
    if ff is None:
        try:
            import imageio_ffmpeg

            ff = imageio_ffmpeg.get_ffmpeg_exe()
        except ImportError:
            ff = None
    if ff:
        rows.append(("ffmpeg decode-only", best_of(lambda: subprocess.run(
            [ff, "-v", "error", "-threads", "0", "-i", str(clip), "-f", "null", "-"], check=True))))
    out = Path(tempfile.mkdtemp()) / "cache"
    real_builder = fcm.MotionTrackBuilder

    class _Off(real_builder):  # the same cache build with the motion track switched off
        def add(self, frame, t_s):  # noqa: ANN001
            return None

    fcm.MotionTrackBuilder = _Off
    try:
        rows.append(("frame cache, no motion track", best_of(lambda: fcm.build_frame_cache(clip, out))))
    finally:
        fcm.MotionTrackBuilder = real_builder
    rows.append(("frame cache + motion track", best_of(lambda: fcm.build_frame_cache(clip, out))))
    print(f"\nframe cache on {clip.name} ({cache_seconds:.0f}s 1080p30 H.264):")
    for name, t in rows:
        print(f"  {name:32s} {t:6.2f}s  {cache_seconds / t:6.1f}x realtime")
    with_mt, without = rows[-1][1], rows[-2][1]
    print(f"  motion-track overhead: {with_mt / without:.3f}x the cache build without it")
    if ff:
        ratio = with_mt / rows[0][1]
        print(f"  cache build (with motion track) / ffmpeg decode-only = {ratio:.2f}x (target <= 1.3x): "
              f"{'PASS' if ratio <= 1.3 else 'MISS'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=38.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cache-seconds", type=float, default=20.0)
    a = ap.parse_args()
    _cap_threads(a.threads)
    bench_counting(a.seconds, a.fps, a.repeats)
    bench_cache(a.cache_seconds, a.repeats)


if __name__ == "__main__":
    main()
