"""EgoClean's anomaly pass, beyond detection: per-clip diagnostics (images + numbers) and spans vs ground truth.

- `anomaly_diagnostics`: per clip, from the same window embeddings the detector used (V-JEPA 2 windows, else the
  scene embeddings pooled to 1-s windows, labelled so): consecutive cosine distance, window self-similarity,
  autocorrelation of the distance with its period, similarity to the previous cycle (numbers in the table and
  as clip-qualified metadata), and two PNGs under <storage>/dashboard/diagnostics/ (the four panels; the
  detection plot with θ_on/θ_off, spans and ground truth). Only clips whose inputs changed are re-rendered.
- `anomaly_matches` / `anomaly_evaluation`: detected spans vs `anomaly_ground_truth` (one-to-one IoU matching):
  per GT span detected or missed with start/end error, false-positive spans, precision/recall/IoU per clip and
  overall.
"""

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from handclust_assets.defs.common import measured, numeric_metadata
from handclust_assets.defs.evaluation.assets import evaluation_asset
from handclust_assets.defs.resources import StorageResource

DIAG_DIR = ("dashboard", "diagnostics")
DIAG_VERSION = "diag-v2"  # part of every clip's digest: a new figure style re-renders every clip
MAX_CLIP_METADATA = 50  # clips whose numbers are also metadata keys (all of them are in the table)
DIAG_SCHEMA = {
    "clip": pl.Utf8,
    "source": pl.Utf8,
    "source_label": pl.Utf8,
    "n_windows": pl.Int64,
    "mean_consecutive_distance": pl.Float64,
    "max_consecutive_distance": pl.Float64,
    "period_s": pl.Float64,
    "acf_peak": pl.Float64,
    "mean_cycle_similarity": pl.Float64,
    "mean_offdiag_similarity": pl.Float64,
    "diagnostics_png": pl.Utf8,
    "detection_png": pl.Utf8,
}
GT_SPANS = {"clip": pl.Utf8, "start_s": pl.Float64, "end_s": pl.Float64, "label": pl.Utf8}


def diagnostics_names(clip: str) -> tuple[str, str]:
    """File names (under <storage>/dashboard/diagnostics/) of a clip's two figures."""
    return f"{clip}_diagnostics.png", f"{clip}_detection.png"


def gt_spans(anomaly_ground_truth: pl.DataFrame | None) -> tuple[pl.DataFrame, list[str]]:
    """(GT spans with clip/start_s/end_s/label, the clips that have ground truth — a clip checked and found clean
    is among them with no span)."""
    if anomaly_ground_truth is None or not anomaly_ground_truth.height:
        return pl.DataFrame(schema=GT_SPANS), []
    spans = anomaly_ground_truth.filter(pl.col("span_idx").is_not_null()).select(list(GT_SPANS)).cast(GT_SPANS)
    return spans, sorted(anomaly_ground_truth["clip"].unique().to_list())


def _clip_rows(df: pl.DataFrame | None, clip: str) -> pl.DataFrame | None:
    return df.filter(pl.col("clip") == clip) if df is not None and "clip" in df.columns else None


def clip_digest(clip: str, label: str, scores: pl.DataFrame | None, spans: pl.DataFrame | None,
                gt: pl.DataFrame | None) -> str:
    """What a clip's figures show: scores (they follow from the window embeddings), spans, GT, source label."""
    h = hashlib.sha256(f"{DIAG_VERSION}|{clip}|{label}".encode())
    for df, cols in ((scores, ("t_s", "raw_score", "smoothed", "theta_on")), (spans, ("start_s", "end_s")),
                     (gt, ("start_s", "end_s", "label"))):
        if df is not None and df.height:
            h.update(df.select(list(cols)).write_csv().encode())
    return h.hexdigest()[:16]


