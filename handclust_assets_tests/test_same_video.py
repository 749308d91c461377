"""Clip partitions holding the same video (a renamed file's old partition, a second copy) are pooled once by the
cross-clip graph: `lib.same_video` and the IO manager, on a real Dagster instance and real Parquet tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from handclust_assets.definitions import defs
from handclust_assets.lib.same_video import EVERY_PARTITION, duplicate_clips, source_exists
from handclust_assets.lib.video_folder import scan_videos
from handclust_assets.video.writer import moving_pattern, write_video
from handclust_assets_tests.support import make_resources, materialize


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from(["h1", "h2", "h3", None]), st.booleans()),
                max_size=12, unique_by=lambda r: r[0]))
@settings(max_examples=200, deadline=None)
def test_one_clip_is_kept_per_video(rows: list[tuple[str, str | None, bool]]) -> None:
    df = pl.DataFrame({"clip": [r[0] for r in rows], "content_hash": [r[1] for r in rows],
                       "source_path": [f"/v/{r[0]}" for r in rows]}, schema={"clip": pl.Utf8, "content_hash": pl.Utf8,
                                                                            "source_path": pl.Utf8})
    there = {f"/v/{c}" for c, _, e in rows if e}
    same = duplicate_clips(df, lambda s: s in there)
    by_hash: dict[str, list[tuple[str, bool]]] = {}
    for c, h, e in rows:
        if h is not None:
            by_hash.setdefault(h, []).append((c, e))
    for group in by_hash.values():
        kept = [c for c, _ in group if c not in same]
        assert len(kept) == 1  # exactly one clip of each video pooled
        assert all(same[c] == kept[0] for c, _ in group if c != kept[0])
        present = sorted(c for c, e in group if e)
        assert kept[0] == (present[0] if present else min(c for c, _ in group))
    assert not any(c in same for c, h, _ in rows if h is None)  # no hash: nobody's duplicate


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from(["h1", "h2", "h3", None]), st.booleans()),
                max_size=12, unique_by=lambda r: r[0]),
       st.dictionaries(st.sampled_from("abcdefg"), st.lists(st.sampled_from("abcdefg"), max_size=3), max_size=6))
@settings(max_examples=200, deadline=None)
def test_whatever_the_claims_of_pieces_every_left_out_clip_points_at_a_kept_one(
        rows: list[tuple[str, str | None, bool]], pieces: dict[str, list[str]]) -> None:
    """Pieces claimed any which way (loops, a clip its own piece, unknown clips): no clip is left out for one that
    is itself left out (no chain or loop of claims leaves footage without a clip pooled for it), every stand-in is
    a clip of the table, and a clip with no hash and no claim either way is nobody's duplicate."""
    df = pl.DataFrame({"clip": [r[0] for r in rows], "content_hash": [r[1] for r in rows],
                       "source_path": [f"/v/{r[0]}" for r in rows]}, schema={"clip": pl.Utf8, "content_hash": pl.Utf8,
                                                                            "source_path": pl.Utf8})
    there = {f"/v/{c}" for c, _, e in rows if e}
    same = duplicate_clips(df, lambda s: s in there, pieces=pieces)
    keys = {c for c, _, _ in rows}
    assert set(same) <= keys and not set(same.values()) & set(same)  # a stand-in is itself pooled
    assert all(v in keys for v in same.values())
    claimed = {k for k, outs in pieces.items() if k in keys and set(outs) & keys - {k}} | {
        o for k, outs in pieces.items() if k in keys for o in outs if o in keys and o != k}
    alone = [c for c, h, _ in rows if h is None and c not in claimed]
    assert not any(c in same for c in alone)


def test_a_shard_member_exists_while_its_shard_does(tmp_path: Path) -> None:
    (tmp_path / "day1.tar").write_bytes(b"")
    assert source_exists(f"{tmp_path}/day1.tar::cam/clip.mp4")
    assert not source_exists(f"{tmp_path}/day2.tar::cam/clip.mp4")
    assert not source_exists(None) and not source_exists(str(tmp_path / "gone.mp4"))


