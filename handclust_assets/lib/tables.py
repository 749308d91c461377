"""Result tables: one Parquet file per (asset, partition) under `tables/`, with DuckDB views over them.

Why per-partition Parquet behind a DuckDB catalog instead of one DuckDB database file:
- DuckDB allows one writer process per database file. Several clip partitions are written at the same time (one
  run per clip) and a notebook may hold a connection open. Writing each partition to its own Parquet file
  (atomic replace) needs no lock at all, and re-materializing a partition replaces exactly its file, so rows are
  never duplicated and never half-written.
- DuckDB reads the files natively: `handclust.duckdb` holds only VIEWs (`SELECT * FROM read_parquet('.../tables/
  <asset>/*.parquet', union_by_name=true)`), rebuilt into a temp file and swapped in when a new table appears.
- `connect()` (what `handclust_assets.connect` returns) holds no lock, and adds views for tables that appear
  while it is open, before every query: a notebook connection opened before the first run sees every table.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from filelock import FileLock

from handclust_assets.lib.mirror import MirrorFileSystem
from handclust_assets.lib.storage import Storage, as_storage

UNPARTITIONED = "_all"
POOLED = "pooled"  # a DuckDB schema: every table, the rows of clips pooled as another clip left out
POOL_TABLE = "pooled_clips"  # which clip partitions are pooled, and as which (`lib.same_video.pooled_table`)
TABLES = "tables"
_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
StorageLike = Storage | str | os.PathLike | None


def partition_parts(table: str, partition: str | None = None) -> tuple[str, ...]:
    """The path parts of one table partition's Parquet file under the storage root."""
    key = partition if partition is not None else UNPARTITIONED
    if not _SAFE.match(table) or not _SAFE.match(key):
        raise ValueError(f"unsafe table/partition name: {table!r}/{key!r}")
    return (TABLES, table, f"{key}.parquet")


def table_file(root: StorageLike, table: str, partition: str | None = None) -> str:
    """The address of one table partition's Parquet file."""
    return as_storage(root).uri(*partition_parts(table, partition))


def _normalise(df: pl.DataFrame) -> pl.DataFrame:
    # A column whose dtype polars could not infer (all nulls / empty frame) would make the Parquet schema
    # disagree across partitions; store it as text so union_by_name stays well defined.
    casts = [pl.col(c).cast(pl.Utf8) for c, t in df.schema.items() if t == pl.Null]
    return df.with_columns(casts) if casts else df


def parquet_bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    _normalise(df).write_parquet(buf, compression="zstd", statistics=True)
    return buf.getvalue()


def write_table(df: pl.DataFrame, root: StorageLike, table: str, partition: str | None = None) -> str:
    """Write (replace) one table partition atomically; refresh the catalog when the table is new."""
    store = as_storage(root)
    path = store.write_bytes(parquet_bytes(df), *partition_parts(table, partition))
    if store.is_local and not _catalog_has(store, table):
        refresh_catalog(store)
    return path


def delete_partition(root: StorageLike, partition: str) -> list[str]:
    """Remove every table file of one partition (used when the user deletes a clip's results)."""
    store = as_storage(root)
    removed = []
    for t in table_names(store):
        if store.rm(*partition_parts(t, partition)):
            removed.append(table_file(store, t, partition))
    return removed


def read_parquet(store: Storage, parts: tuple[str, ...]) -> pl.DataFrame:
    if store.is_local:
        return pl.read_parquet(store.uri(*parts))
    return pl.read_parquet(io.BytesIO(store.read_bytes(*parts)))


def read_table(root: StorageLike, table: str, partitions: Iterable[str] | None = None) -> pl.DataFrame:
    """Read a table (all partitions, or the given ones; missing partitions are skipped). On an object store,
    several partitions (a cross-clip step's inputs) are read from the scratch mirror (`_mirrored`): each version is
    downloaded once per machine, not at every run."""
    store = as_storage(root)
    listed = table_partitions(store, table, include_unpartitioned=True)  # one listing (a LIST per 1,000 on a bucket)
    keys = listed if partitions is None else list(partitions)
    have = set(listed)
    files = [partition_parts(table, k) for k in keys if k in have]
    if not files:
        raise FileNotFoundError(f"table {table!r} has no materialized partitions under {store.uri(TABLES, table)}")
    frames = None
    if store.is_local:
        frames = [read_parquet(store, f) for f in files]
    elif len(files) > 1 and (local := _mirrored(store, files)) is not None:  # GETs only for versions not seen yet
        try:
            frames = [pl.read_parquet(f) for f in local]
        except FileNotFoundError:  # a copy replaced meanwhile by another process's newer version
            frames = None
    if frames is None:  # one concurrent batch of GETs, not a round trip per partition
        frames = [pl.read_parquet(io.BytesIO(b)) for b in store.read_many(files)]
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


