"""The lab dashboard: seed 000's static lab page, rebuilt from the current results as a self-contained static
site (`storage/dashboard/index.html` + `img/` + `dashboard.css` + `dashboard.js`; nothing from a CDN).

The HTML comes from jinja2 templates (`report/templates/`, autoescaped): each section's function gathers plain
values from the result tables and renders its template. A missing or empty table makes that section say why,
and a section that raises is reported on the page (and in `DashboardResult.errors`) instead of breaking the page.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import polars as pl
from markupsafe import Markup

from handclust_assets.lib.storage import atomic_write_bytes, replace_dir
from handclust_assets.report import analysis, figures
from handclust_assets.report.data import (
    ALL_MODALITIES,
    MODALITY_SIGNAL,
    MODALITY_SOURCE,
    Results,
    cluster_rgb,
    finite,
    hex_of,
)
from handclust_assets.report.videos import overlay_path, reel_path

STATIC_FILES = ("dashboard.css", "dashboard.js")
SECTION_TITLES = {
    "sec-modalities": "Modalities",
    "sec-ranking": "Cross-clip consistency",
    "sec-quality": "Cluster quality matrix",
    "sec-overview": "Clips at a glance",
    "sec-map": "Map of all segments",
    "sec-reel": "Activity preview reel",
    "sec-phase": "Phase-score ablation",
    "sec-ground-truth": "Ground-truth scores",
    "sec-anomalies": "Anomalies vs ground truth",
    "sec-repetition": "Repetition counts",
    "sec-alignment": "Alignment between repetitions",
    "sec-cost": "Cost per footage hour",
    "sec-clips": "Per-clip drilldowns",
    "sec-takeaways": "Take-aways",
}
DIAGNOSTICS_DIR = ("dashboard", "diagnostics")  # written by the anomaly_diagnostics asset, beside the page


def _f(x: object, fmt: str = "{:.3f}") -> str:
    return fmt.format(float(x)) if finite(x) else "–"


def _pct(x: object) -> str:
    return f"{100 * float(x):.0f}%" if finite(x) else "–"


@functools.cache
def environment() -> jinja2.Environment:
    """The templates' environment: autoescaped, strict about undefined names, filters f / pct / colour."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("handclust_assets.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(f=_f, pct=_pct, colour=lambda c: hex_of(cluster_rgb(c)))
    return env


def render(template: str, **ctx: Any) -> Markup:
    return Markup(environment().get_template(template).render(**ctx))


@dataclass
class DashboardResult:
    index: Path
    sections: list[str] = field(default_factory=list)  # ids of the sections on the page
    missing: dict[str, str] = field(default_factory=dict)  # section or subsection -> why it is empty
    errors: list[str] = field(default_factory=list)  # sections that raised (the page says so too)
    images: int = 0
    clusters: int = 0  # cross-clip clusters (all modalities)
    fusion_clusters: int = 0
    clips: int = 0
    segments: int = 0
    modalities_present: list[str] = field(default_factory=list)
    modalities_absent: dict[str, str] = field(default_factory=dict)
    takeaways: list[tuple[str, str]] = field(default_factory=list)
    labelled_clusters: int = 0  # distinct (modality, cluster) named with their label on the page
    seconds: float = 0.0


class _Page:
    def __init__(self, r: Results, img_dir: Path, res: DashboardResult, status: dict[str, analysis.ModalityStatus],
                 top: int) -> None:
        self.r = r
        self.img_dir = img_dir
        self.res = res
        self.status = status
        self.top = top
        self.res_labels: set[tuple[str, int]] = set()  # (modality, cluster) named on the page
        self.thumbs: dict[tuple[str, int], str] = {}

    def img_path(self, name: str) -> tuple[Path, str]:
        self.res.images += 1
        return self.img_dir / name, f"img/{name}"

    def figure(self, name: str, draw: Callable[[Path], Any]) -> tuple[Any, str | None]:
        """Draw `img/<name>`: (what `draw` returned, the page's link to it — None when it drew nothing)."""
        path, rel = self.img_path(name)
        out = draw(path)
        if out is None or out is False:
            self.res.images -= 1
            return out, None
        return out, rel

    def thumb(self, clip: str, frame: int) -> str | None:
        key = (clip, int(frame))
        if key not in self.thumbs:
            img = self.r.keyframe(clip, frame)
            if img is None:
                return None
            p, rel = self.img_path(f"thumbs/{clip}_{int(frame):06d}.jpg")
            figures.write_thumb(img, p)
            self.thumbs[key] = rel
        return self.thumbs[key]

    def missing(self, key: str, why: str) -> Markup:
        self.res.missing[key] = why
        return render("missing.html", key=key, why=why)

    def label(self, modality: str, cluster: int) -> str:
        """The cluster's label as shown on the page (counted as named)."""
        self.res_labels.add((modality, int(cluster)))
        return self.r.label(modality, int(cluster))