@dg.asset(ins={"clips": dg.AssetIn()})
def pooled_clips(clips: pl.DataFrame | None) -> pl.DataFrame:
    """A cross-clip asset as the graph's are: every clip partition's `clips` rows, through the IO manager."""
    return clips if clips is not None else pl.DataFrame()


@dg.asset(ins={"clips": dg.AssetIn(metadata=EVERY_PARTITION)})
def every_clip(clips: pl.DataFrame | None) -> pl.DataFrame:
    """A cross-clip asset doing per-clip work (as `repetition_counts` does): it asks for every partition."""
    return clips if clips is not None else pl.DataFrame()


@dg.asset(ins={"frame_cache": dg.AssetIn()})
def pooled_caches(frame_cache: pl.DataFrame | None) -> pl.DataFrame:
    """A cross-clip asset reading another per-clip table: every pooled clip partition's `frame_cache` row."""
    return frame_cache if frame_cache is not None else pl.DataFrame()


def _pooled(root: Path, instance: dg.DagsterInstance, n_partitions: int) -> tuple[list[str], str]:
    """The clips the cross-clip asset got, and what the IO manager's log said of the ones left out."""
    from handclust_assets.lib.tables import read_table

    clips_asset = next(a for a in defs.assets if "clips" in {k.to_user_string() for k in a.keys})
    r = dg.materialize([clips_asset, pooled_clips, every_clip], selection=[pooled_clips, every_clip],
                       instance=instance, resources=make_resources(root))
    said = [e.user_message for e in instance.all_logs(r.run_id) if "same video" in e.user_message]
    assert read_table(root, "every_clip").height == n_partitions
    return sorted(read_table(root, "pooled_clips")["clip"].to_list()), " ".join(said)


def test_a_piece_is_pooled_as_the_longer_clip_it_was_cut_from() -> None:
    """A piece (cut out without encoding again) is left out for the kept clip of the longer one's group: even where
    the longer clip's file is gone (its results hold the piece's footage) and whichever run named the other;
    a copy of the piece goes the same way, pieces of pieces end at the longest, and a loop of claims ends."""
    clips = pl.DataFrame({"clip": ["a_piece", "b_whole", "c_piece_copy", "d_bit", "e_other", "f_old_whole"],
                          "content_hash": ["p", "w", "p", "b", "o", "w"],
                          "source_path": ["/x/a", None, "/x/c", "/x/d", "/x/e", None]})
    every = {"a_piece": "b_whole", "c_piece_copy": "b_whole", "d_bit": "b_whole", "f_old_whole": "b_whole"}
    for pieces in ({"a_piece": ["b_whole"], "d_bit": ["a_piece"]},  # each piece named its longer clip
                   {"a_piece": ["f_old_whole"], "d_bit": ["c_piece_copy"]}):  # ... or another of its group
        assert duplicate_clips(clips, lambda s: s is not None, pieces=pieces) == every
    assert duplicate_clips(clips, lambda s: s is not None, pieces={"a_piece": ["b_whole"], "b_whole": ["a_piece"]}) \
        in ({"a_piece": "b_whole", "c_piece_copy": "b_whole", "f_old_whole": "b_whole"},
            {"b_whole": "a_piece", "f_old_whole": "a_piece", "c_piece_copy": "a_piece"})
    assert duplicate_clips(clips, lambda s: s is not None, pieces={"e_other": ["nobody"]}) == {
        "c_piece_copy": "a_piece", "f_old_whole": "b_whole"}  # without pieces: the same bytes only


def test_a_stand_in_without_results_in_a_table_gives_way_to_the_first_of_its_group_that_has_them() -> None:
    """The longer clip's run failed before `segments` (or has not got there): the piece, and what was pooled as it,
    are not left out of `segments` for it; where the stand-in has results, nothing changes."""
    from handclust_assets.lib.same_video import stand_ins

    same = {"a_piece": "w_whole", "b_copy": "w_whole", "c_x": "d_y"}
    assert stand_ins(same, ["a_piece", "b_copy", "c_x", "d_y", "w_whole"]) == same
    assert stand_ins(same, ["a_piece", "b_copy", "c_x", "d_y"]) == {"b_copy": "a_piece", "c_x": "d_y"}
    assert stand_ins(same, ["b_copy", "c_x"]) == {}


