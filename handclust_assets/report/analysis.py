"""What the dashboard shows, computed from the results: modality presence (and why one is absent), medoid grids,
top tools per cluster, hand/pose coverage, repetition shares and the take-aways. No plotting, no HTML here."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from handclust_assets.report.data import MODALITIES, MODALITY_SOURCE, Results, finite
from handclust_assets.science.clustering import l2n, standardise_block
from handclust_assets.science.crossclip import FUSION_EXCLUDE, MIN_COVERAGE, space_rows


@dataclass
class ModalityStatus:
    modality: str
    present: bool
    reason: str = ""  # why it is absent (or partial)
    n_clips: int = 0  # clips with results in its source table
    n_clustered: int = 0  # segments with a cross-clip cluster row


def _never_seen(r: Results, modality: str) -> bool:
    """True when the modality's segment table exists and no segment reaches the coverage that earns a descriptor."""
    t = r.get("pose_segments" if modality == "pose" else "hand_segments")
    return t is not None and t.height > 0 and "coverage" in t.columns and \
        bool((t["coverage"].fill_null(0) < MIN_COVERAGE).all())


def modality_status(r: Results, reasons: dict[str, str] | None = None) -> dict[str, ModalityStatus]:
    """Per modality: does it have cross-clip clusters; if not, why (a reason from the caller, e.g. the Dagster
    instance's failure message, beats the generic one derived from which tables exist)."""
    reasons = reasons or {}
    ccc = r.get("cross_clip_clusters")
    out: dict[str, ModalityStatus] = {}
    for m in (*MODALITIES, "fusion"):
        n_cl = 0
        if ccc is not None and ccc.height:
            n_cl = int(ccc.filter(pl.col("modality") == m).height)
        src = MODALITY_SOURCE.get(m)
        n_clips = r.n_clips_in(src) if src is not None else 0
        if n_cl:
            out[m] = ModalityStatus(m, True, "", n_clips, n_cl)
            continue
        if m in reasons:
            why = reasons[m]
        elif m == "fusion":
            why = "no fusion clusters: cross_clip_clusters is missing or empty" if ccc is None or not ccc.height \
                else "the fusion found no modality to combine"
        elif ccc is None:
            why = "cross_clip_clusters has not been materialized"
        elif n_clips == 0:
            why = (f"no results: `{src}` has no rows in storage (its asset was never materialized, e.g. because "
                   "its model is not available here)")
        elif m in ("pose", "hands") and _never_seen(r, m):
            why = (f"seen on fewer than {MIN_COVERAGE:.0%} of the frames of every segment: a segment where the "
                   f"{'body' if m == 'pose' else 'hands'} cannot be seen gets no descriptor (no evidence)")
        else:
            why = (f"`{src}` has results for {n_clips} clip(s) but no segment descriptors: re-materialize "
                   "segment_features and cross_clip_clusters")
        out[m] = ModalityStatus(m, False, why, n_clips, 0)
    return out


# ---- medoid grids ------------------------------------------------------------------------------------------
def _feature_matrix(r: Results, modality: str) -> tuple[pl.DataFrame, np.ndarray] | None:
    """Segment rows in the space the pooled clustering used (saved model), else an equal-weight stand-in."""
    feats = r.get("segment_features")
    if feats is None or not feats.height:
        return None
    entry = ((r.store.load_cluster_model() or {}).get("modalities") or {}).get(modality)
    rows = space_rows(feats, entry) if entry is not None else None
    if rows is not None:
        return rows
    if modality != "fusion":
        f = feats.filter(pl.col("modality") == modality).sort("clip", "segment_idx")
        if not f.height:
            return None
        return f.select("clip", "segment_idx"), l2n(np.nan_to_num(np.asarray(f["vector"].to_list(), np.float64)))
    mods = sorted(set(feats["modality"].unique().to_list()) - set(FUSION_EXCLUDE))
    keys = None
    for m in mods:
        k = feats.filter(pl.col("modality") == m).select("clip", "segment_idx")
        keys = k if keys is None else keys.join(k, on=["clip", "segment_idx"], how="inner")
    if keys is None or not keys.height:
        return None
    keys = keys.sort("clip", "segment_idx")
    parts = []
    for m in mods:
        f = keys.join(feats.filter(pl.col("modality") == m), on=["clip", "segment_idx"], how="left")
        parts.append(standardise_block(np.asarray(f["vector"].to_list(), np.float64))[0])
    return keys, l2n(np.hstack(parts))


