"""Cluster labels: an offline default written from the evidence, or a vision-language model behind any
OpenAI-compatible `/chat/completions` endpoint (Gemini's works: base_url
`https://generativelanguage.googleapis.com/v1beta/openai/`, model e.g. `gemini-2.5-flash`).

HTTP answers are cached on disk by a hash of (model, prompt, keyframe bytes), so re-runs do not re-query.
Any HTTP failure falls back to the offline label and says why in `source`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np


@dataclass
class ClusterEvidence:
    cluster_id: int
    modality: str
    top_tools: list[tuple[str, float]] = field(default_factory=list)
    motion_period_s: float = float("nan")
    periodicity: float = 0.0
    camera_motion: float = 0.0  # mean camera (head) motion, frame widths per sampled frame
    residual_motion: float = 0.0
    phase: str = "unknown"
    motion_layout: list[float] = field(default_factory=list)  # share of residual motion per 4x3 frame cell
    n_segments: int = 0
    n_clips: int = 0
    keyframes: list[np.ndarray] = field(default_factory=list)

    def where(self) -> str:
        """The frame region holding most camera-compensated motion, e.g. "low left" ("" when unknown/even)."""
        lay = np.asarray(self.motion_layout, np.float64)
        if lay.size != 12 or not np.isfinite(lay).all() or lay.sum() <= 0:
            return ""
        grid = lay.reshape(3, 4) / lay.sum()
        if grid.max() < 1.5 / 12:  # motion spread evenly: no region stands out
            return ""
        r, c = np.unravel_index(int(np.argmax(grid)), grid.shape)
        return f"{('top', 'middle', 'low')[r]} {('left', 'centre', 'centre', 'right')[c]}"

    def summary(self) -> str:
        tools = ", ".join(f"{n} ({s:.2f})" for n, s in self.top_tools[:3]) or "none measured"
        where = self.where() or "spread out"
        return (f"cluster {self.cluster_id} of modality {self.modality}: {self.n_segments} segments in "
                f"{self.n_clips} clips; typical phase {self.phase}; top tools {tools}; motion period "
                f"{self.motion_period_s:.1f}s (periodicity {self.periodicity:.2f}); head motion "
                f"{self.camera_motion * 1000:.1f}, hand/object motion {self.residual_motion * 1000:.1f} (x1e-3 frame "
                f"widths), mostly {where}")


# thresholds in frame widths per sampled frame (5 fps)
HEAD_MOVING = 0.008
HAND_ACTIVE = 0.0015


@dataclass
class LabelContext:
    """Reference levels from all clusters being labelled together: motion is judged relative to the corpus's
    own stillest cluster, since absolute flow levels depend on the camera, lens and resolution."""

    still_camera: float
    still_residual: float
    moving_residual: float
    periodicity: float

    @classmethod
    def of(cls, evs: list[ClusterEvidence]) -> LabelContext:
        cam = np.asarray([e.camera_motion for e in evs], np.float64)
        res = np.asarray([e.residual_motion for e in evs], np.float64)
        still_cam = float(cam.min()) if len(cam) else 0.0
        moving = cam >= max(HEAD_MOVING_FLOOR, 3 * still_cam)
        per = [e.periodicity for e in evs if np.isfinite(e.motion_period_s)]
        return cls(still_cam, float(res[~moving].min()) if (~moving).any() else 0.0,
                   float(res[moving].min()) if moving.any() else 0.0, float(np.median(per)) if per else 1.0)


HEAD_MOVING_FLOOR = 0.004  # frame widths per sampled frame: below this the head is still, whatever the corpus
RELATIVE = 2.5  # "more" = this many times the stillest cluster's level


def offline_labels(evs: list[ClusterEvidence]) -> list[str]:
    """Labels for clusters of one modality, judged against each other; duplicates get their cluster id."""
    ctx = LabelContext.of(evs)
    labels = [offline_label(e, ctx) for e in evs]
    dup = {lab for lab in labels if labels.count(lab) > 1}
    return [f"{lab} #{e.cluster_id}" if lab in dup else lab for lab, e in zip(labels, evs)]


def offline_label(ev: ClusterEvidence, ctx: LabelContext | None = None) -> str:
    """A short, deterministic label from the evidence: motion regime (relative to `ctx` when given, else absolute
    thresholds), where the hands/objects move, the leading tool, and the rhythm."""
    if ctx is not None:
        moving = ev.camera_motion >= max(HEAD_MOVING_FLOOR, 3 * ctx.still_camera)
        if moving:
            busy = ctx.moving_residual > 0 and ev.residual_motion >= RELATIVE * ctx.moving_residual
            regime = "walking, hands busy" if busy else "walking"
        else:
            active = ev.residual_motion >= max(RELATIVE * ctx.still_residual, 1e-4)
            regime = "hand work" if active else "still"
        parts = [regime]
        if regime in ("hand work", "walking, hands busy") and ev.where():
            parts.append(ev.where())
        if ev.top_tools and ev.top_tools[0][1] >= 0.3:
            parts.append(ev.top_tools[0][0])
        if np.isfinite(ev.motion_period_s) and regime != "still" and ev.periodicity >= min(ctx.periodicity, 0.2):
            parts.append(f"rhythm {ev.motion_period_s:.1f}s")
        return " · ".join(parts)
    if ev.camera_motion >= HEAD_MOVING:
        regime = "walking" if not ev.top_tools or ev.top_tools[0][1] < 0.3 else "carrying"
    elif ev.residual_motion >= HAND_ACTIVE:
        regime = "hand work"
    else:
        regime = "idle"
    parts = [regime]
    if ev.top_tools and ev.top_tools[0][1] >= 0.3:
        parts.append(ev.top_tools[0][0])
    if np.isfinite(ev.motion_period_s) and ev.periodicity >= 0.2 and regime != "idle":
        parts.append(f"rhythm {ev.motion_period_s:.1f}s")
    return " · ".join(parts)


def _jpeg_data_url(img: np.ndarray, max_side: int = 384) -> str:
    h, w = img.shape[:2]
    s = min(1.0, max_side / max(h, w))
    small = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s)))) if s < 1 else img
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), 85])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()


def clean_label(text: str, max_words: int = 6) -> str:
    t = text.strip().splitlines()[0] if text.strip() else ""
    t = re.sub(r"^(label|activity)\s*:\s*", "", t, flags=re.I)
    t = t.strip(" \t\"'`.,;:!*")
    return " ".join(t.split()[:max_words])


class OpenAICompatibleLabeler:
    PROMPT = ("These keyframes show one activity cluster discovered in egocentric helmet-camera video of manual work. "
              "Evidence: {summary}. Reply with a short activity label of at most 5 words, nothing else.")

    def __init__(self, base_url: str, api_key: str, model: str, timeout_s: float = 30.0, max_keyframes: int = 4,
                 cache_dir: str | Path | None = None) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.model = model
        self.timeout_s = timeout_s
        self.max_keyframes = max_keyframes
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.requests_made = 0

    def _request(self, ev: ClusterEvidence) -> tuple[dict, str]:
        prompt = self.PROMPT.format(summary=ev.summary())
        images = [_jpeg_data_url(k) for k in ev.keyframes[: self.max_keyframes]]
        body = {"model": self.model, "max_tokens": 20, "temperature": 0,
                "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}, *[
                    {"type": "image_url", "image_url": {"url": u}} for u in images]]}]}
        key = hashlib.sha256(json.dumps([self.model, prompt, images]).encode()).hexdigest()[:24]
        return body, key

    def label(self, ev: ClusterEvidence, fallback: str | None = None) -> tuple[str, str]:
        """(label, source): source is `<model>`, `cache:<model>` or `offline-fallback: <reason>`; on failure the
        label is `fallback` (e.g. the corpus-relative offline label), else `offline_label(ev)`."""
        off = fallback if fallback is not None else offline_label(ev)
        body, key = self._request(ev)
        cache = self.cache_dir / f"{key}.json" if self.cache_dir else None
        if cache is not None and cache.exists():
            return json.loads(cache.read_text())["label"], f"cache:{self.model}"
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.api_key}"})
        try:
            self.requests_made += 1
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                data = json.loads(r.read())
            label = clean_label(data["choices"][0]["message"]["content"])
            if not label:
                raise ValueError("empty label in the response")
        except urllib.error.HTTPError as e:
            return off, f"offline-fallback: {self.url} answered HTTP {e.code}"
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            return off, f"offline-fallback: {self.url} unreachable ({e})"
        except (KeyError, IndexError, ValueError, json.JSONDecodeError) as e:
            return off, f"offline-fallback: unexpected response from {self.url} ({e})"
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps({"label": label, "model": self.model}))
        return label, self.model