def test_pooled_clips_says_why_each_left_out_clip_is_pooled_as_another() -> None:
    """A byte copy: same bytes; an export (linked): same footage; a piece, and what is the same footage as the
    piece: piece; the kept clip and a clip of its own: no reason."""
    from handclust_assets.lib.same_video import pooled_table

    clips = pl.DataFrame({"clip": ["a", "b_copy", "c_export", "d_piece", "e_piece_export", "f_alone"],
                          "content_hash": ["h", "h", "x", "p", "q", "z"], "source_path": [None] * 6})
    df = pooled_table(clips, links={"c_export": ["a"], "e_piece_export": ["d_piece"]}, pieces={"d_piece": ["a"]})
    assert df.columns[-1] == "why" and df.schema["why"] == pl.Utf8
    assert df.select("clip", "pooled_as", "why").rows() == [
        ("a", "a", None), ("b_copy", "a", "same bytes"), ("c_export", "a", "same footage"),
        ("d_piece", "a", "piece"), ("e_piece_export", "a", "piece"), ("f_alone", "f_alone", None)]


def test_pieces_are_read_either_way_round_from_the_footage_rows() -> None:
    from handclust_assets.lib.same_video import pieces_from

    assert pieces_from([("a", "b, c", None), ("b", None, "a, d"), ("e", None, None), ("f", "none", "")]) == {
        "a": ["b", "c"], "d": ["b"]}


def test_a_renamed_or_copied_video_is_pooled_once(storage: Path) -> None:
    vids = storage / "videos"
    write_video(vids / "01_production_a.mp4", moving_pattern(20, 160, 96), 10)
    write_video(vids / "02_prep_b.mp4", moving_pattern(20, 160, 96, seed=5), 10)
    shutil.copy2(vids / "01_production_a.mp4", vids / "03_copy_of_a.mp4")
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", list(scan_videos(vids)))
    runs = {k: materialize(["clips"], make_resources(storage), inst, partition_key=k) for k in scan_videos(vids)}
    said = runs["03_copy_of_a"].asset_materializations_for_node("clips")[0].metadata["same_video_as"].value
    assert said == "01_production_a"
    assert runs["02_prep_b"].asset_materializations_for_node("clips")[0].metadata["same_video_as"].value == "none"

    pooled, said = _pooled(storage, inst, 3)
    assert pooled == ["01_production_a", "02_prep_b"]  # the copy left out: both are there, the first key kept
    assert "clips: left out 1 clip partition(s) holding the same video" in said
    assert "03_copy_of_a (= 01_production_a)" in said

    (vids / "01_production_a.mp4").rename(vids / "04_renamed_a.mp4")  # the original renamed: its old partition
    inst.add_dynamic_partitions("clips", ["04_renamed_a"])  # keeps its results, but its file is gone
    materialize(["clips"], make_resources(storage), inst, partition_key="04_renamed_a")
    pooled, said = _pooled(storage, inst, 4)
    assert pooled == ["02_prep_b", "03_copy_of_a"]  # of the three, the first whose file is still there
    assert "01_production_a (= 03_copy_of_a)" in said and "04_renamed_a (= 03_copy_of_a)" in said

    # what a notebook joins on: every partition, whether it is pooled, and as which clip (read back with DuckDB)
    assert materialize(["pooled_clips"], make_resources(storage), inst).success
    rows = duckdb.connect().execute(f"select clip, pooled, pooled_as, source_exists from "
                                    f"'{storage}/tables/pooled_clips/*.parquet' order by clip").fetchall()
    assert rows == [("01_production_a", False, "03_copy_of_a", False), ("02_prep_b", True, "02_prep_b", True),
                    ("03_copy_of_a", True, "03_copy_of_a", True), ("04_renamed_a", False, "03_copy_of_a", True)]
    import handclust_assets as hc

    with hc.connect(storage) as con:  # schema `pooled`: each video once
        assert sorted(r[0] for r in con.sql("select clip from pooled.clips").fetchall()) == ["02_prep_b",
                                                                                             "03_copy_of_a"]


