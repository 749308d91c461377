"""The lab dashboard: seed 000's static lab page, rebuilt from the current results as a self-contained static
site (`storage/dashboard/index.html` + `img/` + `dashboard.css` + `dashboard.js`; nothing from a CDN).

Every section is built by its own function; a missing or empty table makes that section say why, and a
section that raises is reported on the page (and in `DashboardResult.errors`) instead of breaking the page.
"""

from __future__ import annotations

import html
import os
import shutil
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import duckdb
import polars as pl

from handclust_assets.report import analysis as A
from handclust_assets.report import figures as F
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
    "sec-alignment": "Alignment between repetitions",
    "sec-clips": "Per-clip drilldowns",
    "sec-takeaways": "Take-aways",
}


def e(x: object) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _f(x: object, fmt: str = "{:.3f}") -> str:
    return fmt.format(float(x)) if finite(x) else "–"


def _pct(x: object) -> str:
    return f"{100 * float(x):.0f}%" if finite(x) else "–"


def swatch(c: int | None) -> str:
    return f'<span class="sw" style="background:{hex_of(cluster_rgb(c))}"></span>'


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
    def __init__(self, r: Results, img_dir: Path, res: DashboardResult, status: dict[str, A.ModalityStatus],
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

    def thumb(self, clip: str, frame: int) -> str | None:
        key = (clip, int(frame))
        if key not in self.thumbs:
            img = self.r.keyframe(clip, frame)
            if img is None:
                return None
            p, rel = self.img_path(f"thumbs/{clip}_{int(frame):06d}.jpg")
            F.write_thumb(img, p)
            self.thumbs[key] = rel
        return self.thumbs[key]

    def missing(self, key: str, why: str) -> str:
        self.res.missing[key] = why
        return f'<p class="missing" data-missing="{e(key)}">{e(why)}</p>'


def _section(page: _Page, sid: str, body: Callable[[_Page], str], intro: str = "") -> str:
    try:
        inner = body(page)
    except Exception as ex:  # noqa: BLE001 - one broken section must not take the page down
        page.res.errors.append(f"{sid}: {type(ex).__name__}: {ex}")
        tb = traceback.format_exc(limit=3)
        inner = (f'<div class="error"><b>This section failed to build:</b> {e(type(ex).__name__)}: {e(ex)}'
                 f"<pre>{e(tb)}</pre></div>")
    page.res.sections.append(sid)
    return (f'<section id="{sid}"><h2>{e(SECTION_TITLES[sid])}</h2>'
            f'{f"<p class=intro>{intro}</p>" if intro else ""}{inner}</section>')


def _table(header: list[str], rows: list[list[str]], cls: str = "data", tid: str = "") -> str:
    th = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    idattr = f' id="{tid}"' if tid else ""
    return f'<div class="scroll"><table class="{cls}"{idattr}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


# ---- sections -----------------------------------------------------------------------------------------------
def _modalities(p: _Page) -> str:
    r, st = p.r, p.status
    rows = []
    for m in ALL_MODALITIES:
        s = st[m]
        if s.present:
            state = f'<span class="ok">present</span> · {s.n_clustered} segments clustered'
            if m in MODALITY_SOURCE:
                state += f" · {s.n_clips} clip(s)"
        else:
            state = f'<span class="absent">absent</span> — {e(s.reason)}'
        rows.append([f"<b>{e(r.modality_name(m))}</b>", e(MODALITY_SIGNAL.get(m, "")), state])
    extra = ""
    if r.scene_model and "dinov2" not in r.scene_model.lower():
        extra = (f'<p class="note">Scene embeddings come from <b>{e(r.scene_model)}</b>, the offline fallback: '
                 "DINOv2 weights were not available where the pipeline ran.</p>")
    return _table(["modality", "signal", "status"], rows, "data modalities", "modality-table") + extra


def _ranking(p: _Page) -> str:
    r = p.r
    cce = r.nonempty("cross_clip_entropy")
    if cce is None:
        return p.missing("sec-ranking", "cross_clip_entropy is missing or empty: materialize the evaluation "
                         "assets (cross_clip_clusters -> cross_clip_entropy).")
    clips = r.clips
    out = []
    order = cce.with_columns(pl.col("mean_entropy").fill_nan(None)).sort(
        ["mean_entropy", "multi_clip_share"], descending=True, nulls_last=True)
    rows = []
    for rank, row in enumerate(order.iter_rows(named=True), start=1):
        ent = row["mean_entropy"]
        bar = (f'<div class="bar inline"><span style="width:{100 * float(ent) if finite(ent) else 0:.1f}%">'
               "</span></div>")
        rows.append([str(rank), f'<a href="#rank-{e(row["modality"])}">{e(r.modality_name(row["modality"]))}</a>',
                     f'<span class="num">{_f(ent)}</span>{bar}', _pct(row["multi_clip_share"]), str(row["k"]),
                     f"{row['noise']}/{row['n']}"])
    out.append(_table(["#", "modality", "mean mixing entropy", "multi-clip clusters", "k", "noise"], rows,
                      "data ranking", "ranking-table"))
    for rank, row in enumerate(order.iter_rows(named=True), start=1):
        m = row["modality"]
        ent = row["mean_entropy"]
        stats = (f"mean entropy <b>{_f(ent)}</b> · multi-clip clusters <b>{_pct(row['multi_clip_share'])}</b> · "
                 f"k=<b>{row['k']}</b> · noise <b>{row['noise']}/{row['n']}</b>")
        bar = f'<div class="bar"><span style="width:{100 * float(ent) if finite(ent) else 0:.1f}%"></span></div>'
        grid = A.medoid_grid(r, m, p.top)
        if not grid:
            body = p.missing(f"grid-{m}", f"{r.modality_name(m)}: no clusters (every segment is noise).")
        else:
            head = "".join(f"<th>{e(c)}</th>" for c in clips)
            trs = []
            for g in grid:
                p.res_labels.add((m, g.cluster))
                tds = []
                for c in clips:
                    if c not in g.cells:
                        tds.append('<td class="empty">–</td>')
                        continue
                    seg_idx, frame = g.cells[c]
                    src = p.thumb(c, frame)
                    seg = r.segment(c, seg_idx) or {}
                    when = f"{_f(seg.get('start_s'), '{:.1f}')}–{_f(seg.get('end_s'), '{:.1f}')} s"
                    tip = e(f"{c} · segment {seg_idx} · {when} · {g.label}")
                    img = (f'<img src="{src}" alt="{tip}" title="{tip}">' if src else
                           '<div class="noimg">no frame cache</div>')
                    tds.append(f'<td>{img}<div class="cap">seg {seg_idx} · {when}</div></td>')
                rowhead = (f'<th class="rowhead">{swatch(g.cluster)}<span class="lbl">{e(g.label)}</span><br>'
                           f'<small>H={_f(g.entropy, "{:.2f}")} · {g.size} segs · {g.n_clips} clip(s)</small></th>')
                trs.append(f"<tr>{rowhead}{''.join(tds)}</tr>")
            body = (f'<div class="scroll"><table class="grid" id="grid-{e(m)}"><thead><tr><th>cluster</th>{head}'
                    f"</tr></thead><tbody>{''.join(trs)}</tbody></table></div>")
        badge = ' <span class="badge">fusion</span>' if m == "fusion" else ""
        out.append(f'<div class="rank-card" id="rank-{e(m)}"><div class="rank-head"><span class="rank-no">{rank}'
                   f"</span><h3>{e(r.modality_name(m))}{badge}</h3><span class='stats'>{stats}</span></div>{bar}"
                   f"{body}</div>")
    absent = [m for m in ALL_MODALITIES if not p.status[m].present]
    if absent:
        items = "".join(f"<li><b>{e(r.modality_name(m))}</b>: {e(p.status[m].reason)}</li>" for m in absent)
        out.append(f'<div class="absent-box" id="ranking-absent"><b>Not ranked (absent):</b><ul>{items}</ul></div>')
    return "".join(out)


def _heat(noise: float) -> str:
    # green (low noise) -> amber -> red (all noise)
    x = max(0.0, min(1.0, noise))
    r_, g_ = (int(80 + 175 * x), int(200 - 120 * x))
    return f"background:rgba({r_},{g_},90,0.28)"


def _quality(p: _Page) -> str:
    r = p.r
    qm = r.nonempty("quality_matrix")
    if qm is None:
        return p.missing("sec-quality", "quality_matrix is missing or empty: materialize clip_clusters -> "
                         "quality_matrix.")
    present = set(qm["modality"].unique().to_list())
    mods = [m for m in ALL_MODALITIES if m in present] + sorted(present - set(ALL_MODALITIES))
    absent = [m for m in ALL_MODALITIES if m not in present]
    head = ["clip"] + [e(r.modality_name(m)) for m in mods] + [
        f'<span class="absent" title="{e(p.status[m].reason)}">{e(r.modality_name(m))}</span>' for m in absent]
    rows = []
    for c in r.clips:
        q = qm.filter(pl.col("clip") == c)
        if not q.height:
            continue
        cells = [f"<b>{e(c)}</b>"]
        for m in mods:
            qq = q.filter(pl.col("modality") == m)
            if not qq.height:
                cells.append('<span class="absent">–</span>')
                continue
            x = qq.row(0, named=True)
            cells.append(f'<div class="heat" style="{_heat(x["noise_rate"] if finite(x["noise_rate"]) else 1)}">'
                         f'{_pct(x["noise_rate"])} <small>k={x["k"]}</small><br><small>n={x["n"]}</small></div>')
        cells += ['<span class="absent">absent</span>'] * len(absent)
        rows.append(cells)
    note = ('<p class="note">Per-clip HDBSCAN (clip_clusters). Noise = share of the clip\'s segments no '
            "cluster claims; very low noise with k=2–3 often means the modality saw the clip as homogeneous, "
            "very high noise that the signal cannot separate activities.</p>")
    return _table(head, rows, "data quality", "quality-table") + note


def _overview(p: _Page) -> str:
    r = p.r
    if not r.clips:
        return p.missing("sec-overview", "no clips in storage yet.")
    rows = []
    for c in r.clips:
        info = r.clip_info(c)
        sc = A.segments_of_cluster(r, c, "fusion")
        if sc is not None:
            acts = sorted({int(x) for x in sc["cluster"].drop_nulls().to_list() if x >= 0})
            act_html = " ".join(f'<span class="chip">{swatch(a)}{e(r.label("fusion", a))}</span>' for a in acts) \
                or '<span class="absent">all noise</span>'
            noise = _pct(float((sc["cluster"].fill_null(-1) < 0).mean()))
        else:
            act_html, noise = '<span class="absent">no fusion clusters</span>', "–"
        rs = A.repetition_share(r, c)
        reps = f"{rs[0]}/{rs[1]} ({_pct(rs[0] / rs[1])})" if rs and rs[1] else "–"
        an = r.clip("anomalies", c)
        n_an = str(an.height) if an is not None else "–"
        cov = []
        for tab in ("hands", "pose"):
            cv = A.coverage(r, tab, c)
            cov.append(_pct(cv[0]) if cv is not None else '<span class="absent">absent</span>')
        seg = r.clip_nonempty("segments", c)
        rows.append([f'<a href="#clip-{e(c)}"><b>{e(c)}</b></a>', e(info.get("phase", "–")),
                     _f(r.duration(c), "{:.0f} s"), str(seg.height if seg is not None else 0), act_html, noise,
                     reps, n_an, *cov])
    return _table(["clip", "phase", "duration", "segments", "activities (fusion clusters)", "fusion noise",
                   "rep. period accepted", "anomaly spans", "hand coverage", "pose coverage"], rows, "data",
                  "overview-table")


def _map(p: _Page) -> str:
    path, rel = p.img_path("segment_map.png")
    info = F.segment_map_png(p.r, path)
    if info is None:
        p.res.images -= 1
        return p.missing("sec-map", "segment_map is missing or empty: materialize the segment_map asset.")
    return (f'<figure><img id="segment-map" src="{rel}" alt="2-D map of all segments"><figcaption>UMAP of the '
            f"fused segment descriptors ({info['points']} segments). Left: fusion clusters (labels from "
            "cluster_labels; black = noise). Right: the same points by clip — a cluster that mixes colours on the "
            "right is an activity shared across clips, one colour means a clip-private cluster.</figcaption>"
            "</figure>")


def _reel(p: _Page) -> str:
    rp = reel_path(p.r.store)
    if not rp.exists():
        return p.missing("sec-reel", "the preview reel has not been rendered: materialize the preview_reel asset.")
    poster = rp.with_suffix(".jpg")
    post = f' poster="videos/{poster.name}"' if poster.exists() else ""
    mb = rp.stat().st_size / 1e6
    return (f'<video id="preview-reel" controls preload="none" width="640"{post} src="videos/{rp.name}"></video>'
            f'<p class="note">Per fusion cluster: a title card with its label, then example segments from '
            f'different clips (5 fps, {mb:.1f} MB). <a href="videos/{rp.name}">download</a></p>')


def _phase(p: _Page) -> str:
    ph = p.r.nonempty("phase_scores")
    if ph is None:
        return p.missing("sec-phase", "phase_scores is missing or empty: materialize the phase_scores asset.")
    best = ph.filter(pl.col("nmi").is_not_null() & pl.col("nmi").is_not_nan())
    bnmi = float(best["nmi"].max()) if best.height else None
    rows = []
    for x in ph.iter_rows(named=True):
        star = " ★" if bnmi is not None and finite(x["nmi"]) and abs(x["nmi"] - bnmi) < 1e-12 else ""
        rows.append([f"<b>{e(x['ablation'])}</b>{star}", e(x["modalities"]), _f(x["nmi"]), _f(x["ari"]),
                     str(x["k"]), str(x["noise"]), e(x.get("note") or "")])
    return (_table(["ablation", "modalities", "NMI", "ARI", "k", "noise", "note"], rows, "data", "phase-table") +
            '<p class="note">Agreement of the clusters with the coarse phase in the file name (production / prep / '
            "transit / downtime / demo). ★ = best NMI.</p>")


def _gt(p: _Page) -> str:
    gt = p.r.nonempty("ground_truth_scores")
    if gt is None:
        return p.missing("sec-ground-truth", "no ground truth: only synthetic clips carry per-frame activity "
                         "labels (ground_truth_scores is missing or empty).")
    best = float(gt["mof"].max()) if gt.height else None
    rows = []
    for x in gt.iter_rows(named=True):
        star = " ★" if best is not None and finite(x["mof"]) and abs(x["mof"] - best) < 1e-12 else ""
        rows.append([f"<b>{e(p.r.modality_name(x['modality']))}</b>{star}", _f(x["mof"]), _f(x["nmi"]),
                     _f(x["ari"]), _f(x["edit"], "{:.1f}"), str(x["n_clips"]), str(x["n_frames"])])
    out = (_table(["modality", "MoF (Hungarian)", "NMI", "ARI", "edit", "clips", "frames"], rows, "data",
                  "gt-table") + '<p class="note">Frame-level scores of the cross-clip clusters against the '
           "synthetic clips' known activities. ★ = best MoF.</p>")
    rs = p.r.nonempty("repetition_scores")
    if rs is not None and {"activity", "accepted_share", "median_count_error"} <= set(rs.columns):
        rows = [[f"<b>{e(x['activity'])}</b>", str(x.get("segments", "–")),
                 "yes" if x.get("periodic") else "no", _pct(x["accepted_share"]),
                 _pct(x["median_count_error"]), _pct(x.get("within_10pct"))] for x in rs.iter_rows(named=True)]
        out += ("<h4>Repetition counting vs ground truth</h4>" +
                _table(["activity", "segments", "periodic", "period accepted", "median count error",
                        "counts within 10%"], rows, "data small", "repetition-gt-table"))
    return out


def _alignment(p: _Page) -> str:
    al = p.r.nonempty("alignment_scores")
    if al is None:
        return p.missing("sec-alignment", "alignment_scores is missing or empty.")
    rows = []
    for (m,), g in al.sort("modality").group_by(["modality"], maintain_order=True):
        taus = g["mean_tau"].drop_nulls().drop_nans()
        best = g.filter(pl.col("mean_tau").is_not_nan()).sort("mean_tau", descending=True).head(1)
        bl = (f"{swatch(int(best['cluster'][0]))}{e(p.r.label(m, int(best['cluster'][0])))} "
              f"(τ={_f(best['mean_tau'][0], '{:.2f}')})") if best.height else "–"
        rows.append([f"<b>{e(p.r.modality_name(m))}</b>", _f(taus.mean() if taus.len() else None, "{:.3f}"),
                     str(g.height), bl])
    return (_table(["modality", "mean Kendall τ", "clusters", "best-aligned cluster"], rows, "data",
                    "alignment-table") + '<p class="note">Kendall\'s τ of nearest-neighbour frame alignment between '
            "repetitions (segments) of a cluster, on scene embeddings (MASA / LA2DS): 1 = the repetitions unfold "
            "in the same order.</p>")


def _clip_legend(p: _Page, clip: str) -> str:
    r = p.r
    qm = r.nonempty("quality_matrix")
    items = []
    for m in ALL_MODALITIES:
        sc = A.segments_of_cluster(r, clip, m)
        if sc is None:
            continue
        cl = sc["cluster"].fill_null(-1).to_numpy()
        k = len(set(cl[cl >= 0].tolist()))
        qtxt = ""
        if qm is not None:
            q = qm.filter((pl.col("clip") == clip) & (pl.col("modality") == m))
            if q.height:
                qtxt = f' <small class="muted">(per-clip HDBSCAN: k={q["k"][0]}, noise {_pct(q["noise_rate"][0])})</small>'
        lis = []
        for c in sorted(set(cl[cl >= 0].tolist())):
            p.res_labels.add((m, int(c)))
            segs = sc.filter(pl.col("cluster") == c)
            dur = float((segs["end_s"] - segs["start_s"]).sum())
            lis.append(f"<li>{swatch(int(c))}{e(r.label(m, int(c)))} <small class='muted'>· {segs.height} seg, "
                       f"{dur:.0f} s</small></li>")
        items.append(f'<div class="leg"><b>{e(r.modality_name(m))}</b> <small>k={k} · noise '
                     f"{_pct(float((cl < 0).mean()) if len(cl) else 0)} / {len(cl)} segs</small>{qtxt}"
                     f"<ul>{''.join(lis)}</ul></div>")
    return f'<div class="legends">{"".join(items)}</div>' if items else ""


def _reps_block(p: _Page, clip: str) -> str:
    r = p.r
    rep = r.clip("repetitions", clip)
    if rep is None:
        return p.missing(f"reps-{clip}", "repetitions table absent.")
    if not rep.height:
        return p.missing(f"reps-{clip}", "no segments with repetition estimates in this clip.")
    acc = int(rep["accepted"].fill_null(False).sum())
    seg = r.clip_nonempty("segments", clip)
    sc = A.segments_of_cluster(r, clip, "fusion")
    lab = {int(s): int(c) for s, c in sc.select("segment_idx", "cluster").iter_rows()} if sc is not None else {}
    j = rep.sort("segment_idx")
    if seg is not None:
        j = j.join(seg.select("segment_idx", "start_s", "end_s"), on="segment_idx", how="left")
    rows = []
    for x in j.iter_rows(named=True):
        c = lab.get(int(x["segment_idx"]))
        rows.append([str(x["segment_idx"]), f"{_f(x.get('start_s'), '{:.1f}')}–{_f(x.get('end_s'), '{:.1f}')} s",
                     (swatch(c) + e(r.label("fusion", c))) if c is not None else "–",
                     _f(x["ssm_period_s"], "{:.2f}"), _f(x["flow_period_s"], "{:.2f}"),
                     '<span class="ok">yes</span>' if x["accepted"] else "no", _f(x["period_s"], "{:.2f}"),
                     _f(x["rep_count"], "{:.1f}")])
    tab = _table(["seg", "time", "activity (fusion)", "SSM period (s)", "flow period (s)", "accepted",
                  "period (s)", "reps"], rows, "data small")
    return (f'<p class="reps" id="reps-{e(clip)}"><b>Cross-modal rep counting:</b> scene-SSM and flow '
            f"autocorrelation agreed (within 30%) on a period in <b>{acc} / {rep.height}</b> segments "
            f"(<b>{_pct(acc / rep.height)}</b>).</p><details><summary>per-segment repetition table</summary>{tab}"
            "</details>")


def _tools_block(p: _Page, clip: str) -> str:
    r = p.r
    if not p.status["tools"].present and r.clip_nonempty("tool_scores", clip) is None:
        return p.missing(f"tools-{clip}", f"OWLv2 tool scores absent — {p.status['tools'].reason}")
    tt = A.top_tools(r, clip, "fusion")
    if not tt:
        return p.missing(f"tools-{clip}", "no tool scores for this clip's clustered segments.")
    rows = []
    for c, tops in tt:
        p.res_labels.add(("fusion", c))
        rows.append([swatch(c) + e(r.label("fusion", c)),
                     " · ".join(f"{e(n)} <small class='muted'>{s:.2f}</small>" for n, s in tops)])
    return _table(["activity (fusion cluster)", "top tools (mean OWLv2 score)"], rows, "data small",
                  f"tools-{clip}")


def _coverage_block(p: _Page, clip: str) -> str:
    r = p.r
    parts = []
    for tab, m, name in (("hands", "hands", "Hand"), ("pose", "pose", "Body pose")):
        cv = A.coverage(r, tab, clip)
        if cv is None:
            parts.append(f"<li><b>{name}</b>: <span class='absent'>absent</span> — {e(p.status[m].reason)}</li>")
            continue
        by = ", ".join(f"{e(k)} {_pct(v)}" for k, v in sorted(cv[1].items()))
        parts.append(f"<li><b>{name}</b>: present in <b>{_pct(cv[0])}</b> of frames"
                     f"{f' ({by})' if len(cv[1]) > 1 else ''}</li>")
    return f'<ul class="coverage" id="coverage-{e(clip)}">{"".join(parts)}</ul>'


def _clip_article(p: _Page, clip: str) -> str:
    r = p.r
    info = r.clip_info(clip)
    seg = r.clip_nonempty("segments", clip)
    head = (f'<h3>{e(clip)}</h3><p class="meta"><span class="chip">{e(info.get("phase", "phase ?"))}</span> '
            f"{_f(r.duration(clip), '{:.1f}')} s · {seg.height if seg is not None else 0} segments"
            f"{' · ' + e(info.get('codec')) if info.get('codec') else ''}"
            f"{' · fisheye-rectified' if info.get('intrinsics_path') else ''}</p>")
    blocks = [head]
    path, rel = p.img_path(f"timeline_{clip}.png")
    F.timeline_png(r, clip, p.status, path)
    blocks.append(f'<figure><img class="timeline" id="timeline-{e(clip)}" src="{rel}" alt="{e(clip)} timelines">'
                  "<figcaption>Each strip is one modality's cross-clip clusters on the same time axis. Black = "
                  "noise, grey = modality absent. Colours are consistent across clips within a strip, not across "
                  "strips. Fusion spans carry their cluster label.</figcaption></figure>")
    blocks.append(_clip_legend(p, clip))
    blocks.append(_reps_block(p, clip))
    ov = overlay_path(r.store, clip)
    if ov.exists():
        poster = ov.with_suffix(".jpg")
        post = f' poster="videos/{poster.name}"' if poster.exists() else ""
        blocks.append(f'<div class="overlay"><h4>Activity overlay</h4><video id="overlay-{e(clip)}" controls '
                      f'preload="none" width="480"{post} src="videos/{ov.name}"></video></div>')
    else:
        blocks.append(p.missing(f"overlay-{clip}", "activity overlay video not rendered: materialize "
                                f"activity_overlays for partition {clip}."))
    # SSM + tools/coverage side by side
    left = ""
    path, rel = p.img_path(f"ssm_{clip}.png")
    model = F.ssm_png(r, clip, path)
    if model is None:
        p.res.images -= 1
        left = p.missing(f"ssm-{clip}", f"no scene embeddings for this clip — {p.status['scene'].reason}")
    else:
        left = (f'<h4>Self-similarity matrix</h4><img class="ssm" id="ssm-{e(clip)}" src="{rel}" alt="SSM">'
                '<p class="note">Bright square blocks on the diagonal = distinct activity periods; bright '
                "off-diagonal stripes at lag k = repetitive motion with period k. White lines = segment "
                "boundaries.</p>")
    right = (f"<h4>Top tools per activity</h4>{_tools_block(p, clip)}<h4>Hand / pose coverage</h4>"
             f"{_coverage_block(p, clip)}")
    blocks.append(f'<div class="two"><div>{left}</div><div>{right}</div></div>')
    path, rel = p.img_path(f"rhythm_{clip}.png")
    if F.rhythm_png(r, clip, path):
        blocks.append(f'<h4>Flow-rhythm time series</h4><img class="wide" id="rhythm-{e(clip)}" src="{rel}" '
                      'alt="flow rhythm"><p class="note">Top: per-frame flow magnitude (fusion activities shaded). '
                      "Middle: dominant period from a 12-s sliding FFT. Bottom: periodicity strength (peak / total "
                      "power).</p>")
    else:
        p.res.images -= 1
        blocks.append(p.missing(f"rhythm-{clip}", "no flow / flow_rhythm results for this clip."))
    path, rel = p.img_path(f"anomaly_{clip}.png")
    src = F.anomaly_png(r, clip, path)
    if src is None:
        p.res.images -= 1
        blocks.append(p.missing(f"anomaly-{clip}", "no anomaly scores for this clip (anomaly_scores missing)."))
    else:
        an = r.clip("anomalies", clip)
        if an is not None and an.height:
            rows = [[str(x["span_idx"]), f"{x['start_s']:.1f}–{x['end_s']:.1f} s", f"{x['end_s'] - x['start_s']:.1f} s",
                     _f(x["peak_score"]), _f(x["mean_score"])] for x in an.sort("start_s").iter_rows(named=True)]
            spans = _table(["span", "time", "length", "peak score", "mean score"], rows, "data small",
                           f"anomalies-{clip}")
        else:
            scores = r.clip_nonempty("anomaly_scores", clip)
            contrast = ""
            if scores is not None and {"theta_on", "smoothed"} <= set(scores.columns):
                c = float(scores["theta_on"][0]) - float(scores["smoothed"].median())
                contrast = (f" θ_on − median smoothed score = {c:.3f}; the detector drops spans when this "
                            "contrast is small or a span is short.")
            spans = f'<p class="note">No anomalous span recorded for this clip.{e(contrast)}</p>'
        blocks.append(f'<h4>Anomaly spans</h4><img class="wide" id="anomaly-{e(clip)}" src="{rel}" '
                      f'alt="anomaly score"><p class="note">Source: {e(src)} self-similarity (EgoClean: 1 − row-mean '
                      f"typicality, EMA, Otsu θ_on + hysteresis θ_off).</p>{spans}")
    return f'<article class="clip" id="clip-{e(clip)}">{"".join(blocks)}</article>'


def _clips(p: _Page) -> str:
    if not p.r.clips:
        return p.missing("sec-clips", "no clips in storage yet.")
    out = []
    for c in p.r.clips:
        try:
            out.append(_clip_article(p, c))
        except Exception as ex:  # noqa: BLE001
            p.res.errors.append(f"clip-{c}: {type(ex).__name__}: {ex}")
            out.append(f'<article class="clip" id="clip-{e(c)}"><h3>{e(c)}</h3><div class="error">drilldown failed: '
                       f"{e(type(ex).__name__)}: {e(ex)}<pre>{e(traceback.format_exc(limit=3))}</pre></div></article>")
    return "".join(out)


def _takeaways(p: _Page) -> str:
    tk = A.takeaways(p.r, p.status)
    p.res.takeaways = tk
    if not tk:
        return p.missing("sec-takeaways", "not enough results to compute take-aways yet.")
    items = "".join(f"<li><b>{e(h)}</b> {e(ev)}</li>" for h, ev in tk)
    return f'<ol class="takeaways">{items}</ol><p class="note">Computed from the tables above at build time.</p>'


# ---- page ---------------------------------------------------------------------------------------------------
def _header(p: _Page, built: str) -> str:
    r = p.r
    seg = r.get("segments")
    n_seg = seg.height if seg is not None else 0
    p.res.segments = n_seg
    chips = "".join(
        f'<span class="chip {"ok" if p.status[m].present else "off"}" title="{e(p.status[m].reason or "present")}">'
        f"{e(r.modality_name(m))}{'' if p.status[m].present else ' — absent'}</span>" for m in ALL_MODALITIES)
    toc = "".join(f'<a href="#{sid}">{e(t)}</a>' for sid, t in SECTION_TITLES.items())
    opts = "".join(f'<option value="clip-{e(c)}">{e(c)}</option>' for c in r.clips)
    return (f'<header id="top"><h1>HandClust lab <span class="sub">label-free activity discovery in '
            f'egocentric work video</span></h1><p class="meta">{len(r.clips)} clips · {n_seg} segments · built '
            f"{e(built)} from <code>{e(r.store.root)}</code></p><div class='chips' id='modality-chips'>{chips}</div>"
            f'</header><nav id="toc">{toc}<select id="clip-jump" aria-label="jump to clip"><option value="">'
            f"jump to clip…</option>{opts}</select></nav>")


INTROS = {
    "sec-ranking": "Pool all segments of all clips, cluster once per modality. A modality whose clusters "
    "<b>mix segments from several clips</b> finds shared activity; one whose clusters are clip-pure fingerprints "
    "each clip's look. Mixing entropy per cluster = H(p<sub>clip</sub>) / log(n clips in it): 0 = one clip, 1 = "
    "uniform. Modality score = size-weighted mean over its clusters, plus the share of clusters spanning ≥ 2 "
    "clips. Each grid: rows = the top {top} clusters by entropy, columns = clips, cell = that cluster's medoid "
    "segment in that clip (empty = no segment there).",
    "sec-clips": "Per clip: every modality's clusters on one time axis, repetition counts, the scene "
    "self-similarity matrix, top tools per activity, hand/pose coverage, flow rhythm and anomaly spans.",
}


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
    page = _Page(r, tmp_img, res, A.modality_status(r, dict(modality_reasons or {})), top_clusters)
    res.modalities_present = [m for m, s in page.status.items() if s.present]
    res.modalities_absent = {m: s.reason for m, s in page.status.items() if not s.present}
    built = time.strftime("%Y-%m-%d %H:%M:%S")
    builders = {
        "sec-modalities": _modalities, "sec-ranking": _ranking, "sec-quality": _quality, "sec-overview": _overview,
        "sec-map": _map, "sec-reel": _reel, "sec-phase": _phase, "sec-ground-truth": _gt,
        "sec-alignment": _alignment, "sec-clips": _clips, "sec-takeaways": _takeaways,
    }
    body = [_section(page, sid, fn, INTROS.get(sid, "").replace("{top}", str(top_clusters)))
            for sid, fn in builders.items()]
    ccc = r.get("cross_clip_clusters")
    if ccc is not None and ccc.height:
        cl = ccc.filter(pl.col("cluster") >= 0).select("modality", "cluster").unique()
        res.clusters = cl.height
        res.fusion_clusters = cl.filter(pl.col("modality") == "fusion").height
    errs = ""
    if res.errors:
        errs = '<div class="error" id="build-errors"><b>Some sections failed:</b><ul>' + "".join(
            f"<li>{e(x)}</li>" for x in res.errors) + "</ul></div>"
    doc = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
           f'content="width=device-width, initial-scale=1"><title>HandClust lab · {len(r.clips)} clips</title>'
           f'<link rel="icon" href="data:,"><link rel="stylesheet" href="dashboard.css"></head><body>'
           f'{_header(page, built)}<main>{errs}{"".join(body)}</main><footer>HandClust lab dashboard · '
           f"{res.images} images · {res.clusters} cross-clip clusters · built in "
           f'{time.perf_counter() - t0:.1f} s</footer><script src="dashboard.js"></script></body></html>')
    for name in STATIC_FILES:
        data = resources.files("handclust_assets.report").joinpath(name).read_bytes()
        (out / name).write_bytes(data)
    final_img = out / "img"
    old = out / f".img.old-{os.getpid()}"
    if final_img.exists():
        os.replace(final_img, old)
    os.replace(tmp_img, final_img)
    shutil.rmtree(old, ignore_errors=True)
    tmp_html = out / f".index.html.tmp-{os.getpid()}"
    tmp_html.write_text(doc, encoding="utf-8")
    os.replace(tmp_html, res.index)
    res.seconds = time.perf_counter() - t0
    res.labelled_clusters = len(page.res_labels)
    return res
