"""EgoClean diagnostics: distances, SSM, autocorrelation period, cycle similarity; figures on any input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from handclust_assets.report.diagnostics import (
    SCENE_LABEL,
    VJEPA_LABEL,
    detection_png,
    diagnostics_png,
    embedding_source_label,
)
from handclust_assets.science.anomaly import detect_anomalies
from handclust_assets.science.anomaly_diagnostics import (
    autocorrelation,
    compute_diagnostics,
    consecutive_cosine_distance,
    cycle_similarity,
    dominant_period,
    pool_windows,
    self_similarity,
)


def _cyclic(n: int, period: int, dim: int = 16, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """A work cycle of `period` distinct postures, repeated, with a little noise."""
    rng = np.random.default_rng(seed)
    postures = rng.normal(size=(period, dim)) + 3.0
    return postures[np.arange(n) % period] + noise * rng.normal(size=(n, dim))


def test_known_distances_and_similarities() -> None:
    e = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, -3.0]])
    assert consecutive_cosine_distance(e) == pytest.approx([0.0, 1.0, 2.0])
    s = self_similarity(e)
    assert s.shape == (4, 4) and s[0, 1] == pytest.approx(1.0) and s[2, 3] == pytest.approx(-1.0)


def test_invalid_windows_are_nan_not_fake_values() -> None:
    e = np.array([[1.0, 0.0], [np.nan, 1.0], [0.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    d = consecutive_cosine_distance(e)
    assert np.isnan(d[:3]).all() and d[3] == pytest.approx(0.0)
    s = self_similarity(e)
    assert np.isnan(s[1]).all() and np.isnan(s[:, 2]).all() and s[3, 4] == pytest.approx(1.0)


def test_period_and_cycle_structure_are_recovered() -> None:
    e = _cyclic(120, period=7)
    d = compute_diagnostics(e, np.arange(120) * 0.5)
    assert d.period_windows == 7 and d.period_s == pytest.approx(3.5) and d.acf_peak > 0.5
    assert np.nanmin(d.cycle_similarity) > 0.99 and np.isnan(d.cycle_similarity[:7]).all()
    summary = d.summary()
    assert summary["n_windows"] == 120 and summary["period_s"] == pytest.approx(3.5)


def test_an_anomaly_shows_in_the_ssm_and_breaks_the_cycle() -> None:
    e = _cyclic(100, period=5)
    e[60:70] = np.random.default_rng(1).normal(size=(10, 16)) - 3.0  # something else entirely
    d = compute_diagnostics(e, np.arange(100.0))
    assert np.nanmean(d.ssm[60:70, :60]) < np.nanmean(d.ssm[:60, :60]) - 0.5  # dark off-diagonal band
    assert d.consecutive_distance[59] > 10 * np.median(d.consecutive_distance)
    assert d.period_windows == 5
    assert np.nanmax(d.cycle_similarity[60:75]) < np.nanmin(d.cycle_similarity[10:55])


def test_constant_and_noise_signals_have_no_period() -> None:
    assert np.isnan(autocorrelation(np.full(50, 0.3))).all()
    assert dominant_period(autocorrelation(np.full(50, 0.3))) == (None, pytest.approx(float("nan"), nan_ok=True))
    d = compute_diagnostics(np.ones((30, 8)), np.arange(30.0))
    assert d.period_windows is None and np.isnan(d.cycle_similarity).all()
    assert np.allclose(d.consecutive_distance, 0.0, atol=1e-12)
    assert np.isnan(cycle_similarity(np.ones((5, 2)), 9)).all()


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(0, 80), elements=st.one_of(
    st.floats(-1e6, 1e6), st.just(np.nan), st.floats(-1e-12, 1e-12))))
def test_autocorrelation_is_bounded_and_never_raises(x: np.ndarray) -> None:
    r = autocorrelation(x)
    assert len(r) == (len(x) // 2 + 1 if len(x) else 0)
    fin = r[np.isfinite(r)]
    if fin.size:
        assert r[0] == pytest.approx(1.0) and np.all(np.abs(fin) <= 1.0 + 1e-9)
    lag, peak = dominant_period(r)
    assert lag is None or (2 <= lag < len(r) and peak >= 0.1)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 6), st.integers(1, 5), st.booleans())
def test_diagnostics_accept_tiny_and_nan_inputs(n: int, dim: int, with_nan: bool) -> None:
    e = np.random.default_rng(n).normal(size=(n, dim)) * 1e-9
    if with_nan and n:
        e[0, 0] = np.nan
    d = compute_diagnostics(e, np.arange(float(n)))
    assert d.ssm.shape == (n, n) and len(d.consecutive_distance) == max(0, n - 1) and len(d.cycle_similarity) == n
    assert set(d.summary()) >= {"n_windows", "period_s", "mean_consecutive_distance"}


def test_pool_windows_matches_the_assets_polars_pooling() -> None:
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 12, 57))
    e = rng.normal(size=(57, 6)).astype(np.float32)
    g = pl.DataFrame({"t_s": t, "embedding": e.tolist()}).with_columns((pl.col("t_s") // 1).alias("sec"))
    w = g.group_by("sec", maintain_order=True).agg(pl.col("embedding"))
    ref = np.stack([np.mean(np.asarray(x.to_list()), axis=0) for x in w["embedding"]])
    emb, ts, te = pool_windows(e, t)
    assert np.allclose(emb, ref) and np.array_equal(ts, w["sec"].to_numpy().astype(float)) and np.all(te == ts + 1)


def _load_png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path} is not a loadable image"
    return img


@pytest.mark.parametrize("n", [0, 1, 2, 90])
def test_figures_are_written_and_loadable(tmp_path: Path, n: int) -> None:
    e = _cyclic(n, period=6) if n else np.zeros((0, 16))
    if n == 90:
        e[40:52] = -e[40:52]
    t = np.arange(float(n))
    diag = compute_diagnostics(e, t)
    p = diagnostics_png(diag, tmp_path / f"diag_{n}.png", VJEPA_LABEL, clip="clip_a")
    img = _load_png(p)
    assert img.shape[0] > 500 and img.shape[1] > 1000 and img.std() > 5
    scores, spans = detect_anomalies(e, t, t + 1)
    gt = pl.DataFrame({"start_s": [40.0], "end_s": [52.0], "label": ["lens covered"]})
    q = detection_png(scores, spans, tmp_path / f"det_{n}.png", SCENE_LABEL, gt=gt, clip="clip_a")
    assert _load_png(q).shape[1] > 1000
    if n == 90:
        assert spans.height >= 1  # the inverted block is found, so the shaded span is drawn


def test_constant_embeddings_figure(tmp_path: Path) -> None:
    e = np.ones((40, 8))
    t = np.arange(40.0)
    p = diagnostics_png(compute_diagnostics(e, t), tmp_path / "c.png", SCENE_LABEL)
    scores, spans = detect_anomalies(e, t, t + 1)
    q = detection_png(scores, spans, tmp_path / "d.png", SCENE_LABEL)
    assert _load_png(p).std() > 5 and _load_png(q).std() > 5 and spans.height == 0


def test_source_labels() -> None:
    assert embedding_source_label("video_embeddings") == "V-JEPA 2 windows"
    assert embedding_source_label("scene_embeddings", "efficientnet-lite0") == SCENE_LABEL
    assert embedding_source_label("scene_embeddings") == SCENE_LABEL
    assert embedding_source_label("scene_embeddings", "facebook/dinov2-small").startswith("facebook/dinov2-small")
