"""What a block of work cost, measured while it runs, and the cost per footage hour.

`CostMeter` (also `measure_cost()`) measures one block:

- wall_s: `time.perf_counter()` from entry to exit;
- cpu_s: user + system CPU time of this process, all its threads (`time.process_time()`, CLOCK_PROCESS_CPUTIME_ID),
  plus that of child processes that exited and were waited for during the block (`children_user/system`);
  PyAV/FFmpeg, OpenCV and torch CPU threads are all inside the process, so they count;
- gpu_s: the summed duration of the `gpu_section()` blocks run inside the meter, timed with CUDA events on the
  current stream (`start.record()` ... `end.record(); end.synchronize()`; elapsed_time): the time the GPU stream
  spent from the section's first to its last queued kernel, idle gaps inside a section included. Model code
  wraps its forward calls in `gpu_section()`; without CUDA (or with no section) gpu_s is 0 and `gpu_timed` is
  False. Note the synchronize at section end: sections are timed exactly, at the price of no overlap between a
  section and the host code after it;
- peak_rss_bytes: the largest resident set size of this process seen by a sampling thread (psutil, every
  `interval_s`, default 20 ms, plus at entry and exit): a spike shorter than the interval can be missed, and
  memory of child processes is not included; gpu_peak_bytes: `torch.cuda.max_memory_allocated` over the block
  (the peak counter is reset at entry when torch is already imported) when CUDA is present, else 0.

Meters nest (an asset's meter around per-clip meters): a gpu_section adds its time to every meter open in the
current context (contextvars), so a clip's GPU seconds also count for its asset.

`cost_report` turns per-(asset, clip) measurements plus footage durations into seconds and dollars per footage
hour with configurable prices, and adds the seed's anchor ($0.07 per 20-min video for EgoClean's V-JEPA 2 pass =
$0.21 per footage hour) as a row for comparison.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import polars as pl
import psutil

_ACTIVE: contextvars.ContextVar[tuple[CostMeter, ...]] = contextvars.ContextVar("handclust_cost_meters", default=())


@dataclass(frozen=True)
class CostSample:
    wall_s: float
    cpu_s: float
    gpu_s: float
    peak_rss_bytes: int
    gpu_peak_bytes: int
    gpu_timed: bool

    def as_dict(self) -> dict:
        return asdict(self)


def _cuda():  # torch.cuda or None
    """torch.cuda when torch is already imported and has a GPU (a block that never imported torch did no CUDA
    work; importing torch only to find that out would cost a second per meter)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda


def _cpu_seconds() -> float:
    """This process's CPU time at nanosecond resolution (CLOCK_PROCESS_CPUTIME_ID: all threads) plus the waited
    children's (clock ticks: os.times has 10-ms resolution, so a short block is not read as 0 CPU seconds)."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


class CostMeter:
    """Context manager measuring wall, CPU and GPU seconds and peak memory of its block; `.result` after exit."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.result: CostSample | None = None
        self._gpu_s = 0.0
        self._gpu_timed = False
        self._peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def _sample(self) -> None:
        try:
            self._peak = max(self._peak, int(self._proc.memory_info().rss))
        except psutil.Error:
            pass

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> CostMeter:
        self._cuda = _cuda()
        if self._cuda is not None:
            self._cuda.synchronize()
            self._cuda.reset_peak_memory_stats()
        self._sample()
        self._thread = threading.Thread(target=self._watch, name="cost-meter-rss", daemon=True)
        self._thread.start()
        self._token = _ACTIVE.set((*_ACTIVE.get(), self))
        self._cpu0, self._wall0 = _cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if _cuda() is not None:
            _cuda().synchronize()
        wall, cpu = time.perf_counter() - self._wall0, _cpu_seconds() - self._cpu0
        _ACTIVE.reset(self._token)
        self._stop.set()
        self._thread.join()
        self._sample()
        cuda = self._cuda or _cuda()  # torch may have been imported inside the block
        gpu_peak = int(cuda.max_memory_allocated()) if cuda is not None else 0
        self.result = CostSample(wall_s=wall, cpu_s=cpu, gpu_s=self._gpu_s, peak_rss_bytes=self._peak,
                                 gpu_peak_bytes=gpu_peak, gpu_timed=self._gpu_timed)

    def add_gpu_seconds(self, seconds: float) -> None:
        self._gpu_s += seconds
        self._gpu_timed = True


def measure_cost(interval_s: float = 0.02) -> CostMeter:
    """`with measure_cost() as m: ...` then `m.result` (a CostSample)."""
    return CostMeter(interval_s)


