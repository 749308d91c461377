"""The dashboard's figures (PNG via matplotlib's Agg canvas, no pyplot state) and JPEG thumbnails."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from handclust_assets.report.analysis import ModalityStatus, coverage, segments_of_cluster
from handclust_assets.report.data import ABSENT_RGB, ALL_MODALITIES, Results, cluster_rgb, finite
from handclust_assets.science.clustering import l2n

DPI = 100
MAX_SSM = 480
STATE_COLORS = {"detected": (0.10, 0.45, 0.22), "tracked": (0.55, 0.80, 0.55)}
GT_COLORS = ((0.40, 0.76, 0.65), (0.99, 0.55, 0.38), (0.55, 0.63, 0.80), (0.91, 0.54, 0.76), (0.65, 0.85, 0.33),
             (1.00, 0.85, 0.18), (0.90, 0.77, 0.58), (0.70, 0.70, 0.70))


def _fig(w_in: float, h_in: float) -> Figure:
    fig = Figure(figsize=(w_in, h_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


def write_thumb(img: np.ndarray, path: Path, width: int = 200, quality: int = 82) -> Path:
    """RGB uint8 -> JPEG thumbnail `width` px wide."""
    h, w = img.shape[:2]
    tw = min(width, w)
    th = max(1, int(round(h * tw / w)))
    small = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for {path}")
    path.write_bytes(buf.tobytes())
    return path


def _short_reason(reason: str) -> str:
    low = reason.lower()
    if "could not be loaded" in low or low.startswith("model unavailable"):
        return "absent: model unavailable"
    if "failed" in low:
        return "absent: its asset failed"
    return "absent: no results"


def _spans(ax, y: float, h: float, spans: list[tuple[float, float, tuple, str]], px_per_s: float) -> None:
    for a, b, col, text in spans:
        ax.add_patch(_rect(a, y, b - a, h, col))
        if text and (b - a) * px_per_s > 7 * len(text) + 6:
            lum = 0.299 * col[0] + 0.587 * col[1] + 0.114 * col[2]
            ax.text((a + b) / 2, y + h / 2, text, ha="center", va="center", fontsize=8,
                    color="black" if lum > 0.55 else "white", clip_on=True)


def _rect(x: float, y: float, w: float, h: float, col: tuple):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor=col, edgecolor="white", linewidth=0.4)


Row = tuple[str, list[tuple[float, float, tuple, str]], str]  # name, spans (start, end, colour, text), note


def _runs_of(labels: list, t: np.ndarray, step: float) -> list[tuple[float, float, object]]:
    """(start s, end s, label) of each run of equal consecutive labels."""
    out, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            out.append((float(t[start]), float(t[i - 1] + step), labels[start]))
            start = i
    return out


def _ground_truth_row(r: Results, clip: str) -> list[Row]:
    gt = r.clip_nonempty("ground_truth", clip)
    if gt is None or not {"activity", "t_s"} <= set(gt.columns):
        return []
    g = gt.sort("t_s")
    acts = sorted(set(gt["activity"].drop_nulls().to_list()))
    cmap = {a: GT_COLORS[i % len(GT_COLORS)] for i, a in enumerate(acts)}
    t = g["t_s"].to_numpy()
    step = float(np.median(np.diff(t))) if len(t) > 1 else 0.2
    return [("ground truth", [(a, b, cmap.get(lab, ABSENT_RGB), str(lab))
                              for a, b, lab in _runs_of(g["activity"].to_list(), t, step)], "")]


def _modality_rows(r: Results, clip: str, status: dict[str, ModalityStatus], dur: float) -> list[Row]:
    rows: list[Row] = []
    for m in ALL_MODALITIES:
        st = status.get(m)
        sc = segments_of_cluster(r, clip, m)
        if sc is None:
            rows.append((r.modality_name(m), [(0.0, dur, ABSENT_RGB, "")],
                         _short_reason(st.reason) if st else "absent"))
            continue
        spans = []
        for s in sc.iter_rows(named=True):
            c = -1 if s["cluster"] is None else int(s["cluster"])
            text = "noise" if c < 0 else (r.label(m, c) if m == "fusion" else f"C{c}")
            spans.append((float(s["start_s"]), float(s["end_s"]), cluster_rgb(c), text))
        rows.append((r.modality_name(m), spans, ""))
    return rows


def _event_rows(r: Results, clip: str) -> list[Row]:
    """Anomaly spans and the segments whose repetition period was accepted."""
    rows: list[Row] = []
    an = r.clip("anomalies", clip)
    if an is not None:
        sp = [(float(a), float(b), (0.85, 0.1, 0.1), "anomaly") for a, b in zip(an["start_s"], an["end_s"])]
        rows.append(("anomaly spans", sp, "" if sp else "none detected"))
    rep, seg = r.clip_nonempty("repetitions", clip), r.clip_nonempty("segments", clip)
    if rep is not None and seg is not None:
        j = seg.join(rep, on="segment_idx", how="inner").filter(pl.col("accepted").fill_null(False))
        sp = [(float(s["start_s"]), float(s["end_s"]), (0.20, 0.63, 0.17),
               f"×{s['rep_count']:.0f}" if finite(s["rep_count"]) else "") for s in j.iter_rows(named=True)]
        rows.append(("rep. period accepted", sp, "" if sp else "none accepted"))
    return rows


def _body_rows(r: Results, clip: str) -> list[Row]:
    """Where pose and hands were seen (detected / tracked), as runs of frames."""
    fc = r.frame_cache(clip)
    fps = fc.fps if fc is not None else 5.0
    rows: list[Row] = []
    for tab in ("pose", "hands"):
        cv = coverage(r, tab, clip)
        if cv is None:
            continue
        sp = []
        for state, arr in [(k, v) for k, v in sorted(cv[3].items())] or [("detected", cv[2])]:
            col = STATE_COLORS.get(state, STATE_COLORS["detected"])
            seen = np.asarray(arr, bool).tolist()
            sp += [(a, b, col, "") for a, b, on in _runs_of(seen, np.arange(len(seen)) / fps, 1 / fps) if on]
        detail = ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(cv[1].items()))
        rows.append((f"{tab} {100 * cv[0]:.0f}%" + (f" ({detail})" if len(cv[1]) > 1 else ""), sp,
                     "" if sp else "no detections"))
    return rows


def _draw_strips(rows: list[Row], dur: float, path: Path) -> None:
    n = len(rows)
    fig = _fig(12.0, 0.42 * n + 0.75)
    ax = fig.add_axes((0.16, 0.55 / (0.42 * n + 0.75), 0.82, 1 - 0.7 / (0.42 * n + 0.75)))
    px_per_s = 0.82 * 12.0 * DPI / dur
    for i, (_name, spans, note) in enumerate(rows):
        y = n - 1 - i
        ax.add_patch(_rect(0, y + 0.1, dur, 0.8, (0.97, 0.97, 0.97)))
        _spans(ax, y + 0.1, 0.8, spans, px_per_s)
        if note:
            ax.text(dur / 2, y + 0.5, note, ha="center", va="center", fontsize=8.5, color="#555555", style="italic")
    ax.set_xlim(0, dur)
    ax.set_ylim(0, n)
    ax.set_yticks([n - 1 - i + 0.5 for i in range(n)])
    ax.set_yticklabels([row[0] for row in rows], fontsize=9)
    ax.set_xlabel("time (s)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)
    _save(fig, path)


def timeline_png(r: Results, clip: str, status: dict[str, ModalityStatus], path: Path) -> list[str]:
    """Strips on one time axis: ground truth (if any), every modality's cross-clip clusters (noise black, absent
    grey), anomaly spans, accepted repetition periods, hand/pose detections. Returns the row names drawn."""
    dur = max(r.duration(clip), 1e-6)
    rows = [*_ground_truth_row(r, clip), *_modality_rows(r, clip, status, dur), *_event_rows(r, clip),
            *_body_rows(r, clip)]
    _draw_strips(rows, dur, path)
    return [row[0] for row in rows]

def ssm_png(r: Results, clip: str, path: Path) -> str | None:
    """Cosine self-similarity of the clip's per-frame scene embeddings; returns the model name, None if absent."""
    emb = r.clip_nonempty("scene_embeddings", clip)
    if emb is None:
        return None
    emb = emb.sort("frame_idx")
    x = l2n(np.nan_to_num(np.asarray(emb["embedding"].to_list(), np.float64)))
    t = emb["t_s"].to_numpy()
    step = max(1, int(np.ceil(len(x) / MAX_SSM)))
    x, t = x[::step], t[::step]
    s = x @ x.T
    fig = _fig(5.6, 5.0)
    ax = fig.add_axes((0.12, 0.1, 0.72, 0.82))
    end = float(t[-1] + (t[1] - t[0] if len(t) > 1 else 0.2))
    im = ax.imshow(s, cmap="magma", extent=(0, end, end, 0), interpolation="nearest",
                   vmin=float(np.percentile(s, 2)), vmax=1.0)
    seg = r.clip_nonempty("segments", clip)
    if seg is not None:
        for b in seg["start_s"].to_list()[1:]:
            ax.axvline(b, color="white", lw=0.4, alpha=0.45)
            ax.axhline(b, color="white", lw=0.4, alpha=0.45)
    ax.set_xlabel("time (s)", fontsize=9)
    ax.set_ylabel("time (s)", fontsize=9)
    ax.tick_params(labelsize=8)
    model = ", ".join(str(v) for v in emb["model"].unique().to_list()) if "model" in emb.columns else "scene"
    ax.set_title(f"scene self-similarity ({model})", fontsize=10)
    cax = fig.add_axes((0.87, 0.1, 0.03, 0.82))
    fig.colorbar(im, cax=cax).ax.tick_params(labelsize=8)
    _save(fig, path)
    return model


