"""`handclust`: the command line."""

from handclust_assets.cli.app import app

__all__ = ["app"]