@contextmanager
def gpu_section() -> Iterator[None]:
    """Time the GPU work queued inside this block (CUDA events) for every open CostMeter; a no-op without CUDA
    or without an open meter."""
    meters = _ACTIVE.get()
    cuda = _cuda() if meters else None
    if cuda is None:
        yield
        return
    start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
    start.record()
    try:
        yield
    finally:
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1000.0
        for m in meters:
            m.add_gpu_seconds(seconds)


# ---------------------------------------------------------------- the cost model ---------------------------------

MEASUREMENT_SCHEMA = {"asset": pl.Utf8, "clip": pl.Utf8, "wall_s": pl.Float64, "cpu_s": pl.Float64,
                      "gpu_s": pl.Float64, "peak_rss_bytes": pl.Int64}
FOOTAGE_SCHEMA = {"clip": pl.Utf8, "duration_s": pl.Float64}
REPORT_SCHEMA = {
    "row_kind": pl.Utf8,  # "asset" | "total" | "anchor"
    "asset": pl.Utf8,
    "n_clips": pl.Int64,
    "footage_s": pl.Float64,
    "wall_s": pl.Float64,
    "cpu_s": pl.Float64,
    "gpu_s": pl.Float64,
    "peak_rss_mb": pl.Float64,
    "x_realtime": pl.Float64,
    "wall_s_per_footage_h": pl.Float64,
    "cpu_s_per_footage_h": pl.Float64,
    "gpu_s_per_footage_h": pl.Float64,
    "cpu_usd_per_footage_h": pl.Float64,
    "gpu_usd_per_footage_h": pl.Float64,
    "usd_per_footage_h": pl.Float64,
}
CLIP_COST_SCHEMA = {"clip": pl.Utf8, "footage_s": pl.Float64, "wall_s": pl.Float64, "cpu_s": pl.Float64,
                    "gpu_s": pl.Float64, "peak_rss_mb": pl.Float64, "usd": pl.Float64, "usd_per_footage_h": pl.Float64}
SEED_ANCHOR_LABEL = "seed anchor: EgoClean V-JEPA 2 pass ($0.07 per 20-min video)"
SEED_ANCHOR_USD_PER_FOOTAGE_H = 0.07 * 60.0 / 20.0  # = 0.21


@dataclass(frozen=True)
class Prices:
    """Prices per hour. CPU: per core-hour (a CPU second is a core-second); GPU: per GPU-hour of measured GPU
    time. Defaults are placeholders of the order of on-demand cloud prices; configure your own."""

    cpu_core_hour_usd: float = 0.05
    gpu_hour_usd: float = 2.50


def _latest(measurements: pl.DataFrame) -> pl.DataFrame:
    m = measurements.select(list(MEASUREMENT_SCHEMA)).cast(MEASUREMENT_SCHEMA)  # type: ignore[arg-type]
    return m.with_row_index("_i").unique(["asset", "clip"], keep="last").sort("_i").drop("_i")


def unmatched_clips(measurements: pl.DataFrame, footage: pl.DataFrame) -> list[str]:
    """Measured clips with no footage duration (left out of the report)."""
    known = set(footage["clip"].to_list())
    return sorted({c for c in measurements["clip"].drop_nulls().to_list() if c not in known})


def _per_hour(secs: float, footage_s: float) -> float:
    return secs * 3600.0 / footage_s if footage_s > 0 else float("nan")


def _row(kind: str, asset: str, n: int, footage_s: float, wall: float, cpu: float, gpu: float, rss: float,
         prices: Prices) -> dict:
    cpu_h, gpu_h = _per_hour(cpu, footage_s), _per_hour(gpu, footage_s)
    cpu_usd, gpu_usd = cpu_h / 3600.0 * prices.cpu_core_hour_usd, gpu_h / 3600.0 * prices.gpu_hour_usd
    return {"row_kind": kind, "asset": asset, "n_clips": n, "footage_s": footage_s, "wall_s": wall, "cpu_s": cpu,
            "gpu_s": gpu, "peak_rss_mb": rss, "x_realtime": footage_s / wall if wall > 0 else float("nan"),
            "wall_s_per_footage_h": _per_hour(wall, footage_s), "cpu_s_per_footage_h": cpu_h,
            "gpu_s_per_footage_h": gpu_h, "cpu_usd_per_footage_h": cpu_usd, "gpu_usd_per_footage_h": gpu_usd,
            "usd_per_footage_h": cpu_usd + gpu_usd}