def _section(page: _Page, sid: str, body: Callable[[_Page], str], intro: str = "") -> Markup:
    try:
        inner = body(page)
    except Exception as ex:  # one broken section must not take the page down
        page.res.errors.append(f"{sid}: {type(ex).__name__}: {ex}")
        inner = render("error.html", what="This section failed to build:", etype=type(ex).__name__, message=str(ex),
                       tb=traceback.format_exc(limit=3))
    page.res.sections.append(sid)
    return render("section.html", sid=sid, title=SECTION_TITLES[sid], intro=Markup(intro), body=inner)


# ---- sections -----------------------------------------------------------------------------------------------
def _modalities(p: _Page) -> Markup:
    r, st = p.r, p.status
    rows = [{"name": r.modality_name(m), "signal": MODALITY_SIGNAL.get(m, ""), "present": st[m].present,
             "n_clustered": st[m].n_clustered, "n_clips": st[m].n_clips if m in MODALITY_SOURCE else None,
             "reason": st[m].reason} for m in ALL_MODALITIES]
    fallback = r.scene_model if r.scene_model and "dinov2" not in r.scene_model.lower() else ""
    return render("sections/modalities.html", rows=rows, fallback_model=fallback)


def _grid(p: _Page, m: str) -> list[dict] | None:
    """The medoid grid of one modality: per top cluster, per clip, its medoid segment's thumbnail (or None)."""
    r = p.r
    grid = analysis.medoid_grid(r, m, p.top)
    if not grid:
        return None
    rows = []
    for g in grid:
        p.res_labels.add((m, g.cluster))
        cells = []
        for c in r.clips:
            if c not in g.cells:
                cells.append(None)
                continue
            seg_idx, frame = g.cells[c]
            seg = r.segment(c, seg_idx) or {}
            when = f"{_f(seg.get('start_s'), '{:.1f}')}–{_f(seg.get('end_s'), '{:.1f}')} s"
            cells.append({"src": p.thumb(c, frame), "tip": f"{c} · segment {seg_idx} · {when} · {g.label}",
                          "segment_idx": seg_idx, "when": when})
        rows.append({"cluster": g.cluster, "label": g.label, "entropy": g.entropy, "size": g.size,
                     "n_clips": g.n_clips, "cells": cells})
    return rows


def _ranking(p: _Page) -> Markup:
    r = p.r
    cce = r.nonempty("cross_clip_entropy")
    if cce is None:
        return p.missing("sec-ranking", "cross_clip_entropy is missing or empty: materialize the evaluation "
                         "assets (cross_clip_clusters -> cross_clip_entropy).")
    order = cce.with_columns(pl.col("mean_entropy").fill_nan(None)).sort(
        ["mean_entropy", "multi_clip_share"], descending=True, nulls_last=True)
    cards = []
    for rank, row in enumerate(order.iter_rows(named=True), start=1):
        m, ent = row["modality"], row["mean_entropy"]
        grid = _grid(p, m)
        cards.append({"rank": rank, "m": m, "name": r.modality_name(m), "entropy": ent,
                      "bar_pct": 100 * float(ent) if finite(ent) else 0.0, "multi_clip_share": row["multi_clip_share"],
                      "k": row["k"], "noise": row["noise"], "n": row["n"], "grid": grid,
                      "no_grid": p.missing(f"grid-{m}", f"{r.modality_name(m)}: no clusters (every segment is "
                                           "noise).") if grid is None else ""})
    absent = [{"name": r.modality_name(m), "reason": p.status[m].reason} for m in ALL_MODALITIES
              if not p.status[m].present]
    return render("sections/ranking.html", cards=cards, clips=r.clips, absent=absent)