def test_a_few_columns_are_read_across_partitions_of_older_and_newer_schemas(tmp_path: Path) -> None:
    from handclust_assets.lib.tables import read_columns, write_table

    write_table(pl.DataFrame({"clip": ["a"], "content_hash": ["h"], "source_path": ["/a"]}), tmp_path, "clips", "a")
    write_table(pl.DataFrame({"clip": ["b"], "source_path": ["/b"], "pixel_aspect": [1.5], "content_hash": ["h"]}),
                tmp_path, "clips", "b")
    write_table(pl.DataFrame({"clip": ["c"], "source_path": ["/c"]}), tmp_path, "clips", "c")  # no hash column
    schema = {"clip": pl.Utf8, "content_hash": pl.Utf8, "pixel_aspect": pl.Float64}
    got = read_columns(tmp_path, "clips", schema).sort("clip")
    assert got.columns == list(schema)
    assert got.rows() == [("a", "h", None), ("b", "h", 1.5), ("c", None, None)]
    assert read_columns(tmp_path, "clips", schema, ["b", "gone"]).rows() == [("b", "h", 1.5)]
    assert read_columns(tmp_path, "nothing_yet", schema).columns == list(schema)


def test_the_cross_clip_coverage_names_a_twin_apart_from_a_clip_without_segments() -> None:
    from handclust_assets.defs.clusters.assets import clip_coverage

    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", ["a", "b", "broken", "copy_of_a"])
    segments = pl.DataFrame({"clip": ["a", "a", "b"], "segment_idx": [0, 1, 0]})
    meta = clip_coverage(dg.build_asset_context(instance=inst), segments, {"copy_of_a": "a"})
    assert meta["clips_used"].value == 2
    assert (meta["clips_left_out"].value, meta["left_out"].value) == (1, "broken")
    assert (meta["clips_same_video"].value, meta["same_video"].value) == (1, "copy_of_a (= a)")


def test_forget_deletes_named_and_renamed_partitions_and_refuses_an_unknown_one(storage: Path,
                                                                               monkeypatch) -> None:
    """`handclust forget`: a named clip's tables, frame cache and partition go; `--renamed` forgets the partitions
    whose file is gone and whose video is pooled as another (the leftovers of a rename), never a copy whose file
    is still there; a name that is no partition deletes nothing and says so."""
    from typer.testing import CliRunner

    from handclust_assets.cli.app import app
    from handclust_assets.lib.home import ensure_dagster_home
    from handclust_assets.lib.tables import table_partitions

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    ensure_dagster_home()
    inst = dg.DagsterInstance.get()
    vids = storage / "videos"
    write_video(vids / "a.mp4", moving_pattern(20, 160, 96), 10)
    write_video(vids / "b.mp4", moving_pattern(20, 160, 96, seed=5), 10)
    shutil.copy2(vids / "a.mp4", vids / "a_copy.mp4")
    inst.add_dynamic_partitions("clips", list(scan_videos(vids)))
    for k in scan_videos(vids):
        assert materialize(["clips", "frame_cache"], make_resources(storage), inst, partition_key=k).success
    (vids / "a.mp4").rename(vids / "a_renamed.mp4")
    inst.add_dynamic_partitions("clips", ["a_renamed"])
    assert materialize(["clips"], make_resources(storage), inst, partition_key="a_renamed").success

    r = CliRunner().invoke(app, ["forget", "nope", "--home", str(storage)])
    assert r.exit_code == 2 and "no clip partition named 'nope'" in r.output
    assert table_partitions(storage, "clips") == ["a", "a_copy", "a_renamed", "b"]  # nothing deleted

    r = CliRunner().invoke(app, ["forget", "--renamed", "--home", str(storage)])
    assert r.exit_code == 0, r.output
    assert "1 partition(s) hold a video now pooled as another, their file gone: a (= a_copy)" in r.output
    assert table_partitions(storage, "clips") == ["a_copy", "a_renamed", "b"]  # the copy stays: its file is there
    assert not (storage / "frames" / "a").exists() and (storage / "frames" / "a_copy").exists()
    assert "a" not in inst.get_dynamic_partitions("clips")

    r = CliRunner().invoke(app, ["forget", "b", "--home", str(storage)])
    assert r.exit_code == 0 and "forgot b:" in r.output
    assert table_partitions(storage, "frame_cache") == ["a_copy"] and "b" not in inst.get_dynamic_partitions("clips")


