"""HandClust: label-free activity discovery in egocentric work video, as a Dagster asset graph."""

__version__ = "0.1.0"


def connect(root=None):  # noqa: ANN001, ANN201 - thin re-export, documented in tables.connect
    """Open all results read-only in an in-memory DuckDB (see `handclust_assets.lib.tables.connect`)."""
    from handclust_assets.lib.tables import connect as _connect

    return _connect(root)