def _heat(noise: float) -> str:
    # green (low noise) -> amber -> red (all noise)
    x = max(0.0, min(1.0, noise))
    r_, g_ = (int(80 + 175 * x), int(200 - 120 * x))
    return f"background:rgba({r_},{g_},90,0.28)"


def _quality(p: _Page) -> Markup:
    r = p.r
    qm = r.nonempty("quality_matrix")
    if qm is None:
        return p.missing("sec-quality", "quality_matrix is missing or empty: materialize clip_clusters -> "
                         "quality_matrix.")
    present = set(qm["modality"].unique().to_list())
    mods = [m for m in ALL_MODALITIES if m in present] + sorted(present - set(ALL_MODALITIES))
    absent = [{"name": r.modality_name(m), "reason": p.status[m].reason} for m in ALL_MODALITIES if m not in present]
    rows = []
    for c in r.clips:
        q = qm.filter(pl.col("clip") == c)
        if not q.height:
            continue
        cells = []
        for m in mods:
            qq = q.filter(pl.col("modality") == m)
            x = qq.row(0, named=True) if qq.height else None
            cells.append(None if x is None else {**x, "style": _heat(x["noise_rate"] if finite(x["noise_rate"])
                                                                     else 1)})
        rows.append({"clip": c, "cells": cells})
    return render("sections/quality.html", present=[r.modality_name(m) for m in mods], absent=absent, rows=rows)


def _overview_row(p: _Page, c: str) -> dict:
    r = p.r
    sc = analysis.segments_of_cluster(r, c, "fusion")
    acts, noise = None, "–"
    if sc is not None:
        ids = sorted({int(x) for x in sc["cluster"].drop_nulls().to_list() if x >= 0})
        acts = [{"cluster": a, "label": r.label("fusion", a)} for a in ids]
        noise = _pct(float((sc["cluster"].fill_null(-1) < 0).mean()))
    rs = analysis.repetition_share(r, c)
    an = r.clip("anomalies", c)
    seg = r.clip_nonempty("segments", c)
    cov = [(cv[0] if cv is not None else None) for cv in (analysis.coverage(r, t, c) for t in ("hands", "pose"))]
    return {"clip": c, "phase": r.clip_info(c).get("phase", "–"), "duration": r.duration(c),
            "n_segments": seg.height if seg is not None else 0, "activities": acts, "noise": noise,
            "reps": f"{rs[0]}/{rs[1]} ({_pct(rs[0] / rs[1])})" if rs and rs[1] else "–",
            "n_anomalies": str(an.height) if an is not None else "–", "coverage": cov}


def _overview(p: _Page) -> Markup:
    if not p.r.clips:
        return p.missing("sec-overview", "no clips in storage yet.")
    return render("sections/overview.html", rows=[_overview_row(p, c) for c in p.r.clips])


def _map(p: _Page) -> Markup:
    info, rel = p.figure("segment_map.png", lambda path: figures.segment_map_png(p.r, path))
    if rel is None:
        return p.missing("sec-map", "segment_map is missing or empty: materialize the segment_map asset.")
    return render("sections/map.html", rel=rel, points=info["points"])


def _reel(p: _Page) -> Markup:
    rp = reel_path(p.r.store)
    if not rp.exists():
        return p.missing("sec-reel", "the preview reel has not been rendered: materialize the preview_reel asset.")
    poster = rp.with_suffix(".jpg")
    return render("sections/reel.html", name=rp.name, poster=poster.name if poster.exists() else "",
                  mb=rp.stat().st_size / 1e6)


def _best(df: pl.DataFrame, col: str) -> float | None:
    ok = df.filter(pl.col(col).is_not_null() & pl.col(col).is_not_nan())
    return float(ok[col].max()) if ok.height else None


def _is_best(x: object, best: float | None) -> bool:
    return best is not None and finite(x) and abs(float(x) - best) < 1e-12  # type: ignore[arg-type]


def _phase(p: _Page) -> Markup:
    ph = p.r.nonempty("phase_scores")
    if ph is None:
        return p.missing("sec-phase", "phase_scores is missing or empty: materialize the phase_scores asset.")
    best = _best(ph, "nmi")
    rows = [{**x, "note": x.get("note"), "best": _is_best(x["nmi"], best)} for x in ph.iter_rows(named=True)]
    return render("sections/phase.html", rows=rows)


