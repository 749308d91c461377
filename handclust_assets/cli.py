"""`handclust`: the command line (demo, generate, ui, fetch-models, forget, catalog, dashboard)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="HandClust: label-free activity discovery.")

# Console logs at WARNING for the CLI (full DEBUG logs stay in the Dagster instance, visible in the UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _dagster_home() -> Path:
    """DAGSTER_HOME: the env var, else the folder holding dagster.yaml (repo root), else storage/dagster_home."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = Path.cwd() if (Path.cwd() / "dagster.yaml").exists() else Path("storage/dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@app.command()
def generate(
    out: Path = typer.Argument(Path("storage/videos"), help="Folder for the clips."),
    n_clips: int = typer.Option(5, "--clips", "-n"),
    duration: float = typer.Option(60.0, help="Seconds per clip."),
    width: int = 640,
    height: int = 360,
    fps: float = 15.0,
    seed: int = 0,
) -> None:
    """Generate synthetic helmet-cam clips with per-frame ground truth."""
    from handclust_assets.lib.synthetic import generate_demo_set

    paths = generate_demo_set(out, n_clips=n_clips, duration_s=duration, width=width, height=height, fps=fps, seed=seed)
    for p in paths:
        typer.echo(str(p))


@app.command("fetch-models")
def fetch_models(dest: Path = typer.Option(None, help="Default: storage/models")) -> None:
    """Fetch the MediaPipe models (hand, pose) and verify their sha256."""
    from handclust_assets.models.mediapipe_models import fetch_mediapipe_models

    for name, path in fetch_mediapipe_models(dest).items():
        typer.echo(f"{name}: {path}")


def unavailable_model_assets() -> dict[str, str]:
    """Model-backed assets whose model cannot be loaded here, with the reason (the demo skips them)."""
    from handclust_assets.defs.modalities.embeddings import TOOL_MODEL, VIDEO_MODEL
    from handclust_assets.lib.errors import ModelUnavailableError

    out = {}
    for name, res in (("video_embeddings", VIDEO_MODEL), ("tool_scores", TOOL_MODEL)):
        try:
            res.load()
        except ModelUnavailableError as e:
            out[name] = str(e)
    from handclust_assets.defs.resources import MediaPipeResource

    mp = MediaPipeResource()
    for names, find in ((("pose", "pose_segments"), mp.pose_model), (("hands", "hand_segments"), mp.hand_model)):
        try:
            find()
        except ModelUnavailableError as e:
            out.update({n: str(e) for n in names})
    return out


def _print_results(con) -> None:  # noqa: ANN001 - a DuckDB connection
    """The headline numbers of a run, as a researcher would want them in the terminal."""
    import polars as pl

    pl.Config.set_tbl_hide_dataframe_shape(True)
    pl.Config.set_tbl_hide_column_data_types(True)
    pl.Config.set_float_precision(3)
    pl.Config.set_tbl_rows(20)
    views = {r[0] for r in con.sql("select view_name from duckdb_views() where not internal").fetchall()}
    shown = [("cross-clip consistency (label-free; 1 = clusters mix clips evenly)",
              "select modality, mean_entropy, multi_clip_share, k, noise, n from cross_clip_entropy "
              "order by mean_entropy desc nulls last", "cross_clip_entropy"),
             ("against the synthetic ground truth (MoF = mean over frames after Hungarian matching)",
              "select modality, mof, nmi, ari, edit from ground_truth_scores order by mof desc", "ground_truth_scores"),
             ("repetition counting vs ground truth",
              "select activity, segments, accepted_share, median_count_error, within_10pct from repetition_scores",
              "repetition_scores"),
             ("discovered activities (fusion)", "select cluster, label, n_segments, n_clips from cluster_labels "
              "where modality = 'fusion' order by cluster", "cluster_labels")]
    for title, sql, table in shown:
        if table in views:
            df = con.sql(sql).pl()
            if df.height:
                typer.echo(f"\n{title}:\n{df}")