def test_the_pooled_schema_shows_each_video_once_in_the_catalog_and_an_open_connection(tmp_path: Path) -> None:
    """`pooled.<table>`: the rows of clips left out as the same video as another are not there; before
    `pooled_clips` exists, and in a table without a `clip` column, every row is. An open connection follows the
    tables as they appear; the catalog file (`handclust.duckdb`) is rebuilt with them (read with DuckDB)."""
    import handclust_assets as hc
    from handclust_assets.lib.tables import write_table

    for clip, n in (("a", 2), ("b", 2), ("c", 1)):  # b holds the same video as a
        write_table(pl.DataFrame({"clip": [clip] * n, "segment_idx": list(range(n))}), tmp_path, "segments", clip)
    write_table(pl.DataFrame({"modality": ["fusion"], "score": [0.5]}), tmp_path, "quality_matrix")
    with hc.connect(tmp_path) as con:
        assert con.sql("select count(*) from pooled.segments").fetchall() == [(5,)]  # nothing pooled yet
        write_table(pl.DataFrame({"clip": ["a", "b", "c"], "pooled": [True, False, True],
                                  "pooled_as": ["a", "a", "c"]}), tmp_path, "pooled_clips")
        for db in (con, duckdb.connect(str(tmp_path / "handclust.duckdb"), read_only=True)):
            got = db.sql("select clip, count(*) from pooled.segments group by clip order by clip").fetchall()
            assert got == [("a", 2), ("c", 1)]
            assert db.sql("select count(*) from main.segments").fetchall() == [(5,)]  # every partition kept
            assert db.sql("select count(*) from pooled.pooled_clips").fetchall() == [(3,)]
            assert db.sql("select * from pooled.quality_matrix").fetchall() == [("fusion", 0.5)]


def test_a_reencoded_copy_is_pooled_once_and_another_video_is_not(storage: Path) -> None:
    """Other bytes, the same footage (`footage_signature`): a resized, brighter, coarser export of a clip is left
    out of the cross-clip inputs as the clip; a clip of the same length and texture moving otherwise is not."""
    import cv2
    import numpy as np

    vids = storage / "videos"
    frames = list(moving_pattern(60, 160, 96, seed=1))
    write_video(vids / "a_original.mp4", frames, 10)
    write_video(vids / "b_export.mp4", [np.clip(cv2.resize(f, (240, 144)).astype(int) + 12, 0, 255).astype(np.uint8)
                                        for f in frames], 10, crf=33)
    write_video(vids / "c_other.mp4", moving_pattern(60, 160, 96, seed=1, speed=-2.0), 10)
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("clips", list(scan_videos(vids)))
    runs = {k: materialize(["clips", "frame_cache", "footage_signature"], make_resources(storage), inst,
                           partition_key=k) for k in sorted(scan_videos(vids))}
    said = {k: r.asset_materializations_for_node("footage_signature")[0].metadata for k, r in runs.items()}
    assert said["b_export"]["same_footage_as"].value == "a_original"
    assert said["c_other"]["same_footage_as"].value == "none" and said["c_other"]["compared"].value == 2
    assert said["b_export"]["best_match"].value >= 0.8 > said["c_other"]["best_match"].value

    pooled, logged = _pooled(storage, inst, 3)
    assert pooled == ["a_original", "c_other"] and "b_export (= a_original)" in logged
    assert materialize(["pooled_clips"], make_resources(storage), inst).success
    rows = duckdb.connect().execute(f"select clip, pooled, pooled_as from '{storage}/tables/pooled_clips/*.parquet' "
                                    "order by clip").fetchall()
    assert rows == [("a_original", True, "a_original"), ("b_export", False, "a_original"),
                    ("c_other", True, "c_other")]
    why = duckdb.connect().execute(f"select clip, why from '{storage}/tables/pooled_clips/*.parquet' order by clip")
    assert why.fetchall() == [("a_original", None), ("b_export", "same footage"), ("c_other", None)]


