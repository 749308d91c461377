"""The repetition-counting figure of a clip's drilldown: the consensus period tracked through time and its strength
(table `period_curve`, rows with signal == "consensus"; period_s NaN where aperiodic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

CONSENSUS = "consensus"


def period_curve_png(curve: pl.DataFrame, path: str | Path, duration_s: float | None = None,
                     spans: pl.DataFrame | None = None) -> bool:
    """Two stacked panels (period in s; strength in [0, 1]) over time; count spans (start_s/end_s) shaded.
    False (nothing written) when the clip has no consensus rows."""
    c = curve.filter(pl.col("signal") == CONSENSUS).sort("t_s") if "signal" in curve.columns else curve.clear()
    if not c.height:
        return False
    t = c["t_s"].to_numpy().astype(float)
    period = c["period_s"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    strength = c["strength"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    fig = Figure(figsize=(12.0, 2.8), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.add_axes((0.07, 0.52, 0.92, 0.40)), fig.add_axes((0.07, 0.14, 0.92, 0.30))
    top.plot(t, period, lw=1.4, color="#1f77b4")
    top.set_ylabel("period (s)", fontsize=9)
    if not np.isfinite(period).any():
        top.text(0.5, 0.5, "aperiodic throughout", ha="center", va="center", transform=top.transAxes, color="#666")
    bottom.plot(t, strength, lw=1.0, color="#2ca02c")
    bottom.set_ylim(0, 1.02)
    bottom.set_ylabel("strength", fontsize=9)
    bottom.set_xlabel("time (s)", fontsize=9)
    for ax in (top, bottom):
        ax.set_xlim(0, duration_s or float(t[-1]) or 1.0)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25)
        if spans is not None and spans.height:
            for a, b in zip(spans["start_s"].to_list(), spans["end_s"].to_list()):
                ax.axvspan(a, b, color="#999", alpha=0.12, lw=0)
    top.tick_params(labelbottom=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, facecolor="white")
    return True
