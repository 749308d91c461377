"""`handclust eval-repetitions VIDEOS_DIR LABELS.csv`: repetition counting scored against labelled footage.

Runs the real graph on the labelled videos: a temporary HandClust home (results, Dagster instance) whose watched
folder is VIDEOS_DIR; each labelled clip gets its partition and a `process_clip` run in this process (by default
the part of the job that repetition counting needs: clips, frame_cache, period_track, period_curve; `--full-clip-run` runs every per-clip asset, models included). The clip counts are then read back
from the results with DuckDB (`handclust_assets.lib.tables.connect`: the stored period tracks, counted over the
whole clip) and scored: MAE (mean |pred - gt| / gt), OBO (share with |pred - gt| <= 1) and a per-clip table.

LABELS.csv: columns `file` (a path inside VIDEOS_DIR, or the name of one video under it) and `count`; optional
`cycle_end_frames`. Two benchmarks' label files are read as they ship (`lib.rep_eval.read_labels`): QUVA
Repetition's `annotations/` folder (one `<video>.npy` of cycle-end frames each) and RepCount-A's CSV (`name`,
`count`, each repetition's start and end frame in `L1, L2, ...`; its videos hold footage around the repetitions:
`--untrimmed`). A labelled video that is not found, or whose run fails, is scored as a miss (count 0) and the
exit status is 1. Dagster's console log is silenced; what each run said comes out one line per message (`run_clip`):
"a.mp4: failed: <the reason, naming the file>", "a.mp4: warning: ...", and the whole trace of a failure that is no
clip error (a bug).

Each clip is counted as trimmed to its repetition by default, as labelled benchmark clips of repetitions are (the
label counts the whole file): from its first moment to its last at the nearest tracked period, pauses left out
(`CountingParams.count_to_edges`). `--untrimmed` counts only where the counter finds the repetition, for clips with
footage before or after it. The report scores both ways from the same stored tracks (no second run): the chosen
way in full, the other in one line, so a folder whose clips are not what the default assumes shows it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer

RHYTHM_PATH = ["clips", "frame_cache", "period_track", "period_curve"]


def _fail(message: str) -> None:
    typer.echo(f"eval-repetitions: {message}", err=True)
    raise typer.Exit(code=2)


def clip_keys(videos_dir: Path, files: list[str]) -> tuple[dict[str, str], list[str]]:
    """label file -> partition key (as the folder sensor names it), and the labelled files not found. A label
    without the extension (`001_stirring` for `001_stirring.mp4`) names the one video of that path and stem; a
    label that is not a path inside the folder (a bare file name, an absolute path elsewhere) names the one video
    in the folder's tree with that file name (or stem), compared exactly and then case-insensitively; last, a label
    whose video was re-encoded into another container (`a.mp4` for `a.mov`) names the one video of its stem."""
    from handclust_assets.lib.video_folder import scan_videos
    from handclust_assets.video.probe import VIDEO_EXTENSIONS

    by_path = {p.resolve(): k for k, p in scan_videos(videos_dir).items()}
    index: dict[tuple[str, str], list[str]] = {}  # (how, name) -> keys
    for p, k in by_path.items():
        for how, name in (("path", str(p.with_suffix(""))), ("name", p.name), ("stem", p.stem),
                          ("iname", p.name.casefold()), ("istem", p.stem.casefold())):
            index.setdefault((how, name), []).append(k)
    keys, missing = {}, []
    for f in files:
        path = (videos_dir / f).resolve()
        name = Path(f.replace("\\", "/")).name
        stem = Path(name).stem if Path(name).suffix.lower() in VIDEO_EXTENSIONS else name  # re-encoded: a.mp4 -> a.mov
        tries = [by_path.get(path)] + [
            hits[0] if len(hits := index.get(q, [])) == 1 else None
            for q in (("path", str(path)), ("name", name), ("stem", name), ("iname", name.casefold()),
                      ("istem", name.casefold()), ("stem", stem), ("istem", stem.casefold()))]
        k = next((t for t in tries if t is not None), None)
        if k is None:
            missing.append(f)
        else:
            keys[f] = k
    return keys, missing


def clip_resources(home: Path, videos_dir: Path) -> dict:
    """The code location's resources with results under `home` and `videos_dir` as the watched folder."""
    from handclust_assets.defs.io_manager import TablesIOManager
    from handclust_assets.defs.resources import HandclustSettings, StorageResource, default_resources

    res = default_resources()
    res["storage"] = StorageResource(root=str(home))
    res["settings"] = HandclustSettings(video_folder=str(videos_dir.resolve()))
    res["io_manager"] = TablesIOManager(storage=res["storage"])
    return res