def cost_report(measurements: pl.DataFrame, footage: pl.DataFrame, prices: Prices = Prices()) -> pl.DataFrame:
    """REPORT_SCHEMA: one row per asset, a total row, the seed's anchor row.

    `measurements` (MEASUREMENT_SCHEMA): one row per (asset, clip) run; `clip` null for a cross-clip asset that
    ran once over the corpus; repeated (asset, clip) rows keep the last one (the latest run). `footage`
    (FOOTAGE_SCHEMA): duration of every clip. A per-clip asset's footage is the summed duration of the clips it
    measured (clips without a duration are left out: see `unmatched_clips`); a cross-clip asset's is all the
    footage. Per-footage-hour values of the total are the sums over assets (each asset processes the footage once)."""
    dur = dict(zip(footage["clip"].to_list(), footage["duration_s"].cast(pl.Float64).to_list()))
    total_footage = float(sum(dur.values()))
    rows = []
    for (asset,), g in _latest(measurements).group_by(["asset"], maintain_order=True):
        g = g.filter(pl.col("clip").is_null() | pl.col("clip").is_in(list(dur)))
        clips = g["clip"].drop_nulls().to_list()
        fs = total_footage if g["clip"].null_count() else float(sum(dur[c] for c in clips))
        rows.append(_row("asset", asset, len(clips) if clips else len(dur), fs, float(g["wall_s"].sum()),
                         float(g["cpu_s"].sum()), float(g["gpu_s"].sum()),
                         float(g["peak_rss_bytes"].max() or 0) / 1e6, prices))
    rows.sort(key=lambda r: r["asset"])
    tot = _row("total", "all assets", len(dur), total_footage, *(sum(r[k] for r in rows) for k in
               ("wall_s", "cpu_s", "gpu_s")), max((r["peak_rss_mb"] for r in rows), default=0.0), prices)
    for k in ("wall_s_per_footage_h", "cpu_s_per_footage_h", "gpu_s_per_footage_h", "cpu_usd_per_footage_h",
              "gpu_usd_per_footage_h", "usd_per_footage_h"):
        tot[k] = float(sum(r[k] for r in rows if r[k] == r[k]))
    anchor = {k: None for k in REPORT_SCHEMA} | {"row_kind": "anchor", "asset": SEED_ANCHOR_LABEL,
                                                 "usd_per_footage_h": SEED_ANCHOR_USD_PER_FOOTAGE_H}
    return pl.DataFrame([*rows, tot, anchor], schema=REPORT_SCHEMA)


def clip_cost(measurements: pl.DataFrame, footage: pl.DataFrame, prices: Prices = Prices()) -> pl.DataFrame:
    """CLIP_COST_SCHEMA: per clip, the summed per-clip measurements of all assets and their dollars."""
    m = _latest(measurements).filter(pl.col("clip").is_not_null())
    g = m.group_by("clip").agg(pl.col("wall_s").sum(), pl.col("cpu_s").sum(), pl.col("gpu_s").sum(),
                               (pl.col("peak_rss_bytes").max() / 1e6).alias("peak_rss_mb"))
    df = g.join(footage.select("clip", pl.col("duration_s").cast(pl.Float64).alias("footage_s")), on="clip")
    usd = pl.col("cpu_s") / 3600 * prices.cpu_core_hour_usd + pl.col("gpu_s") / 3600 * prices.gpu_hour_usd
    df = df.with_columns(usd.alias("usd")).with_columns(
        pl.when(pl.col("footage_s") > 0).then(pl.col("usd") * 3600 / pl.col("footage_s")).otherwise(None)
        .alias("usd_per_footage_h"))
    return df.select(list(CLIP_COST_SCHEMA)).cast(CLIP_COST_SCHEMA).sort("clip")  # type: ignore[arg-type]


def report_metadata(report: pl.DataFrame) -> dict[str, float]:
    """Flat numbers for asset metadata (plotted over time in the UI): totals and each asset's $ per footage hour."""
    out: dict[str, float] = {}
    tot = report.filter(pl.col("row_kind") == "total")
    if tot.height:
        r = tot.row(0, named=True)
        for k in ("usd_per_footage_h", "wall_s_per_footage_h", "cpu_s_per_footage_h", "gpu_s_per_footage_h"):
            out[f"total_{k}"] = float(r[k]) if r[k] is not None else float("nan")
    for r in report.filter(pl.col("row_kind") == "asset").iter_rows(named=True):
        out[f"usd_per_footage_h__{r['asset']}"] = float(r["usd_per_footage_h"])
    out["seed_anchor_usd_per_footage_h"] = SEED_ANCHOR_USD_PER_FOOTAGE_H
    return out
