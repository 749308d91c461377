"""Videos for the dashboard, from the frame cache (no re-decoding of the source): a cluster preview reel (per
fusion cluster a title card with its label, then a few example segments) and per clip an activity overlay
(the fusion cluster's label on every frame plus a rolling timeline strip). H.264 via PyAV (`write_video`)."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import duckdb
import numpy as np
import polars as pl

from handclust_assets.lib.storage import Storage, as_storage
from handclust_assets.report.data import Results, cluster_rgb
from handclust_assets.video.writer import write_video

FONT = cv2.FONT_HERSHEY_SIMPLEX
STRIP_H = 34


class NothingToRender(RuntimeError):
    """There is nothing to put in the video (no clusters, no frame cache); the message says what is missing."""


def reel_path(root: Storage | str | Path | None) -> Path:
    return as_storage(root).local_root() / "dashboard" / "videos" / "preview_reel.mp4"


def overlay_path(root: Storage | str | Path | None, clip: str) -> Path:
    return as_storage(root).local_root() / "dashboard" / "videos" / f"overlay_{clip}.mp4"


@dataclass
class VideoResult:
    path: Path
    n_frames: int
    fps: float
    width: int
    height: int
    clusters: int = 0
    title_frames: int = 0  # frames per title card (reel)
    examples: list[tuple[int, str, int, int]] = field(default_factory=list)  # (cluster, clip, segment, frames)
    poster: Path | None = None

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps if self.fps else 0.0


def ascii_text(s: str) -> str:
    """Hershey fonts draw ASCII only: map the few symbols our labels use, drop other accents."""
    for a, b in (("·", "-"), ("×", "x"), ("–", "-"), ("—", "-"), ("≥", ">="), ("≤", "<="), ("θ", "theta")):
        s = s.replace(a, b)
    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii")


def _bgr255(rgb: tuple[float, float, float]) -> tuple[int, int, int]:
    return tuple(int(round(255 * c)) for c in rgb)  # frames are RGB arrays: keep RGB order


def _text(img: np.ndarray, s: str, org: tuple[int, int], scale: float = 0.5, color=(255, 255, 255),
          thick: int = 1) -> None:
    s = ascii_text(s)
    x, y = org
    for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):  # an outline (a thicker stroke would advance wider)
        cv2.putText(img, s, (x + dx, y + dy), FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)
    cv2.putText(img, s, org, FONT, scale, color, thick, cv2.LINE_AA)


def _fit_text(s: str, width: int, scale: float) -> str:
    s = ascii_text(s)
    while s and cv2.getTextSize(s, FONT, scale, 1)[0][0] > width:
        s = s[:-2] + "~" if len(s) > 2 else ""
    return s


def _letterbox(img: np.ndarray, w: int, h: int) -> np.ndarray:
    ih, iw = img.shape[:2]
    s = min(w / iw, h / ih)
    nw, nh = max(1, int(round(iw * s))), max(1, int(round(ih * s)))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    out[y:y + nh, x:x + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA) if (nw, nh) != (iw, ih) else img
    return out


def _canvas_size(r: Results, clips: list[str], max_side: int) -> tuple[int, int]:
    for c in clips:
        fc = r.frame_cache(c)
        if fc is not None and len(fc):
            s = min(1.0, max_side / max(fc.width, fc.height))
            return max(2, int(round(fc.width * s / 2)) * 2), max(2, int(round(fc.height * s / 2)) * 2)
    raise NothingToRender("no frame cache for any clip: materialize frame_cache first")


def _write(path: Path, frames: Iterator[np.ndarray], fps: float, crf: int) -> int:
    """Encode atomically (temp file + rename); returns the number of frames written."""
    n = [0]

    def counted() -> Iterator[np.ndarray]:
        for f in frames:
            n[0] += 1
            yield f

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.mp4")
    try:
        write_video(tmp, counted(), fps=fps, codec="libx264", crf=crf, preset="veryfast")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n[0]


def _poster(path: Path, img: np.ndarray) -> Path:
    p = path.with_suffix(".jpg")
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), 85])
    if ok:
        p.write_bytes(buf.tobytes())
    return p


# ---- preview reel -------------------------------------------------------------------------------------------
def _pick_examples(r: Results, g: pl.DataFrame, modality: str, cluster: int, k: int) -> list[dict]:
    """The labelled medoid first, then one segment per other clip (most confident), then the rest."""
    lab = r.get("cluster_labels")
    first = None
    if lab is not None and lab.height and "medoid_clip" in lab.columns:
        m = lab.filter((pl.col("modality") == modality) & (pl.col("cluster") == cluster))
        if m.height:
            first = (m["medoid_clip"][0], int(m["medoid_segment"][0]))
    rows = g.sort(["probability", "clip", "segment_idx"], descending=[True, False, False]).to_dicts()
    picked: list[dict] = []
    if first is not None:
        picked += [x for x in rows if (x["clip"], int(x["segment_idx"])) == first][:1]
    for x in rows:  # one per clip not yet shown
        if len(picked) >= k:
            break
        if x["clip"] not in {p["clip"] for p in picked}:
            picked.append(x)
    for x in rows:
        if len(picked) >= k:
            break
        if x not in picked:
            picked.append(x)
    return picked[:k]


def _title_card(w: int, h: int, color: tuple, lines: list[tuple[str, float]], thumbs: list[np.ndarray]) -> np.ndarray:
    img = np.full((h, w, 3), 24, np.uint8)
    img[:, :10] = _bgr255(color)
    y = int(h * 0.08)
    for s, scale in lines:
        s = _fit_text(s, w - 36, scale)
        thick = 2 if scale > 0.8 else 1
        (_, th), base = cv2.getTextSize(s or " ", FONT, scale, thick)
        y += th
        cv2.putText(img, s, (24, y), FONT, scale, (240, 240, 240), thick, cv2.LINE_AA)
        y += base + int(10 * scale) + 6
    if thumbs:
        tw = (w - 24 - 12 * len(thumbs)) // max(3, len(thumbs))
        th = int(tw * h / w)
        x = 24
        ty = min(h - th - 8, y + 4)
        for t in thumbs:
            if ty > 0 and th > 8:
                img[ty:ty + th, x:x + tw] = _letterbox(t, tw, th)
            x += tw + 12
    return img


@dataclass
class _ReelCluster:
    rank: int
    cluster: int
    size: int
    n_clips: int
    entropy_text: str
    examples: list[tuple[str, int, int, int]]  # (clip, segment, first frame, frames)


def _example_windows(r: Results, members: pl.DataFrame, modality: str, cluster: int, k: int, n_ex: int
                     ) -> list[tuple[str, int, int, int]]:
    """Up to `k` example segments of a cluster, `n_ex` frames each from the middle of the segment."""
    out = []
    for x in _pick_examples(r, members, modality, cluster, k):
        fc = r.frame_cache(x["clip"])
        if fc is None or not len(fc):
            continue
        a, b = int(x["start_frame"]), min(int(x["end_frame"]), len(fc))
        n = min(n_ex, max(0, b - a))
        if n > 0:
            out.append((x["clip"], int(x["segment_idx"]), a + (b - a - n) // 2, n))
    return out


def _reel_plan(r: Results, g: pl.DataFrame, modality: str, examples: int, n_ex: int) -> list[_ReelCluster]:
    """Clusters largest first, each with its examples and its mixing entropy."""
    sizes = g.group_by("cluster").len().sort(["len", "cluster"], descending=[True, False])
    ent = r.get("cluster_entropy")
    plan = []
    for rank, c in enumerate(sizes["cluster"].to_list()):
        gc = g.filter(pl.col("cluster") == c)
        h_txt = ""
        if ent is not None and ent.height:
            m = ent.filter((pl.col("modality") == modality) & (pl.col("cluster") == c))
            if m.height:
                h_txt = f" | mixing entropy {float(m['entropy'][0]):.2f}"
        plan.append(_ReelCluster(rank, int(c), gc.height, gc["clip"].n_unique(), h_txt,
                                 _example_windows(r, gc, modality, int(c), examples, n_ex)))
    return plan


def _example_frame(img: np.ndarray, w: int, h: int, col: tuple, label: str, caption: str) -> np.ndarray:
    img = _letterbox(img, w, h)
    img[:26] = (img[:26] * 0.35).astype(np.uint8)
    cv2.rectangle(img, (6, 6), (20, 20), _bgr255(col), -1)
    _text(img, _fit_text(label, w - 40, 0.5), (28, 19), 0.5)
    img[-22:] = (img[-22:] * 0.35).astype(np.uint8)
    _text(img, caption, (8, h - 7), 0.42)
    return img


def render_preview_reel(
    root: str | Path | None = None,
    out: str | Path | None = None,
    source: duckdb.DuckDBPyConnection | Mapping[str, pl.DataFrame] | None = None,
    modality: str = "fusion",
    examples: int = 3,
    clip_seconds: float = 3.0,
    title_seconds: float = 2.0,
    max_side: int = 480,
    crf: int = 28,
) -> VideoResult:
    """Per cluster of `modality` (largest first): a title card with its label, then up to `examples` segments
    (up to `clip_seconds` each, from the middle of the segment) from the frame cache."""
    r = Results(root, source)
    path = Path(out) if out is not None else reel_path(r.store)
    ccc, segs = r.get("cross_clip_clusters"), r.get("segments")
    if ccc is None or segs is None:
        raise NothingToRender("cross_clip_clusters or segments missing: nothing to preview")
    g = ccc.filter((pl.col("modality") == modality) & (pl.col("cluster") >= 0)).join(
        segs.select("clip", "segment_idx", "start_frame", "end_frame"), on=["clip", "segment_idx"])
    if not g.height:
        raise NothingToRender(f"no {modality} clusters (every segment is noise, or the modality is absent)")
    w, h = _canvas_size(r, r.clips, max_side)
    fps = next((fc.fps for c in r.clips if (fc := r.frame_cache(c)) is not None), 5.0)
    n_title = max(1, int(round(title_seconds * fps)))
    plan = _reel_plan(r, g, modality, examples, max(1, int(round(clip_seconds * fps))))
    if not any(p.examples for p in plan):
        raise NothingToRender("no frames for any cluster member (frame caches missing)")
    res = VideoResult(path, 0, fps, w, h, clusters=len(plan), title_frames=n_title)
    first_card: list[np.ndarray] = []

    def frames() -> Iterator[np.ndarray]:
        for p in plan:
            col = cluster_rgb(p.cluster)
            thumbs = [r.frame_cache(clip).read(s0 + n // 2) for clip, _, s0, n in p.examples]
            card = _title_card(w, h, col, [
                (f"activity {p.rank + 1}/{len(plan)}  ({r.modality_name(modality)})", 0.5), (f"C{p.cluster}", 1.3),
                (r.label_text(modality, p.cluster) or "(no label)", 0.8),
                (f"{p.size} segments in {p.n_clips} clip(s){p.entropy_text}", 0.5)], thumbs)
            first_card[:] = first_card or [card]
            yield from [card] * n_title
            for k, (clip, seg, s0, n) in enumerate(p.examples):
                fc = r.frame_cache(clip)
                res.examples.append((p.cluster, clip, seg, n))
                for i in range(s0, s0 + n):
                    yield _example_frame(fc.read(i), w, h, col, r.label(modality, p.cluster),
                                         f"{clip}  seg {seg}  t={fc.timestamps[i]:.1f}s  ({k + 1}/{len(p.examples)})")

    res.n_frames = _write(path, frames(), fps, crf)
    if first_card:
        res.poster = _poster(path, first_card[0])
    return res


# ---- activity overlay ---------------------------------------------------------------------------------------
def _strip_image(spans: list[tuple[float, float, int, str]], anomalies: list[tuple[float, float]], dur: float,
                 pps: float, pad: int) -> np.ndarray:
    """The whole clip's timeline at `pps` pixels per second, padded by `pad` px of blank on both sides."""
    width = int(np.ceil(dur * pps)) + 2 * pad
    img = np.full((STRIP_H, width, 3), 40, np.uint8)
    for a, b, c, text in spans:
        x0, x1 = pad + int(a * pps), pad + max(int(a * pps) + 1, int(b * pps))
        img[6:STRIP_H, x0:x1] = _bgr255(cluster_rgb(c))
        img[6:STRIP_H, x0:x0 + 1] = 255
        t = _fit_text(text, x1 - x0 - 6, 0.38)
        if t and x1 - x0 > 24:
            lum = sum(k * v for k, v in zip((0.299, 0.587, 0.114), cluster_rgb(c)))
            cv2.putText(img, t, (x0 + 3, STRIP_H - 9), FONT, 0.38, (0, 0, 0) if lum > 0.55 else (255, 255, 255), 1,
                        cv2.LINE_AA)
    for a, b in anomalies:
        img[0:5, pad + int(a * pps):pad + max(int(a * pps) + 1, int(b * pps))] = (220, 30, 30)
    for s in range(0, int(dur) + 1, 5):
        x = pad + int(s * pps)
        img[6:10, x:x + 1] = 230
    return img