def _gt(p: _Page) -> Markup:
    gt = p.r.nonempty("ground_truth_scores")
    if gt is None:
        return p.missing("sec-ground-truth", "no ground truth: only synthetic clips carry per-frame activity "
                         "labels (ground_truth_scores is missing or empty).")
    best = float(gt["mof"].max()) if gt.height else None
    rows = [{**x, "name": p.r.modality_name(x["modality"]), "best": _is_best(x["mof"], best)}
            for x in gt.iter_rows(named=True)]
    rs = p.r.nonempty("repetition_scores")
    reps = []
    if rs is not None and {"activity", "accepted_share", "median_count_error"} <= set(rs.columns):
        reps = [{"activity": x["activity"], "segments": x.get("segments", "–"), "periodic": x.get("periodic"),
                 "accepted_share": x["accepted_share"], "median_count_error": x["median_count_error"],
                 "within_10pct": x.get("within_10pct")} for x in rs.iter_rows(named=True)]
    return render("sections/gt.html", rows=rows, reps=reps)


def _alignment(p: _Page) -> Markup:
    al = p.r.nonempty("alignment_scores")
    if al is None:
        return p.missing("sec-alignment", "alignment_scores is missing or empty.")
    rows = []
    for (m,), g in al.sort("modality").group_by(["modality"], maintain_order=True):
        taus = g["mean_tau"].drop_nulls().drop_nans()
        top = g.filter(pl.col("mean_tau").is_not_nan()).sort("mean_tau", descending=True).head(1)
        best = ({"cluster": int(top["cluster"][0]), "label": p.r.label(m, int(top["cluster"][0])),
                 "tau": top["mean_tau"][0]} if top.height else None)
        rows.append({"name": p.r.modality_name(m), "mean_tau": taus.mean() if taus.len() else None, "n": g.height,
                     "best": best})
    return render("sections/alignment.html", rows=rows)


def _anomalies(p: _Page) -> Markup:
    """EgoClean's table (clip, ground truth, activity, detected) with recall and false positives."""
    from handclust_assets.science.anomaly_eval import seed_table

    ev = p.r.nonempty("anomaly_evaluation")
    if ev is None or not ev.filter(pl.col("scope") == "clip").height:
        return p.missing("sec-anomalies", "no clip has anomaly ground truth yet: put a <clip>.anomalies.csv "
                         "(start_s,end_s,label) beside a video or inside its shard — the synthetic generator writes "
                         "one when it injects anomalies (anomaly_evaluation is missing or empty).")
    matches = p.r.get("anomaly_matches")
    seed = seed_table(matches).to_dicts() if matches is not None and matches.height else []
    overall = ev.filter(pl.col("scope") == "overall").row(0, named=True)
    per_clip = ev.filter(pl.col("scope") == "clip").sort("clip").to_dicts()
    return render("sections/anomalies.html", o=overall, judged=len(per_clip), seed=seed, per_clip=per_clip)


def _signals(x: dict) -> tuple[int, int]:
    return len(x.get("agreeing_signals") or []), len(x.get("available_signals") or [])


def _repetition(p: _Page) -> Markup:
    counts = p.r.get("repetition_counts")
    if counts is None:
        return p.missing("sec-repetition", "repetition_counts has not been produced yet: the counts through time "
                         "(period_curve, repetition_counts) appear here once those assets have run.")
    clip_rows = counts.filter(pl.col("scope") == "clip").sort("clip") if "scope" in counts.columns else counts.clear()
    if not clip_rows.height:
        return p.missing("sec-repetition", "repetition_counts has no whole-clip rows yet.")
    rows = []
    for x in clip_rows.iter_rows(named=True):
        agree, avail = _signals(x)
        rows.append({**x, "agreeing": agree, "available": avail})
    return render("sections/repetition.html", rows=rows)


def _price_text(report: pl.DataFrame) -> str:
    """The prices the report used, read back from its own numbers (per-hour $ over per-hour seconds)."""
    tot = report.filter(pl.col("row_kind") == "total")
    if not tot.height:
        return "the CostSettings prices"
    t = tot.row(0, named=True)
    parts = []
    for what, usd, secs, unit in (("CPU core-hour", "cpu_usd_per_footage_h", "cpu_s_per_footage_h", "{:.3f}"),
                                  ("GPU-hour", "gpu_usd_per_footage_h", "gpu_s_per_footage_h", "{:.2f}")):
        if finite(t[secs]) and t[secs] > 0 and finite(t[usd]):
            parts.append(f"${unit.format(t[usd] / t[secs] * 3600)} per {what}")
        else:
            parts.append(f"the configured price per {what} (none measured)")
    return " and ".join(parts)


