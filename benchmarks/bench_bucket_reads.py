"""Reading a table of many partitions from an object store: the scratch mirror against a GET per partition.

    python benchmarks/bench_bucket_reads.py [--partitions 1000] [--repeats 3]

An S3-compatible server (moto in server mode, a child process on this machine) holds a table of one-row partitions
(footage-like: a clip, a duration, keyframe times and hashes, a 4,000-byte signature). Each read is timed and its
objects counted in the S3 client:

- old: every partition in one concurrent batch of GETs (`Storage.read_many`), at every read, as `read_table` and
  `read_columns` did before;
- `read_columns` (four columns) and `read_table` (whole partitions) through the scratch mirror
  (`MirrorFileSystem.local_copies`): the first read downloads every partition, later ones none, and after one
  partition is written, that one.

Prints one line per read and the ratio of a warm mirrored read's time to the old read's (same run).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from handclust_assets.lib import tables
from handclust_assets_tests.scale_support import S3_ENV, bucket_store, count_object_reads, moto_server

SCHEMA = {"clip": pl.Utf8, "duration_s": pl.Float64, "keyframe_s": pl.List(pl.Float64),
          "keyframe_hashes": pl.List(pl.Int64)}


def _row(i: int) -> pl.DataFrame:
    return pl.DataFrame({"clip": [f"c{i}"], "duration_s": [10.0 + i], "keyframe_s": [[0.0, 2.0]],
                         "keyframe_hashes": [[i, i + 1]], "signature": [[1] * 4000]},
                        schema={**SCHEMA, "signature": pl.List(pl.UInt8)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    os.environ.update(S3_ENV)
    tmp = Path(tempfile.mkdtemp(prefix="handclust_bench_bucket_"))
    with moto_server(tmp) as endpoint:
        store = bucket_store(endpoint, tmp / "scratch")
        for i in range(a.partitions):
            tables.write_table(_row(i), store, "footage", f"c{i}")
        got: list[str] = []
        count_object_reads(store, got)

        def old() -> pl.DataFrame:
            files = [tables.partition_parts("footage", k) for k in tables.table_partitions(store, "footage")]
            return pl.concat([pl.read_parquet(io.BytesIO(b)) for b in store.read_many(files)],
                             how="diagonal_relaxed")

        def timed(label: str, fn: Callable[[], pl.DataFrame]) -> float:
            got.clear()
            t0 = time.perf_counter()
            df = fn()
            dt = time.perf_counter() - t0
            print(f"{label:46s} {dt:6.2f} s  {len(got):5d} objects read  {df.height} rows")
            return dt

        old_s = min(timed(f"old: a GET per partition, read {k + 1}", old) for k in range(a.repeats))
        warm = []
        for k in range(a.repeats):
            dt = timed(f"read_columns via the mirror, read {k + 1}", lambda: tables.read_columns(store, "footage",
                                                                                                 SCHEMA))
            warm += [dt] if k else []
        tables.write_table(_row(a.partitions), store, "footage", f"c{a.partitions}")
        timed("read_columns after one new partition", lambda: tables.read_columns(store, "footage", SCHEMA))
        whole = min(timed(f"read_table via the mirror, read {k + 1}", lambda: tables.read_table(store, "footage"))
                    for k in range(a.repeats))
    if warm:
        print(f"\n{a.partitions} partitions: a warm mirrored read_columns {min(warm):.2f} s, read_table {whole:.2f} s, "
              f"against {old_s:.2f} s for a GET each: {old_s / min(warm):.1f}x and {old_s / whole:.1f}x faster")


if __name__ == "__main__":
    main()
