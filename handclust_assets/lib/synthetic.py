"""Synthetic helmet-cam clips with per-frame ground truth (deterministic by seed).

Vocabulary (shared by every clip; periods are the motion period of the activity, +-5 % jitter per segment):

| activity | tool / hands                                  | local motion period | camera (head)        |
| -------- | --------------------------------------------- | ------------------- | -------------------- |
| trowel   | gray trowel + blue glove, back-and-forth      | 1.5 s               | small sway           |
| scoop    | orange bucket, tool on an arc into it         | 2.5 s               | small sway           |
| carry    | concrete block held low, gloves on it         | 1.1 s (step bob)    | forward walk + bob   |
| walk     | no tool, gloves swing in and out of frame     | 1.0 s (step bob)    | forward walk + bob   |
| idle     | gloves resting (sometimes out of frame)       | none                | near static          |

Periods are >= 1 s so they stay recoverable from 5 fps sampling. The scene trap: every clip gets its own
background texture, palette, lighting gain/gamma and colour cast, so appearance fingerprints the clip while
motion and tools carry the activity. File names carry a phase word (production/prep/transit/downtime/demo).

Injected anomalies (EgoClean's kinds, only when asked: `generate_clip(anomalies=[(kind, start_s, end_s), ...])`
or `generate_demo_set(anomalies=True)`), with frame-exact spans written to `<stem>.anomalies.csv`
(start_s,end_s,label) and the per-frame ground truth's `activity` set to the kind inside them:

| kind              | what the camera sees                                                              |
| ----------------- | --------------------------------------------------------------------------------- |
| not_working       | the worker stands turned away: another part of the site, gloves out of view       |
| getting_up        | the head rises and swings: big vertical/rotational camera motion, motion blur     |
| material_handling | cardboard boxes lifted and stacked on a pallet: other objects, other colours      |
| lens_covered      | a glove over the lens: dark, blurred, glove-tinted frames                         |

Anomaly rendering draws from its own random stream, so a clip without anomalies is byte-identical to before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import polars as pl

from handclust_assets.science.anomaly_eval import anomaly_sidecar_path, write_anomaly_sidecar
from handclust_assets.video.writer import write_video

PERIODS = {"trowel": 1.5, "scoop": 2.5, "carry": 1.1, "walk": 1.0, "idle": float("nan")}
ACTIVITIES = tuple(PERIODS)
PHASE_MIX = {
    "production": ["trowel", "scoop", "trowel", "carry", "trowel", "scoop", "idle"],
    "prep": ["scoop", "carry", "idle", "scoop", "trowel"],
    "transit": ["walk", "carry", "walk", "idle", "walk"],
    "downtime": ["idle", "walk", "idle", "scoop"],
    "demo": ["trowel", "idle", "scoop", "walk", "carry"],
}
GT_SCHEMA = {
    "frame_idx": pl.Int64,
    "t_s": pl.Float64,
    "activity": pl.Utf8,
    "segment_idx": pl.Int64,
    "period_s": pl.Float64,
}
ANOMALY_KINDS = {"not_working": "not working", "getting_up": "getting up", "material_handling": "material handling",
                 "lens_covered": "lens covered"}
DEMO_CLIPS = [
    ("01_production_masonry", "production"),
    ("02_prep_mixing", "prep"),
    ("03_transit_site", "transit"),
    ("04_production_wall", "production"),
    ("05_downtime_break", "downtime"),
    ("06_demo_training", "demo"),
    ("07_production_corner", "production"),
    ("08_transit_yard", "transit"),
]


@dataclass
class _Style:
    canvas: np.ndarray
    gain: float
    gamma: float
    cast: np.ndarray


def _style(rng: np.random.Generator, width: int, height: int) -> _Style:
    cw, ch = width * 4, height + 80
    base = rng.uniform(40, 200, 3)
    accent = rng.uniform(30, 230, 3)
    canvas = np.empty((ch, cw, 3), np.float32)
    canvas[:] = base
    kind = rng.integers(0, 3)
    if kind == 0:  # bricks
        bh, bw = int(rng.integers(14, 30)), int(rng.integers(40, 90))
        for r, y in enumerate(range(0, ch, bh)):
            off = (bw // 2) * (r % 2)
            for x in range(-off, cw, bw):
                col = accent * rng.uniform(0.7, 1.1)
                cv2.rectangle(canvas, (x + 2, y + 2), (x + bw - 2, y + bh - 2), col.tolist(), -1)
    elif kind == 1:  # grid / panels
        step = int(rng.integers(30, 70))
        for x in range(0, cw, step):
            cv2.line(canvas, (x, 0), (x, ch), accent.tolist(), 3)
        for y in range(0, ch, step):
            cv2.line(canvas, (0, y), (cw, y), accent.tolist(), 3)
    else:  # blotches (dirt, gravel)
        for _ in range(int(cw * ch / 900)):
            c = (int(rng.integers(0, cw)), int(rng.integers(0, ch)))
            cv2.circle(canvas, c, int(rng.integers(3, 14)), (accent * rng.uniform(0.6, 1.2)).tolist(), -1)
    noise = cv2.resize(rng.normal(0, 18, (ch // 8, cw // 8, 1)).astype(np.float32), (cw, ch))[..., None]
    canvas = np.clip(canvas + noise, 0, 255)
    gain, gamma = float(rng.uniform(0.6, 1.25)), float(rng.uniform(0.75, 1.35))
    cast = rng.uniform(0.8, 1.2, 3).astype(np.float32)
    lit = 255.0 * np.power(np.clip(canvas * gain * cast / 255.0, 0, 1), gamma)  # lighting baked in once
    return _Style(canvas=lit.astype(np.uint8), gain=gain, gamma=gamma, cast=cast)


def _plan(rng: np.random.Generator, phase: str, duration_s: float) -> list[tuple[str, float, float, float]]:
    """(activity, start_s, end_s, period_s) covering [0, duration)."""
    mix = PHASE_MIX.get(phase, list(ACTIVITIES))
    segs, t, i = [], 0.0, int(rng.integers(0, len(mix)))
    while t < duration_s - 1e-6:
        act = mix[i % len(mix)]
        if rng.random() < 0.25:
            act = ACTIVITIES[int(rng.integers(0, len(ACTIVITIES)))]
        if segs and segs[-1][0] == act:
            i += 1
            continue
        length = float(rng.uniform(6.0, 20.0))
        end = min(duration_s, t + length)
        if duration_s - end < 4.0:
            end = duration_s
        period = PERIODS[act] * float(rng.uniform(0.95, 1.05))
        segs.append((act, t, end, period))
        t = end
        i += 1
    return segs


def _glove(img: np.ndarray, c: tuple[float, float], scale: float, color: tuple[int, int, int]) -> None:
    x, y = int(c[0]), int(c[1])
    cv2.ellipse(img, (x, y), (int(26 * scale), int(18 * scale)), 20, 0, 360, color, -1)
    for k in range(4):
        cv2.ellipse(img, (x - int((12 - 8 * k) * scale), y - int(20 * scale)), (int(5 * scale), int(11 * scale)),
                    0, 0, 360, color, -1)


def _render(style: _Style, act: str, tl: float, period: float, cam: tuple[float, float, float], w: int, h: int,
            glove: tuple[int, int, int]) -> np.ndarray:
    cx, cy, rot = cam
    x0 = int(cx) % (style.canvas.shape[1] - w - 1)
    y0 = int(np.clip(40 + cy, 0, style.canvas.shape[0] - h - 1))
    img = np.ascontiguousarray(style.canvas[y0 : y0 + h, x0 : x0 + w])
    if abs(rot) > 1e-3:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rot, 1.0)
        img = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    s = w / 640.0
    ph = 2 * np.pi * tl / period if np.isfinite(period) else 0.0
    if act == "trowel":
        # asymmetric stroke (quick push, slower return) so the speed's fundamental is the cycle period
        x, y = w * 0.5 + 42 * s * (np.sin(ph) + 0.45 * np.sin(2 * ph)), h * 0.62 + 10 * s * np.sin(ph)
        pts = np.array([[x - 55 * s, y + 10 * s], [x + 40 * s, y - 6 * s], [x + 60 * s, y + 22 * s],
                        [x - 35 * s, y + 34 * s]], np.int32)
        cv2.fillPoly(img, [pts], (150, 150, 155))
        _glove(img, (x + 5 * s, y - 18 * s), s, glove)
    elif act == "scoop":
        bx, by = w * 0.25, h * 0.8
        cv2.ellipse(img, (int(bx), int(by)), (int(70 * s), int(40 * s)), 0, 0, 360, (235, 120, 30), -1)
        cv2.ellipse(img, (int(bx), int(by - 12 * s)), (int(60 * s), int(22 * s)), 0, 0, 360, (70, 70, 75), -1)
        a = 0.5 * (1 - np.cos(ph + 0.7 * np.sin(ph)))  # scoop fast, lift slowly
        x, y = bx + (w * 0.22) * a, by - 30 * s - 70 * s * np.sin(np.pi * a)
        cv2.line(img, (int(x), int(y)), (int(x + 90 * s), int(y - 70 * s)), (90, 60, 40), max(3, int(12 * s)))
        cv2.ellipse(img, (int(x), int(y)), (int(30 * s), int(16 * s)), 30, 0, 360, (160, 160, 165), -1)
        _glove(img, (x + 90 * s, y - 70 * s), 1.4 * s, glove)
    elif act == "carry":
        yb = h * 0.85 + 6 * s * (np.sin(ph) + 0.5 * np.sin(2 * ph))
        cv2.rectangle(img, (int(w * 0.3), int(yb - 50 * s)), (int(w * 0.7), int(h + 10)), (120, 120, 128), -1)
        _glove(img, (w * 0.3, yb - 30 * s), s, glove)
        _glove(img, (w * 0.7, yb - 30 * s), s, glove)
    elif act == "walk":
        sw = np.sin(ph)
        _glove(img, (w * 0.12, h * (0.95 + 0.25 * sw)), s, glove)
        _glove(img, (w * 0.88, h * (0.95 - 0.25 * sw)), s, glove)
    else:  # idle: gloves resting, drifting very slowly
        _glove(img, (w * 0.42 + 4 * s * np.sin(tl / 7.0), h * 0.9), s, glove)
    return img


@dataclass
class _AnomalyScene:
    away: _Style  # the part of the site the worker looks at when not working
    box: tuple[int, int, int]  # cardboard colour (RGB)
    ceiling: tuple[int, int, int]  # what enters the top of the view when the head rises


def _anomaly_scene(seed: int, width: int, height: int) -> _AnomalyScene:
    rng = np.random.default_rng([seed, 0xA7])  # own stream: clips without anomalies are unchanged
    away = _style(rng, width, height)
    box = tuple(int(v) for v in rng.uniform([150, 105, 55], [200, 145, 85]))
    ceiling = tuple(int(v) for v in rng.uniform(170, 235, 3))
    return _AnomalyScene(away=away, box=box, ceiling=ceiling)


def _smoothstep(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3 - 2 * u)


def _render_anomaly(kind: str, u: float, ta: float, base: np.ndarray, scene: _AnomalyScene, style: _Style,
                    cam: tuple[float, float, float], glove: tuple[int, int, int]) -> np.ndarray:
    """One frame of an injected anomaly; `u` in [0, 1) is the position in the span, `ta` seconds into it,
    `base` the frame the normal activity would have shown."""
    h, w = base.shape[:2]
    s = w / 640.0
    if kind == "not_working":  # turned away: another part of the site, hands out of view
        x0 = int(cam[0] * 0.3 + 3 * s * np.sin(ta / 3.0)) % (scene.away.canvas.shape[1] - w - 1)
        y0 = int(40 + 2 * np.sin(ta / 4.1))
        return np.ascontiguousarray(scene.away.canvas[y0 : y0 + h, x0 : x0 + w])
    if kind == "getting_up":  # head rises and swings: big camera motion with motion blur
        rise = _smoothstep(2.5 * u) * 0.45 * h
        rot = 9.0 * np.sin(2 * np.pi * ta / 1.7)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rot, 1.0)
        m[0, 2] += 0.15 * w * np.sin(2 * np.pi * ta / 2.3)
        m[1, 2] += rise
        img = cv2.warpAffine(base, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=scene.ceiling)
        k = max(3, int(15 * s)) | 1
        return cv2.blur(img, (k, max(1, k // 3)))
    if kind == "material_handling":  # lifting boxes onto a pallet: other objects, other colours
        m = np.float32([[1, 0, 0.08 * w * np.sin(2 * np.pi * ta / 4.0)], [0, 1, 0]])
        img = cv2.warpAffine(np.ascontiguousarray(style.canvas[40 : 40 + h, :w]), m, (w, h),
                             borderMode=cv2.BORDER_REFLECT)
        for k in range(5):  # pallet slats
            y = int(h * 0.82 + k * 10 * s)
            cv2.rectangle(img, (int(w * 0.1), y), (int(w * 0.9), y + int(6 * s)), (110, 80, 45), -1)
        for k in range(3):  # the stack
            x = int(w * (0.14 + 0.25 * k))
            cv2.rectangle(img, (x, int(h * 0.55)), (x + int(120 * s), int(h * 0.82)), scene.box, -1)
            cv2.line(img, (x, int(h * 0.68)), (x + int(120 * s), int(h * 0.68)), (225, 215, 190), max(2, int(5 * s)))
        lift = 0.5 * (1 - np.cos(2 * np.pi * ta / 3.0))
        bx, by = w * 0.5, h * (0.75 - 0.35 * lift)
        cv2.rectangle(img, (int(bx - 90 * s), int(by - 60 * s)), (int(bx + 90 * s), int(by + 60 * s)), scene.box, -1)
        cv2.line(img, (int(bx - 90 * s), int(by)), (int(bx + 90 * s), int(by)), (225, 215, 190), max(2, int(6 * s)))
        _glove(img, (bx - 95 * s, by + 10 * s), 1.3 * s, glove)
        _glove(img, (bx + 95 * s, by + 10 * s), 1.3 * s, glove)
        return img
    if kind == "lens_covered":  # a glove over the lens: dark, blurred, glove-tinted
        sigma = max(3.0, w / 18.0)
        img = cv2.GaussianBlur(base, (0, 0), sigma).astype(np.float32) * 0.1
        return np.clip(img + np.float32(glove) * 0.12, 0, 255).astype(np.uint8)
    raise ValueError(f"unknown anomaly kind {kind!r} (known: {', '.join(ANOMALY_KINDS)})")


def random_anomaly_spans(seed: int, duration_s: float, n: int, min_len_s: float = 8.0, max_len_s: float = 20.0,
                         margin_s: float = 10.0, kinds: tuple[str, ...] = tuple(ANOMALY_KINDS)
                         ) -> list[tuple[str, float, float]]:
    """`n` non-overlapping (kind, start_s, end_s) spans, `margin_s` away from the clip's ends and from each
    other, on whole tenths of a second; fewer when the clip is too short to hold them."""
    rng = np.random.default_rng([seed, 0xA9])
    spans: list[tuple[str, float, float]] = []
    for k in range(200):
        if len(spans) >= n:
            break
        length = round(float(rng.uniform(min_len_s, max_len_s)), 1)
        hi = duration_s - margin_s - length
        if hi <= margin_s:
            break
        a = round(float(rng.uniform(margin_s, hi)), 1)
        if all(a + length + margin_s <= s0 or a >= s1 + margin_s for _, s0, s1 in spans):
            spans.append((kinds[(len(spans) + k + seed) % len(kinds)], a, round(a + length, 1)))
    return sorted(spans, key=lambda x: x[1])


def _fixed_plan(rng: np.random.Generator, activities: list[tuple[str, float]]
                ) -> tuple[list[tuple[str, float, float, float]], float]:
    """[(activity, start, end, period)] for a given [(activity, seconds)] (periods jittered +-5 %), and its length."""
    plan, t = [], 0.0
    for act, secs in activities:
        plan.append((act, t, t + secs, PERIODS[act] * float(rng.uniform(0.95, 1.05))))
        t += secs
    return plan, t


def _camera(act: str, tl: float, period: float, t: float, jitter: np.ndarray, cx: float, width: int, height: int,
            fps: float) -> tuple[float, float, float]:
    """Head pose (x, y, roll) at time t: a forward walk with a step bob, or standing with slow sway and tremor."""
    if act in ("walk", "carry"):
        bob = 2 * np.pi * tl / period
        return (cx + 55.0 * width / 640 / fps, (9.0 * np.sin(bob) + 4.0 * np.sin(2 * bob)) * height / 360,
                1.2 * np.sin(bob / 2))
    return (cx + (0.04 * jitter[0] + 0.8 * np.cos(2 * np.pi * t / 6.1) / fps),
            0.8 * np.sin(2 * np.pi * t / 4.7) + 0.05 * jitter[1], 0.1 * np.sin(2 * np.pi * t / 5.3))


def _check_anomalies(anomalies: list[tuple[str, float, float]] | None) -> None:
    for kind, a, b in anomalies or []:
        if kind not in ANOMALY_KINDS or not 0 <= a < b:
            raise ValueError(f"bad anomaly {(kind, a, b)}: kind in {list(ANOMALY_KINDS)}, 0 <= start < end")


def generate_clip(
    path: str | Path,
    *,
    seed: int,
    duration_s: float = 60.0,
    width: int = 640,
    height: int = 360,
    fps: float = 15.0,
    phase: str = "production",
    activities: list[tuple[str, float]] | None = None,
    anomalies: list[tuple[str, float, float]] | None = None,
) -> pl.DataFrame:
    """Write one synthetic clip (H.264 mp4) and `<stem>.gt.parquet`; return the per-frame ground truth.

    `activities`, if given, fixes the plan as [(activity, seconds), ...] instead of the phase's random mix.
    `anomalies`, if given (even empty), injects [(kind, start_s, end_s), ...] (kinds: ANOMALY_KINDS) into the
    frames with t in [start_s, end_s) and writes them to `<stem>.anomalies.csv`; None changes nothing.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    style = _style(rng, width, height)
    plan, duration_s = _fixed_plan(rng, activities) if activities else (_plan(rng, phase, duration_s), duration_s)
    n = int(round(duration_s * fps))
    glove = tuple(int(v) for v in rng.uniform([10, 60, 150], [60, 120, 230]))  # bluish glove (RGB)
    gt: dict[str, list] = {"activity": [], "segment_idx": [], "period_s": []}
    cx = float(rng.uniform(0, 1000))
    jitter = rng.normal(0, 1, (n, 3)).astype(np.float32)
    # sensor noise: a small bank of non-negative noise images, cycled (cheap, still breaks exact repeats)
    noise_bank = [rng.integers(0, 5, (height, width, 3), dtype=np.uint8) for _ in range(7)]
    lit_glove = 255.0 * np.power(np.clip(np.array(glove) * style.gain * style.cast / 255.0, 0, 1), style.gamma)
    glove = tuple(int(v) for v in lit_glove)
    _check_anomalies(anomalies)
    scene = _anomaly_scene(seed, width, height) if anomalies else None

    def frames() -> Iterator[np.ndarray]:
        nonlocal cx
        seg_i = 0
        for i in range(n):
            t = i / fps
            while seg_i < len(plan) - 1 and t >= plan[seg_i][2]:
                seg_i += 1
            act, t0, _, period = plan[seg_i]
            cam = _camera(act, t - t0, period, t, jitter[i], cx, width, height, fps)
            cx = cam[0]
            row = [act, seg_i, period]
            img = _render(style, act, t - t0, period, cam, width, height, glove)
            for kind, a, b in anomalies or []:
                if a <= t < b:
                    img = _render_anomaly(kind, (t - a) / (b - a), t - a, img, scene, style, cam, glove)
                    row[0], row[2] = kind, float("nan")
            for k, v in zip(gt, row):
                gt[k].append(v)
            yield cv2.add(img, noise_bank[i % len(noise_bank)], dtype=cv2.CV_8U)

    write_video(path, frames(), fps, codec="libx264", crf=23, preset="veryfast")
    table = pl.DataFrame({"frame_idx": np.arange(n), "t_s": np.arange(n) / fps, **gt}, schema=GT_SCHEMA)
    table.write_parquet(path.with_name(path.stem + ".gt.parquet"))
    if anomalies is not None:
        write_anomaly_sidecar(anomaly_sidecar_path(path), [(a, b, ANOMALY_KINDS[k]) for k, a, b in anomalies])
    return table