def _cost(p: _Page) -> Markup:
    rep = p.r.nonempty("cost_report")
    if rep is None:
        return p.missing("sec-cost", "cost_report is missing or empty: materialize the cost_report asset (it reads "
                         "the measurements every run records).")
    assets = rep.filter(pl.col("row_kind") == "asset").sort("usd_per_footage_h", descending=True, nulls_last=True)
    rest = rep.filter(pl.col("row_kind") != "asset")
    total = rep.filter(pl.col("row_kind") == "total")
    anchor = rep.filter(pl.col("row_kind") == "anchor")
    return render("sections/cost.html", rows=pl.concat([assets, rest]).to_dicts(),
                  total=total.row(0, named=True) if total.height else None,
                  anchor=anchor["usd_per_footage_h"][0] if anchor.height else None, price_text=_price_text(rep))


# ---- per-clip drilldown -------------------------------------------------------------------------------------
def _clip_legend(p: _Page, clip: str) -> list[dict]:
    r = p.r
    qm = r.nonempty("quality_matrix")
    items = []
    for m in ALL_MODALITIES:
        sc = analysis.segments_of_cluster(r, clip, m)
        if sc is None:
            continue
        cl = sc["cluster"].fill_null(-1).to_numpy()
        q = qm.filter((pl.col("clip") == clip) & (pl.col("modality") == m)) if qm is not None else None
        clusters = []
        for c in sorted(set(cl[cl >= 0].tolist())):
            segs = sc.filter(pl.col("cluster") == c)
            clusters.append({"cluster": int(c), "label": p.label(m, c), "n": segs.height,
                             "seconds": float((segs["end_s"] - segs["start_s"]).sum())})
        items.append({"name": r.modality_name(m), "k": len(clusters), "noise": float((cl < 0).mean()) if len(cl) else 0,
                      "n": len(cl), "clusters": clusters,
                      "quality": q.row(0, named=True) if q is not None and q.height else None})
    return items


def _reps_block(p: _Page, clip: str) -> Markup:
    r = p.r
    rep = r.clip("repetitions", clip)
    if rep is None:
        return p.missing(f"reps-{clip}", "repetitions table absent.")
    if not rep.height:
        return p.missing(f"reps-{clip}", "no segments with repetition estimates in this clip.")
    seg = r.clip_nonempty("segments", clip)
    sc = analysis.segments_of_cluster(r, clip, "fusion")
    lab = {int(s): int(c) for s, c in sc.select("segment_idx", "cluster").iter_rows()} if sc is not None else {}
    j = rep.sort("segment_idx")
    if seg is not None:
        j = j.join(seg.select("segment_idx", "start_s", "end_s"), on="segment_idx", how="left")
    rows = []
    for x in j.iter_rows(named=True):
        c = lab.get(int(x["segment_idx"]))
        rows.append({**x, "start_s": x.get("start_s"), "end_s": x.get("end_s"), "cluster": c,
                     "label": r.label("fusion", c) if c is not None else ""})
    return render("clip/reps.html", clip=clip, rows=rows, accepted=int(rep["accepted"].fill_null(False).sum()))


def _tools_block(p: _Page, clip: str) -> Markup:
    r = p.r
    if not p.status["tools"].present and r.clip_nonempty("tool_scores", clip) is None:
        return p.missing(f"tools-{clip}", f"OWLv2 tool scores absent — {p.status['tools'].reason}")
    tt = analysis.top_tools(r, clip, "fusion")
    if not tt:
        return p.missing(f"tools-{clip}", "no tool scores for this clip's clustered segments.")
    rows = [{"cluster": c, "label": p.label("fusion", c), "tools": tops} for c, tops in tt]
    return render("clip/tools.html", clip=clip, rows=rows)


def _coverage_rows(p: _Page, clip: str) -> list[dict]:
    rows = []
    for tab, m, name in (("hands", "hands", "Hand"), ("pose", "pose", "Body pose")):
        cv = analysis.coverage(p.r, tab, clip)
        rows.append({"name": name, "share": cv[0] if cv is not None else None, "reason": p.status[m].reason,
                     "by": sorted(cv[1].items()) if cv is not None and len(cv[1]) > 1 else []})
    return rows


