"""Repetition counting wired into the graph: `period_track` / `period_curve` in a clip's run, `repetition_counts`
per activity span across clips (read back with DuckDB), and `handclust eval-repetitions` on a labelled folder."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from handclust_assets.cli.app import app
from handclust_assets.cli.eval_repetitions import RHYTHM_PATH, clip_keys, one_line, read_clip_counts
from handclust_assets.defs.counting.assets import activity_spans, counts_for_clips
from handclust_assets.defs.resources import HandclustSettings, trimmed_settings
from handclust_assets.lib import tables
from handclust_assets.lib.rep_eval import read_labels, score_counts
from handclust_assets.lib.synthetic_reps import RepClipSpec, generate_rep_clip
from handclust_assets.lib.video_folder import scan_videos
from handclust_assets.science.counting import (
    PERIOD_CURVE_SCHEMA,
    SPAN_COUNT_SCHEMA,
    TRACK_SCHEMA,
    CountingParams,
    PeriodTrack,
    count_spans,
    track_frame,
    track_from_frame,
)
from handclust_assets.video.writer import moving_pattern, write_video
from handclust_assets_tests.support import materialize

# 10 strokes of 0.8 s after a still second, then 2 s still: 11 s
STROKES = RepClipSpec("strokes", "stroke", n_cycles=10, period_start_s=0.8, period_end_s=0.8, lead_in_s=1.0,
                      tail_s=2.0, width=320, height=180, fps=30.0, seed=5)


def test_activity_spans_merge_consecutive_segments() -> None:
    tl = pl.DataFrame({"clip": ["a"] * 5 + ["b"], "start_s": [0.0, 2.0, 4.0, 6.0, 8.0, 0.0],
                       "end_s": [2.0, 4.0, 6.0, 8.0, 10.0, 3.0], "activity": [1, 1, 2, 1, 1, 7]})
    spans = activity_spans(tl, "a")
    assert spans.rows() == [(0.0, 4.0, 1), (4.0, 6.0, 2), (6.0, 10.0, 1)]
    assert activity_spans(tl, "zzz") is None and activity_spans(None, "a") is None


def test_clip_run_and_cross_clip_counts(storage: Path, resources, instance: dg.DagsterInstance) -> None:
    path, truth = generate_rep_clip(STROKES, storage / "videos")
    res = resources()
    instance.add_dynamic_partitions("clips", ["strokes"])
    assert materialize(RHYTHM_PATH, res, instance, partition_key="strokes").success
    # an activity timeline as the cross-clip graph would leave it: the strokes, then the still tail
    tables.write_table(pl.DataFrame({"clip": ["strokes"] * 3, "segment_idx": [0, 1, 2], "start_s": [0.0, 4.0, 9.0],
                                     "end_s": [4.0, 9.0, truth.duration_s], "cluster": [3, 3, 5],
                                     "activity": [3, 3, 5], "distance": [0.0] * 3, "label": ["a", "a", "b"],
                                     "source": ["clustered"] * 3}), storage, "activity_timeline")
    assert materialize(["repetition_counts"], res, instance).success

    con = duckdb.connect()
    tpath = tables.table_file(storage, "period_track", "strokes")
    track_cols = con.sql(f"select * from read_parquet('{tpath}') limit 1").pl().columns
    assert track_cols == ["clip", *TRACK_SCHEMA]
    curve = con.sql(f"select * from read_parquet('{tables.table_file(storage, 'period_curve', 'strokes')}')").pl()
    assert curve.columns == ["clip", *PERIOD_CURVE_SCHEMA]
    cons = curve.filter((pl.col("signal") == "consensus") & (pl.col("t_s") > 3) & (pl.col("t_s") < 8))
    assert np.nanmedian(cons["period_s"].to_numpy()) == pytest.approx(0.8, rel=0.1)

    counts = con.sql(f"select * from read_parquet('{tables.table_file(storage, 'repetition_counts')}') "
                         "order by span_idx").pl()
    assert counts.columns == ["clip", *SPAN_COUNT_SCHEMA]
    clip = counts.filter(pl.col("scope") == "clip").row(0, named=True)
    assert clip["status"] != "aperiodic"
    assert clip["count_estimate"] == pytest.approx(truth.count, abs=1.0)
    spans = counts.filter(pl.col("scope") == "span")
    assert spans["activity"].to_list() == [3, 5]  # segments 0 and 1 are one span of activity 3
    assert spans["start_s"].to_list() == [0.0, 9.0]
    assert spans["count_estimate"][0] == pytest.approx(truth.count, abs=1.0)
    assert spans["status"][1] != "counted"  # 2 s of stillness
    # a notebook finds the declined rows with IS NULL (a NaN would slip past it)
    declined = con.sql(f"select count(*) from read_parquet('{tables.table_file(storage, 'repetition_counts')}') "
                       "where status <> 'counted' and count is null").fetchall()[0][0]
    assert declined == counts.filter(pl.col("status") != "counted").height >= 1
    assert not counts["count"].is_nan().any()

    # the `trimmed_clips` setting ($HANDCLUST_TRIMMED_CLIPS=1): the same stored tracks counted to the edges,
    # the table replaced (not appended to)
    def recount(**setting: object) -> tuple[pl.DataFrame, int]:
        settings = HandclustSettings(video_folder=str(storage / "videos"), **setting)
        result = materialize(["repetition_counts"], resources(settings=settings), instance)
        assert result.success
        meta = result.asset_materializations_for_node("repetition_counts")[0].metadata
        return (con.sql(f"select * from read_parquet('{tables.table_file(storage, 'repetition_counts')}') "
                        "order by span_idx").pl(), meta["clips_counted_to_edges"].value)

    # a pattern that names other clips leaves this one as it was found
    other, n_other = recount(trimmed_clip_patterns=["bench/*"])
    assert n_other == 0 and other.equals(counts)
    whole, n_whole = recount(trimmed_clips=True)
    assert n_whole == 1
    # a pattern over the clip's path in the watched folder ('STROKES.mp4' is the partition key 'strokes')
    by_name, n_by_name = recount(trimmed_clip_patterns=["other/*", "STROKES.mp4"])
    assert n_by_name == 1 and by_name.equals(whole)
    assert whole.height == counts.height and whole["status"].to_list() == counts["status"].to_list()
    track = track_from_frame(con.sql(f"select * from read_parquet('{tpath}')").pl())
    expect = count_spans(track, params=CountingParams(count_to_edges=True)).row(0, named=True)
    assert whole.row(0, named=True)["count_estimate"] == pytest.approx(expect["count_estimate"])
    assert whole["count_estimate"][0] >= clip["count_estimate"] - 1e-9
    assert whole["count_estimate"][0] == pytest.approx(truth.count, abs=1.0)  # the still tail is a pause either way


def test_trimmed_clip_patterns_pick_clips_by_their_path_in_the_watched_folder(tmp_path: Path) -> None:
    # the partition keys a real scan of the watched folder gives, picked by $HANDCLUST_TRIMMED_CLIPS globs written
    # over the files' paths
    for rel in ["bench/QUVA 01.mp4", "bench/sub/b.MOV", "ego/day1.mp4", "bench.mp4", "ego/day2.mkv"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    keys = sorted(scan_videos(tmp_path))

    def picked(value: str) -> list[str]:
        return [k for k in keys if trimmed_settings(value).is_trimmed(k)]

    assert picked("bench/*") == ["bench__quva_01", "bench__sub__b"]
    assert picked(" ego/day1.mp4 , bench.mp4") == ["bench", "ego__day1"]
    assert picked("ego/*.mp4") == ["ego__day1", "ego__day2"]  # a clip is named by its path without the extension
    assert picked("Bench/QUVA 01.mp4") == ["bench__quva_01"]
    assert picked("1") == picked("true") == picked("yes") == keys
    assert picked("") == picked("0") == picked("false") == picked(" , ") == []

    # counts_for_clips counts the picked clips to their edges and the others where the repetition was found: a track
    # of 1-s turns found from 3 s on in a 20-s clip, stored for two clips
    t = (np.arange(200) + 0.5) * 0.1
    period = np.where(t > 3, 1.0, np.nan)
    track = PeriodTrack(t, 0.1, period, np.where(t > 3, 0.5, 0.0), {}, {}, {}, np.ones(200), [],
                        still=np.zeros(200, bool), duration_s=20.0)
    frames = pl.concat([track_frame(track).with_columns(pl.lit(c).alias("clip")) for c in ("bench__a", "ego__b")])
    counts = counts_for_clips(frames, None, trimmed_settings("bench/*").is_trimmed)
    est = dict(counts.filter(pl.col("scope") == "clip").select("clip", "count_estimate").iter_rows())
    assert est["bench__a"] == pytest.approx(20.0, abs=0.2) and est["ego__b"] == pytest.approx(17.0, abs=0.2)
    assert counts_for_clips(frames, None, True)["count_estimate"].to_list() == [est["bench__a"]] * 2


def _printed(out: str, name: str) -> float:
    return float(re.search(rf"\b{name} ([0-9.]+|nan)", out).group(1))


def test_eval_repetitions_cli(tmp_path: Path) -> None:
    videos = tmp_path / "labelled"
    a, ta = generate_rep_clip(RepClipSpec("saw", "saw", n_cycles=8, period_start_s=0.6, period_end_s=0.7,
                                          width=256, height=144, seed=1), videos)
    b, tb = generate_rep_clip(RepClipSpec("bounce", "bounce", n_cycles=5, period_start_s=1.0, period_end_s=1.1,
                                          width=256, height=144, seed=2), videos)
    (videos / "sub dir").mkdir()
    b = b.rename(videos / "sub dir" / "Bounce Clip.MP4")  # a subfolder, a space, an upper-case extension
    labels = tmp_path / "LABELS.csv"
    # as a spreadsheet in many locales saves it: byte-order mark, ';' separators, CRLF, capitalised header; the
    # second label names its video without the extension
    labels.write_bytes(f"\ufeffFile;Count\r\n{a.name};{ta.count}\r\nsub dir/Bounce Clip;{tb.count + 2}\r\n"
                       .encode())  # one label off by 2
    out_csv, home = tmp_path / "scores.csv", tmp_path / "home"
    r = CliRunner().invoke(app, ["eval-repetitions", str(videos), str(labels), "--out", str(out_csv),
                                 "--keep", str(home)])
    assert r.exit_code == 0, r.output
    table = pl.read_csv(out_csv)
    assert table["file"].to_list() == [a.name, "sub dir/Bounce Clip"]
    assert table["status"].null_count() == 0 and not any(s.startswith("failed") for s in table["status"])
    results = table.select("file", "count", "count_estimate", "status").with_columns(
        pl.col("count").cast(pl.Float64), pl.col("count_estimate").cast(pl.Float64))
    _, summary = score_counts(read_labels(labels), results)
    assert _printed(r.output, "MAE") == pytest.approx(summary["mae"], abs=5e-4)
    assert _printed(r.output, "OBO") == pytest.approx(summary["obo"], abs=5e-4)
    ci = re.search(r"95% bootstrap interval over clips: MAE ([0-9.]+)-([0-9.]+)  OBO ([0-9.]+)-([0-9.]+)", r.output)
    assert ci, r.output
    assert [float(x) for x in ci.groups()] == pytest.approx([*summary["mae_ci"], *summary["obo_ci"]], abs=5e-4)
    assert float(ci[1]) <= summary["mae"] <= float(ci[2]) and float(ci[3]) <= summary["obo"] <= float(ci[4])
    assert abs(table["pred"][0] - ta.count) <= 1  # the graph counted the saw
    # counted as trimmed clips by default; the other way (only where the repetition was found) in one line, scored
    # from the same stored tracks as read back with DuckDB
    assert "counted as trimmed clips (the default): each from its first moment to its last" in r.output, r.output
    other = re.search(r"counted only where the repetition was found \(a median (\d+)% of each clip's time; "
                      r"--untrimmed, for clips with footage before or after it\): MAE ([0-9.]+)  OBO ([0-9.]+)",
                      r.output)
    assert other and 50 <= int(other[1]) <= 100, r.output
    keys = clip_keys(videos, table["file"].to_list())[0]
    found = read_clip_counts(home, keys, trimmed=False)
    whole = read_clip_counts(home, keys, trimmed=True)
    assert [whole[f]["count"] for f in keys] == pytest.approx(table["count"].to_list())
    _, found_summary = score_counts(read_labels(labels), pl.DataFrame(
        [{"file": f, **{c: found[f][c] for c in ("count", "count_estimate", "status")}} for f in keys]))
    assert [float(other[2]), float(other[3])] == pytest.approx([found_summary["mae"], found_summary["obo"]],
                                                               abs=5e-4)


def test_eval_repetitions_cli_bad_input(tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    labels = tmp_path / "LABELS.csv"
    labels.write_text("file,count\nmissing.mp4,5\n")
    r = CliRunner().invoke(app, ["eval-repetitions", str(tmp_path / "v"), str(labels)])
    assert r.exit_code == 2 and "not found" in r.output
    labels.write_text("file,count\nmissing.mp4,many\n")
    r = CliRunner().invoke(app, ["eval-repetitions", str(tmp_path / "v"), str(labels)])
    assert r.exit_code == 2 and "not a number" in r.output
    r = CliRunner().invoke(app, ["eval-repetitions", str(tmp_path / "nope"), str(labels)])
    assert r.exit_code == 2 and "not a folder" in r.output


def test_eval_repetitions_says_what_is_wrong_with_each_bad_video_in_one_line(tmp_path: Path) -> None:
    """An empty file, a text file named .mp4 and a file cut short beside a good clip: one line each, naming the
    file and the problem (no Dagster log with stack traces), the same reason in the table, the good clip counted."""
    videos = tmp_path / "labelled"
    a, ta = generate_rep_clip(RepClipSpec("saw", "saw", n_cycles=6, period_start_s=0.6, period_end_s=0.6,
                                          width=160, height=96, seed=3), videos)
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "notes.mp4").write_text("shopping list: mortar, trowel\n")
    good = write_video(tmp_path / "good.mkv", moving_pattern(150, 320, 180), 30.0)  # 5 s
    (videos / "cut.mkv").write_bytes(good.read_bytes()[: int(good.stat().st_size * 0.35)])
    labels = tmp_path / "LABELS.csv"
    labels.write_text(f"file,count\n{a.name},{ta.count}\nempty.mp4,3\nnotes.mp4,4\ncut.mkv,2\n")
    out_csv = tmp_path / "scores.csv"
    r = CliRunner().invoke(app, ["eval-repetitions", str(videos), str(labels), "--out", str(out_csv)])
    assert r.exit_code == 1, r.output  # two clips failed: not a clean pass
    out = r.output
    assert re.search(r"^empty\.mp4: failed: \S*empty\.mp4: file is empty \(0 bytes\)$", out, re.M), out
    assert re.search(r"^notes\.mp4: failed: \S*notes\.mp4: not a readable video container", out, re.M), out
    assert re.search(r"^cut\.mkv: warning: \S*cut\.mkv: decoding ended at .* \(truncated file\?\)$", out, re.M), out
    for noise in ("Stack Trace", "Traceback", "dagster._core", "STEP_FAILURE", "Dependencies for step"):
        assert noise not in out
    table = pl.read_csv(out_csv)
    status = dict(zip(table["file"], table["status"], strict=True))
    assert status["empty.mp4"].startswith("failed: ") and status["empty.mp4"].endswith("empty.mp4: file is empty "
                                                                                       "(0 bytes)")
    assert status["notes.mp4"].startswith("failed: ") and "Failure" not in status["notes.mp4"]
    assert not status["cut.mkv"].startswith("failed") and not status[a.name].startswith("failed")
    assert abs(table.filter(pl.col("file") == a.name)["pred"][0] - ta.count) <= 1


def test_eval_repetitions_shows_the_whole_trace_of_a_bug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure that is no clip error (a bug in the counter) is not cut to one line: its trace is printed."""
    import handclust_assets.science.counting as counting

    def broken(*_args: object, **_kw: object) -> None:
        raise RuntimeError("boom in the counter")

    monkeypatch.setattr(counting, "track_located", broken)
    videos = tmp_path / "labelled"
    a, ta = generate_rep_clip(RepClipSpec("saw", "saw", n_cycles=6, period_start_s=0.6, period_end_s=0.6,
                                          width=160, height=96, seed=3), videos)
    labels = tmp_path / "LABELS.csv"
    labels.write_text(f"file,count\n{a.name},{ta.count}\n")
    r = CliRunner().invoke(app, ["eval-repetitions", str(videos), str(labels)])
    assert r.exit_code == 1, r.output
    assert f"{a.name}: failed: period_track: RuntimeError: boom in the counter" in r.output
    assert "RuntimeError: boom in the counter" in r.output and "in broken" in r.output  # the trace, to its frame


