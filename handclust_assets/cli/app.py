"""`handclust`: demo, ui, generate, fetch-models, forget, catalog, dashboard.

Every command finds its state through `handclust_assets.lib.home` (HANDCLUST_HOME), never the working folder.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="HandClust: label-free activity discovery.")
HomeOpt = typer.Option(None, "--home", help="HandClust home (default $HANDCLUST_HOME, else storage/ in a checkout).")


def _use_home(home: Path | None) -> Path:
    """Point HANDCLUST_HOME (and with it the Dagster instance, results and watched folder) at `home`."""
    from handclust_assets.lib.home import ensure_dagster_home, handclust_home

    if home is not None:
        os.environ["HANDCLUST_HOME"] = str(home.expanduser().resolve())
        os.environ.pop("DAGSTER_HOME", None)
    ensure_dagster_home()
    return handclust_home()


def generate_into(folder: Path, n_clips: int, duration: float, **kw: object) -> list[Path]:
    """Synthetic clips written elsewhere first, then landed (sidecars before videos, atomic renames)."""
    from handclust_assets.cli.session import land
    from handclust_assets.lib.synthetic import generate_demo_set

    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=folder))
    try:
        made = generate_demo_set(staging, n_clips=n_clips, duration_s=duration, **kw)
        pairs = [(p, folder / p.relative_to(staging)) for p in staging.rglob("*") if p.is_file()]
        land(pairs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [folder / Path(p).relative_to(staging) for p in made]


@app.command()
def generate(
    out: Path = typer.Argument(None, help="Folder for the clips (default: the watched folder)."),
    n_clips: int = typer.Option(5, "--clips", "-n"),
    duration: float = typer.Option(60.0, help="Seconds per clip."),
    width: int = 640,
    height: int = 360,
    fps: float = 15.0,
    seed: int = 0,
) -> None:
    """Generate synthetic helmet-cam clips with per-frame ground truth (landed atomically, sidecars first)."""
    from handclust_assets.lib.home import video_dir

    for p in generate_into(out or video_dir(), n_clips, duration, width=width, height=height, fps=fps, seed=seed):
        typer.echo(str(p))


@app.command("fetch-models")
def fetch_models(dest: Path = typer.Option(None, help="Default: the shared model cache ($HANDCLUST_MODEL_CACHE).")
                 ) -> None:
    """Fetch the MediaPipe models (hand, pose) into the shared model cache and verify their sha256."""
    from handclust_assets.models.mediapipe_models import fetch_mediapipe_models

    for name, path in fetch_mediapipe_models(dest).items():
        typer.echo(f"{name}: {path}")


def _print_results(con) -> None:  # a handclust ResultsConnection
    """The headline numbers of a run, as a researcher would want them in the terminal."""
    import polars as pl

    pl.Config.set_tbl_hide_dataframe_shape(True)
    pl.Config.set_tbl_hide_column_data_types(True)
    pl.Config.set_float_precision(3)
    pl.Config.set_tbl_rows(20)
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
    views = set(con.tables())
    for title, sql, table in shown:
        if table in views:
            df = con.sql(sql).pl()
            if df.height:
                typer.echo(f"\n{title}:\n{df}")


def unavailable_models() -> dict[str, str]:
    """Model resources that cannot provide their model here, with the reason (nothing is loaded)."""
    from handclust_assets.defs.resources import default_resources

    res = default_resources()
    out = {}
    for key in ("scene_model", "video_model", "tool_model", "mediapipe"):
        reason = res[key].unavailable_reason()
        if reason:
            out[key] = reason
    return out


@app.command()
def demo(
    n_clips: int = typer.Option(6, "--clips", "-n", help="Synthetic clips to generate (>= 5 for the demo)."),
    duration: float = typer.Option(90.0, help="Seconds per clip."),
    home: Path = HomeOpt,
    port: int = typer.Option(0, help="Dagster UI port (0: a free one)."),
    keep_ui: bool = typer.Option(False, help="Keep the Dagster UI running after the demo (Ctrl-C to stop)."),
    timeout: float = typer.Option(3600.0, help="Give up after this many seconds."),
) -> None:
    """The main job, through the product path: start the Dagster UI + daemon, land synthetic clips in the watched
    folder, and let the folder sensor, the run queue and automation do the rest; print the results."""
    from tqdm import tqdm

    from handclust_assets.cli.session import DagsterSession, HomeInUse
    from handclust_assets.lib.home import video_dir
    from handclust_assets.lib.tables import connect

    root = _use_home(home)
    t0 = time.perf_counter()
    try:
        from handclust_assets.models.mediapipe_models import fetch_mediapipe_models

        fetch_mediapipe_models(None, progress=lambda m: None)
    except Exception as e:  # pose/hands are skipped (named) without them
        typer.echo(f"note: MediaPipe models unavailable ({e}); pose and hands will be skipped")
    for key, why in unavailable_models().items():
        typer.echo(f"model unavailable, its modality is skipped (named in the UI): {key}: {why.splitlines()[0]}")
    session = DagsterSession(root, port=port or None)
    typer.echo(f"starting the Dagster UI + daemon on {session.url} (home {root}) ...")
    try:
        session.start()
    except HomeInUse as e:
        typer.echo(f"demo: {e}", err=True)
        raise typer.Exit(code=2) from None
    try:
        typer.echo(f"Dagster UI: {session.url}  (watch the runs while the demo goes on)")
        typer.echo(f"landing {n_clips} synthetic clips of {duration:.0f}s in {video_dir()} ...")
        generate_into(video_dir(), n_clips, duration)
        bar = tqdm(total=n_clips, desc="clip runs", unit="clip")
        last: list[tuple] = [()]

        def show(p: object) -> None:
            state = (p.clips_done, p.runs_in_progress, p.runs_queued, p.cross_clip_runs, p.dashboard_at)
            if state == last[0]:
                return  # redraw only when something changed (a log file gets one line per change)
            last[0] = state
            bar.n = p.clips_done
            bar.set_postfix(running=p.runs_in_progress - p.runs_queued, queued=p.runs_queued,
                            cross_clip=p.cross_clip_runs,
                            dashboard="yes" if p.dashboard_at else "no")

        prog = session.wait_settled(n_clips, timeout_s=timeout, on_progress=show)
        bar.close()
        con = connect()
        typer.echo(f"\ndone in {time.perf_counter() - t0:.0f}s: {n_clips} clips, {prog.cross_clip_runs} cross-clip "
                   f"run(s), {len(con.tables())} tables")
        for key in prog.clips_failed:
            typer.echo(f"  failed clip: {key} (its message is on the run's page in the UI)")
        _print_results(con)
        typer.echo(f"\nresults: import handclust_assets as hc; con = hc.connect()   (DuckDB catalog "
                   f"{root / 'handclust.duckdb'})")
        dash = root / "dashboard" / "index.html"
        if dash.exists():
            typer.echo(f"lab dashboard: {dash}  (serve: handclust dashboard)")
        if keep_ui:
            typer.echo(f"Dagster UI still running on {session.url}; Ctrl-C to stop")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        session.stop()
    if prog.clips_done and len(prog.clips_failed) == prog.clips_done:
        raise typer.Exit(1)


@app.command()
def ui(port: int = 3000, host: str = "127.0.0.1", home: Path = HomeOpt) -> None:
    """Start the Dagster UI and daemon (`dagster dev`) on this code location, from any working folder."""
    from handclust_assets.cli.session import HomeInUse, claim_home, default_interrupts, quiet_env

    root = _use_home(home)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    try:  # held by `dagster dev` itself (exec keeps the process and the inheritable lock)
        claim_home(Path(os.environ["DAGSTER_HOME"]), f"http://{host}:{port}")
    except HomeInUse as e:
        typer.echo(f"ui: {e}", err=True)
        raise typer.Exit(code=2) from None
    os.environ.update(quiet_env())
    os.chdir(root)
    default_interrupts()  # Ctrl-C and `kill` stop the UI even when a script started it in the background
    os.execvp(sys.executable, [sys.executable, "-m", "dagster", "dev", "-m", "handclust_assets.definitions",
                               "-p", str(port), "-h", host])


@app.command()
def forget(clips: list[str] = typer.Argument(None, help="Clip partitions to forget."),
           renamed: bool = typer.Option(False, "--renamed", help="Also forget every partition whose video file is "
                                        "gone and is pooled as another partition (it was renamed or moved within "
                                        "the watched folder: the `pooled_clips` table's rows with pooled false and "
                                        "source_exists false)."),
           home: Path = HomeOpt) -> None:
    """Delete clip partitions and all their results (tables, frame cache, arrays)."""
    _use_home(home)
    import dagster as dg
    import polars as pl

    from handclust_assets.lib.same_video import CLIPS_TABLE, IDENTITY, pooled_table
    from handclust_assets.lib.storage import Storage
    from handclust_assets.lib.tables import delete_partition, read_columns, refresh_catalog, table_partitions

    store = Storage()
    inst = dg.DagsterInstance.get()
    targets = list(dict.fromkeys(clips or []))
    if renamed:
        moved = pooled_table(read_columns(store, CLIPS_TABLE, IDENTITY)).filter(
            ~pl.col("pooled") & ~pl.col("source_exists")).select("clip", "pooled_as").rows()
        typer.echo(f"{len(moved)} partition(s) hold a video now pooled as another, their file gone"
                   + (f": {', '.join(f'{k} (= {v})' for k, v in moved)}" if moved else ""))
        targets += [k for k, _ in moved if k not in targets]
    if not targets:
        typer.echo("nothing to forget")
        return
    known = set(table_partitions(store, CLIPS_TABLE)) | set(inst.get_dynamic_partitions("clips"))
    unknown = [c for c in targets if c not in known and not store.exists(*store.frames(c))]
    if unknown:
        typer.echo(f"forget: no clip partition named {', '.join(map(repr, unknown))} (nothing was deleted; "
                   f"`handclust catalog` lists the tables, `select clip from clips` the clips)", err=True)
        raise typer.Exit(code=2)
    for clip in targets:
        removed = delete_partition(store, clip)
        store.rm(*store.frames(clip), recursive=True)
        for asset in store.listdir("arrays"):
            store.rm(*store.arrays(asset, clip))
        if inst.has_dynamic_partition("clips", clip):
            inst.delete_dynamic_partition("clips", clip)
        typer.echo(f"forgot {clip}: {len(removed)} table files removed")
    refresh_catalog(store)


@app.command()
def catalog(home: Path = HomeOpt) -> None:
    """Rebuild the DuckDB catalog and print each table's row count."""
    _use_home(home)
    from handclust_assets.lib.tables import connect, refresh_catalog

    typer.echo(str(refresh_catalog()))
    con = connect()
    for name in con.tables():
        n = con.execute(f'select count(*) from "{name}"').fetchall()[0][0]
        typer.echo(f"{name:32s} {n:>9d}")


