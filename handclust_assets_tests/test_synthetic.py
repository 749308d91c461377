"""The synthetic helmet-cam generator: deterministic, fully labelled, a real scene trap."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import polars as pl

from handclust_assets.lib.synthetic import PERIODS, generate_clip, generate_demo_set, load_ground_truth
from handclust_assets.video.frame_cache import sample_frames

PLAN = [("trowel", 4.0), ("idle", 4.0), ("walk", 4.0)]


def test_clip_ground_truth_and_decoding(tmp_path: Path) -> None:
    gt = generate_clip(tmp_path / "a.mp4", seed=3, width=160, height=96, fps=10, activities=PLAN)
    assert gt.columns == ["frame_idx", "t_s", "activity", "segment_idx", "period_s"]
    assert gt.height == 120 and gt["frame_idx"].to_list() == list(range(120))
    assert gt["activity"].to_list()[:40] == ["trowel"] * 40 and gt["activity"][119] == "walk"
    per = gt.filter(pl.col("activity") == "trowel")["period_s"][0]
    assert abs(per - PERIODS["trowel"]) <= 0.05 * PERIODS["trowel"] + 1e-9
    assert load_ground_truth(tmp_path / "a.mp4").equals(gt)
    with av.open(str(tmp_path / "a.mp4")) as c:
        s = c.streams.video[0]
        assert (s.codec_context.width, s.codec_context.height) == (160, 96)
        assert sum(1 for _ in c.decode(s)) == 120


def test_deterministic_by_seed(tmp_path: Path) -> None:
    a = generate_clip(tmp_path / "a.mp4", seed=7, width=128, height=72, fps=10, duration_s=8)
    b = generate_clip(tmp_path / "b.mp4", seed=7, width=128, height=72, fps=10, duration_s=8)
    generate_clip(tmp_path / "c.mp4", seed=8, width=128, height=72, fps=10, duration_s=8)
    assert a.equals(b)
    fa, _ = sample_frames(tmp_path / "a.mp4", 5, 128)
    fb, _ = sample_frames(tmp_path / "b.mp4", 5, 128)
    fc, _ = sample_frames(tmp_path / "c.mp4", 5, 128)
    assert np.array_equal(fa, fb) and not np.array_equal(fa, fc)


def test_scene_trap_and_motion_levels(tmp_path: Path) -> None:
    means, diffs = [], {}
    for seed in (1, 2):
        generate_clip(tmp_path / f"s{seed}.mp4", seed=seed, width=160, height=96, fps=10, activities=PLAN)
        f, t = sample_frames(tmp_path / f"s{seed}.mp4", 5, 160)
        means.append(f.reshape(-1, 3).mean(0))
        d = np.abs(np.diff(f.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
        for act, lo, hi in (("trowel", 0, 4), ("idle", 4, 8), ("walk", 8, 12)):
            m = (t[1:] >= lo + 0.5) & (t[1:] < hi)
            diffs.setdefault(act, []).append(d[m].mean())
    assert np.abs(means[0] - means[1]).max() > 10  # clips look different (appearance fingerprints the clip)
    assert max(diffs["idle"]) < min(diffs["trowel"]) and max(diffs["idle"]) < min(diffs["walk"])


def test_demo_set_has_phases_and_is_cached(tmp_path: Path) -> None:
    import time

    paths = generate_demo_set(tmp_path, n_clips=5, duration_s=6, width=128, height=72, fps=10)
    assert len(paths) == 5 and all(p.exists() for p in paths)
    words = {"production", "prep", "transit", "downtime", "demo"}
    assert all(any(w in p.stem for w in words) for p in paths)
    t = time.perf_counter()
    assert generate_demo_set(tmp_path, n_clips=5, duration_s=6, width=128, height=72, fps=10) == paths
    assert time.perf_counter() - t < 1.0