def test_one_line_drops_the_exception_class() -> None:
    assert one_line("dagster._core.definitions.events.Failure: /v/a.mp4: file is empty\nmore") == "/v/a.mp4: file is empty"
    assert one_line("RuntimeError: boom") == "boom"
    assert one_line("/v/a.mp4: decoding ended at 1.2s") == "/v/a.mp4: decoding ended at 1.2s"
    assert one_line("") == ""


def test_labels_find_their_videos_by_path_stem_or_file_name(tmp_path: Path) -> None:
    videos = tmp_path / "v"
    (videos / "train").mkdir(parents=True)
    (videos / "val").mkdir()
    for rel in ("train/001_stir.mp4", "train/Chop.MOV", "val/002_saw.mp4", "val/dup.mp4", "train/dup.mp4",
                "val/003_cut.mkv"):
        (videos / rel).write_bytes(b"")  # the folder scan reads names only
    labels = ["train/001_stir.mp4", "train/001_stir", "002_saw.mp4", "002_saw", "/elsewhere/002_saw.mp4",
              "chop.mov", "CHOP", "dup.mp4", "nothing.mp4", "train\\Chop.MOV", "003_cut.mp4", "003_cut.v2"]
    keys, missing = clip_keys(videos, labels)
    assert keys == {"train/001_stir.mp4": "train__001_stir", "train/001_stir": "train__001_stir",
                    "002_saw.mp4": "val__002_saw", "002_saw": "val__002_saw", "/elsewhere/002_saw.mp4": "val__002_saw",
                    "chop.mov": "train__chop", "CHOP": "train__chop", "train\\Chop.MOV": "train__chop",
                    "003_cut.mp4": "val__003_cut"}  # the video re-encoded into another container
    # two videos of that name: which one is not guessed; ".v2" is no video extension, so not a stem to drop
    assert missing == ["dup.mp4", "nothing.mp4", "003_cut.v2"]


