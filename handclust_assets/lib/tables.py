"""Table storage: one Parquet file per (asset, partition), with DuckDB views over them.

Why per-partition Parquet behind a DuckDB catalog instead of one DuckDB database file:
- DuckDB allows one writer process per database file. With the multiprocess executor several clip
  partitions write at the same time, and a notebook may hold a connection open. Writing each partition
  to its own Parquet file (temp file + atomic rename) needs no lock at all, and re-materializing a
  partition replaces exactly its file, so rows are never duplicated and never half-written.
- DuckDB reads the files natively: `storage/handclust.duckdb` holds only VIEWs
  (`SELECT * FROM read_parquet('.../tables/<asset>/*.parquet', union_by_name=true)`), rebuilt into a temp
  file and swapped in atomically when a new table appears. A reader holding the old catalog open keeps
  working (its views read the same globs, so it sees new rows too).
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from handclust_assets.lib.storage import catalog_path, storage_root, tables_dir

UNPARTITIONED = "_all"
_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def table_file(root: str | Path | None, table: str, partition: str | None = None) -> Path:
    key = partition if partition is not None else UNPARTITIONED
    if not _SAFE.match(table) or not _SAFE.match(key):
        raise ValueError(f"unsafe table/partition name: {table!r}/{key!r}")
    return tables_dir(root) / table / f"{key}.parquet"


def _normalise(df: pl.DataFrame) -> pl.DataFrame:
    # A column whose dtype polars could not infer (all nulls / empty frame) would make the Parquet schema
    # disagree across partitions; store it as text so union_by_name stays well defined.
    casts = [pl.col(c).cast(pl.Utf8) for c, t in df.schema.items() if t == pl.Null]
    return df.with_columns(casts) if casts else df


def write_table(df: pl.DataFrame, root: str | Path | None, table: str, partition: str | None = None) -> Path:
    """Write (replace) one table partition atomically; refresh the catalog when the table is new."""
    path = table_file(root, table, partition)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".parquet.tmp", dir=path.parent)
    os.close(fd)
    try:
        _normalise(df).write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if not _catalog_has(root, table):
        refresh_catalog(root)
    return path


def delete_partition(root: str | Path | None, partition: str) -> list[Path]:
    """Remove every table file of one partition (used when the user deletes a clip's results)."""
    removed = []
    for f in tables_dir(root).glob(f"*/{partition}.parquet"):
        f.unlink()
        removed.append(f)
    return removed


def read_table(
    root: str | Path | None, table: str, partitions: Iterable[str] | None = None
) -> pl.DataFrame:
    """Read a table (all partitions, or the given ones; missing partitions are skipped)."""
    d = tables_dir(root) / table
    if partitions is None:
        files = sorted(d.glob("*.parquet"))
    else:
        files = [p for p in (table_file(root, table, k) for k in partitions) if p.exists()]
    if not files:
        raise FileNotFoundError(f"table {table!r} has no materialized partitions under {d}")
    frames = [pl.read_parquet(f) for f in files]
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


def existing_partitions(root: str | Path | None, table: str) -> list[str]:
    d = tables_dir(root) / table
    return sorted(p.stem for p in d.glob("*.parquet") if p.stem != UNPARTITIONED)


def _known_tables(root: str | Path | None) -> list[str]:
    d = tables_dir(root)
    if not d.exists():
        return []
    return sorted(p.name for p in d.iterdir() if p.is_dir() and any(p.glob("*.parquet")))


def _view_sql(root: str | Path | None, table: str) -> str:
    glob = str(tables_dir(root) / table / "*.parquet").replace("'", "''")
    return f"CREATE OR REPLACE VIEW \"{table}\" AS SELECT * FROM read_parquet('{glob}', union_by_name=true)"


def _catalog_has(root: str | Path | None, table: str) -> bool:
    marker = tables_dir(root) / ".catalog_tables"
    return marker.exists() and table in marker.read_text().split()


@contextmanager
def _lock(root: str | Path | None):
    lock = storage_root(root) / ".catalog.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def refresh_catalog(root: str | Path | None = None) -> Path:
    """Rebuild the DuckDB catalog (views only) into a temp file and swap it in atomically."""
    root = storage_root(root)
    target = catalog_path(root)
    with _lock(root):
        tables = _known_tables(root)
        fd, tmp = tempfile.mkstemp(prefix=".handclust.", suffix=".duckdb", dir=root)
        os.close(fd)
        os.unlink(tmp)  # duckdb wants to create the file itself
        try:
            con = duckdb.connect(tmp)
            try:
                for t in tables:
                    con.execute(_view_sql(root, t))
            finally:
                con.close()
            os.replace(tmp, target)
        finally:
            for f in (tmp, tmp + ".wal"):
                if os.path.exists(f):
                    os.unlink(f)
        marker = tables_dir(root) / ".catalog_tables"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("\n".join(tables))
    return target


def connect(root: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only view of all results for notebooks: an in-memory DuckDB with one view per table.

    It holds no lock on any file, so it can stay open while the pipeline writes:

        from handclust_assets import connect
        con = connect("storage"); con.sql("select * from clips").pl()
    """
    con = duckdb.connect()
    for t in _known_tables(root):
        con.execute(_view_sql(root, t))
    return con
