"""Shared fixtures: a temp HandClust home (results, watched folder, instance), the code location's resources
pointed at it, real shared clips and MediaPipe models when present."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from handclust_assets_tests.support import SHARED, build_whole_graph, find_models_dir, make_resources

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
SHARED_CLIPS = SHARED / "data" / "clips"


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HANDCLUST_HOME (= the results root) with an empty watched folder; the model cache stays shared."""
    root = tmp_path / "storage"
    (root / "videos").mkdir(parents=True)
    monkeypatch.setenv("HANDCLUST_HOME", str(root))
    for var in ("HANDCLUST_STORAGE", "HANDCLUST_VIDEO_DIR", "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    return root


@pytest.fixture
def resources(storage: Path) -> Callable[..., dict[str, Any]]:
    """resources(**overrides): the resources on the test's storage root."""
    return lambda **overrides: make_resources(storage, **overrides)


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


@pytest.fixture(scope="session")
def shared_clips() -> Path:
    if not SHARED_CLIPS.is_dir() or not any(SHARED_CLIPS.glob("*.mp4")):
        pytest.skip(f"shared real clips not found at {SHARED_CLIPS}")
    return SHARED_CLIPS


@pytest.fixture(scope="session")
def mediapipe_dir() -> Path:
    d = find_models_dir()
    if d is None:
        pytest.skip("MediaPipe .task models not found: run `handclust fetch-models` (scripts/setup.sh does)")
    return d


@pytest.fixture(scope="session")
def whole_graph(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every clip run and the cross-clip job on three small synthetic clips, once per session (support.py)."""
    return build_whole_graph(tmp_path_factory.mktemp("graph"))
