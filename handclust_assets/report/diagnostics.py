"""EgoClean's per-clip figures as PNGs (matplotlib Agg canvas, no pyplot state, the dashboard's house style):

- `diagnostics_png`: the four-panel diagnostics (seed Fig 5/6): consecutive cosine distance, window
  self-similarity matrix, autocorrelation of the distance with its peak period, similarity to the previous cycle;
- `detection_png`: the detection plot (seed Fig 7/8): raw anomaly score (grey), EMA (blue), θ_on (red) and
  θ_off (orange), detected spans shaded red, ground-truth spans (when known) as a green band on top.

Every figure names its embedding source ("V-JEPA 2 windows" or "offline scene embeddings, 1-s windows"), and
draws a readable "not enough windows" panel instead of failing on 0, 1 or 2 windows or on constant embeddings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from handclust_assets.science.anomaly_diagnostics import AnomalyDiagnostics

DPI = 100
MAX_SSM = 480  # the self-similarity image is block-averaged down to at most this many windows a side
VJEPA_LABEL = "V-JEPA 2 windows"
SCENE_LABEL = "offline scene embeddings, 1-s windows"
RAW_GREY, EMA_BLUE, ON_RED, OFF_ORANGE, SPAN_RED, GT_GREEN = "#8c8c8c", "#1f77b4", "#d62728", "#ff7f0e", "#d62728", \
    "#2ca02c"


def embedding_source_label(table: str, model: str | None = None) -> str:
    """The label every anomaly figure carries: 'video_embeddings' -> V-JEPA 2 windows; 'scene_embeddings' ->
    offline scene embeddings pooled to 1-s windows (or '<model> scene embeddings, 1-s windows' when the scene
    model is named and is not the offline backbone)."""
    if table == "video_embeddings":
        return VJEPA_LABEL
    if model and "efficientnet" not in model.lower():
        return f"{model} scene embeddings, 1-s windows"
    return SCENE_LABEL


def _fig(w_in: float, h_in: float) -> Figure:
    fig = Figure(figsize=(w_in, h_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def _style(ax, title: str, xlabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)


def _block_mean(m: np.ndarray, max_side: int) -> tuple[np.ndarray, int]:
    n = len(m)
    f = int(np.ceil(n / max_side)) if n > max_side else 1
    if f == 1:
        return m, 1
    k = n // f
    return np.nanmean(m[: k * f, : k * f].reshape(k, f, k, f), axis=(1, 3)), f


def _panel_distance(ax, d: AnomalyDiagnostics) -> None:
    _style(ax, "(1) consecutive cosine distance", "time (s)")
    if len(d.consecutive_distance) == 0:
        return _empty(ax, "needs ≥ 2 windows")
    ax.plot(d.t_s[1:], d.consecutive_distance, lw=0.9, color=EMA_BLUE)
    ax.set_ylabel("1 − cos(eᵢ, eᵢ₊₁)", fontsize=9)


def _panel_ssm(ax, fig: Figure, d: AnomalyDiagnostics) -> None:
    ax.set_title("(2) window self-similarity (cosine)", fontsize=10)
    if len(d.ssm) < 2 or not np.isfinite(d.ssm).any():
        return _empty(ax, "needs ≥ 2 valid windows")
    img, _ = _block_mean(d.ssm, MAX_SSM)
    lo, hi = np.nanpercentile(img, [2, 99.5])
    t0, t1 = float(d.t_s[0]), float(d.t_s[-1] + d.step_s)
    im = ax.imshow(img, cmap="viridis", vmin=lo, vmax=max(hi, lo + 1e-6), extent=(t0, t1, t1, t0),
                   interpolation="nearest", aspect="auto")
    ax.set_xlabel("time (s)", fontsize=9)
    ax.set_ylabel("time (s)", fontsize=9)
    ax.tick_params(labelsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)


def _panel_acf(ax, d: AnomalyDiagnostics) -> None:
    _style(ax, "(3) autocorrelation of the distance", "lag (s)")
    if len(d.acf) < 2 or not np.isfinite(d.acf).any():
        return _empty(ax, "no autocorrelation (too few windows or a constant signal)")
    lags = np.arange(len(d.acf)) * d.step_s
    ax.plot(lags, d.acf, lw=1.0, color=EMA_BLUE)
    ax.axhline(0, color="#333", lw=0.6)
    if d.period_windows:
        ax.axvline(d.period_s, color=ON_RED, lw=1.0, ls="--")
        ax.set_title(f"(3) autocorrelation of the distance — period {d.period_s:.1f} s (r = {d.acf_peak:.2f})",
                     fontsize=10)
    else:
        ax.set_title("(3) autocorrelation of the distance — no repeating period", fontsize=10)


def _panel_cycle(ax, d: AnomalyDiagnostics) -> None:
    _style(ax, "(4) similarity to the previous cycle", "time (s)")
    if not d.period_windows or not np.isfinite(d.cycle_similarity).any():
        return _empty(ax, "no repeating period: no cycle to compare with")
    ax.plot(d.t_s, d.cycle_similarity, lw=0.9, color=EMA_BLUE)
    ax.set_xlim(float(d.t_s[0]), float(d.t_s[-1] + d.step_s))
    ax.set_ylabel(f"cos(eᵢ, eᵢ₋{d.period_windows})", fontsize=9)


def diagnostics_png(diag: AnomalyDiagnostics, path: str | Path, source_label: str, clip: str | None = None
                    ) -> Path:
    """The four diagnostics panels in one PNG, titled with the clip and the embedding source."""
    fig = _fig(12.0, 7.6)
    axes = fig.subplots(2, 2)
    fig.subplots_adjust(left=0.07, right=0.97, top=0.90, bottom=0.08, hspace=0.38, wspace=0.22)
    head = f"{clip} — " if clip else ""
    fig.suptitle(f"{head}anomaly diagnostics from {source_label} ({len(diag.t_s)} windows)", fontsize=11)
    _panel_distance(axes[0, 0], diag)
    _panel_ssm(axes[0, 1], fig, diag)
    _panel_acf(axes[1, 0], diag)
    _panel_cycle(axes[1, 1], diag)
    return _save(fig, Path(path))


def detection_png(scores: pl.DataFrame, spans: pl.DataFrame, path: str | Path, source_label: str,
                  gt: pl.DataFrame | None = None, clip: str | None = None, duration_s: float | None = None) -> Path:
    """Raw score, EMA, θ_on / θ_off, detected spans (red shading), GT spans (green band) for one clip.

    `scores`: anomaly.SCORE_SCHEMA columns (t_s, raw_score, smoothed, theta_on, theta_off); `spans` and `gt`:
    start_s / end_s columns."""
    fig = _fig(12.0, 3.1)
    ax = fig.add_axes((0.06, 0.3, 0.92, 0.56))
    head = f"{clip} — " if clip else ""
    _style(ax, f"{head}anomaly detection from {source_label}", "time (s)")
    if scores.height == 0:
        _empty(ax, "no windows scored")
        return _save(fig, Path(path))
    sc = scores.sort("t_s")
    t = sc["t_s"].to_numpy()
    ax.plot(t, sc["raw_score"].to_numpy(), lw=0.7, color=RAW_GREY, label="raw: 1 − typicality")
    ax.plot(t, sc["smoothed"].to_numpy(), lw=1.5, color=EMA_BLUE, label="EMA")
    ax.axhline(float(sc["theta_on"][0]), color=ON_RED, lw=1.0, label="θ_on (median + contrast)")
    ax.axhline(float(sc["theta_off"][0]), color=OFF_ORANGE, lw=1.0, label="θ_off (hysteresis)")
    for a, b in zip(spans["start_s"].to_list(), spans["end_s"].to_list()):
        ax.axvspan(a, b, color=SPAN_RED, alpha=0.18, lw=0)
    if gt is not None and gt.height:
        tr = ax.get_xaxis_transform()
        for i, (a, b) in enumerate(zip(gt["start_s"].to_list(), gt["end_s"].to_list())):
            ax.fill_between([a, b], 0.94, 1.0, transform=tr, color=GT_GREEN, alpha=0.8, lw=0,
                            label="ground truth" if i == 0 else None)
    ax.set_xlim(0, duration_s or float(t[-1] + (t[1] - t[0] if len(t) > 1 else 1.0)))
    ax.set_ylabel("anomaly score", fontsize=9)
    ax.legend(fontsize=8, ncol=5, loc="upper left", frameon=False, bbox_to_anchor=(0.0, -0.2))
    return _save(fig, Path(path))
