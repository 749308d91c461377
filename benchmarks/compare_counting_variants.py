"""Counter variants on the development set: every cached dev clip counted with `CountingParams` overrides.

    python benchmarks/compare_counting_variants.py NAME [--set KEY=VALUE ...] [--against BASE]
                                                   [--only SUBSTR] [--out /tmp/handclust_rep_dev] [--workers 2]

Run `eval_repetitions_dev.py` first (with the subsets you want): it builds the labelled folders under --out and
caches every clip's motion track there. This script then only re-runs the label-free counter on those cached
tracks (the 556-clip dev set in ~7 min on 2 cores, a 120-clip split in ~1.5 min), so a parameter can be tried
without decoding a frame:

    python benchmarks/compare_counting_variants.py base
    python benchmarks/compare_counting_variants.py nocut --set rest_cut_ratio=0 --against base

Each run writes --out/_variants/NAME.parquet (subset, group, file, gt, pred, status, confidence, mean_period_s)
and prints MAE / OBO per group (the dev script's splits, whole-frame / local / still / trimmed / still trimmed /
long / written as a phone writes / a phone's clip re-encoded / filmed by a moving camera, train and held-out
apart); with --against, the other run's MAE / OBO beside them and how many clips came within one of the truth
(won) or fell out (lost). Then MAE / OBO per split and source video of the repeating piece (`source_table`): two
held-out sources score far below the rest for reasons of their own (see `eval_repetitions_dev.py`, "Held-out
sources").
Decide on the train groups; the held-out groups are for reporting. Values are JSON (`--set rest_cut_ratio=0
--set unsway_modes=3`); a key that `CountingParams` does not have is an error.

The trimmed subsets are scored counted whole (`--set count_to_edges=true`, as `handclust eval-repetitions` counts
by default); `CountingParams`' own default counts only where the repetition is found. Each run prints which, and
keeps its overrides beside its table (NAME.json), so an --against run made the other way is named in a warning:
the counts of the two ways differ on most trimmed clips whatever the variant.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields, replace
from pathlib import Path

import polars as pl

from handclust_assets.lib.rep_eval import clip_prediction, count_motion_track, motion_cache_path, read_labels
from handclust_assets.science.counting import CountingParams
from handclust_assets.video.motion_track import load_motion_track

VARIANT_SCHEMA = {"subset": pl.Utf8, "group": pl.Utf8, "file": pl.Utf8, "gt": pl.Float64, "pred": pl.Float64,
                  "status": pl.Utf8, "confidence": pl.Float64, "mean_period_s": pl.Float64}
TRIMMED_GROUPS = [("trimmedcycles-train", "trimmed train"), ("trimmedcycles-heldout", "trimmed held-out"),
                  ("stilltrim-train", "still trimmed train"), ("stilltrim-heldout", "still trimmed held-out")]
# every copy kind of `eval_repetitions_dev.py` (phone, uploaded and its `COPY_FLAGS`; a test holds them equal)
COPY_KINDS = ("phone", "uploaded", "panned", "handheld", "boxed", "overlaid", "rewritten", "filled", "largeboxed",
              "zoomed", "halfrate")
# subset-name prefix -> group (first match wins: the longer prefixes come first)
GROUPS = [*TRIMMED_GROUPS,
          ("stillbg-train", "still train"), ("stillbg-heldout", "still held-out"),
          ("longcycles-train", "long train"), ("longcycles-heldout", "long held-out"),
          ("realcycles-train", "train whole"), ("localcycles-train", "train local"),
          ("realcycles-heldout", "held-out whole"), ("localcycles-heldout", "held-out local"),
          ("synthetic", "train synthetic"),
          ("spritecycles-hard-heldout", "sprites hard held-out"), ("spritecycles-heldout", "sprites held-out"),
          # each copy of the trimmed subsets (`eval_repetitions_dev.py --<kind>-copies`): <kind>-<subset>
          *((f"{kind}-{subset}", f"{kind} {group}") for kind in COPY_KINDS for subset, group in TRIMMED_GROUPS)]


def parse_overrides(items: list[str]) -> dict:
    """["rest_cut_ratio=0", "unsway_modes=3"] -> {"rest_cut_ratio": 0, "unsway_modes": 3}; values are JSON (a
    bare word is taken as a string); a key `CountingParams` does not have raises ValueError naming it."""
    known = {f.name for f in fields(CountingParams)}
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        if key not in known:
            raise ValueError(f"--set {item!r}: CountingParams has no field {key!r}")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def group_of(subset: str) -> str:
    """The dev script's subset name -> its group (`GROUPS`); an unknown name is its own group."""
    return next((g for prefix, g in GROUPS if subset.startswith(prefix)), subset)