@dataclass
class ClipRun:
    """What one clip's run left to say: its failures (None: the run succeeded) and its warnings, one line each."""

    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)  # full traces of failures that are no clip error (a bug)


# the executor's own notes on the steps after a failed one (the failure itself is reported)
ENGINE_NOTE = re.compile(r"Dependencies for step \S+ (failed|were not executed)")


def one_line(message: str) -> str:
    """An error message's first line without its exception class ("dagster._core.definitions.events.Failure:
    a.mp4: file is empty" -> "a.mp4: file is empty")."""
    lines = message.strip().splitlines()
    first = lines[0] if lines else ""
    return re.sub(r"^(?:[A-Za-z_]\w*\.)*\w*(?:Error|Failure|Exception|Interrupt|Exit): ", "", first)


def run_clip(key: str, selection: list[str] | None, instance: object, resources: dict) -> ClipRun:
    """Materialize one clip partition: the process_clip job's assets (all, or `selection` of them) in this
    process. Dagster's console log stays silent (the progress bar speaks instead); what the run said is returned
    one line per message: the failures (a bad video's reason, which names the file), the assets' warnings, and
    the whole trace of a failure that is no clip error."""
    import dagster as dg

    from handclust_assets.definitions import defs
    from handclust_assets.defs.jobs import PER_CLIP

    job_assets = [k.to_user_string() for a in PER_CLIP for k in a.keys]
    chosen = [a for a in job_assets if selection is None or a in selection]
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    res = dg.materialize([*defs.assets, *(defs.asset_checks or [])], selection=chosen, partition_key=key,
                         instance=instance, resources=resources, raise_on_error=False, run_config=quiet)
    out = ClipRun()
    for rec in instance.all_logs(res.run_id):
        text = rec.user_message or ""
        if not rec.is_dagster_event and rec.level >= logging.WARNING and text and not ENGINE_NOTE.match(text):
            out.warnings.append(one_line(text))
    if res.success:
        return out
    fails = []
    for e in res.get_step_failure_events():
        data = e.step_failure_data
        if data is None or data.error is None:
            continue
        if data.user_failure_data is not None:  # a dg.Failure: the graph's own worded reason (`common.failure_from`)
            fails.append(one_line(data.user_failure_data.description or data.error.message))
            continue
        err = root = data.error  # a bug: Dagster's wrapper says only which op; the reason is its cause, class kept
        while root.cls_name.startswith("Dagster") and root.cause is not None:
            root = root.cause
        lines = root.message.strip().splitlines()
        fails.append(f"{e.step_key}: {lines[0] if lines else root.cls_name}")
        out.traces.append(err.to_string())
    out.error = "; ".join(dict.fromkeys(fails)) or "run failed"
    return out


def read_clip_counts(root: Path, keys: dict[str, str], trimmed: bool = False) -> dict[str, dict]:
    """file -> the clip row of its counts and the clip's fps from `clips`: the stored period tracks read with DuckDB in
    one query and counted by `counts_for_clips`, as `repetition_counts` counts them; `trimmed`: from the clip's first
    moment to its last (`CountingParams.count_to_edges`)."""
    import polars as pl

    from handclust_assets.defs.counting.assets import counts_for_clips
    from handclust_assets.lib import tables

    with tables.connect(str(root)) as con:
        if "period_track" not in con.tables():
            return {}
        fps = dict(con.sql("select clip, fps from clips").fetchall()) if "clips" in con.tables() else {}
        tracks = con.sql("select * from period_track where list_contains($1, clip)",
                         params=[sorted(set(keys.values()))]).pl()
    # counted as `repetition_counts` counts them (no activity spans: the clip rows)
    rows = {r["clip"]: r for r in counts_for_clips(tracks, None, trimmed).filter(pl.col("scope") == "clip")
            .iter_rows(named=True)}
    return {f: {**rows[k], "fps": fps.get(k)} for f, k in keys.items() if k in rows}