def load_ground_truth(video_path: str | Path) -> pl.DataFrame | None:
    p = Path(video_path)
    side = p.with_name(p.stem + ".gt.parquet")
    return pl.read_parquet(side) if side.exists() else None


def generate_demo_set(
    out_dir: str | Path,
    n_clips: int = 5,
    duration_s: float = 60.0,
    width: int = 640,
    height: int = 360,
    fps: float = 15.0,
    seed: int = 0,
    anomalies_per_clip: int = 0,
) -> list[Path]:
    """The default demo data set: `n_clips` clips (phase words in the names), skipped when already present.

    `anomalies_per_clip` > 0 injects that many anomalies per clip (`random_anomaly_spans`, kinds rotating) with
    their `<stem>.anomalies.csv`; 0 (the default) writes exactly the clips it always did."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_clips):
        name, phase = DEMO_CLIPS[i % len(DEMO_CLIPS)]
        if i >= len(DEMO_CLIPS):
            name = f"{i + 1:02d}_{phase}_extra"
        p = out / f"{name}.mp4"
        params = {"seed": seed * 1000 + i, "duration_s": duration_s, "width": width, "height": height, "fps": fps,
                  "phase": phase, "version": 4}
        spans = None
        if anomalies_per_clip > 0:
            params["anomalies_per_clip"] = anomalies_per_clip
            spans = random_anomaly_spans(params["seed"], duration_s, anomalies_per_clip)
        side = p.with_name(p.stem + ".params.json")
        if p.exists() and side.exists() and json.loads(side.read_text()) == params:
            paths.append(p)
            continue
        anomaly_sidecar_path(p).unlink(missing_ok=True)
        generate_clip(p, seed=params["seed"], duration_s=duration_s, width=width, height=height, fps=fps, phase=phase,
                      anomalies=spans)
        side.write_text(json.dumps(params))
        paths.append(p)
    return paths
