"""Read access to the result tables for the dashboard and the videos, whatever is (or is not) there.

`Results` wraps either a DuckDB connection (`handclust_assets.lib.tables.connect(root)`, the default) or a dict of
polars frames. Every accessor returns None when a table is missing, so each section can say why it is empty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from handclust_assets.lib.storage import Storage, as_storage
from handclust_assets.science.crossclip import MODALITIES as SCIENCE_MODALITIES
from handclust_assets.video.frame_cache import FrameCache

# The modalities of the cross-clip stage (its own list, so a new modality shows up here), plus the fusion.
MODALITIES: tuple[str, ...] = tuple(SCIENCE_MODALITIES)
ALL_MODALITIES = (*MODALITIES, "fusion")
MODALITY_NAMES = {
    "scene": "Scene (DINOv2)",
    "video": "V-JEPA 2 video",
    "tools": "OWLv2 tools",
    "flow": "Optical flow",
    "flow_rhythm": "Flow rhythm",
    "egomotion": "Ego-motion",
    "pose": "Body pose",
    "hands": "Hands",
    "fusion": "Late fusion",
}
MODALITY_SIGNAL = {
    "scene": "Per-frame scene embedding (DINOv2 CLS; an offline EfficientNet-Lite0 where DINOv2 weights are "
    "absent), mean over the segment.",
    "video": "V-JEPA 2 temporal video model: 64-frame windows at 1-s stride, mean-pooled tokens; segment = "
    "mean of its windows. HDBSCAN on cosine.",
    "tools": "OWLv2 open-vocabulary tool presence per frame -> per-segment log-normalised histogram.",
    "flow": "Dense optical flow per frame: magnitude-weighted direction histogram + magnitude statistics (raw "
    "image motion, head included).",
    "flow_rhythm": "Dense-flow magnitude, 12-s windowed FFT -> dominant period, periodicity strength, mean flow.",
    "egomotion": "RANSAC affine on the flow field -> camera (head) motion, residual (hand/object) motion, ratio.",
    "pose": "MediaPipe Pose 33 keypoints -> segment summary (shoulder span, elbow angles, body-bob period).",
    "hands": "MediaPipe HandLandmarker keypoints, propagated by a CSRT tracker -> segment summary + coverage.",
    "fusion": "Per-modality z-score, L2-normalise, weighted concat, HDBSCAN on cosine. Weight = bootstrap stability "
    "x separation of the modality's own clusters, x the share of segments it observes, gated out when its "
    "clusters are clip-private (a fingerprint).",
}
# The per-clip table each modality comes from (its absence is what makes the modality absent).
MODALITY_SOURCE = {
    "scene": "scene_embeddings",
    "video": "video_embeddings",
    "tools": "tool_scores",
    "flow": "flow",
    "flow_rhythm": "flow_rhythm",
    "egomotion": "egomotion",
    "pose": "pose",
    "hands": "hands",
}

NOISE_RGB = (0.0, 0.0, 0.0)
ABSENT_RGB = (0.86, 0.86, 0.86)


def cluster_rgb(cluster: int | None) -> tuple[float, float, float]:
    """A cluster's colour (0..1 RGB): tab20-like, stable per id; black for noise."""
    if cluster is None or cluster < 0:
        return NOISE_RGB
    base = (
        (0.122, 0.467, 0.706), (1.000, 0.498, 0.055), (0.173, 0.627, 0.173), (0.839, 0.153, 0.157),
        (0.580, 0.404, 0.741), (0.549, 0.337, 0.294), (0.890, 0.467, 0.761), (0.498, 0.498, 0.498),
        (0.737, 0.741, 0.133), (0.090, 0.745, 0.812), (0.682, 0.780, 0.910), (1.000, 0.733, 0.471),
        (0.596, 0.875, 0.541), (1.000, 0.596, 0.588), (0.773, 0.690, 0.835), (0.769, 0.612, 0.580),
        (0.969, 0.714, 0.824), (0.780, 0.780, 0.780), (0.859, 0.859, 0.553), (0.620, 0.855, 0.898),
    )
    return base[int(cluster) % len(base)]