def counting_way_lines(summary: dict, trimmed: bool) -> str:
    """How the clips were counted, and the scores the other way (`summary["other"]`: MAE / OBO of the same stored
    tracks counted the other way; `summary["periodic_share"]`: the median share of each clip's time where the
    repetition was found)."""
    nan = float("nan")
    other = summary.get("other") or {}
    other_scores = f"MAE {other.get('mae', nan):.3f}  OBO {other.get('obo', nan):.3f}"
    share = summary.get("periodic_share")
    found = f"a median {share:.0%} of each clip's time" if share is not None else "no clip counted"
    if trimmed:
        return ("counted as trimmed clips (the default): each from its first moment to its last, pauses left out\n"
                f"counted only where the repetition was found ({found}; --untrimmed, for clips with footage before "
                f"or after it): {other_scores}")
    return (f"counted where the repetition was found (--untrimmed): {found}\n"
            f"counted as trimmed clips, each one whole (the default, for clips trimmed to the repetition): "
            f"{other_scores}")


def eval_repetitions(
    videos_dir: Path = typer.Argument(..., help="Folder with the labelled videos."),
    labels_csv: Path = typer.Argument(..., help="CSV with columns file, count (optional cycle_end_frames); or a "
                                      "benchmark's own labels: a folder of <video>.npy cycle-end frames (QUVA "
                                      "Repetition's annotations/), a CSV with name, count, L1, L2, ... (RepCount-A)."),
    full_clip_run: bool = typer.Option(False, "--full-clip-run", help="Run every per-clip asset of process_clip "
                                       "(models included), not only what repetition counting needs."),
    keep: Path = typer.Option(None, "--keep", help="Keep the results here (a HandClust home) instead of a "
                              "temporary folder."),
    out_csv: Path = typer.Option(None, "--out", help="Also write the per-clip table as CSV."),
    trimmed: bool = typer.Option(True, "--trimmed/--untrimmed", help="--trimmed (the default): the clips are "
                                 "trimmed to the repetition, as labelled benchmark clips are; count each from its "
                                 "first moment to its last. --untrimmed: the clips have footage before or after the "
                                 "repetition; count only where the repetition is found. The report scores the "
                                 "other way too, in one line."),
) -> None:
    """Run the graph on a labelled folder and print MAE, OBO and a per-clip table of repetition counts."""
    from handclust_assets.lib.rep_eval import format_scores, read_labels, score_counts

    if not videos_dir.is_dir():
        _fail(f"{videos_dir} is not a folder")
    if not (labels_csv.is_file() or labels_csv.is_dir()):
        _fail(f"{labels_csv} not found")
    try:
        labels = read_labels(labels_csv)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        _fail(f"bad labels file: {e}")
    if labels.height == 0:
        _fail(f"{labels_csv} has no labelled clips")
    keys, missing = clip_keys(videos_dir, labels["file"].to_list())
    if len(missing) == labels.height:
        _fail(f"all {labels.height} labelled file(s) not found as videos in {videos_dir} (first: {missing[0]})")
    if missing:  # no result row: `score_counts` scores them as "missing" (count 0); the other clips still run
        typer.echo(f"eval-repetitions: {len(missing)} labelled file(s) not found as videos in {videos_dir}, scored "
                   f"as missing: {', '.join(missing[:10])}", err=True)
    table, summary, seconds = _run(videos_dir, keys, None if full_clip_run else RHYTHM_PATH, keep, labels,
                                   score_counts, trimmed)
    typer.echo(format_scores(table, summary))
    typer.echo(counting_way_lines(summary, trimmed))
    typer.echo(f"graph runs: {sum(seconds.values()):.1f}s for {len(seconds)} clip(s)")
    if out_csv is not None:
        table.write_csv(out_csv)
    if summary.get("failed") or missing:
        raise typer.Exit(code=1)