def render_clip(store: Any, clip: str, emb: Any, t: Any, label: str, scores: pl.DataFrame | None,
                spans: pl.DataFrame | None, gt: pl.DataFrame | None, duration_s: float | None) -> dict:
    """Compute the clip's diagnostics, render both figures locally and publish them (one atomic write each);
    the table row's numbers."""
    from handclust_assets.report.diagnostics import detection_png, diagnostics_png
    from handclust_assets.science.anomaly import SCORE_SCHEMA, SPAN_SCHEMA
    from handclust_assets.science.anomaly_diagnostics import compute_diagnostics

    diag = compute_diagnostics(emb, t)
    names = diagnostics_names(clip)
    with tempfile.TemporaryDirectory(prefix="diag-") as tmp:
        a, b = Path(tmp) / names[0], Path(tmp) / names[1]
        diagnostics_png(diag, a, label, clip=clip)
        detection_png(scores if scores is not None else pl.DataFrame(schema=SCORE_SCHEMA),
                      spans if spans is not None else pl.DataFrame(schema=SPAN_SCHEMA), b, label, gt=gt, clip=clip,
                      duration_s=duration_s)
        for p in (a, b):
            store.write_bytes(p.read_bytes(), *DIAG_DIR, p.name)
    return diag.summary()


def _row(clip: str, source: str, label: str, summary: dict, store: Any) -> dict:
    names = diagnostics_names(clip)
    return {"clip": clip, "source": source, "source_label": label, **{k: summary.get(k) for k in DIAG_SCHEMA
            if k in summary}, "diagnostics_png": store.uri(*DIAG_DIR, names[0]),
            "detection_png": store.uri(*DIAG_DIR, names[1])}


def _metadata(df: pl.DataFrame, rendered: int, kept: int, label: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"clips": dg.MetadataValue.int(df.height), "rendered": dg.MetadataValue.int(rendered),
                            "unchanged": dg.MetadataValue.int(kept), "embedding_source": label or "none"}
    for r in df.head(MAX_CLIP_METADATA).iter_rows(named=True):
        meta.update(numeric_metadata({k: r[k] for k in ("period_s", "acf_peak", "mean_consecutive_distance",
                                                         "mean_cycle_similarity", "n_windows")}, f"{r['clip']}/"))
    if df.height:
        meta.update(numeric_metadata({"mean_period_s": df["period_s"].drop_nans().mean(),
                                      "clips_with_period": int(df["period_s"].is_not_nan().sum())}))
    return meta


@dg.asset(group_name="evaluation", kinds={"python", "duckdb"}, code_version="anomaly-diagnostics-v1",
          deps=["segment_features"],
          description="EgoClean diagnostics per clip, from the window embeddings the anomaly detector used (V-JEPA 2 "
          "windows, else offline scene embeddings pooled to 1-s windows — the label says which): consecutive cosine "
          "distance, window self-similarity, autocorrelation of the distance and its period, similarity to the "
          "previous cycle; numbers per clip (table + metadata `<clip>/...`), figures under "
          "<storage>/dashboard/diagnostics/ (four panels + the detection plot with θ_on/θ_off, spans and ground "
          "truth). Only clips whose scores, spans or ground truth changed are re-rendered.")
@measured
def anomaly_diagnostics(context: dg.AssetExecutionContext, storage: StorageResource,
                        video_embeddings: pl.DataFrame | None, scene_embeddings: pl.DataFrame | None,
                        anomaly_scores: pl.DataFrame | None, anomalies: pl.DataFrame | None,
                        anomaly_ground_truth: pl.DataFrame | None, clips: pl.DataFrame | None
                        ) -> dg.Output[pl.DataFrame]:
    from handclust_assets.report.diagnostics import embedding_source_label
    from handclust_assets.science.evaluation import window_embeddings

    store = storage.store()
    source, windows = window_embeddings(video_embeddings, scene_embeddings)
    model = (scene_embeddings["model"][0] if scene_embeddings is not None and scene_embeddings.height
             and "model" in scene_embeddings.columns else None)
    label = embedding_source_label(source, model) if windows else ""
    gt, _ = gt_spans(anomaly_ground_truth)
    manifest = store.read_json(*DIAG_DIR, "manifest.json") or {}
    rows, rendered, kept = [], 0, 0
    for clip, (emb, t, _) in sorted(windows.items()):
        sc, sp, g = _clip_rows(anomaly_scores, clip), _clip_rows(anomalies, clip), _clip_rows(gt, clip)
        digest = clip_digest(clip, label, sc, sp, g)
        old = manifest.get(clip, {})
        if old.get("digest") == digest and all(store.exists(*DIAG_DIR, n) for n in diagnostics_names(clip)):
            summary, kept = old["summary"], kept + 1
        else:
            dur = _clip_rows(clips, clip)
            summary = render_clip(store, clip, emb, t, label, sc, sp, g,
                                  float(dur["duration_s"][0]) if dur is not None and dur.height else None)
            manifest[clip], rendered = {"digest": digest, "summary": summary}, rendered + 1
        rows.append(_row(clip, source, label, summary, store))
    store.write_json(manifest, *DIAG_DIR, "manifest.json")
    context.log.info(f"anomaly diagnostics: {rendered} clip(s) rendered, {kept} unchanged ({label or 'no windows'})")
    df = pl.DataFrame(rows, schema=DIAG_SCHEMA) if rows else pl.DataFrame(schema=DIAG_SCHEMA)
    return dg.Output(df, metadata=_metadata(df, rendered, kept, label))