@app.command()
def dashboard(
    home: Path = HomeOpt,
    port: int = 8765,
    host: str = "127.0.0.1",
    rebuild: bool = typer.Option(False, help="Rebuild the dashboard from the current results before serving."),
) -> None:
    """Serve the lab dashboard over HTTP; build it first if it is missing (or --rebuild)."""
    import functools
    import http.server

    _use_home(home)
    from handclust_assets.lib.storage import Storage
    from handclust_assets.lib.tables import table_names

    store = Storage()
    root = store.local_root() / "dashboard"
    if not store.is_local and store.exists("dashboard", "index.html") and not rebuild:
        root = store.fetch_dir("dashboard")  # the dashboard another machine built, mirrored here
    if rebuild or not (root / "index.html").exists():
        if not table_names(store):
            typer.echo(f"no results under {store.root}: run `handclust demo` or materialize the assets", err=True)
            raise typer.Exit(1)
        from handclust_assets.report import build_dashboard

        res = build_dashboard(store)
        typer.echo(f"built {res.index}: {len(res.sections)} sections, {res.images} images"
                   + (f", {len(res.errors)} section error(s)" if res.errors else ""))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    with http.server.ThreadingHTTPServer((host, port), handler) as srv:
        typer.echo(f"lab dashboard on http://{host}:{srv.server_address[1]}/")
        srv.serve_forever()


app.command("eval-repetitions")(__import__("handclust_assets.cli.eval_repetitions", fromlist=["x"]).eval_repetitions)


if __name__ == "__main__":
    app()
