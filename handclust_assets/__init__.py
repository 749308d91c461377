"""HandClust: label-free activity discovery in egocentric work video, as a Dagster asset graph."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from handclust_assets.lib.hugepages import avoid_hugepage_stalls

if TYPE_CHECKING:
    from handclust_assets.lib.storage import Storage
    from handclust_assets.lib.tables import ResultsConnection

__version__ = "0.1.0"

avoid_hugepage_stalls()  # before the graph's numpy work: large temporaries stall on huge pages on some kernels


def connect(root: Storage | str | os.PathLike | None = None) -> ResultsConnection:
    """All results, read-only, in an in-memory DuckDB that stays current (see `handclust_assets.lib.tables`)."""
    from handclust_assets.lib.tables import connect as _connect

    return _connect(root)