@app.command()
def demo(
    n_clips: int = typer.Option(6, "--clips", "-n", help="Synthetic clips to generate (>= 5 for the demo)."),
    duration: float = typer.Option(90.0, help="Seconds per clip."),
    storage: Path = typer.Option(Path("storage"), help="Storage root."),
    skip_generate: bool = typer.Option(False, help="Use the videos already in the folder."),
) -> None:
    """The main job: generate the demo clips, register partitions, materialize every asset, print where to look."""
    os.environ["HANDCLUST_STORAGE"] = str(storage.resolve())
    _dagster_home()
    import dagster as dg
    from tqdm import tqdm

    from handclust_assets.definitions import CROSS_JOB, defs
    from handclust_assets.defs.partitions import clip_partitions
    from handclust_assets.defs.resources import HandclustSettings
    from handclust_assets.lib.video_folder import scan_videos

    settings = HandclustSettings(storage=str(storage.resolve()))
    vids = settings.videos()
    t0 = time.perf_counter()
    if not skip_generate:
        from handclust_assets.lib.synthetic import generate_demo_set

        typer.echo(f"generating {n_clips} synthetic clips of {duration:.0f}s into {vids} ...")
        generate_demo_set(vids, n_clips=n_clips, duration_s=duration)
    try:
        from handclust_assets.models.mediapipe_models import fetch_mediapipe_models

        fetch_mediapipe_models(None, progress=lambda m: None)
    except Exception as e:  # noqa: BLE001 - pose/hands assets will report the missing model themselves
        typer.echo(f"note: MediaPipe models unavailable ({e}); pose and hands will be skipped")
    keys = list(scan_videos(vids))
    if not keys:
        typer.echo(f"no videos in {vids}", err=True)
        raise typer.Exit(1)
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(clip_partitions.name, keys)
    from handclust_assets.definitions import per_clip_assets

    skipped = unavailable_model_assets()
    for asset_name, why in skipped.items():
        typer.echo(f"skipping {asset_name}: {why.splitlines()[0]}")
    selection = [a.key for a in per_clip_assets if a.key.to_user_string() not in skipped]
    failed: dict[str, str] = {}
    for key in tqdm(keys, desc="clips", unit="clip"):
        res = dg.materialize(per_clip_assets, selection=selection, partition_key=key, instance=instance,
                             resources=defs.resources, raise_on_error=False, run_config=QUIET)
        bad = [e for e in res.all_events if e.event_type_value == "STEP_FAILURE"]
        if bad:
            failed[key] = "; ".join(
                f"{e.step_key}: {e.event_specific_data.error.message.strip().splitlines()[0][:200]}" for e in bad
            )
    t_clips = time.perf_counter() - t0
    typer.echo(f"per-clip assets done in {t_clips:.0f}s; cross-clip clustering, evaluation and dashboard ...")
    cross = defs.resolve_job_def(CROSS_JOB).execute_in_process(instance=instance, raise_on_error=False,
                                                               run_config=QUIET)
    if cross.success:
        for job_name in ("classify_clips", "render_overlays"):  # per clip, after the pooled clustering
            job = defs.resolve_job_def(job_name)
            for key in tqdm([k for k in keys if k not in failed], desc=job_name, unit="clip"):
                r = job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False,
                                           run_config=QUIET)
                if not r.success:
                    failed.setdefault(key, f"{job_name} failed; see the Dagster UI run logs")
        # the page links the overlays and timelines that exist when it is built: render it once more now
        from handclust_assets.definitions import cross_clip_assets, dashboard_assets
        from handclust_assets.defs.dashboard.assets import lab_dashboard

        dg.materialize([*per_clip_assets, *cross_clip_assets, *dashboard_assets], selection=[lab_dashboard.key],
                       instance=instance, resources=defs.resources, raise_on_error=False, run_config=QUIET)
    from handclust_assets.lib.tables import connect, refresh_catalog

    catalog = refresh_catalog(storage)
    con = connect(storage)
    tables = [r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()]
    typer.echo(f"\ndone in {time.perf_counter() - t0:.0f}s: {len(keys)} clips, {len(tables)} tables")
    for key, why in failed.items():
        typer.echo(f"  partial: {key}: {why}")
    if not cross.success:
        bad = [e.step_key for e in cross.all_events if e.event_type_value == "STEP_FAILURE"]
        typer.echo(f"  cross-clip assets failed: {bad}; see the Dagster UI run logs")
    for asset_name in skipped:
        typer.echo(f"  skipped modality: {asset_name} (model unavailable; see above)")
    _print_results(con)
    typer.echo(f"\nresults (DuckDB catalog): {catalog}")
    typer.echo(f"tables: {', '.join(tables)}")
    dash = storage.resolve() / "dashboard" / "index.html"
    if dash.exists():
        typer.echo(f"lab dashboard: {dash}  (serve: handclust dashboard)")
    typer.echo("Dagster UI: handclust ui   (or: DAGSTER_HOME=$PWD dagster dev -w workspace.yaml)")
    typer.echo("notebook:   import handclust_assets as hc; con = hc.connect('storage'); con.sql('from clips').pl()")
    if failed and len(failed) == len(keys):
        raise typer.Exit(1)