def score_against_ground_truth(anomalies: pl.DataFrame | None, anomaly_ground_truth: pl.DataFrame | None) -> Any:
    """`science.anomaly_eval.score_anomalies` over the clips that have ground truth (a clip checked clean counts:
    every detection there is a false positive)."""
    from handclust_assets.science.anomaly_eval import score_anomalies

    spans, judged = gt_spans(anomaly_ground_truth)
    det = anomalies if anomalies is not None else pl.DataFrame(schema={"clip": pl.Utf8, "start_s": pl.Float64,
                                                                       "end_s": pl.Float64})
    return score_anomalies(spans, det.select("clip", "start_s", "end_s"), clips=judged)


def evaluation_table(anomalies: pl.DataFrame | None, anomaly_ground_truth: pl.DataFrame | None) -> pl.DataFrame:
    """Per clip with ground truth and overall (scope 'clip' / 'overall'; CLIP_SCORE_SCHEMA after `scope`)."""
    from handclust_assets.science.anomaly_eval import CLIP_SCORE_SCHEMA

    ev = score_against_ground_truth(anomalies, anomaly_ground_truth)
    schema = {"scope": pl.Utf8, **CLIP_SCORE_SCHEMA}
    per_clip = ev.per_clip.with_columns(pl.lit("clip").alias("scope")).select(list(schema))
    overall = pl.DataFrame([{"scope": "overall", **ev.overall}], schema=schema)
    return pl.concat([per_clip.cast(schema), overall]) if per_clip.height else overall.clear()


def _evaluation_metadata(df: pl.DataFrame) -> dict[str, Any]:
    overall = df.filter(pl.col("scope") == "overall")
    if not overall.height:
        return {"judged_clips": dg.MetadataValue.int(0), "note": "no clip has anomaly ground truth"}
    r = overall.row(0, named=True)
    keys = ("recall", "precision", "f1", "mean_iou", "time_iou", "n_gt", "n_detected", "n_hit", "n_missed",
            "n_false_positive", "mean_abs_start_error_s", "mean_abs_end_error_s")
    return {"judged_clips": dg.MetadataValue.int(df.height - 1), **numeric_metadata({k: r[k] for k in keys})}


anomaly_evaluation = evaluation_asset(
    "anomaly_evaluation", ins=["anomalies", "anomaly_ground_truth"], code_version="anomaly-evaluation-v1",
    deps=["segment_features"], compute=evaluation_table, metadata=_evaluation_metadata,
    description="Detected anomaly spans vs ground truth (`anomaly_ground_truth`): spans paired one-to-one by IoU "
    "(>= 0.2, Hungarian); per clip with ground truth and overall (micro-averaged): precision, recall, F1, mean IoU "
    "of the hits, time IoU, missed spans, false-positive spans, mean |start/end error|.")

anomaly_matches = evaluation_asset(
    "anomaly_matches", ins=["anomalies", "anomaly_ground_truth"], code_version="anomaly-matches-v1",
    deps=["segment_features"],
    compute=lambda anomalies, anomaly_ground_truth: score_against_ground_truth(anomalies, anomaly_ground_truth).matches,
    metadata=lambda df: {k: dg.MetadataValue.int(int((df["outcome"] == k).sum()))
                         for k in ("detected", "missed", "false_positive")},
    description="One row per ground-truth anomaly span (detected, with IoU and signed start/end error, or missed) "
    "and per false-positive detection: the rows of EgoClean's table (clip, ground truth, activity, detected).")

assets = [anomaly_diagnostics, anomaly_evaluation, anomaly_matches]
