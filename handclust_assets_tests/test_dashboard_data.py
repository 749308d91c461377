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


def test_a_piece_and_an_export_say_what_they_are_in_their_drilldowns(tmp_path: Path) -> None:
    """The drilldown names why a clip is pooled as another, from the `footage_signature` rows: a piece cut out of
    the clip, an export of it under other bytes."""
    from handclust_assets.report import build_dashboard

    root = tmp_path / "storage"
    video = tmp_path / "w.mp4"
    video.write_bytes(b"x")
    clips = pl.DataFrame({"clip": ["p_piece", "w_whole", "x_export"], "content_hash": ["h1", "h2", "h3"],
                          "source_path": [str(video)] * 3, "duration_s": [4.0, 12.0, 12.0]})
    rows = pl.DataFrame({"clip": ["p_piece", "w_whole", "x_export"], "same_footage_as": [None, None, "w_whole"],
                         "within": ["w_whole", None, None], "holds": [None, None, None]})
    for k in clips["clip"]:
        write_table(clips.filter(pl.col("clip") == k), root, "clips", k)
        write_table(rows.filter(pl.col("clip") == k), root, "footage_signature", k)
    r = Results(root)
    assert r.same_video == {"p_piece": "w_whole", "x_export": "w_whole"}
    assert r.same_video_why == {"p_piece": "piece", "x_export": "same footage"}
    html = build_dashboard(root, out_dir=tmp_path / "dash").index.read_text()

    def head(clip: str) -> str:
        part = html[html.index(f'id="clip-{clip}"'):]
        return part[:part.index("</p>")]

    assert 'a piece cut out of <a href="#clip-w_whole">w_whole</a>' in head("p_piece")
    assert 'the same footage as <a href="#clip-w_whole">w_whole</a>' in head("x_export")
    assert "the same video as" not in html and "same-video" not in head("w_whole")