def rhythm_png(r: Results, clip: str, path: Path) -> bool:
    """Flow magnitude, dominant period (12-s FFT), periodicity strength; fusion activities shaded on top."""
    flow = r.clip_nonempty("flow", clip)
    rh = r.clip_nonempty("flow_rhythm", clip)
    if flow is None and rh is None:
        return False
    fig = _fig(12.0, 4.6)
    axes = fig.subplots(3, 1, sharex=True)
    fig.subplots_adjust(left=0.07, right=0.99, top=0.97, bottom=0.1, hspace=0.12)
    if flow is not None and "flow_mag" in flow.columns:
        f = flow.sort("frame_idx")
        axes[0].plot(f["t_s"].to_numpy(), f["flow_mag"].to_numpy(), lw=0.8, color="#1f77b4")
    else:
        axes[0].text(0.5, 0.5, "flow table absent", transform=axes[0].transAxes, ha="center", color="#777")
    sc = segments_of_cluster(r, clip, "fusion")
    if sc is not None:
        for s in sc.iter_rows(named=True):
            c = -1 if s["cluster"] is None else int(s["cluster"])
            axes[0].axvspan(s["start_s"], s["end_s"], color=cluster_rgb(c), alpha=0.12 if c >= 0 else 0.05, lw=0)
    axes[0].set_ylabel("flow mag", fontsize=9)
    if rh is not None:
        q = rh.sort("frame_idx")
        axes[1].plot(q["t_s"].to_numpy(), q["period_s"].to_numpy(), lw=1.0, color="#d62728")
        axes[2].plot(q["t_s"].to_numpy(), q["strength"].to_numpy(), lw=1.0, color="#2ca02c")
        axes[2].set_ylim(0, max(0.05, float(np.nanmax(q["strength"].to_numpy())) * 1.1)
                         if q.height and np.isfinite(np.nanmax(q["strength"].to_numpy())) else 1)
    else:
        for ax in axes[1:]:
            ax.text(0.5, 0.5, "flow_rhythm table absent", transform=ax.transAxes, ha="center", color="#777")
    axes[1].set_ylabel("period (s)", fontsize=9)
    axes[2].set_ylabel("strength", fontsize=9)
    axes[2].set_xlabel("time (s)", fontsize=9)
    for ax in axes:
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25)
        ax.set_xlim(0, r.duration(clip) or None)
    _save(fig, path)
    return True