def run_overrides(out: Path, name: str) -> dict | None:
    """The `CountingParams` overrides an earlier run was made with (its NAME.json), or None where it kept none (a
    run from before they were kept) or they cannot be read."""
    try:
        return dict(json.loads((out / "_variants" / f"{name}.json").read_text())["overrides"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def dev_clips(out: Path, motion_version: int | None = None) -> tuple[list[tuple[str, Path, float]], int]:
    """(subset, cached motion track, true count) of every labelled clip under `out` whose motion track is cached
    (`rep_eval.motion_cache_path`, as `eval_repetitions_dev.py` caches it; `motion_version`: an earlier track
    version's cache), and how many labelled clips had none."""
    clips, missing = [], 0
    for labels in sorted(out.glob("*/LABELS.csv")):
        for file, count in read_labels(labels).select("file", "count").iter_rows():
            track = motion_cache_path(out, labels.parent / file, motion_version)
            if track.is_file():
                clips.append((labels.parent.name, track, count))
            else:
                missing += 1
    return clips, missing


_PARAMS: CountingParams | None = None


def _init(overrides: dict) -> None:
    global _PARAMS
    _PARAMS = replace(CountingParams(), **overrides)


def count_clip(clip: tuple[str, Path, float]) -> dict:
    """One cached clip counted with the worker's parameters -> a `VARIANT_SCHEMA` row."""
    subset, track, gt = clip
    rc = count_motion_track(load_motion_track(track), params=_PARAMS)
    row = rc.counts.filter(pl.col("scope") == "clip").row(0, named=True)
    return {"subset": subset, "group": group_of(subset), "file": track.stem.split("__", 1)[-1], "gt": gt,
            "pred": clip_prediction(row["count"], row["count_estimate"], row["status"]), "status": row["status"],
            "confidence": row["confidence"], "mean_period_s": row["mean_period_s"]}


def count_variant(clips: list[tuple[str, Path, float]], overrides: dict, workers: int = 2) -> pl.DataFrame:
    """Every clip counted with `CountingParams` + `overrides` (`workers` processes; 1: in this process)."""
    if workers <= 1:
        _init(overrides)
        rows = [count_clip(c) for c in clips]
    else:
        # spawn, not fork: a child forked after this process has used polars' thread pool can deadlock in it
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(overrides,)) as pool:
            rows = list(pool.map(count_clip, clips, chunksize=4))
    return pl.DataFrame(rows, schema=VARIANT_SCHEMA)


def _scored(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("gt") > 0).with_columns(
        ((pl.col("pred") - pl.col("gt")).abs() / pl.col("gt")).alias("ae"),
        ((pl.col("pred") - pl.col("gt")).abs() <= 1).alias("obo"))


def group_table(df: pl.DataFrame, base: pl.DataFrame | None = None) -> pl.DataFrame:
    """MAE / OBO per group (clips with a true count > 0); with `base` (an earlier run), its MAE / OBO on the same
    clips and the clips won (within one of the truth now, not before) and lost."""
    cur = _scored(df)
    tab = cur.group_by("group").agg(pl.len().alias("clips"), pl.col("ae").mean().alias("mae"),
                                    pl.col("obo").mean().alias("obo"))
    if base is not None:
        both = cur.join(_scored(base), on=["subset", "file"], suffix="_base")
        tab = tab.join(both.group_by("group").agg(
            pl.col("ae_base").mean().alias("mae_base"), pl.col("obo_base").mean().alias("obo_base"),
            (pl.col("obo") & ~pl.col("obo_base")).sum().alias("won"),
            (~pl.col("obo") & pl.col("obo_base")).sum().alias("lost")), on="group", how="left")
    return tab.sort("group")


def source_of(file: str) -> str:
    """A dev clip's name -> the source video of its repeating piece (`rc03_vtest` -> `vtest`,
    `lc00_05_default_juggle` -> `05_default_juggle`); a drawn clip (`syn06_jump`) -> `synthetic`."""
    head, sep, rest = file.partition("_")
    if head.startswith("syn"):
        return "synthetic"
    return rest if sep and head[:2].isalpha() and head[2:].isdigit() else file


def source_table(df: pl.DataFrame) -> pl.DataFrame:
    """MAE / OBO per split (train / held-out, from the group's name) and source video of the repeating piece
    (`source_of`): a held-out score that one source pulls down shows here, where the groups mix the sources."""
    cur = _scored(df).with_columns(
        pl.when(pl.col("group").str.contains("train")).then(pl.lit("train")).otherwise(pl.lit("held-out"))
        .alias("split"),
        pl.col("file").map_elements(source_of, return_dtype=pl.Utf8).alias("source"))
    return (cur.group_by("split", "source").agg(pl.len().alias("clips"), pl.col("ae").mean().alias("mae"),
                                               pl.col("obo").mean().alias("obo"))
            .sort("split", "source", descending=[True, False]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="this run's name (--out/_variants/NAME.parquet)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a CountingParams override")
    ap.add_argument("--against", help="an earlier run's name to compare with")
    ap.add_argument("--only", default="", help="only the subsets whose name contains this")
    ap.add_argument("--motion-version", type=int, default=None, help="count an earlier motion-track version's "
                    "cached tracks (default: the current version's)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/handclust_rep_dev"))
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    a = ap.parse_args()
    try:
        overrides = parse_overrides(a.set)
    except ValueError as e:
        ap.error(str(e))
    whole = bool(replace(CountingParams(), **overrides).count_to_edges)
    print("counting each clip whole, first moment to last (count_to_edges)" if whole else
          "counting only where the repetition is found (--set count_to_edges=true counts each clip whole, as the "
          "trimmed subsets are scored)")
    base = None
    if a.against:
        path = a.out / "_variants" / f"{a.against}.parquet"
        if not path.is_file():
            ap.error(f"--against {a.against}: {path} not found (run that variant first)")
        base = pl.read_parquet(path)
        other = run_overrides(a.out, a.against)
        if other is not None and bool(replace(CountingParams(), **other).count_to_edges) != whole:
            print(f"WARNING: --against {a.against} was counted {'only where found' if whole else 'whole'} "
                  f"(count_to_edges={not whole}), this run {'whole' if whole else 'only where found'}: their counts "
                  "differ by that, not only by the variant")
    clips, missing = dev_clips(a.out, a.motion_version)
    clips = [c for c in clips if a.only in c[0]]
    if not clips:
        ap.error(f"no cached dev clips under {a.out}: run benchmarks/eval_repetitions_dev.py --out {a.out} first")
    print(f"{len(clips)} clips ({missing} labelled clips without a cached motion track left out), "
          f"overrides {overrides or 'none'}", flush=True)
    t0 = time.perf_counter()
    df = count_variant(clips, overrides, a.workers)
    (a.out / "_variants").mkdir(parents=True, exist_ok=True)
    df.write_parquet(a.out / "_variants" / f"{a.name}.parquet")
    (a.out / "_variants" / f"{a.name}.json").write_text(json.dumps({"overrides": overrides}))
    print(f"counted in {time.perf_counter() - t0:.0f} s -> {a.out / '_variants' / a.name}.parquet")
    with pl.Config(tbl_rows=-1, float_precision=3, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(group_table(df, base))
        print(source_table(df))


if __name__ == "__main__":
    main()