def _mirrored(store: Storage, files: list[tuple[str, ...]]) -> list[str] | None:
    """The local copies of an object store's files, through its scratch mirror (`MirrorFileSystem.local_copies`:
    one LIST per folder, and GETs, in one concurrent batch, only for the versions this machine has not read yet);
    None where one was removed since it was listed."""
    mirror = MirrorFileSystem(store)
    try:
        return [str(f) for f in mirror.local_copies([mirror.uri(*f) for f in files])]
    except FileNotFoundError:
        return None


def read_columns(root: StorageLike, table: str, schema: dict[str, Any], partitions: Iterable[str] | None = None
                 ) -> pl.DataFrame:
    """Only the `schema`'s columns of a table (all partitions, or the given ones; missing partitions skipped; a
    column a partition lacks is null there). On a folder root one lazy scan of every file (1,000 one-row
    partitions: 0.09 s, against 0.84 s for `read_table`). On an object store the same scan over the scratch
    mirror's copies (`MirrorFileSystem.local_copies`: one LIST, and GETs only for the partitions written since this
    machine last read them), not a GET per partition per call: every clip run reads all clips' rows of a few
    tables (which clips hold the same video), so a GET each made a run's requests grow with the number of clips."""
    store = as_storage(root)
    have = table_partitions(store, table, include_unpartitioned=True)
    there = set(have)
    keys = have if partitions is None else [k for k in partitions if k in there]
    if not keys:
        return pl.DataFrame(schema=schema)
    if store.is_local:
        files = [store.uri(*partition_parts(table, k)) for k in keys]
    else:  # None where one was removed since listed: read as the store is now
        files = _mirrored(store, [partition_parts(table, k) for k in keys])
    if files is not None:
        try:
            return pl.scan_parquet(files, schema=schema, extra_columns="ignore", missing_columns="insert").collect()
        except (FileNotFoundError, pl.exceptions.ComputeError):  # a mirror copy replaced meanwhile by another
            if store.is_local:  # process's newer version: read from the store itself
                raise
    df = read_table(store, table, keys)
    return df.select([pl.col(c).cast(t) if c in df.columns else pl.lit(None, t).alias(c) for c, t in schema.items()])


def table_partitions(root: StorageLike, table: str, include_unpartitioned: bool = False) -> list[str]:
    """The partition keys with a file (sorted); `_all` (an unpartitioned table) only when asked."""
    names = as_storage(root).listdir(TABLES, table)
    keys = [n.removesuffix(".parquet") for n in names if n.endswith(".parquet")]
    return sorted(k for k in keys if include_unpartitioned or k != UNPARTITIONED)


def existing_partitions(root: StorageLike, table: str) -> list[str]:
    return table_partitions(root, table)


def table_names(root: StorageLike) -> list[str]:
    """Tables with at least one Parquet file (on an object store: every folder under tables/, which exists only
    while it holds objects; one listing)."""
    store = as_storage(root)
    if not store.is_local:
        return store.listdir(TABLES)
    return [t for t in store.listdir(TABLES) if any(n.endswith(".parquet") for n in store.listdir(TABLES, t))]


def _view_sql(store: Storage, table: str, mirror: MirrorFileSystem | None = None) -> str:
    where = mirror.uri(TABLES, table, "*.parquet") if mirror is not None else store.uri(TABLES, table, "*.parquet")
    glob = where.replace("'", "''")
    return f"CREATE OR REPLACE VIEW \"{table}\" AS SELECT * FROM read_parquet('{glob}', union_by_name=true)"


def _views_with(con: duckdb.DuckDBPyConnection, column: str) -> set[str]:
    """The views of the connection's main schema that have this column (known from the catalog: no file read)."""
    return {r[0] for r in con.execute(
        "select table_name from information_schema.columns where table_catalog = current_database() and "
        "table_schema = 'main' and column_name = ?", [column]).fetchall()}


