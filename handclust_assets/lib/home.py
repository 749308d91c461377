"""Where HandClust keeps its state, independent of the working folder.

One variable moves everything that is state: `HANDCLUST_HOME` (default: `storage/` in a source checkout, else
`~/.handclust`). Under it:

    $HANDCLUST_HOME/
      videos/          the watched folder            (override: HANDCLUST_VIDEO_DIR)
      dagster_home/    the Dagster instance           (override: DAGSTER_HOME)
      tables/ frames/ arrays/ dashboard/ ...  results (override: HANDCLUST_STORAGE, e.g. s3://bucket/prefix)
      scratch/         local copies of remote results (object-store roots only)

Model files live outside any home, in one cache every home shares: `HANDCLUST_MODEL_CACHE` (default
`~/.cache/handclust/models`; MediaPipe `.task` files under `mediapipe/`, hub-style folders `<org>__<name>`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _env_path(name: str) -> Path | None:
    v = os.environ.get(name, "").strip()
    return Path(v).expanduser().resolve() if v else None


def source_checkout() -> Path | None:
    """The repository root when HandClust runs from a source checkout (editable install), else None."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "workspace.yaml").is_file() else None


def handclust_home() -> Path:
    """$HANDCLUST_HOME, else `<checkout>/storage`, else ~/.handclust (absolute; never the working folder)."""
    env = _env_path("HANDCLUST_HOME")
    if env is not None:
        return env
    checkout = source_checkout()
    return (checkout / "storage") if checkout is not None else Path.home() / ".handclust"


def default_storage_root() -> str:
    """Where results live: $HANDCLUST_STORAGE (a folder or an fsspec URI such as s3://bucket/prefix), else the
    home folder itself (the layout predates the home: tables/, frames/, ... sit directly in it)."""
    v = os.environ.get("HANDCLUST_STORAGE", "").strip()
    if v:
        return v if "://" in v else str(Path(v).expanduser().resolve())
    return str(handclust_home())


def video_dir() -> Path:
    """The watched folder: $HANDCLUST_VIDEO_DIR, else $HANDCLUST_HOME/videos."""
    return _env_path("HANDCLUST_VIDEO_DIR") or handclust_home() / "videos"


def dagster_home() -> Path:
    """The Dagster instance folder: $DAGSTER_HOME, else $HANDCLUST_HOME/dagster_home."""
    return _env_path("DAGSTER_HOME") or handclust_home() / "dagster_home"


def model_cache() -> Path:
    """Model files shared by every home: $HANDCLUST_MODEL_CACHE, else ~/.cache/handclust/models."""
    env = _env_path("HANDCLUST_MODEL_CACHE")
    if env is not None:
        return env
    xdg = _env_path("XDG_CACHE_HOME") or Path.home() / ".cache"
    return xdg / "handclust" / "models"


def scratch_dir() -> Path:
    """Local working copies of results kept on object storage (frame caches being read, staged dashboards)."""
    return handclust_home() / "scratch"


def instance_config_template() -> Path:
    """The packaged `dagster.yaml` (no relative paths: everything resolves under DAGSTER_HOME)."""
    return PACKAGE_DIR / "dagster.yaml"


def default_max_runs(cores: int | None = None) -> int:
    """Clip runs at once for this machine: one per core (a run is one process; its heavy steps take turns in the
    `models` pool), at most 16. Measured in benchmarks/bench_product_path.py."""
    return max(1, min(16, cores or os.cpu_count() or 1))


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver on this machine (no torch import: the instance config is written before any run)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def default_model_pool_limit(max_runs: int, gpu: bool | None = None) -> int:
    """Model steps at once: 1 with a GPU (one model in GPU memory at a time), else every run's (on CPUs they
    share the cores through `lib.threads`; with a limit of 1 the other runs stood idle waiting for the pool:
    191 s vs 145 s for 4 x 45-s clips on 2 cores, benchmarks/bench_product_path.py)."""
    return 1 if (has_nvidia_gpu() if gpu is None else gpu) else max(1, max_runs)


def instance_config(max_runs: int | None = None, model_pool: int | None = None) -> str:
    """The instance config for this machine: the template with `max_concurrent_runs` from the core count and the
    `models` pool's limit from `default_model_pool_limit`."""
    import re

    runs = max_runs or default_max_runs()
    text = instance_config_template().read_text()
    text = re.sub(r"(max_concurrent_runs:) *\d+", rf"\g<1> {runs}", text, count=1)
    pool = model_pool or default_model_pool_limit(runs)
    return re.sub(r"(default_limit:) *\d+", rf"\g<1> {pool}", text, count=1)


def ensure_dagster_home(max_runs: int | None = None) -> Path:
    """Set DAGSTER_HOME (if unset) to $HANDCLUST_HOME/dagster_home and put the instance config there when it has
    none, so `dagster dev`, the daemon and every run agree on one instance from any working folder."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(instance_config(max_runs))
    os.environ["DAGSTER_HOME"] = str(home)
    return home