@app.command()
def ui(port: int = 3000, host: str = "127.0.0.1") -> None:
    """Start the Dagster web UI (dagster dev) on this code location."""
    _dagster_home()
    os.execvp(
        sys.executable,
        [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-p", str(port), "-h", host],
    )


@app.command()
def forget(clip: str, storage: Path = typer.Option(Path("storage"))) -> None:
    """Delete a clip partition and all its results (tables, frame cache, arrays)."""
    import shutil

    _dagster_home()
    import dagster as dg

    from handclust_assets.lib.tables import delete_partition, refresh_catalog

    removed = delete_partition(storage, clip)
    shutil.rmtree(storage / "frames" / clip, ignore_errors=True)
    for f in (storage / "arrays").glob(f"*/{clip}.npz"):
        f.unlink()
    inst = dg.DagsterInstance.get()
    if inst.has_dynamic_partition("clips", clip):
        inst.delete_dynamic_partition("clips", clip)
    refresh_catalog(storage)
    typer.echo(f"forgot {clip}: {len(removed)} table files removed")


@app.command()
def catalog(storage: Path = typer.Option(Path("storage"))) -> None:
    """Rebuild the DuckDB catalog and print each table's row count."""
    from handclust_assets.lib.tables import connect, refresh_catalog

    typer.echo(str(refresh_catalog(storage)))
    con = connect(storage)
    for (name,) in con.execute("select view_name from duckdb_views() where not internal order by 1").fetchall():
        n = con.execute(f'select count(*) from "{name}"').fetchall()[0][0]
        typer.echo(f"{name:32s} {n:>9d}")


@app.command()
def dashboard(
    storage: Path = typer.Option(Path("storage"), help="Storage root."),
    port: int = 8765,
    host: str = "127.0.0.1",
    rebuild: bool = typer.Option(False, help="Rebuild the dashboard from the current results before serving."),
) -> None:
    """Serve the lab dashboard (storage/dashboard) over HTTP; build it first if it is missing (or --rebuild)."""
    import functools
    import http.server

    root = storage.resolve() / "dashboard"
    if rebuild or not (root / "index.html").exists():
        if not (storage.resolve() / "tables").is_dir():
            typer.echo(f"no results under {storage.resolve()}: run `handclust demo` or materialize the assets", err=True)
            raise typer.Exit(1)
        from handclust_assets.report import build_dashboard

        res = build_dashboard(storage.resolve())
        typer.echo(f"built {res.index}: {len(res.sections)} sections, {res.images} images"
                   + (f", {len(res.errors)} section error(s)" if res.errors else ""))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    with http.server.ThreadingHTTPServer((host, port), handler) as srv:
        typer.echo(f"lab dashboard on http://{host}:{srv.server_address[1]}/")
        srv.serve_forever()


if __name__ == "__main__":
    app()
