"""Measured cost of real work (CPU, wall, memory) and the per-footage-hour cost model's arithmetic."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import polars as pl
import pytest

from handclust_assets.lib.cost import (
    CLIP_COST_SCHEMA,
    MEASUREMENT_SCHEMA,
    REPORT_SCHEMA,
    SEED_ANCHOR_USD_PER_FOOTAGE_H,
    CostMeter,
    Prices,
    clip_cost,
    cost_report,
    gpu_section,
    measure_cost,
    report_metadata,
    unmatched_clips,
)


def _busy(seconds: float) -> int:
    n, end = 0, time.process_time() + seconds
    while time.process_time() < end:
        n += 1
    return n


def test_cpu_wall_and_peak_memory_of_real_work() -> None:
    with measure_cost() as m:
        a = np.random.default_rng(0).random((600, 600))
        for _ in range(30):
            a = np.tanh(a @ a.T / 600.0)
        big = np.ones(160_000_000 // 8)  # 160 MB held for a while: the sampler must see it
        time.sleep(0.15)
        del big
    r = m.result
    assert r is not None and r.cpu_s > 0.05 and r.wall_s >= 0.15
    assert r.peak_rss_bytes > 160_000_000
    if not _has_cuda():
        assert r.gpu_s == 0.0 and r.gpu_timed is False and r.gpu_peak_bytes == 0


def test_sleeping_costs_wall_not_cpu() -> None:
    with CostMeter() as m:
        time.sleep(0.3)
    assert m.result.wall_s >= 0.3 and m.result.cpu_s < 0.1


def test_cpu_of_other_threads_and_waited_children_counts() -> None:
    with CostMeter() as m:
        t = threading.Thread(target=_busy, args=(0.3,))
        t.start()
        t.join()
    assert m.result.cpu_s >= 0.25
    with CostMeter() as m:
        subprocess.run([sys.executable, "-c", "import time\nt=time.process_time()+0.4\nwhile time.process_time()<t: pass"],
                       check=True)
    assert m.result.cpu_s >= 0.35  # the child's CPU, waited for inside the block


def _has_cuda() -> bool:
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_available())


@pytest.mark.skipif(_has_cuda(), reason="checks the no-CUDA path")
def test_gpu_section_without_cuda_is_a_no_op_and_meters_nest() -> None:
    with CostMeter() as outer:
        with CostMeter() as inner:
            with gpu_section():
                _busy(0.1)
        _busy(0.1)
    assert inner.result.gpu_s == 0.0 and not inner.result.gpu_timed
    assert outer.result.cpu_s >= inner.result.cpu_s + 0.08


def test_meter_records_the_gpu_seconds_it_is_given() -> None:
    with CostMeter() as m:
        m.add_gpu_seconds(1.5)
        m.add_gpu_seconds(0.25)
    assert m.result.gpu_s == 1.75 and m.result.gpu_timed


def _measurements(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=MEASUREMENT_SCHEMA, orient="row")


FOOTAGE = pl.DataFrame({"clip": ["a", "b"], "duration_s": [1800.0, 1800.0]})  # one footage hour in all


def test_cost_report_arithmetic() -> None:
    m = _measurements([
        ("frame_cache", "a", 100.0, 999.0, 0.0, 10_000_000),  # superseded by the re-run below
        ("frame_cache", "a", 90.0, 180.0, 0.0, 50_000_000),
        ("frame_cache", "b", 90.0, 180.0, 0.0, 70_000_000),
        ("video_embeddings", "a", 400.0, 100.0, 360.0, 900_000_000),
        ("cross_clip_clusters", None, 30.0, 36.0, 0.0, 20_000_000),
        ("frame_cache", "ghost", 5.0, 5.0, 0.0, 1),  # no footage known: left out
    ])
    prices = Prices(cpu_core_hour_usd=0.10, gpu_hour_usd=3.60)
    rep = cost_report(m, FOOTAGE, prices)
    assert rep.columns == list(REPORT_SCHEMA) and rep.schema == pl.Schema(REPORT_SCHEMA)
    rows = {r["asset"]: r for r in rep.iter_rows(named=True)}
    fc = rows["frame_cache"]
    assert fc["n_clips"] == 2 and fc["footage_s"] == 3600.0 and fc["cpu_s"] == 360.0
    assert fc["cpu_s_per_footage_h"] == pytest.approx(360.0)
    assert fc["cpu_usd_per_footage_h"] == pytest.approx(360 / 3600 * 0.10)
    assert fc["x_realtime"] == pytest.approx(3600 / 180) and fc["peak_rss_mb"] == pytest.approx(70.0)
    ve = rows["video_embeddings"]  # measured on clip a only: its footage is half an hour
    assert ve["footage_s"] == 1800.0 and ve["gpu_s_per_footage_h"] == pytest.approx(720.0)
    assert ve["gpu_usd_per_footage_h"] == pytest.approx(720 / 3600 * 3.60)
    assert ve["usd_per_footage_h"] == pytest.approx(0.72 + 200 / 3600 * 0.10)
    cc = rows["cross_clip_clusters"]  # cross-clip: all the footage
    assert cc["footage_s"] == 3600.0 and cc["wall_s_per_footage_h"] == pytest.approx(30.0)
    tot = rows["all assets"]
    assert tot["row_kind"] == "total" and tot["footage_s"] == 3600.0
    assert tot["usd_per_footage_h"] == pytest.approx(fc["usd_per_footage_h"] + ve["usd_per_footage_h"]
                                                     + cc["usd_per_footage_h"])
    assert tot["cpu_s"] == pytest.approx(360 + 100 + 36)
    (anchor,) = [r for r in rows.values() if r["row_kind"] == "anchor"]
    assert anchor["usd_per_footage_h"] == pytest.approx(0.21) == SEED_ANCHOR_USD_PER_FOOTAGE_H
    assert unmatched_clips(m, FOOTAGE) == ["ghost"]
    meta = report_metadata(rep)
    assert meta["total_usd_per_footage_h"] == pytest.approx(tot["usd_per_footage_h"])
    assert meta["usd_per_footage_h__frame_cache"] == pytest.approx(fc["usd_per_footage_h"])
    assert all(isinstance(v, float) for v in meta.values())


def test_clip_cost_sums_assets_per_clip() -> None:
    m = _measurements([("frame_cache", "a", 10.0, 36.0, 0.0, 5_000_000),
                       ("video_embeddings", "a", 20.0, 0.0, 36.0, 9_000_000),
                       ("frame_cache", "b", 10.0, 72.0, 0.0, 4_000_000),
                       ("cross_clip_clusters", None, 1.0, 1.0, 0.0, 1)])
    cc = clip_cost(m, FOOTAGE, Prices(cpu_core_hour_usd=1.0, gpu_hour_usd=10.0))
    assert cc.columns == list(CLIP_COST_SCHEMA) and cc["clip"].to_list() == ["a", "b"]
    a = cc.row(0, named=True)
    assert a["usd"] == pytest.approx(36 / 3600 * 1.0 + 36 / 3600 * 10.0)
    assert a["usd_per_footage_h"] == pytest.approx(a["usd"] * 2) and a["peak_rss_mb"] == pytest.approx(9.0)


def test_empty_measurements_give_total_and_anchor_only() -> None:
    rep = cost_report(_measurements([]), FOOTAGE)
    assert rep["row_kind"].to_list() == ["total", "anchor"]
    assert rep["usd_per_footage_h"].to_list() == [0.0, pytest.approx(0.21)]


def test_a_measured_step_gives_freed_memory_back_after_its_compute(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs keep one process for all of a clip's steps: after each step's compute (outside its
    measurement) the freed heap goes back to the system (MediaPipe pose on 5 min of frames: 514 -> 322 MB)."""
    import dagster as dg

    from handclust_assets.defs.common import measured
    from handclust_assets.lib import memory

    order: list[str] = []
    monkeypatch.setattr(memory, "release_freed_memory", lambda: order.append("release"))

    def compute() -> dg.Output:
        order.append("compute")
        return dg.Output(1)

    events = list(measured(compute)())
    assert order == ["compute", "release"]
    assert len(events) == 1 and "wall_s" in events[0].metadata


def test_a_copied_result_is_left_out_of_the_measurements() -> None:
    """A per-clip result copied from a partition holding the same video (`adopted_from`) cost next to nothing:
    counting it would halve the cost per footage hour of a clip and its copy. Read from a real instance."""
    import dagster as dg

    from handclust_assets.defs.evaluation.cost import read_measurements

    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a", "b", "old"])
    cost = {"wall_s": 10.0, "cpu_s": 8.0, "gpu_s": 0.0, "peak_rss_mb": 100.0}
    for clip, adopted in (("a", "-"), ("b", "a"), ("old", None)):
        meta = {**cost, **({} if adopted is None else {"adopted_from": adopted})}
        inst.report_runless_asset_event(dg.AssetMaterialization("frame_cache", partition=clip, metadata=meta))
    got = read_measurements(inst, [dg.AssetKey("frame_cache")])
    assert sorted(got["clip"].to_list()) == ["a", "old"]  # computed (and made before copying existed): counted