@dataclass
class GridRow:
    cluster: int
    label: str
    entropy: float
    size: int
    n_clips: int
    cells: dict[str, tuple[int, int]] = field(default_factory=dict)  # clip -> (segment_idx, keyframe index)


def cluster_entropy_of(r: Results, modality: str) -> pl.DataFrame:
    """Per cluster (size, n_clips, entropy): the cluster_entropy table, else computed from the clusters."""
    ce = r.get("cluster_entropy")
    if ce is not None and ce.height:
        return ce.filter(pl.col("modality") == modality).select("cluster", "size", "n_clips", "entropy")
    from handclust_assets.science.metrics import cross_clip_entropy

    ccc = r.get("cross_clip_clusters")
    g = ccc.filter(pl.col("modality") == modality) if ccc is not None else None
    if g is None or not g.height:
        return pl.DataFrame(schema={"cluster": pl.Int64, "size": pl.Int64, "n_clips": pl.Int64,
                                    "entropy": pl.Float64})
    return cross_clip_entropy(g["cluster"].to_numpy(), g["clip"].to_numpy())[0]


def medoid_grid(r: Results, modality: str, top: int = 6) -> list[GridRow]:
    """Rows = the `top` clusters by mixing entropy (then size); per clip, the cluster's member from that clip
    closest to the whole cluster's centroid (its medoid there), shown by its middle frame."""
    ccc = r.get("cross_clip_clusters")
    segs = r.get("segments")
    if ccc is None or segs is None:
        return []
    g = ccc.filter((pl.col("modality") == modality) & (pl.col("cluster") >= 0))
    if not g.height:
        return []
    ent = cluster_entropy_of(r, modality).sort(["entropy", "size", "cluster"], descending=[True, True, False])
    fm = _feature_matrix(r, modality)
    pos: dict[tuple[str, int], int] = {}
    if fm is not None:
        pos = {(c, int(s)): i for i, (c, s) in enumerate(fm[0].iter_rows())}
    rows = []
    for e in ent.head(top).iter_rows(named=True):
        c = int(e["cluster"])
        members = g.filter(pl.col("cluster") == c).join(
            segs.select("clip", "segment_idx", "start_frame", "end_frame"), on=["clip", "segment_idx"], how="left")
        idx = [pos.get((m["clip"], int(m["segment_idx"]))) for m in members.iter_rows(named=True)]
        cen = None
        if fm is not None and all(i is not None for i in idx) and idx:
            cen = fm[1][idx].mean(axis=0)
        row = GridRow(c, r.label(modality, c), float(e["entropy"]) if finite(e["entropy"]) else float("nan"),
                      int(e["size"]), int(e["n_clips"]))
        for (clip,), mg in members.group_by(["clip"], maintain_order=True):
            if cen is not None:
                d = [float(((fm[1][pos[(clip, int(s))]] - cen) ** 2).sum()) for s in mg["segment_idx"]]
                best = mg.row(int(np.argmin(d)), named=True)
            else:
                best = mg.sort(["probability", "segment_idx"], descending=[True, False]).row(0, named=True)
            sf, ef = best["start_frame"], best["end_frame"]
            key = (int(sf) + int(ef) - 1) // 2 if sf is not None and ef is not None else 0
            row.cells[clip] = (int(best["segment_idx"]), key)
        rows.append(row)
    return rows


# ---- per-clip evidence -------------------------------------------------------------------------------------
def segments_of_cluster(r: Results, clip: str, modality: str = "fusion") -> pl.DataFrame | None:
    """The clip's segments with their cluster for `modality` (cross-clip clusters)."""
    ccc = r.clip_nonempty("cross_clip_clusters", clip)
    seg = r.clip_nonempty("segments", clip)
    if ccc is None or seg is None:
        return None
    g = ccc.filter(pl.col("modality") == modality).select("segment_idx", "cluster", "cluster_full")
    if not g.height:
        return None
    return seg.join(g, on="segment_idx", how="left").sort("segment_idx")