def _run(videos_dir: Path, keys: dict[str, str], selection: list[str] | None, keep: Path | None, labels,
         score_counts, trimmed: bool = True) -> tuple:
    import numpy as np
    import polars as pl
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    home = keep.expanduser().resolve() if keep is not None else Path(tempfile.mkdtemp(prefix="handclust-evalrep-"))
    (home / "videos").mkdir(parents=True, exist_ok=True)
    saved = {v: os.environ.get(v) for v in ("HANDCLUST_HOME", "HANDCLUST_VIDEO_DIR", "HANDCLUST_STORAGE",
                                            "DAGSTER_HOME")}
    os.environ.update(HANDCLUST_HOME=str(home), HANDCLUST_VIDEO_DIR=str(videos_dir.resolve()))
    os.environ.pop("HANDCLUST_STORAGE", None)
    os.environ.pop("DAGSTER_HOME", None)
    try:
        resources = clip_resources(home, videos_dir)
        import dagster as dg

        from handclust_assets.defs.partitions import clip_partitions

        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(clip_partitions.name, sorted(set(keys.values())))
        failures, seconds = {}, {}
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      transient=False) as bar:
            task = bar.add_task("counting", total=len(keys))
            for f, k in keys.items():
                bar.update(task, description=f"counting {f[:40]}")
                t0 = time.perf_counter()
                run = run_clip(k, selection, instance, resources)
                seconds[f] = time.perf_counter() - t0
                for w in run.warnings:
                    bar.console.print(f"{f}: warning: {w}", markup=False, highlight=False, soft_wrap=True)
                if run.error:
                    failures[f] = run.error
                    bar.console.print(f"{f}: failed: {run.error}", markup=False, highlight=False, soft_wrap=True)
                for trace in run.traces:
                    bar.console.print(trace, markup=False, highlight=False, soft_wrap=True)
                bar.advance(task)
        def results(counts: dict[str, dict]) -> pl.DataFrame:
            rows = []
            for f in keys:
                r = counts.get(f)
                if r is None:
                    rows.append({"file": f, "status": f"failed: {failures.get(f, 'no period track')}"[:200],
                                 "seconds": seconds[f]})
                    continue
                rows.append({"file": f, **{c: r[c] for c in ("count", "count_estimate", "mean_period_s",
                                                             "confidence", "status", "agreeing_signals", "fps")},
                             "seconds": seconds[f]})
            return pl.DataFrame(rows, schema={
                "file": pl.Utf8, "count": pl.Float64, "count_estimate": pl.Float64, "mean_period_s": pl.Float64,
                "confidence": pl.Float64, "status": pl.Utf8, "agreeing_signals": pl.List(pl.Utf8),
                "fps": pl.Float64, "seconds": pl.Float64})

        # the same stored tracks counted both ways: the chosen way in full, the other for one line of the report
        counts, other_counts = read_clip_counts(home, keys, trimmed), read_clip_counts(home, keys, not trimmed)
        table, summary = score_counts(labels, results(counts))
        _, other = score_counts(labels, results(other_counts))
        summary["other"] = {k: other.get(k) for k in ("mae", "obo")}
        summary["failed"] = len(failures)
        shares = [r["periodic_s"] / (r["end_s"] - r["start_s"]) for r in counts.values()
                  if r.get("count_estimate") is not None and r["end_s"] > r["start_s"]]
        summary["periodic_share"] = float(np.median(shares)) if shares else None
        return table, summary, seconds
    finally:
        for v, val in saved.items():
            if val is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = val
        if keep is None:
            shutil.rmtree(home, ignore_errors=True)