def render_activity_overlay(
    root: str | Path | None,
    clip: str,
    out: str | Path | None = None,
    source: duckdb.DuckDBPyConnection | Mapping[str, pl.DataFrame] | None = None,
    modality: str = "fusion",
    window_s: float = 30.0,
    max_side: int = 480,
    crf: int = 28,
) -> VideoResult:
    """Every cached frame of `clip` with its activity (the `modality` cluster label; noise shows its nearest
    cluster) on top and a rolling `window_s` timeline strip (playhead in the middle) below."""
    from handclust_assets.report.analysis import segments_of_cluster

    r = Results(root, source)
    path = Path(out) if out is not None else overlay_path(r.store, clip)
    fc = r.frame_cache(clip)
    if fc is None or not len(fc):
        raise NothingToRender(f"no frame cache for clip {clip!r}")
    sc = segments_of_cluster(r, clip, modality)
    if sc is None:
        raise NothingToRender(f"no {modality} clusters for clip {clip!r}")
    w, h = _canvas_size(r, [clip], max_side)
    ts = fc.timestamps
    dur = max(float(ts[-1]) + 1.0 / fc.fps, float(sc["end_s"].max()))
    starts = sc["start_s"].to_numpy()
    rows = sc.to_dicts()
    spans = [(float(x["start_s"]), float(x["end_s"]), -1 if x["cluster"] is None else int(x["cluster"]),
              r.label(modality, x["cluster"]) if x["cluster"] is not None and x["cluster"] >= 0 else "noise")
             for x in rows]
    an = r.clip("anomalies", clip)
    anomalies = [(float(a), float(b)) for a, b in zip(an["start_s"], an["end_s"])] if an is not None else []
    pps = w / window_s
    pad = w // 2 + 2
    strip = _strip_image(spans, anomalies, dur, pps, pad)
    res = VideoResult(path, 0, fc.fps, w, h + STRIP_H, clusters=len({s[2] for s in spans if s[2] >= 0}))
    mid: list[np.ndarray] = []

    def frames() -> Iterator[np.ndarray]:
        for i in range(len(fc)):
            t = float(ts[i])
            j = max(0, int(np.searchsorted(starts, t, side="right")) - 1)
            x = rows[j]
            c = -1 if x["cluster"] is None else int(x["cluster"])
            if c >= 0:
                text, col = r.label(modality, c), cluster_rgb(c)
            else:
                full = x.get("cluster_full")
                near = f" (nearest: {r.label(modality, int(full))})" if full is not None and full >= 0 else ""
                text, col = "noise" + near, (0.0, 0.0, 0.0)
            img = np.zeros((h + STRIP_H, w, 3), np.uint8)
            img[:h] = _letterbox(fc.read(i), w, h)
            img[:28] = (img[:28] * 0.35).astype(np.uint8)
            cv2.rectangle(img, (6, 6), (22, 22), _bgr255(col), -1)
            cv2.rectangle(img, (6, 6), (22, 22), (255, 255, 255), 1)
            clock = f"{t:6.1f}s"
            cw = cv2.getTextSize(clock, FONT, 0.45, 1)[0][0]
            _text(img, _fit_text(text, w - cw - 50, 0.52), (30, 20), 0.52)
            _text(img, clock, (w - cw - 8, 20), 0.45)
            x0 = pad + int(round(t * pps)) - w // 2
            img[h:] = strip[:, x0:x0 + w]
            img[h:, w // 2 - 1:w // 2 + 1] = 255
            if i == len(fc) // 2:
                mid.append(img)
            yield img

    res.n_frames = _write(path, frames(), fc.fps, crf)
    if mid:
        res.poster = _poster(path, mid[0])
    return res