def anomaly_png(r: Results, clip: str, path: Path) -> str | None:
    """Anomaly score (raw, EMA), θ_on (median + contrast) / hysteresis θ_off, spans shaded. Returns the score source."""
    sc = r.clip_nonempty("anomaly_scores", clip)
    if sc is None:
        return None
    sc = sc.sort("t_s")
    fig = _fig(12.0, 2.3)
    ax = fig.add_axes((0.07, 0.22, 0.92, 0.7))
    t = sc["t_s"].to_numpy()
    ax.plot(t, sc["raw_score"].to_numpy(), lw=0.7, color="#999999", label="1 − typicality")
    ax.plot(t, sc["smoothed"].to_numpy(), lw=1.4, color="#d62728", label="EMA")
    if sc.height:
        ax.axhline(float(sc["theta_on"][0]), color="#333", lw=0.8, ls="--", label="θ_on (median + contrast)")
        ax.axhline(float(sc["theta_off"][0]), color="#333", lw=0.8, ls=":", label="θ_off")
    an = r.clip("anomalies", clip)
    if an is not None:
        for a, b in zip(an["start_s"], an["end_s"]):
            ax.axvspan(a, b, color="#d62728", alpha=0.15, lw=0)
    ax.set_xlim(0, r.duration(clip) or None)
    ax.set_xlabel("time (s)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, ncol=4, loc="upper right", frameon=False)
    _save(fig, path)
    return str(sc["source"][0]) if "source" in sc.columns and sc.height else "scores"


def segment_map_png(r: Results, path: Path) -> dict | None:
    """The 2-D map of all segments, coloured by fusion cluster (labelled) and by clip."""
    sm = r.nonempty("segment_map")
    if sm is None:
        return None
    fig = _fig(12.0, 5.4)
    a1, a2 = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.03, right=0.99, top=0.93, bottom=0.22, wspace=0.08)
    cl = sm["cluster"].fill_null(-1).to_numpy()
    x, y = sm["x"].to_numpy(), sm["y"].to_numpy()
    for c in sorted(set(cl.tolist())):
        m = cl == c
        a1.scatter(x[m], y[m], s=22 if c >= 0 else 12, color=[cluster_rgb(c)], alpha=0.85 if c >= 0 else 0.5,
                   label=r.label("fusion", int(c)), edgecolors="white", linewidths=0.3)
    a1.set_title("coloured by fusion cluster", fontsize=10)
    a1.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, frameon=False)
    clips = sorted(set(sm["clip"].to_list()))
    cmap = {c: GT_COLORS[i % len(GT_COLORS)] if len(clips) <= len(GT_COLORS) else cluster_rgb(i)
            for i, c in enumerate(clips)}
    for c in clips:
        m = (sm["clip"] == c).to_numpy()
        a2.scatter(x[m], y[m], s=22, color=[cmap[c]], label=c, alpha=0.9, edgecolors="white", linewidths=0.3)
    a2.set_title("coloured by clip", fontsize=10)
    a2.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, frameon=False)
    for ax in (a1, a2):
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, path)
    return {"points": sm.height, "clusters": int(len(set(cl.tolist()) - {-1}))}
