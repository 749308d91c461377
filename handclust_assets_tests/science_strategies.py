"""Hypothesis strategies for the degenerate inputs real footage produces (shared by the test_science_* files).

Each strategy draws a *kind* of data (random, constant, almost constant, ulp jitter, zeros, steps, duplicate
rows), a magnitude, and optionally sprinkles NaN / +-inf over it. The values come from a seeded numpy generator
(one drawn seed), so examples are cheap and shrink towards the simple kinds (random, scale 1, no NaN).
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# HANDCLUST_HYPOTHESIS_SCALE=20 multiplies every example budget (a soak run); CI keeps the default 1.
SCALE = max(1, int(os.environ.get("HANDCLUST_HYPOTHESIS_SCALE", "1")))


def examples(n: int) -> settings:
    """`n` examples (times HANDCLUST_HYPOTHESIS_SCALE), no deadline (the first call of a library is slow)."""
    return settings(max_examples=n * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KINDS = ("random", "constant", "almost_constant", "ulp_jitter", "zeros", "steps", "duplicates")
SCALES = (1.0, 1e-12, 1e-6, 1e6, 1e12)
NONFINITE = (np.nan, np.inf, -np.inf)


def _values(kind: str, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.normal(size=d)
    if kind == "random":
        return rng.normal(size=(n, d))
    if kind == "constant":
        return np.tile(base, (n, 1))
    if kind == "almost_constant":
        return base + 1e-12 * rng.normal(size=(n, d))
    if kind == "ulp_jitter":  # the same value up to a few ulps: what float32 models give for repeated frames
        return base * (1.0 + np.finfo(np.float64).eps * rng.integers(-3, 4, (n, d)))
    if kind == "zeros":
        return np.zeros((n, d))
    if kind == "steps":
        levels = rng.normal(size=(3, d))
        return levels[np.sort(rng.integers(0, 3, n))]
    if kind == "duplicates":
        return rng.normal(size=(2, d))[rng.integers(0, 2, n)]
    raise ValueError(kind)


@st.composite
def matrices(draw: st.DrawFn, min_rows: int = 0, max_rows: int = 30, min_cols: int = 1, max_cols: int = 8,
             nonfinite: bool = True, nonnegative: bool = False, kinds: tuple[str, ...] = KINDS,
             scales: tuple[float, ...] = SCALES) -> np.ndarray:
    """(n, d) float64 of one degenerate kind, at one magnitude, optionally with NaN / inf sprinkled."""
    n = draw(st.integers(min_rows, max_rows))
    d = draw(st.integers(min_cols, max_cols))
    kind = draw(st.sampled_from(kinds))
    scale = draw(st.sampled_from(scales))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = _values(kind, n, d, rng) * scale
    if nonnegative:
        x = np.abs(x)
    if nonfinite and n and d and draw(st.booleans()):
        share = draw(st.sampled_from((0.05, 0.3, 1.0)))
        mask = rng.random((n, d)) < share
        x[mask] = rng.choice(NONFINITE, int(mask.sum()))
    return x


def signals(min_len: int = 0, max_len: int = 40, **kw: object) -> st.SearchStrategy[np.ndarray]:
    """1-D float64 signals (same kinds as `matrices`)."""
    return matrices(min_rows=min_len, max_rows=max_len, min_cols=1, max_cols=1, **kw).map(lambda x: x[:, 0])


FPS = st.sampled_from((1.0, 2.0, 5.0, 10.0, 30.0))


@st.composite
def partitions(draw: st.DrawFn, n: int, max_segments: int = 6) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges covering [0, n) (one empty segment when n == 0)."""
    if n == 0:
        return [(0, 0)]
    k = draw(st.integers(1, min(max_segments, n)))
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), min_size=k - 1, max_size=k - 1))) if n > 1 else []
    edges = [0, *cuts, n]
    return list(zip(edges[:-1], edges[1:]))


def segments_frame(ranges: list[tuple[int, int]], fps: float = 1.0) -> pl.DataFrame:
    """A segments table (segment_idx, start/end frame, start/end s, n_frames) for `ranges`."""
    a = np.asarray([r[0] for r in ranges], np.int64)
    b = np.asarray([r[1] for r in ranges], np.int64)
    return pl.DataFrame({"segment_idx": np.arange(len(a), dtype=np.int64), "start_frame": a, "end_frame": b,
                         "start_s": a / fps, "end_s": b / fps, "n_frames": b - a})


@st.composite
def segment_tables(draw: st.DrawFn, n: int, max_segments: int = 6) -> pl.DataFrame:
    """Segments over n frames: an exact partition, or (misaligned data) one reaching past the data or empty."""
    ranges = draw(partitions(n, max_segments))
    if draw(st.booleans()):
        extra = draw(st.integers(0, 5))
        ranges = [*ranges, (n, n + extra)]  # the data is shorter than the segmentation (e.g. a missing tail)
    return segments_frame(ranges)


def labels(n: int, max_label: int = 4) -> st.SearchStrategy[np.ndarray]:
    """Cluster labels in [-1, max_label] (-1 = noise): all noise, one cluster, or a mix."""
    return st.one_of(
        st.just(np.full(n, -1, np.int64)),
        st.just(np.zeros(n, np.int64)),
        st.lists(st.integers(-1, max_label), min_size=n, max_size=n).map(lambda v: np.asarray(v, np.int64)),
    )
