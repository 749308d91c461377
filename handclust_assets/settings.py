"""Pipeline settings as a Dagster resource (editable from the launchpad or env vars)."""


import dagster as dg

from handclust_assets.phase import DEFAULT_PHASE_WORDS
from handclust_assets.storage import storage_root, video_dir


class HandclustSettings(dg.ConfigurableResource):
    """Where data lives and how clips are sampled. Empty strings mean: use the env var / default."""

    storage: str = ""
    video_folder: str = ""
    sample_fps: float = 5.0
    max_side: int = 480
    segment_min_s: float = 2.0  # segments are at least this long (shorter ones lose their weakest boundary)
    segment_max_s: float = 6.0  # and at most this long (longer ones are split evenly): ~ the seeds' 5-s segments
    rectify: str = "auto"  # auto: when an intrinsics.json applies; never; always (error if none)
    phase_words: list[str] = list(DEFAULT_PHASE_WORDS)
    phase_pattern: str = ""

    def root(self):  # noqa: ANN201
        return storage_root(self.storage or None)

    def videos(self):  # noqa: ANN201
        return video_dir(self.storage or None) if not self.video_folder else storage_root(self.video_folder)