def create_pooled_views(con: duckdb.DuckDBPyConnection, tables: Iterable[str], pool: bool) -> None:
    """Schema `pooled`: each table again, without the rows of clip partitions left out as the same video as
    another (renamed, moved, copied; `pooled_clips` where not `pooled`); where there is no `pooled_clips` table yet
    (`pool` False), or a table has no `clip` column, the same rows as the table."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {POOLED}")
    with_clip = _views_with(con, "clip") if pool else set()
    if POOL_TABLE not in with_clip or POOL_TABLE not in _views_with(con, "pooled"):
        with_clip = set()  # no `pooled_clips`, or not the graph's (an older or foreign table of that name)
    for t in tables:
        body = f'SELECT * FROM main."{t}"'
        if t in with_clip and t != POOL_TABLE:
            body += f' WHERE clip NOT IN (SELECT clip FROM main."{POOL_TABLE}" WHERE NOT pooled)'
        con.execute(f'CREATE OR REPLACE VIEW {POOLED}."{t}" AS {body}')


def _marker(store: Storage) -> Path:
    return store.local_root() / TABLES / ".catalog_tables"


def _catalog_has(store: Storage, table: str) -> bool:
    marker = _marker(store)
    return marker.exists() and table in marker.read_text().split()


def refresh_catalog(root: StorageLike = None) -> Path | None:
    """Rebuild the DuckDB catalog file (views only) into a temp file and swap it in atomically (folder roots;
    an object-store root has no catalog file: `connect()` registers its filesystem instead)."""
    store = as_storage(root)
    if not store.is_local:
        return None
    target = store.catalog_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / ".catalog.lock")):
        tables = table_names(store)
        fd, tmp = tempfile.mkstemp(prefix=".handclust.", suffix=".duckdb", dir=target.parent)
        os.close(fd)
        os.unlink(tmp)  # duckdb wants to create the file itself
        try:
            con = duckdb.connect(tmp)
            try:
                for t in tables:
                    con.execute(_view_sql(store, t))
                create_pooled_views(con, tables, POOL_TABLE in tables)
            finally:
                con.close()
            os.replace(tmp, target)
        finally:
            for f in (tmp, tmp + ".wal"):
                if os.path.exists(f):
                    os.unlink(f)
        marker = _marker(store)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("\n".join(tables))
    return target


class ResultsConnection:
    """An in-memory DuckDB connection with one view per result table, kept current.

    Before every `sql` / `execute` / `query` / `table` call it adds views for tables that appeared since the last
    call and drops views of tables that vanished (one listing of `tables/`), so a connection held open in a
    notebook sees tables the pipeline creates later. `refresh()` does the same on demand. Every other attribute
    is the underlying `duckdb.DuckDBPyConnection`'s (`.con`). Schema `pooled` holds each table again without the
    clips left out as the same video as another (`create_pooled_views`).
    """

    def __init__(self, root: StorageLike = None) -> None:
        self.store = as_storage(root)
        self.con = duckdb.connect()
        # an object store is read through MirrorFileSystem: store listings, local copies of the files read
        self.mirror = None if self.store.is_local else MirrorFileSystem(self.store)
        if self.mirror is not None:
            self.con.register_filesystem(self.mirror)
        self.views: set[str] = set()
        self.pool = False  # whether the `pooled` views filter on `pooled_clips` (it exists)
        self.refresh()

    def refresh(self) -> list[str]:
        """Sync the views with the tables present now; returns the names added."""
        if self.mirror is not None:
            self.mirror.invalidate()
        present = set(table_names(self.store))
        added = sorted(present - self.views)
        for t in added:
            self.con.execute(_view_sql(self.store, t, self.mirror))
        for t in sorted(self.views - present):
            self.con.execute(f'DROP VIEW IF EXISTS {POOLED}."{t}"')
            self.con.execute(f'DROP VIEW IF EXISTS "{t}"')
        pool = POOL_TABLE in present
        redo = sorted(present) if pool != self.pool else added
        if redo:
            create_pooled_views(self.con, redo, pool)
        self.views, self.pool = present, pool
        return added

    def sql(self, query: str, *args: Any, **kwargs: Any) -> duckdb.DuckDBPyRelation:
        self.refresh()
        return self.con.sql(query, *args, **kwargs)

    def execute(self, query: str, *args: Any, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        self.refresh()
        return self.con.execute(query, *args, **kwargs)

    def query(self, query: str, *args: Any, **kwargs: Any) -> duckdb.DuckDBPyRelation:
        self.refresh()
        return self.con.query(query, *args, **kwargs)

    def table(self, name: str) -> duckdb.DuckDBPyRelation:
        self.refresh()
        return self.con.table(name)

    def tables(self) -> list[str]:
        """The result tables visible now."""
        self.refresh()
        return sorted(self.views)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> ResultsConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.con, name)


def connect(root: StorageLike = None) -> ResultsConnection:
    """All results, read-only, for notebooks: an in-memory DuckDB with one view per table that stays current.

    It holds no lock on any file, so it can stay open while the pipeline writes:

        import handclust_assets as hc
        con = hc.connect()                    # default root; or hc.connect("s3://bucket/prefix")
        con.sql("select * from clips").pl()
        con.sql("select * from pooled.segments").pl()  # each video once: renamed / copied clips' rows left out
    """
    return ResultsConnection(root)
