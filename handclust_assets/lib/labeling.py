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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import polars as pl

from handclust_assets.lib.storage import Storage, as_storage


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
    """Labels from a vision-language model behind any OpenAI-compatible chat-completions endpoint, through the
    `openai` client (no retries: a failure falls back at once, the run does not wait on a flaky endpoint)."""

    PROMPT = ("These keyframes show one activity cluster discovered in egocentric helmet-camera video of manual work. "
              "Evidence: {summary}. Reply with a short activity label of at most 5 words, nothing else.")

    def __init__(self, base_url: str, api_key: str, model: str, timeout_s: float = 30.0, max_keyframes: int = 4,
                 cache_dir: str | Path | Storage | None = None) -> None:
        import openai

        self.url = base_url.rstrip("/")
        self.model = model
        self.max_keyframes = max_keyframes
        self.client = openai.OpenAI(base_url=self.url, api_key=api_key or "none", timeout=timeout_s, max_retries=0)
        # answers cached by content: a folder, or a Storage (the results root's label_cache/, local or a bucket)
        self.cache = as_storage(cache_dir) if cache_dir else None
        self.requests_made = 0

    def _request(self, ev: ClusterEvidence) -> tuple[list[dict], str]:
        prompt = self.PROMPT.format(summary=ev.summary())
        images = [_jpeg_data_url(k) for k in ev.keyframes[: self.max_keyframes]]
        messages = [{"role": "user", "content": [{"type": "text", "text": prompt}, *[
            {"type": "image_url", "image_url": {"url": u}} for u in images]]}]
        key = hashlib.sha256(json.dumps([self.model, prompt, images]).encode()).hexdigest()[:24]
        return messages, key

    def label(self, ev: ClusterEvidence, fallback: str | None = None) -> tuple[str, str]:
        """(label, source): source is `<model>`, `cache:<model>` or `offline-fallback: <reason>`; on failure the
        label is `fallback` (e.g. the corpus-relative offline label), else `offline_label(ev)`."""
        import openai

        off = fallback if fallback is not None else offline_label(ev)
        messages, key = self._request(ev)
        cached = self.cache.read_json(f"{key}.json") if self.cache is not None else None
        if cached is not None:
            return cached["label"], f"cache:{self.model}"
        try:
            self.requests_made += 1
            reply = self.client.chat.completions.create(model=self.model, messages=messages, max_tokens=20,
                                                        temperature=0)
            label = clean_label(reply.choices[0].message.content or "")
            if not label:
                raise ValueError("empty label in the response")
        except openai.APIStatusError as e:
            return off, f"offline-fallback: {self.url} answered HTTP {e.status_code}"
        except openai.APIConnectionError as e:  # includes timeouts
            return off, f"offline-fallback: {self.url} unreachable ({type(e).__name__})"
        except (openai.APIError, IndexError, ValueError, TypeError) as e:
            return off, f"offline-fallback: unexpected response from {self.url} ({e})"
        if self.cache is not None:
            self.cache.write_json({"label": label, "model": self.model}, f"{key}.json")
        return label, self.model


# ---- labelling a clustering ------------------------------------------------------------------------------------
LABELS_SCHEMA = {"modality": pl.Utf8, "cluster": pl.Int64, "label": pl.Utf8, "source": pl.Utf8,
                 "n_segments": pl.Int64, "n_clips": pl.Int64, "medoid_clip": pl.Utf8, "medoid_segment": pl.Int64,
                 "evidence": pl.Utf8}


def _frames_in(table: pl.DataFrame | None, segs: pl.DataFrame) -> pl.DataFrame | None:
    """The rows of a per-frame table that fall inside the given segments."""
    if table is None:
        return None
    return table.join(segs.select("clip", "start_frame", "end_frame"), on="clip").filter(
        (pl.col("frame_idx") >= pl.col("start_frame")) & (pl.col("frame_idx") < pl.col("end_frame")))


