"""Shared fixtures: a temp storage root, real shared clips (when present), small generated videos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"
if not SHARED_CLIPS.is_dir():
    SHARED_CLIPS = Path(os.environ.get("HANDCLUST_SHARED_CLIPS", "/work/shared/data/clips"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "storage"
    (root / "videos").mkdir(parents=True)
    monkeypatch.setenv("HANDCLUST_STORAGE", str(root))
    monkeypatch.delenv("HANDCLUST_VIDEO_DIR", raising=False)
    return root


@pytest.fixture(scope="session")
def shared_clips() -> Path:
    if not SHARED_CLIPS.is_dir() or not any(SHARED_CLIPS.glob("*.mp4")):
        pytest.skip(f"shared real clips not found at {SHARED_CLIPS}")
    return SHARED_CLIPS
