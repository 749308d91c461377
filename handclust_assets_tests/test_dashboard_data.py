"""The dashboard's table access over a live DuckDB connection: one query's result must not poison the next."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from handclust_assets.lib.tables import write_table
from handclust_assets.report.analysis import modality_status
from handclust_assets.report.data import Results


def test_counting_a_table_does_not_hide_the_next_one(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    hands = pl.DataFrame({"clip": ["a", "b"], "frame_idx": [0, 0]})
    segs = pl.DataFrame({"clip": ["a", "b"], "segment_idx": [0, 0], "coverage": [0.0, 0.1]})
    write_table(hands, root, "hands", "a")
    write_table(segs, root, "hand_segments", "a")
    write_table(pl.DataFrame({"clip": ["a"], "segment_idx": [0], "modality": ["flow"], "cluster": [0]}), root,
                "cross_clip_clusters")
    r = Results(root)
    assert r.n_clips_in("hands") == 2
    t = r.get("hand_segments")  # DuckDB 2: an unconsumed fetchone() made this raise, and get() said "missing"
    assert t is not None and t.height == 2
    st = modality_status(r)["hands"]
    assert not st.present and "fewer than 25%" in st.reason


def test_a_clip_holding_the_same_video_as_another_says_so_in_its_drilldown(tmp_path: Path) -> None:
    from handclust_assets.report import build_dashboard

    root = tmp_path / "storage"
    video = tmp_path / "a.mp4"
    video.write_bytes(b"x")
    clips = pl.DataFrame({"clip": ["a", "a_copy", "b"], "content_hash": ["h1", "h1", "h2"],
                          "source_path": [str(video), str(tmp_path / "gone.mp4"), str(video)],
                          "duration_s": [4.0, 4.0, 6.0]})
    for k in clips["clip"]:
        write_table(clips.filter(pl.col("clip") == k), root, "clips", k)
    assert Results(root).same_video == {"a_copy": "a"}
    res = build_dashboard(root, out_dir=tmp_path / "dash")
    assert not res.errors, res.errors
    html = res.index.read_text()
    twin = html[html.index('id="clip-a_copy"'):]
    assert 'the same video as <a href="#clip-a">a</a>' in twin[:twin.index("</p>")]
    assert html.count("the same video as") == 1  # a and b say nothing of the kind