def top_tools(r: Results, clip: str, modality: str = "fusion", n: int = 3) -> list[tuple[int, list[tuple[str, float]]]]:
    """Per cluster present in the clip: the `n` prompts with the highest mean OWLv2 score over its frames."""
    tools = r.clip_nonempty("tool_scores", clip)
    sc = segments_of_cluster(r, clip, modality)
    if tools is None or sc is None:
        return []
    out = []
    for (c,), g in sc.filter(pl.col("cluster") >= 0).sort("cluster").group_by(["cluster"], maintain_order=True):
        frames = pl.concat([pl.DataFrame({"frame_idx": np.arange(int(a), int(b), dtype=np.int64)})
                            for a, b in zip(g["start_frame"], g["end_frame"]) if b > a] or
                           [pl.DataFrame(schema={"frame_idx": pl.Int64})])
        t = tools.join(frames, on="frame_idx", how="semi")
        if not t.height:
            continue
        top = t.group_by("prompt").agg(pl.col("score").mean()).sort(["score", "prompt"], descending=[True, False])
        out.append((int(c), [(p, float(s)) for p, s in top.head(n).iter_rows()]))
    return out


DETECT_BOOL = ("detected", "present", "visible", "found", "has_hand", "has_pose", "tracked", "any_hand")
DETECT_COUNT = ("n_hands", "num_hands", "n_detections", "count")


def _frames_where(d: pl.DataFrame, n_frames: int) -> np.ndarray:
    out = np.zeros(n_frames, bool)
    f = d["frame_idx"].drop_nulls().cast(pl.Int64).to_numpy()
    out[f[(f >= 0) & (f < n_frames)]] = True
    return out


def detection_series(df: pl.DataFrame, n_frames: int) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """Per cached frame, whether the hand/pose table has a hand/body there: returns (any-presence bool array,
    per-state arrays). Understands a `state` column (detected | tracked | absent, the hands table), a boolean
    `detected`-like column (the pose table), a count column, or else rows with non-null keypoints."""
    if df is None or "frame_idx" not in df.columns or n_frames <= 0:
        return None
    by_state: dict[str, np.ndarray] = {}
    state = next((c for c in ("state", "source") if c in df.columns and df.schema[c] == pl.Utf8), None)
    col = next((c for c in DETECT_BOOL if c in df.columns and df.schema[c] == pl.Boolean), None)
    cnt = next((c for c in DETECT_COUNT if c in df.columns and df.schema[c].is_numeric()), None)
    if state is not None:
        s = pl.col(state).fill_null("absent")
        d = df.filter(s != "absent")
        for v in sorted(set(d[state].drop_nulls().to_list())):
            by_state[str(v)] = _frames_where(d.filter(pl.col(state) == v), n_frames)
    elif col is not None:
        d = df.filter(pl.col(col).fill_null(False))
    elif cnt is not None:
        d = df.filter(pl.col(cnt).fill_null(0) > 0)
    else:
        kp = next((c for c in ("keypoints", "landmarks", "bbox", "box", "score") if c in df.columns), None)
        d = df.filter(pl.col(kp).is_not_null()) if kp is not None else df
    return _frames_where(d, n_frames), by_state


def clip_frames(r: Results, clip: str) -> int:
    fc = r.frame_cache(clip)
    if fc is not None:
        return len(fc)
    for name in ("frame_cache", "flow", "scene_embeddings"):
        df = r.clip_nonempty(name, clip)
        if df is not None and "frame_idx" in df.columns:
            return int(df["frame_idx"].max()) + 1
    return 0


def coverage(r: Results, table: str, clip: str
             ) -> tuple[float, dict[str, float], np.ndarray, dict[str, np.ndarray]] | None:
    """(share of frames with a hand/body, share per state (detected / tracked), per-frame presence array,
    per-state arrays) or None when the table has nothing for the clip."""
    df = r.clip(table, clip)
    if df is None:
        return None
    n = clip_frames(r, clip)
    s = detection_series(df, n)
    if s is None:
        return None
    det, by_state = s
    return float(det.mean()), {k: float(v.mean()) for k, v in by_state.items()}, det, by_state