def test_eval_repetitions_scores_a_missing_video_and_keeps_the_rest(tmp_path: Path) -> None:
    videos = tmp_path / "labelled"
    a, ta = generate_rep_clip(RepClipSpec("saw", "saw", n_cycles=6, period_start_s=0.6, period_end_s=0.6,
                                          width=160, height=96, seed=3), videos)
    labels = tmp_path / "LABELS.csv"
    ends = " ".join(map(str, ta.cycle_end_frames))  # with cycle ends, the counted period is checked too
    labels.write_text(f"file,count,cycle_end_frames\ngone.mp4,7,\n{a.name},{ta.count},{ends}\n")
    out_csv = tmp_path / "scores.csv"
    r = CliRunner().invoke(app, ["eval-repetitions", str(videos), str(labels), "--out", str(out_csv)])
    assert r.exit_code == 1, r.output  # something was missing: not a clean pass
    assert "gone.mp4" in r.output and "scored as missing" in r.output
    table = pl.read_csv(out_csv)
    assert table["file"].to_list() == ["gone.mp4", a.name]  # the labels' order
    gone, saw = table.row(0, named=True), table.row(1, named=True)
    assert gone["status"].startswith("missing") and gone["pred"] == 0 and gone["abs_rel_error"] == 1.0
    assert not saw["status"].startswith(("missing", "failed")) and abs(saw["pred"] - ta.count) <= 1
    assert _printed(r.output, "OBO") == pytest.approx(0.5, abs=5e-4)  # the missing clip counts against the score
    assert saw["gt_period_s"] == pytest.approx(0.6, abs=1.5 / ta.fps)  # median cycle-end step / the clip's fps
    assert saw["period_ratio"] == pytest.approx(saw["mean_period_s"] / saw["gt_period_s"])
    assert abs(saw["period_ratio"] - 1) <= 0.1 and gone["gt_period_s"] is None  # no ends, no video: no period
    assert re.search(r"period against the labelled cycle ends \(1 clips\): within 10% 1\.00, ", r.output), r.output