def hex_of(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{int(round(255 * max(0.0, min(1.0, c)))):02x}" for c in rgb)


def finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


class Results:
    """Result tables of one storage root (DuckDB views, or polars frames), with per-clip access and labels."""

    def __init__(
        self,
        root: Storage | str | Path | None = None,
        source: duckdb.DuckDBPyConnection | Mapping[str, pl.DataFrame] | None = None,
    ) -> None:
        self.store = as_storage(root)
        self.root = self.store.local_root()  # where the dashboard is built (the root itself, or scratch)
        from handclust_assets.lib.tables import ResultsConnection, connect

        if source is None:
            source = connect(self.store)
        if isinstance(source, ResultsConnection):
            source = source.con
        self._con = source if isinstance(source, duckdb.DuckDBPyConnection) else None
        self._frames: dict[str, pl.DataFrame] = {} if self._con is not None else dict(source)  # type: ignore[arg-type]
        self._cache: dict[str, pl.DataFrame | None] = {}
        self._fc: dict[str, FrameCache | None] = {}

    # ---- tables -------------------------------------------------------------------------------------------
    @cached_property
    def names(self) -> set[str]:
        if self._con is None:
            return set(self._frames)
        rows = self._con.execute(
            "select view_name from duckdb_views() where not internal "
            "union select table_name from duckdb_tables()").fetchall()
        return {r[0] for r in rows}

    def has(self, name: str) -> bool:
        return name in self.names

    def get(self, name: str) -> pl.DataFrame | None:
        """The whole table, or None when it does not exist (an empty table stays an empty frame)."""
        if name not in self.names:
            return None
        if name not in self._cache:
            if self._con is None:
                self._cache[name] = self._frames[name]
            else:
                try:
                    self._cache[name] = self._con.sql(f'select * from "{name}"').pl()
                except duckdb.Error:
                    self._cache[name] = None
        return self._cache[name]

    def nonempty(self, name: str) -> pl.DataFrame | None:
        df = self.get(name)
        return df if df is not None and df.height else None

    def n_clips_in(self, name: str) -> int:
        """Distinct clips with rows in a table (0 when it is missing or empty)."""
        if name not in self.names:
            return 0
        try:
            if self._con is not None and name not in self._cache:
                return int(self._con.execute(f'select count(distinct clip) from "{name}"').fetchall()[0][0])
            df = self.get(name)
            return int(df["clip"].n_unique()) if df is not None and "clip" in df.columns else 0
        except duckdb.Error:
            return 0

    def clip(self, name: str, clip: str) -> pl.DataFrame | None:
        """Rows of one clip (queried per clip from DuckDB, so big per-frame tables are never read whole)."""
        if name not in self.names:
            return None
        if self._con is None or name in self._cache:
            df = self.get(name)
            if df is None or "clip" not in df.columns:
                return None
            return df.filter(pl.col("clip") == clip)
        try:
            return self._con.sql(f'select * from "{name}" where clip = ?', params=[clip]).pl()
        except duckdb.Error:
            return None

    def clip_nonempty(self, name: str, clip: str) -> pl.DataFrame | None:
        df = self.clip(name, clip)
        return df if df is not None and df.height else None

    # ---- clips, modalities, labels -------------------------------------------------------------------------
    @cached_property
    def clips(self) -> list[str]:
        keys: set[str] = set()
        for name in ("clips", "segments", "cross_clip_clusters"):
            df = self.get(name)
            if df is not None and "clip" in df.columns:
                keys |= set(df["clip"].drop_nulls().to_list())
        if not keys:
            keys = {c for c in self.store.listdir("frames") if self.store.exists("frames", c, "meta.json")}
        return sorted(keys)

    @property
    def same_video(self) -> dict[str, str]:
        """clip -> the clip the cross-clip graph pooled in its place (the same video renamed, moved or copied:
        `lib.same_video`, as the IO manager chooses)."""
        return self._pooling[0]

    @property
    def same_video_why(self) -> dict[str, str]:
        """clip -> why it is pooled as another (`lib.same_video.WHY_*`: same bytes, same footage, piece)."""
        return self._pooling[1]

    @cached_property
    def _pooling(self) -> tuple[dict[str, str], dict[str, str]]:
        """(`same_video`, `same_video_why`): `lib.same_video.duplicate_clips` over the `clips` rows and the footage
        links and pieces, once."""
        from handclust_assets.lib.same_video import FOOTAGE_TABLE, duplicate_clips, links_of, pieces_from

        df = self.get("clips")
        if df is None or not {"clip", "content_hash", "source_path"} <= set(df.columns):
            return {}, {}

        def footage(*cols: str) -> list[tuple]:  # a few columns only: the signatures themselves are not read
            if FOOTAGE_TABLE not in self.names:
                return []
            try:
                return (self._con.sql(f'select {", ".join(cols)} from "{FOOTAGE_TABLE}"').fetchall()
                        if self._con is not None else self._frames[FOOTAGE_TABLE].select(cols).rows())
            except (duckdb.Error, pl.exceptions.PolarsError):  # (a table from before the pieces lacks their columns)
                return []

        why: dict[str, str] = {}
        same = duplicate_clips(df, links=links_of(footage("clip", "same_footage_as")),
                               pieces=pieces_from(footage("clip", "within", "holds")), why=why)
        return same, why

    def clip_info(self, clip: str) -> dict:
        df = self.get("clips")
        if df is None or "clip" not in df.columns:
            return {}
        r = df.filter(pl.col("clip") == clip)
        return r.row(0, named=True) if r.height else {}

    def duration(self, clip: str) -> float:
        info = self.clip_info(clip)
        if finite(info.get("duration_s")):
            return float(info["duration_s"])
        seg = self.clip_nonempty("segments", clip)
        if seg is not None:
            return float(seg["end_s"].max())
        fc = self.frame_cache(clip)
        return float(len(fc) / fc.fps) if fc is not None and len(fc) else 0.0

    @cached_property
    def clustered_modalities(self) -> list[str]:
        """Modalities with cross-clip cluster rows, in display order (fusion last)."""
        df = self.get("cross_clip_clusters")
        if df is None or not df.height:
            return []
        present = set(df["modality"].unique().to_list())
        extra = sorted(present - set(ALL_MODALITIES))
        return [m for m in MODALITIES if m in present] + extra + (["fusion"] if "fusion" in present else [])

    def modality_name(self, m: str) -> str:
        if m == "scene":
            model = self.scene_model
            if model and "dinov2" not in model.lower():
                return f"Scene ({model})"
        return MODALITY_NAMES.get(m, m)

    @cached_property
    def scene_model(self) -> str:
        if self._con is not None and self.has("scene_embeddings"):
            try:
                rows = self._con.execute('select distinct model from "scene_embeddings" limit 3').fetchall()
                return ", ".join(str(r[0]) for r in rows if r[0])
            except duckdb.Error:
                return ""
        df = self.get("scene_embeddings")
        if df is None or "model" not in df.columns or not df.height:
            return ""
        return ", ".join(str(v) for v in df["model"].unique().to_list() if v)

    @cached_property
    def _labels(self) -> dict[tuple[str, int], str]:
        df = self.get("cluster_labels")
        if df is None or not df.height or "label" not in df.columns:
            return {}
        return {(r["modality"], int(r["cluster"])): str(r["label"] or "") for r in
                df.select("modality", "cluster", "label").iter_rows(named=True) if r["cluster"] is not None}

    def label(self, modality: str, cluster: int | None) -> str:
        """`C3 walking · rhythm 1.0s` (cluster id + label), `noise` for -1."""
        if cluster is None or cluster < 0:
            return "noise"
        lab = self._labels.get((modality, int(cluster)), "")
        return f"C{int(cluster)} {lab}".strip()

    def label_text(self, modality: str, cluster: int | None) -> str:
        if cluster is None or cluster < 0:
            return "noise"
        return self._labels.get((modality, int(cluster)), "")

    @property
    def has_labels(self) -> bool:
        return bool(self._labels)

    # ---- frames -------------------------------------------------------------------------------------------
    def frame_cache(self, clip: str) -> FrameCache | None:
        if clip not in self._fc:
            try:
                self._fc[clip] = FrameCache(self.store.fetch_dir(*self.store.frames(clip)))
            except (FileNotFoundError, OSError, ValueError):
                self._fc[clip] = None
        return self._fc[clip]

    def keyframe(self, clip: str, frame: int) -> np.ndarray | None:
        fc = self.frame_cache(clip)
        if fc is None or not len(fc):
            return None
        try:
            return fc.read(int(np.clip(frame, 0, len(fc) - 1)))
        except (IndexError, OSError, ValueError):
            return None

    def segment(self, clip: str, segment_idx: int) -> dict | None:
        seg = self.clip_nonempty("segments", clip)
        if seg is None:
            return None
        r = seg.filter(pl.col("segment_idx") == int(segment_idx))
        return r.row(0, named=True) if r.height else None