def repetition_share(r: Results, clip: str | None = None) -> tuple[int, int] | None:
    """(segments with an accepted period, segments) overall or for one clip."""
    rep = r.get("repetitions") if clip is None else r.clip("repetitions", clip)
    if rep is None or not rep.height or "accepted" not in rep.columns:
        return None
    return int(rep["accepted"].fill_null(False).sum()), rep.height


# ---- take-aways -------------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


Takeaway = tuple[str, str]  # (headline, evidence)


def _fusion_vs_best(r: Results, cce: pl.DataFrame, b: dict) -> Takeaway | None:
    fus = cce.filter(pl.col("modality") == "fusion")
    if not fus.height:
        return None
    name = r.modality_name
    f = fus.row(0, named=True)
    fe = f["mean_entropy"] if finite(f["mean_entropy"]) else float("nan")
    d = fe - b["mean_entropy"]
    verdict = "beats" if d > 0.005 else ("matches" if abs(d) <= 0.005 else "trails")
    ev = (f"Fusion mean entropy {fe:.3f} vs {b['mean_entropy']:.3f} ({d:+.3f}); multi-clip "
          f"{_pct(f['multi_clip_share'])} vs {_pct(b['multi_clip_share'])}; noise {f['noise']}/{f['n']} vs "
          f"{b['noise']}/{b['n']}.")
    gts = r.nonempty("ground_truth_scores")
    if gts is not None and "mof" in gts.columns:
        fg = gts.filter(pl.col("modality") == "fusion")
        sg = gts.filter(pl.col("modality") != "fusion").sort("mof", descending=True, nulls_last=True)
        if fg.height and sg.height:
            s0 = sg.row(0, named=True)
            ev += f" On ground truth: fusion MoF {fg['mof'][0]:.3f} vs best single {name(s0['modality'])} {s0['mof']:.3f}."
    return f"Late fusion {verdict} the best single modality on cross-clip consistency.", ev


def _consistency(r: Results) -> list[Takeaway]:
    """Which single modality forms the most cross-clip-consistent clusters, and how the fusion compares."""
    cce = r.nonempty("cross_clip_entropy")
    if cce is None:
        return []
    name = r.modality_name
    single = cce.filter((pl.col("modality") != "fusion") & pl.col("mean_entropy").is_not_nan()
                        & pl.col("mean_entropy").is_not_null()).sort(["mean_entropy", "multi_clip_share"],
                                                                     descending=True)
    if not single.height:
        return []
    b = single.row(0, named=True)
    ev = (f"{name(b['modality'])}: mean mixing entropy {b['mean_entropy']:.3f}, {_pct(b['multi_clip_share'])} of its "
          f"k={b['k']} clusters span ≥ 2 clips, noise {b['noise']}/{b['n']} segments.")
    if single.height > 1:
        w = single.row(single.height - 1, named=True)
        ev += f" Lowest: {name(w['modality'])} ({w['mean_entropy']:.3f}, {_pct(w['multi_clip_share'])} multi-clip)"
        ev += (" — its clusters are clip-private, i.e. it fingerprints each clip's look."
               if w["multi_clip_share"] < 0.5 else ".")
    out = [(f"{name(b['modality'])} forms the most cross-clip-consistent clusters.", ev)]
    fusion = _fusion_vs_best(r, cce, b)
    return out + ([fusion] if fusion else [])


def _coverage(r: Results, status: dict[str, ModalityStatus]) -> list[Takeaway]:
    """How much of each clip the hands and the body are seen in (before and after CSRT tracking)."""
    out = []
    for tab, label in (("hands", "Hand"), ("pose", "Body-pose")):
        cov = {c: cv for c in r.clips if (cv := coverage(r, tab, c)) is not None}
        if not cov:
            if tab == "hands":
                out.append(("Hand coverage is unknown: the hands modality is absent.", status["hands"].reason))
            continue
        share = {c: cv[0] for c, cv in cov.items()}
        lo, hi = min(share.values()), max(share.values())
        cmin, cmax = min(share, key=share.get), max(share, key=share.get)
        if _pct(lo) == _pct(hi):
            head = f"{label} coverage is {_pct(lo)} of frames in every clip."
            ev = f"Same share in all {len(share)} clip(s) with {tab} results."
        else:
            head = f"{label} coverage ranges {_pct(lo)}–{_pct(hi)} of frames."
            ev = (f"Lowest {cmin} ({_pct(lo)}), highest {cmax} ({_pct(hi)}), mean "
                  f"{_pct(float(np.mean(list(share.values()))))} over {len(share)} clip(s).")
        det = [cv[1]["detected"] for cv in cov.values() if "detected" in cv[1]]
        if det and any("tracked" in cv[1] for cv in cov.values()):
            ev += f" Detections alone (before CSRT tracking): {_pct(min(det))}–{_pct(max(det))}."
        out.append((head, ev))
    return out