def test_eval_repetitions_counts_clips_whole_by_default_and_where_found_with_untrimmed(tmp_path: Path) -> None:
    videos = tmp_path / "labelled"
    a, ta = generate_rep_clip(RepClipSpec("saw", "saw", n_cycles=6, period_start_s=0.6, period_end_s=0.6,
                                          lead_in_s=1.0, width=160, height=96, seed=4), videos)
    labels = tmp_path / "LABELS.csv"
    labels.write_text(f"file,count\n{a.name},{ta.count}\n")
    home, out_csv = tmp_path / "home", tmp_path / "scores.csv"
    r = CliRunner().invoke(app, ["eval-repetitions", str(videos), str(labels), "--keep", str(home),
                                 "--out", str(out_csv)])
    assert r.exit_code == 0, r.output
    assert "counted as trimmed clips (the default)" in r.output and "(--untrimmed):" not in r.output
    row = pl.read_csv(out_csv).row(0, named=True)
    assert abs(row["pred"] - ta.count) <= 1  # the still lead-in is a pause: not counted, trimmed or not
    # the printed count is the stored track's, counted to the clip's edges: read it back both ways with DuckDB
    keys = clip_keys(videos, [a.name])[0]
    whole, found = read_clip_counts(home, keys, trimmed=True)[a.name], read_clip_counts(home, keys)[a.name]
    assert row["count"] == pytest.approx(whole["count"])
    assert whole["count"] >= found["count"] - 1e-9 and whole["periodic_s"] == found["periodic_s"]
    # --untrimmed: the same clip counted only where the repetition was found; the default way scored in one line
    r2 = CliRunner().invoke(app, ["eval-repetitions", str(videos), str(labels), "--untrimmed", "--out", str(out_csv)])
    assert r2.exit_code == 0, r2.output
    assert re.search(r"counted where the repetition was found \(--untrimmed\): a median \d+% of each clip's time",
                     r2.output), r2.output
    assert pl.read_csv(out_csv)["count"][0] == pytest.approx(found["count"])
    other = re.search(r"counted as trimmed clips, each one whole \(the default, for clips trimmed to the "
                      r"repetition\): MAE ([0-9.]+)  OBO ([0-9.]+)", r2.output)
    assert other and float(other[1]) == pytest.approx(abs(row["pred"] - ta.count) / ta.count, abs=5e-4), r2.output