def _anomaly_block(p: _Page, clip: str) -> Markup:
    src, rel = p.figure(f"anomaly_{clip}.png", lambda path: figures.anomaly_png(p.r, clip, path))
    if rel is None:
        return p.missing(f"anomaly-{clip}", "no anomaly scores for this clip (anomaly_scores missing).")
    an = p.r.clip("anomalies", clip)
    spans = an.sort("start_s").to_dicts() if an is not None and an.height else []
    contrast = None
    scores = p.r.clip_nonempty("anomaly_scores", clip)
    if not spans and scores is not None and {"theta_on", "smoothed"} <= set(scores.columns):
        contrast = float(scores["theta_on"][0]) - float(scores["smoothed"].median())
    return render("clip/anomaly.html", clip=clip, rel=rel, source=src, spans=spans, contrast=contrast)


def _diagnostics_block(p: _Page, clip: str) -> Markup:
    """The anomaly_diagnostics figures (written beside the page by that asset) and this clip's rows of the
    ground-truth table."""
    from handclust_assets.science.anomaly_eval import fmt_time

    names = (f"{clip}_diagnostics.png", f"{clip}_detection.png")
    store = p.r.store
    if not all(store.exists(*DIAGNOSTICS_DIR, n) for n in names):
        return p.missing(f"diag-{clip}", "no anomaly diagnostics for this clip yet: materialize anomaly_diagnostics.")
    p.res.images += 2
    diag = p.r.clip_nonempty("anomaly_diagnostics", clip)
    summary = diag.row(0, named=True) if diag is not None else None
    m = p.r.clip_nonempty("anomaly_matches", clip)
    gt_rows = []
    for x in (m.filter(pl.col("gt_idx").is_not_null()).sort("gt_start_s").iter_rows(named=True) if m is not None
              else []):
        det = f"{fmt_time(x['det_start_s'])}–{fmt_time(x['det_end_s'])}" if x["det_idx"] is not None else "missed"
        gt_rows.append({"ground_truth": f"{fmt_time(x['gt_start_s'])}–{fmt_time(x['gt_end_s'])}",
                        "activity": x["label"], "detected": det, "iou": x["iou"]})
    rel = "/".join(DIAGNOSTICS_DIR[1:])
    return render("clip/diagnostics.html", clip=clip, diagnostics=f"{rel}/{names[0]}", detection=f"{rel}/{names[1]}",
                  source_label=summary["source_label"] if summary else "", summary=summary, gt_rows=gt_rows)


def _count_rows(p: _Page, counts: pl.DataFrame) -> list[dict]:
    rows = []
    for x in counts.sort(pl.col("scope") != "clip", "start_s").iter_rows(named=True):
        agree, avail = _signals(x)
        c = x.get("activity")
        rows.append({**x, "span": "clip" if x["scope"] == "clip" else x["span_idx"], "agreeing": agree,
                     "available": avail, "cluster": int(c) if c is not None else None,
                     "label": p.r.label("fusion", int(c)) if c is not None else ""})
    return rows


def _counting_block(p: _Page, clip: str) -> Markup:
    """Counts through time (another asset's tables): the consensus period curve and the count per span."""
    r = p.r
    curve, counts = r.clip_nonempty("period_curve", clip), r.clip_nonempty("repetition_counts", clip)
    if curve is None and counts is None:
        return p.missing(f"counting-{clip}", "no repetition counts through time for this clip yet (period_curve "
                         "and repetition_counts appear once the counting assets have run).")
    spans = counts.filter(pl.col("scope") == "span") if counts is not None else None
    _, rel = p.figure(f"period_{clip}.png", lambda path: _period_png(curve, path, r.duration(clip), spans))
    return render("clip/counting.html", clip=clip, curve=rel,
                  no_curve="" if rel else p.missing(f"period-curve-{clip}", "no consensus period curve."),
                  counts=_count_rows(p, counts) if counts is not None else [],
                  no_counts="" if counts is not None else p.missing(f"rep-counts-{clip}", "no counts per span."))


