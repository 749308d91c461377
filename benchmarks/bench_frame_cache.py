"""Frame-cache throughput vs decode-only on a 1080p H.265 30 fps clip (issue 2's target: within 1.3x).

    python benchmarks/bench_frame_cache.py [--seconds 60] [--clip PATH]

Baselines, measured in the same run on the same file:
  ffmpeg decode-only   `ffmpeg -threads 0 -i clip -f null -` (if an ffmpeg binary is on PATH)
  PyAV decode-only     decode every frame with PyAV's bundled FFmpeg, no conversion
Then the cache build: decode + sample 5 fps + RGB/downscale + JPEG + write. Prints video-s per wall-s and ratios.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from handclust_assets.video.frame_cache import build_frame_cache
from handclust_assets.video.probe import ffmpeg_binary
from handclust_assets.video.writer import write_video


def make_clip(path: Path, seconds: float, fps: float = 30.0) -> Path:
    if path.exists():
        return path
    print(f"encoding a {seconds:.0f}s 1920x1080 H.265 {fps:.0f} fps test clip -> {path} (one-off)")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (270, 960, 3), dtype=np.uint8)
    import cv2

    big = cv2.resize(base, (3840, 1080), interpolation=cv2.INTER_CUBIC)
    n = int(seconds * fps)

    def frames():
        for i in range(n):
            x = int(200 + 150 * np.sin(i / fps * 2 * np.pi / 1.5) + i * 2) % 1900
            yield big[:, x : x + 1920]

    return write_video(path, frames(), fps, codec="libx265", preset="ultrafast", crf=28)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clip", type=Path, default=Path(tempfile.gettempdir()) / "handclust_bench_1080p_h265.mp4")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    clip = make_clip(a.clip, a.seconds)
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        dur = float(s.duration * s.time_base)
        print(f"clip: {clip} {s.codec_context.name} {s.codec_context.width}x{s.codec_context.height} {dur:.1f}s")

    rows = []
    ff = ffmpeg_binary()
    if ff:
        t = best_of(lambda: subprocess.run([ff, "-v", "error", "-threads", "0", "-i", str(clip), "-f", "null", "-"],
                                           check=True), a.repeats)
        rows.append(("ffmpeg decode-only", t))

    def pyav_decode() -> None:
        with av.open(str(clip)) as c:
            st = c.streams.video[0]
            st.thread_type = "AUTO"
            for _ in c.decode(st):
                pass

    rows.append(("PyAV decode-only", best_of(pyav_decode, a.repeats)))
    out = Path(tempfile.mkdtemp()) / "cache"
    rows.append(("frame cache (5 fps, 480 px, JPEG)", best_of(lambda: build_frame_cache(clip, out), a.repeats)))
    base = rows[0][1]
    print(f"\n{'step':40s} {'wall s':>8s} {'video-s/wall-s':>15s} {'ratio to ' + rows[0][0]:>28s}")
    for name, t in rows:
        print(f"{name:40s} {t:8.2f} {dur / t:15.1f} {t / base:28.2f}")
    ratio = rows[-1][1] / base
    print(f"\ncache build / {rows[0][0]} = {ratio:.2f}x (target <= 1.3x): {'PASS' if ratio <= 1.3 else 'MISS'}")


if __name__ == "__main__":
    main()