def test_a_clip_too_short_to_count_says_so(storage: Path, resources, instance: dg.DagsterInstance) -> None:
    """Five frames decode into a frame cache, but no rhythm can be read from them: the clip's period track fails
    naming the source video (not the frame cache), how many frames it has and why, not "an older version"."""
    from handclust_assets.video.writer import moving_pattern, write_video

    write_video(storage / "videos" / "blink.mp4", moving_pattern(5, 64, 48), 30.0)
    instance.add_dynamic_partitions("clips", ["blink"])
    res = materialize(RHYTHM_PATH, resources(), instance, partition_key="blink", raise_on_error=False)
    assert not res.success
    failed = {e.step_key: e.step_failure_data.error.message for e in res.get_step_failure_events()}
    assert list(failed) == ["period_track"], failed  # the frame cache itself was built
    msg = failed["period_track"]
    assert "blink.mp4" in msg and "5 decodable frame(s)" in msg and "too short" in msg and "older version" not in msg
    assert "frames" not in msg.split(":")[0], msg  # the video's path leads, not the cache folder's


def test_eval_repetitions_reads_a_benchmark_annotations_folder(tmp_path: Path) -> None:
    """QUVA Repetition as it ships: videos/ and annotations/<video>.npy of cycle-end frames, scored as they are."""
    import numpy as np

    videos, annotations = tmp_path / "videos", tmp_path / "annotations"
    clip, truth = generate_rep_clip(RepClipSpec("012_saw", "saw", n_cycles=6, period_start_s=0.7, period_end_s=0.8,
                                                width=256, height=144, seed=4), videos)
    annotations.mkdir()
    np.save(annotations / "012_saw.npy", np.array(truth.cycle_end_frames))
    out_csv = tmp_path / "scores.csv"
    r = CliRunner().invoke(app, ["eval-repetitions", str(videos), str(annotations), "--out", str(out_csv)])
    assert r.exit_code == 0, r.output
    row = pl.read_csv(out_csv).row(0, named=True)
    assert (row["file"], row["gt"]) == ("012_saw", truth.count)
    assert row["gt_period_s"] == pytest.approx(0.75, abs=0.06)  # the labelled cycles' median, from the array
    assert abs(row["pred"] - truth.count) <= 1
