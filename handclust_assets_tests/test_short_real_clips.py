"""Short real clips (2-10 s, 240p-480p, h264 / mpeg4 / gif) through the whole graph: the reported failure was the
cross-clip job dying on them (Otsu on an almost-constant anomaly score), which took the dashboard down with it.
Cut from the shared Apache-2.0 clips into a temp folder at test time (never copied into the repo)."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import dagster as dg
import pytest

from handclust_assets.lib.tables import connect
from handclust_assets.video.writer import write_video
from handclust_assets_tests.support import (
    cross_clip_selection,
    make_resources,
    materialize,
    run_clips,
    step_failures,
)

# (name, source clip, seconds, height, codec, container)
CUTS = [
    ("a_cups_h264_240p", "02_cups", 3.0, 240, "libx264", "mp4"),
    ("b_blocks_mpeg4_360p", "03_blocks", 2.0, 360, "mpeg4", "avi"),
    ("c_coffee_gif_240p", "04_coffee", 2.5, 240, "gif", "gif"),
    ("d_juggle_h264_480p", "05_default_juggle", 6.0, 480, "libx264", "mp4"),
    ("e_cups_mpeg4_240p", "02_cups", 10.0, 240, "mpeg4", "mp4"),
]


def cut(src: Path, dst: Path, seconds: float, height: int, codec: str, fps: float = 12.0) -> Path:
    """Re-encode the first `seconds` of a real clip at `height` px and `fps` with `codec`."""
    frames = []
    with av.open(str(src)) as c:
        s = c.streams.video[0]
        rate = float(s.average_rate)
        step = max(1, int(round(rate / fps)))
        for i, fr in enumerate(c.decode(s)):
            if i / rate >= seconds:
                break
            if i % step == 0:
                img = fr.to_ndarray(format="rgb24")
                w = int(round(img.shape[1] * height / img.shape[0] / 2)) * 2
                frames.append(cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA))
    return write_video(dst, frames, rate / step, codec=codec)


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory, shared_clips: Path) -> tuple[Path, dg.ExecuteInProcessResult]:
    root = tmp_path_factory.mktemp("short") / "storage"
    for name, src, secs, h, codec, ext in CUTS:
        cut(shared_clips / f"{src}.mp4", root / "videos" / f"{name}.{ext}", secs, h, codec)
    res = make_resources(root)
    inst, runs = run_clips(res, [c[0] for c in CUTS])
    for name, r in runs.items():
        assert r.success, (name, step_failures(r))
    cross = materialize(cross_clip_selection(), res, inst, raise_on_error=False)
    return root, cross


def test_every_short_clip_and_the_cross_clip_job_succeed(graph) -> None:
    root, cross = graph
    assert cross.success, step_failures(cross)
    con = connect(root)
    assert con.execute("select count(distinct clip) from segments").fetchone()[0] == len(CUTS)
    codecs = {r[0] for r in con.execute("select distinct codec from clips").fetchall()}
    assert {"h264", "mpeg4", "gif"} <= codecs
    # anomaly scores exist for every clip, and every threshold lies within its clip's scores
    rows = con.execute("select clip, min(smoothed), max(smoothed), any_value(theta_on) from anomaly_scores "
                       "group by clip").fetchall()
    assert len(rows) == len(CUTS)
    assert all(lo - 1e-9 <= on <= hi + 1e-9 for _, lo, hi, on in rows if on == on)


def test_the_dashboard_is_built_over_them(graph) -> None:
    root, cross = graph
    meta = [m for m in cross.get_asset_materialization_events() if m.asset_key == dg.AssetKey("lab_dashboard")]
    md = meta[-1].materialization.metadata
    assert md["section_errors"].value == 0 and md["clips"].value == len(CUTS)
    assert (root / "dashboard" / "index.html").exists()