def test_a_piece_cut_out_of_a_clip_is_pooled_as_the_clip(storage: Path) -> None:
    """Real clip runs: a piece copied out of a clip's stream (`ffmpeg -c copy`) lands first, the clip after it; the
    clip's `footage_signature` finds the piece inside it, and the cross-clip inputs and `pooled_clips` (read with
    DuckDB) pool the clip in the piece's place. Another clip of that length is nobody's piece."""
    from handclust_assets_tests.support import cut_without_encoding

    vids = storage / "videos"
    write_video(storage / "whole.mp4", moving_pattern(100, 160, 96, seed=1), 10, keyint=10)
    cut_without_encoding(storage / "whole.mp4", vids / "a_piece.mp4", 3.0, 7.0)
    write_video(vids / "c_other.mp4", moving_pattern(40, 160, 96, seed=4), 10, keyint=10)
    inst = dg.DagsterInstance.ephemeral()
    run = {}
    for name in ("a_piece", "c_other", "b_whole"):  # the clip lands last: it names its piece
        if name == "b_whole":
            shutil.copy2(storage / "whole.mp4", vids / "b_whole.mp4")
        inst.add_dynamic_partitions("clips", [name])
        run[name] = materialize(["clips", "frame_cache", "footage_signature"], make_resources(storage), inst,
                                partition_key=name)
    said = {k: r.asset_materializations_for_node("footage_signature")[0].metadata for k, r in run.items()}
    assert said["b_whole"]["holds"].value == "a_piece" and said["b_whole"]["within"].value == "none"
    assert said["a_piece"]["keyframes"].value == 5 and said["b_whole"]["keyframes"].value == 10
    assert said["c_other"]["holds"].value == "none" and said["c_other"]["within"].value == "none"

    pooled, logged = _pooled(storage, inst, 3)
    assert pooled == ["b_whole", "c_other"] and "a_piece (= b_whole)" in logged
    assert materialize(["pooled_clips"], make_resources(storage), inst).success
    rows = duckdb.connect().execute(f"select clip, pooled, pooled_as from '{storage}/tables/pooled_clips/*.parquet' "
                                    "order by clip").fetchall()
    assert rows == [("a_piece", False, "b_whole"), ("b_whole", True, "b_whole"), ("c_other", True, "c_other")]
    why = duckdb.connect().execute(f"select why from '{storage}/tables/pooled_clips/*.parquet' where not pooled")
    assert why.fetchall() == [("piece",)]

    # the clip's run failed before `frame_cache` wrote its row: the piece is not left out of that table for it
    from handclust_assets.lib.tables import read_table

    clips_asset = next(a for a in defs.assets if "clips" in {k.to_user_string() for k in a.keys})
    cache_asset = next(a for a in defs.assets if "frame_cache" in {k.to_user_string() for k in a.keys})
    (storage / "tables" / "frame_cache" / "b_whole.parquet").unlink()
    r = dg.materialize([clips_asset, cache_asset, pooled_caches], selection=[pooled_caches], instance=inst,
                       resources=make_resources(storage))
    assert sorted(set(read_table(storage, "pooled_caches")["clip"].to_list())) == ["a_piece", "c_other"]
    assert any("without results: b_whole" in e.user_message for e in inst.all_logs(r.run_id))
