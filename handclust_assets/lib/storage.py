"""Where results live. One root folder (default `./storage`, env `HANDCLUST_STORAGE`):

    storage/
      videos/                    the watched folder (default; env HANDCLUST_VIDEO_DIR)
      tables/<asset>/<partition>.parquet   one file per asset partition (`_all.parquet` if unpartitioned)
      handclust.duckdb           DuckDB catalog: one VIEW per table over its parquet files
      frames/<clip>/             frame cache (JPEG pack + offsets + meta)
      arrays/<asset>/<clip>.npz  large per-frame arrays (flow fields) that are not worth a table
      dashboard/                 the lab dashboard (index.html + images)
      models/                    fetched model files (MediaPipe .task), cluster_model.json (the pooled clustering)
      dagster_home/              Dagster instance storage (runs, event log, schedules)
"""

from __future__ import annotations

import os
from pathlib import Path


def storage_root(root: str | os.PathLike | None = None) -> Path:
    """The storage root: explicit argument, else $HANDCLUST_STORAGE, else ./storage (absolute)."""
    r = root if root not in (None, "") else os.environ.get("HANDCLUST_STORAGE", "storage")
    return Path(r).expanduser().resolve()


def video_dir(root: str | os.PathLike | None = None) -> Path:
    env = os.environ.get("HANDCLUST_VIDEO_DIR")
    return Path(env).expanduser().resolve() if env else storage_root(root) / "videos"


def tables_dir(root: str | os.PathLike | None = None) -> Path:
    return storage_root(root) / "tables"


def frames_dir(root: str | os.PathLike | None, clip: str) -> Path:
    return storage_root(root) / "frames" / clip


def arrays_path(root: str | os.PathLike | None, asset: str, clip: str) -> Path:
    return storage_root(root) / "arrays" / asset / f"{clip}.npz"


def catalog_path(root: str | os.PathLike | None = None) -> Path:
    return storage_root(root) / "handclust.duckdb"


def cluster_model_path(root: str | os.PathLike | None = None) -> Path:
    """The pooled clustering's fitted spaces and centroids (written by `cross_clip_clusters`)."""
    return storage_root(root) / "models" / "cluster_model.json"


def load_cluster_model(root: str | os.PathLike | None = None) -> dict | None:
    import json

    path = cluster_model_path(root)
    return json.loads(path.read_text()) if path.exists() else None


def dashboard_dir(root: str | os.PathLike | None = None) -> Path:
    return storage_root(root) / "dashboard"
