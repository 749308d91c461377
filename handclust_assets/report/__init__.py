"""The lab dashboard (seed 000 made live) and its videos, as plain functions (no Dagster import).

    from handclust_assets.report import build_dashboard
    build_dashboard("storage")          # -> storage/dashboard/index.html (+ img/, dashboard.css, dashboard.js)

Serve it with `handclust dashboard` (or any static file server): the site is self-contained, no CDN.
"""

from handclust_assets.report.build import DashboardResult, build_dashboard
from handclust_assets.report.data import Results
from handclust_assets.report.videos import (
    NothingToRender,
    VideoResult,
    overlay_path,
    reel_path,
    render_activity_overlay,
    render_preview_reel,
)

__all__ = [
    "DashboardResult",
    "NothingToRender",
    "Results",
    "VideoResult",
    "build_dashboard",
    "overlay_path",
    "reel_path",
    "render_activity_overlay",
    "render_preview_reel",
]