def _repetitions(r: Results) -> list[Takeaway]:
    rs = repetition_share(r)
    if rs is None or not rs[1]:
        return []
    per = {c: s for c in r.clips if (s := repetition_share(r, c)) is not None and s[1]}
    shares = [a / n for a, n in per.values()]
    ev = f"SSM × flow periods agree within 30% in {rs[0]} / {rs[1]} segments"
    if len(shares) > 1:
        ev += f"; per clip {_pct(min(shares))}–{_pct(max(shares))}"
    return [(f"{_pct(rs[0] / rs[1])} of segments have an accepted repetition period.", ev + ".")]


def _phase(r: Results) -> list[Takeaway]:
    """Which ablation agrees best with the file-name phase, with a caution when that is clip recognition."""
    ph = r.nonempty("phase_scores")
    ok = None if ph is None else ph.filter(pl.col("nmi").is_not_null() & pl.col("nmi").is_not_nan()).sort(
        "nmi", descending=True)
    if ok is None or not ok.height:
        return []
    top = float(ok["nmi"][0])
    best = ok.filter((pl.col("nmi") - top).abs() < 1e-9)
    names = " and ".join(f"'{b}'" for b in best["ablation"].to_list())
    b = best.row(0, named=True)
    ev = f"NMI {b['nmi']:.3f}, ARI {b['ari']:.3f} ({', '.join(best['modalities'].to_list())}; k={b['k']})."
    cce = r.nonempty("cross_clip_entropy")
    private = []
    for mods in best["modalities"].to_list() if cce is not None else []:
        m = cce.filter(pl.col("modality") == mods)  # a single-modality ablation
        if m.height and m["multi_clip_share"][0] < 0.5:
            private.append((mods, float(m["multi_clip_share"][0])))
    if private:
        who = " and ".join(f"{r.modality_name(m)} ({_pct(1 - sh)})" for m, sh in private)
        ev += (f" Caution: the clusters of {who} are clip-private, so agreeing with the file-name phase may just "
               "mean recognising the clip.")
    verb = "agree" if best.height > 1 else "agrees"
    return [(f"{names} {verb} best with the file-name phase{' (tie)' if best.height > 1 else ''}.", ev)]


def _anomalies(r: Results) -> list[Takeaway]:
    an = r.get("anomalies")
    if an is None:
        return []
    n_scored = r.n_clips_in("anomaly_scores")
    if an.height:
        tot = float((an["end_s"] - an["start_s"]).sum())
        return [(f"{an.height} anomalous span(s) in {an['clip'].n_unique()} of {n_scored} clip(s).",
                 f"{tot:.0f} s flagged in total (1 − typicality, EMA, threshold median + contrast, hysteresis).")]
    return [("No anomalous span in any clip.", f"The detector (1 − typicality, EMA, threshold median + contrast, hysteresis) "
             f"kept no span in the {n_scored} clip(s) with anomaly scores.")]


def _skipped(r: Results, status: dict[str, ModalityStatus]) -> list[Takeaway]:
    skipped = [m for m, s in status.items() if not s.present]
    if not skipped:
        return [("Every modality has results.", "No modality was skipped.")]
    name = r.modality_name
    return [(f"Skipped modalities: {', '.join(name(m) for m in skipped)}.",
             " ".join(f"{name(m)}: {status[m].reason}." for m in skipped))]


def takeaways(r: Results, status: dict[str, ModalityStatus]) -> list[Takeaway]:
    """(headline, evidence) pairs, every number computed from the current tables."""
    return [*_consistency(r), *_coverage(r, status), *_repetitions(r), *_phase(r), *_anomalies(r),
            *_skipped(r, status)]