def _period_png(curve: pl.DataFrame | None, path: Path, duration: float, spans: pl.DataFrame | None) -> bool:
    from handclust_assets.report.repetition import period_curve_png

    return curve is not None and period_curve_png(curve, path, duration or None, spans)


def _cost_block(p: _Page, clip: str) -> Markup:
    cc = p.r.clip_nonempty("clip_cost", clip)
    if cc is None:
        return p.missing(f"cost-{clip}", "no cost measured for this clip yet (clip_cost).")
    return render("clip/cost.html", clip=clip, r=cc.row(0, named=True))


def _clip_head(p: _Page, clip: str) -> dict:
    info = p.r.clip_info(clip)
    seg = p.r.clip_nonempty("segments", clip)
    src = str(info.get("source_path") or "")
    return {"phase": info.get("phase", "phase ?"), "duration": p.r.duration(clip),
            "n_segments": seg.height if seg is not None else 0, "codec": info.get("codec"),
            "rectified": bool(info.get("intrinsics_path")), "source": src.rsplit("/", 1)[-1] if "::" in src else "",
            "same_as": p.r.same_video.get(clip), "same_why": p.r.same_video_why.get(clip)}


def _clip_article(p: _Page, clip: str) -> Markup:
    r = p.r
    _, timeline = p.figure(f"timeline_{clip}.png", lambda path: figures.timeline_png(r, clip, p.status, path) or True)
    ov = overlay_path(r.store, clip)
    overlay = {"name": ov.name, "poster": ov.with_suffix(".jpg").name if ov.with_suffix(".jpg").exists() else ""} \
        if ov.exists() else None
    _, ssm = p.figure(f"ssm_{clip}.png", lambda path: figures.ssm_png(r, clip, path))
    _, rhythm = p.figure(f"rhythm_{clip}.png", lambda path: figures.rhythm_png(r, clip, path))
    ctx = {
        "clip": clip, "head": _clip_head(p, clip), "timeline": timeline, "legend": _clip_legend(p, clip),
        "reps": _reps_block(p, clip), "overlay": overlay,
        "no_overlay": "" if overlay else p.missing(f"overlay-{clip}", "activity overlay video not rendered: "
                                                   f"materialize activity_overlays for partition {clip}."),
        "ssm": ssm, "no_ssm": "" if ssm else p.missing(f"ssm-{clip}", "no scene embeddings for this clip — "
                                                       f"{p.status['scene'].reason}"),
        "tools": _tools_block(p, clip), "coverage": _coverage_rows(p, clip), "rhythm": rhythm,
        "no_rhythm": "" if rhythm else p.missing(f"rhythm-{clip}", "no flow / flow_rhythm results for this clip."),
    }
    ctx.update(anomaly=_anomaly_block(p, clip), diagnostics=_diagnostics_block(p, clip),
               counting=_counting_block(p, clip), cost=_cost_block(p, clip))
    return render("clip/article.html", **ctx)


def _clips(p: _Page) -> Markup:
    if not p.r.clips:
        return p.missing("sec-clips", "no clips in storage yet.")
    out = []
    for c in p.r.clips:
        try:
            out.append(_clip_article(p, c))
        except Exception as ex:
            p.res.errors.append(f"clip-{c}: {type(ex).__name__}: {ex}")
            err = render("error.html", what="drilldown failed:", etype=type(ex).__name__, message=str(ex),
                         tb=traceback.format_exc(limit=3))
            out.append(Markup('<article class="clip" id="clip-{}"><h3>{}</h3>{}</article>').format(c, c, err))
    return Markup("").join(out)


def _takeaways(p: _Page) -> Markup:
    tk = analysis.takeaways(p.r, p.status)
    p.res.takeaways = tk
    if not tk:
        return p.missing("sec-takeaways", "not enough results to compute take-aways yet.")
    return render("sections/takeaways.html", items=tk)