def cluster_evidence(modality: str, cluster: int, members: pl.DataFrame, tables: dict[str, pl.DataFrame]
                     ) -> ClusterEvidence:
    """What a cluster's segments show: top tools, rhythm, head and hand/object motion, where it moves, the phase.
    `members`: (clip, segment_idx) rows; `tables`: segments, clips and, where present, tool_scores, flow_rhythm,
    egomotion."""
    segs = tables["segments"].join(members.select("clip", "segment_idx"), on=["clip", "segment_idx"])
    ev = ClusterEvidence(cluster_id=cluster, modality=modality, n_segments=members.height,
                         n_clips=members["clip"].n_unique())
    if (tl := _frames_in(tables.get("tool_scores"), segs)) is not None and tl.height:
        top = tl.group_by("prompt").agg(pl.col("score").mean()).sort("score", descending=True).head(3)
        ev.top_tools = list(zip(top["prompt"].to_list(), top["score"].to_list()))
    if (r := _frames_in(tables.get("flow_rhythm"), segs)) is not None and r.height:
        ev.motion_period_s = float(r["period_s"].drop_nans().median() or np.nan)
        ev.periodicity = float(r["strength"].mean())
    if (e := _frames_in(tables.get("egomotion"), segs)) is not None and e.height:
        ev.camera_motion = float(e["camera_mag"].mean())
        ev.residual_motion = float(e["residual_mag"].mean())
        if "residual_layout" in e.columns:
            lay = np.asarray(e["residual_layout"].to_list(), np.float64)
            ev.motion_layout = np.nanmean(lay, axis=0).tolist() if lay.size else []
    clips = tables.get("clips")
    ph = members.join(clips.select("clip", "phase"), on="clip")["phase"] if clips is not None else pl.Series([])
    ev.phase = ph.mode().sort()[0] if ph.len() else "unknown"  # a tie: the first name, not whichever came first
    return ev


def label_clustering(clusters: pl.DataFrame, tables: dict[str, pl.DataFrame],
                     medoids: dict[str, dict[int, tuple[str, int]]], labeler: OpenAICompatibleLabeler | None = None,
                     keyframes: Callable[[str, int, int], list[np.ndarray]] | None = None) -> pl.DataFrame:
    """One label per (modality, cluster) of a clustering (noise excluded): offline labels judged against the
    modality's other clusters, or the VLM's answer on the medoid's keyframes (falling back to the offline label).
    `medoids`: modality -> cluster -> (clip, segment_idx); `keyframes(clip, start_frame, end_frame)` reads frames."""
    rows = []
    for (m,), cm in clusters.filter(pl.col("cluster") >= 0).sort("modality").group_by(["modality"],
                                                                                        maintain_order=True):
        groups = sorted(cm.group_by(["cluster"]), key=lambda kv: kv[0][0])
        evs = [cluster_evidence(m, int(c), g, tables) for (c,), g in groups]
        for ev, off in zip(evs, offline_labels(evs)):
            med_clip, med_seg = medoids.get(m, {}).get(ev.cluster_id) or (
                groups[evs.index(ev)][1]["clip"][0], int(groups[evs.index(ev)][1]["segment_idx"][0]))
            label, source = off, "offline"
            if labeler is not None:
                seg = tables["segments"].filter((pl.col("clip") == med_clip) & (pl.col("segment_idx") == med_seg))
                if keyframes is not None and seg.height:
                    ev.keyframes = keyframes(med_clip, int(seg["start_frame"][0]), int(seg["end_frame"][0]))
                label, source = labeler.label(ev, fallback=off)
            rows.append({"modality": m, "cluster": ev.cluster_id, "label": label, "source": source,
                         "n_segments": ev.n_segments, "n_clips": ev.n_clips, "medoid_clip": med_clip,
                         "medoid_segment": med_seg, "evidence": ev.summary()})
    return pl.DataFrame(rows, schema=LABELS_SCHEMA).sort("modality", "cluster")


def medoid_segments(features: pl.DataFrame, clusters: pl.DataFrame, entry: dict | None) -> dict[int, tuple[str, int]]:
    """cluster -> (clip, segment_idx) of its medoid in the space the clustering used (`entry` of the saved cluster
    model); without a usable space, the cluster's first segment."""
    from handclust_assets.science.clustering import medoids
    from handclust_assets.science.crossclip import space_rows

    g = clusters.filter(pl.col("cluster") >= 0).select("clip", "segment_idx", "cluster")
    out: dict[int, tuple[str, int]] = {}
    rows = space_rows(features, entry) if entry is not None else None
    if rows is not None:
        k = rows[0].with_row_index("row").join(g, on=["clip", "segment_idx"])
        x = rows[1][k["row"].to_numpy()]
        for c, i in medoids(x, k["cluster"].to_numpy()).items():
            out[c] = (k["clip"][i], int(k["segment_idx"][i]))
    for (c,), grp in g.group_by(["cluster"]):
        out.setdefault(int(c), (grp["clip"][0], int(grp["segment_idx"][0])))
    return out
