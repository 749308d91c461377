"""Write videos with PyAV (bundled FFmpeg): test clips, benchmarks, preview reels and overlays."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float = 30.0,
    codec: str = "libx264",
    times_s: Iterable[float] | None = None,
    rotation: int = 0,
    crf: int = 23,
    preset: str = "veryfast",
    pix_fmt: str | None = None,
    keyint: int | None = None,
    pixel_aspect: Fraction | None = None,
) -> Path:
    """Encode RGB uint8 frames. `times_s` gives explicit presentation times (variable frame rate). `keyint` (x264 /
    x265): a keyframe every `keyint` frames exactly, as phones and action cameras write (default: the encoder's
    choice, at most one in 250 frames and at scene cuts).

    `rotation` stores display-matrix rotation metadata (degrees, as a phone would) without rotating pixels.
    `pixel_aspect` stores a sample aspect ratio (anamorphic video, as DV and HDV camcorders write: a stored pixel's
    width over its height) without stretching pixels.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    it = iter(frames)
    first = next(it)
    h, w = first.shape[:2]
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = w, h
        if pix_fmt:
            stream.pix_fmt = pix_fmt
        elif codec == "gif":
            stream.pix_fmt = "rgb8"
        elif codec in ("mjpeg",):
            stream.pix_fmt = "yuvj420p"
        else:
            stream.pix_fmt = "yuv420p"
        if codec in ("libx264", "libx265"):
            stream.options = {"crf": str(crf), "preset": preset}
            gop = f"keyint={keyint}:min-keyint={keyint}:scenecut=0" if keyint else ""
            if codec == "libx265":
                stream.options["x265-params"] = ":".join(x for x in ("log-level=error", gop) if x)
            elif gop:
                stream.options["x264-params"] = gop
        tb = Fraction(1, 1000) if times_s is not None else Fraction(1, 1) / rate
        stream.time_base = tb
        stream.codec_context.time_base = tb
        if pixel_aspect is not None:
            stream.codec_context.sample_aspect_ratio = Fraction(pixel_aspect)
        if rotation:
            stream.set_display_rotation(-rotation)  # FFmpeg's matrix is counter-clockwise
        times = iter(times_s) if times_s is not None else None

        def emit(img: np.ndarray, i: int) -> None:
            fr = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[..., :3]), format="rgb24")
            fr.pts = int(round(next(times) * 1000)) if times is not None else i
            fr.time_base = tb
            for pkt in stream.encode(fr):
                out.mux(pkt)

        emit(first, 0)
        for i, img in enumerate(it, start=1):
            emit(img, i)
        for pkt in stream.encode():
            out.mux(pkt)
    return path


def reencode(src: str | Path, dst: str | Path, crf: int = 23, keyint_s: float | None = None) -> Path:
    """`src`'s video frames written again to `dst` at its average frame rate and `crf`, with a keyframe every
    `keyint_s` seconds (rounded to frames; None: the encoder's choice), decoded and encoded one frame at a time (a
    long clip never sits in memory)."""
    with av.open(str(src)) as c:
        fps = float(c.streams.video[0].average_rate or 30)
        keyint = max(1, round(fps * keyint_s)) if keyint_s else None
        frames = (f.to_ndarray(format="rgb24") for f in c.decode(video=0))
        return write_video(dst, frames, fps, crf=crf, keyint=keyint)


def moving_pattern(n: int, width: int, height: int, seed: int = 0, speed: float = 3.0) -> Iterable[np.ndarray]:
    """A textured image drifting sideways: cheap, compressible, real motion for tests and benchmarks."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (max(8, height // 8), max(8, width // 8) * 2, 3), dtype=np.uint8)
    import cv2

    big = cv2.resize(base, (width * 2, height), interpolation=cv2.INTER_CUBIC)
    for i in range(n):
        x = int(i * speed) % width
        yield big[:, x : x + width]