# ---- page ---------------------------------------------------------------------------------------------------
INTROS = {
    "sec-ranking": "Pool all segments of all clips, cluster once per modality. A modality whose clusters "
    "<b>mix segments from several clips</b> finds shared activity; one whose clusters are clip-pure fingerprints "
    "each clip's look. Mixing entropy per cluster = H(p<sub>clip</sub>) / log(n clips in it): 0 = one clip, 1 = "
    "uniform. Modality score = size-weighted mean over its clusters, plus the share of clusters spanning ≥ 2 "
    "clips. Each grid: rows = the top {top} clusters by entropy, columns = clips, cell = that cluster's medoid "
    "segment in that clip (empty = no segment there).",
    "sec-clips": "Per clip: every modality's clusters on one time axis, repetition counts, the scene "
    "self-similarity matrix, top tools per activity, hand/pose coverage, flow rhythm, anomaly spans with "
    "EgoClean's diagnostics, counts through time and what the clip cost to process.",
    "sec-anomalies": "EgoClean's evaluation: detected anomaly spans (V-JEPA 2 windows, else offline scene "
    "embeddings) against the ground-truth spans of each clip that has them.",
    "sec-cost": "What processing costs, measured by the runs themselves, per asset and per footage hour.",
}
BUILDERS: dict[str, Callable[[_Page], Markup]] = {
    "sec-modalities": _modalities, "sec-ranking": _ranking, "sec-quality": _quality, "sec-overview": _overview,
    "sec-map": _map, "sec-reel": _reel, "sec-phase": _phase, "sec-ground-truth": _gt, "sec-anomalies": _anomalies,
    "sec-repetition": _repetition, "sec-alignment": _alignment, "sec-cost": _cost, "sec-clips": _clips,
    "sec-takeaways": _takeaways,
}


def _page_html(page: _Page, body: list[Markup], t0: float) -> str:
    r, res = page.r, page.res
    seg = r.get("segments")
    res.segments = seg.height if seg is not None else 0
    chips = [{"name": r.modality_name(m), "present": page.status[m].present, "reason": page.status[m].reason}
             for m in ALL_MODALITIES]
    return environment().get_template("page.html").render(
        clips=r.clips, n_segments=res.segments, built=time.strftime("%Y-%m-%d %H:%M:%S"), root=r.store.root,
        chips=chips, toc=list(SECTION_TITLES.items()), errors=res.errors, sections=body, images=res.images,
        clusters=res.clusters, seconds=time.perf_counter() - t0)


def _count_clusters(r: Results, res: DashboardResult) -> None:
    ccc = r.get("cross_clip_clusters")
    if ccc is not None and ccc.height:
        cl = ccc.filter(pl.col("cluster") >= 0).select("modality", "cluster").unique()
        res.clusters = cl.height
        res.fusion_clusters = cl.filter(pl.col("modality") == "fusion").height


def _publish(out: Path, tmp_img: Path, doc: str, res: DashboardResult) -> None:
    """Static files, then the images folder and the page, each replaced atomically."""
    for name in STATIC_FILES:
        (out / name).write_bytes(resources.files("handclust_assets.report").joinpath(name).read_bytes())
    replace_dir(tmp_img, out / "img")
    atomic_write_bytes(res.index, doc.encode("utf-8"))


def build_dashboard(
    root: str | Path | None = None,
    out_dir: str | Path | None = None,
    source: duckdb.DuckDBPyConnection | Mapping[str, pl.DataFrame] | None = None,
    modality_reasons: Mapping[str, str] | None = None,
    top_clusters: int = 6,
) -> DashboardResult:
    """Build the lab dashboard from the results under `root` (or the given tables) into `out_dir`
    (default `<root>/dashboard`). `modality_reasons` says why a modality is absent (e.g. a model's error)."""
    t0 = time.perf_counter()
    r = Results(root, source)
    out = Path(out_dir) if out_dir is not None else r.root / "dashboard"
    out.mkdir(parents=True, exist_ok=True)
    tmp_img = out / f".img.tmp-{os.getpid()}"
    shutil.rmtree(tmp_img, ignore_errors=True)
    tmp_img.mkdir(parents=True)
    res = DashboardResult(index=out / "index.html", clips=len(r.clips))
    page = _Page(r, tmp_img, res, analysis.modality_status(r, dict(modality_reasons or {})), top_clusters)
    res.modalities_present = [m for m, s in page.status.items() if s.present]
    res.modalities_absent = {m: s.reason for m, s in page.status.items() if not s.present}
    body = [_section(page, sid, fn, INTROS.get(sid, "").replace("{top}", str(top_clusters)))
            for sid, fn in BUILDERS.items()]
    _count_clusters(r, res)
    _publish(out, tmp_img, _page_html(page, body, t0), res)
    res.seconds = time.perf_counter() - t0
    res.labelled_clusters = len(page.res_labels)
    return res
