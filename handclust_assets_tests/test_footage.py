"""The same footage under other bytes (`science.footage`): signatures from real decoded motion tracks, and
property-based checks on what real footage gives (constant, tiny, NaN-laden tracks)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from handclust_assets.science.footage import SAME_FOOTAGE, SIDE, durations_agree, footage_match, signature
from handclust_assets.video.motion_track import motion_track_from_video
from handclust_assets.video.writer import moving_pattern, write_video


def _sig(path: Path):
    tr = motion_track_from_video(path)
    return signature(tr.t_s, tr.intensity), tr.duration_s


def _scene(n: int, seed: int, wobble: int) -> list[np.ndarray]:
    """A drifting texture with a bright patch moving along its own path (`wobble` picks the path)."""
    out = []
    rng = np.random.default_rng(wobble)
    ys = np.clip(np.cumsum(rng.normal(0, 4, n)) + 48, 10, 86).astype(int)
    for i, f in enumerate(moving_pattern(n, 160, 96, seed=seed, speed=2.0)):
        f = f.copy()
        cv2.circle(f, (int(80 + 60 * np.sin(i / (7 + wobble))), int(ys[i])), 12, (255, 255, 255), -1)
        out.append(f)
    return out


def test_a_reencoded_resized_rotated_copy_is_the_same_footage_and_another_recording_is_not(tmp_path: Path) -> None:
    frames = _scene(120, seed=0, wobble=0)
    write_video(tmp_path / "a.mp4", frames, 10)
    bigger = [np.clip(cv2.resize(f, (240, 144)).astype(int) * 1.2 + 10, 0, 255).astype(np.uint8) for f in frames]
    write_video(tmp_path / "b.mp4", bigger, 10, crf=35)  # resized, brighter, coarser: an export of it
    write_video(tmp_path / "c.mp4", [np.ascontiguousarray(np.rot90(f, 2)) for f in frames], 10)  # stored upside down
    write_video(tmp_path / "d.mp4", _scene(120, seed=0, wobble=1), 10)  # the same scene, another take
    write_video(tmp_path / "e.mp4", frames[5:], 10)  # trimmed by half a second
    (a, da), (b, db), (c, dc), (d, dd), (e, de) = (_sig(tmp_path / f"{k}.mp4") for k in "abcde")
    assert durations_agree(da, db) and durations_agree(da, dd) and durations_agree(da, de)
    assert footage_match(a, b) >= SAME_FOOTAGE and footage_match(b, a) >= SAME_FOOTAGE
    assert footage_match(a, c) >= SAME_FOOTAGE
    assert footage_match(a, e) >= SAME_FOOTAGE  # half a second later: within the shift searched
    # the same scene and the same drift (as a camera's programmed path), another actor: its pictures agree, its
    # changes only in part (0.55 here)
    assert footage_match(a, d) < SAME_FOOTAGE - 0.1


@given(arrays(np.float64, st.integers(0, 40), elements=st.floats(allow_nan=True, allow_infinity=True, width=32)),
       st.integers(1, 12), st.integers(1, 12), st.sampled_from(["random", "constant", "zeros"]))
@settings(max_examples=80, deadline=None)
def test_any_track_gives_a_signature_and_any_two_a_bounded_score_or_nan(times: np.ndarray, h: int, w: int,
                                                                      kind: str) -> None:
    rng = np.random.default_rng(len(times))
    shape = (len(times), h, w)
    imgs = {"random": rng.integers(0, 256, shape), "constant": np.full(shape, 128),
            "zeros": np.zeros(shape)}[kind].astype(np.uint8)
    sig = signature(times, imgs)
    assert sig.dtype == np.uint8 and sig.ndim == 2 and sig.shape[1] == SIDE * SIDE
    assert len(sig) <= len(times)  # never more samples than frames, whatever the timestamps
    score = footage_match(sig, sig[::-1])
    assert np.isnan(score) or -1.0 - 1e-9 <= score <= 1.0 + 1e-9
    if kind != "random":
        assert np.isnan(footage_match(sig, sig))  # a picture that never changes cannot be told from another


def test_a_signature_is_its_own_footage_turned_flipped_shifted_and_brighter() -> None:
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 200, (40, SIDE, SIDE)).astype(np.uint8)
    sig = signature(np.arange(80) / 4.0, np.repeat(imgs, 2, axis=0))
    turned = np.stack([np.rot90(s.reshape(SIDE, SIDE))[:, ::-1] for s in sig]).reshape(len(sig), -1)
    brighter = np.clip(turned.astype(int) + 30, 0, 255).astype(np.uint8)
    assert footage_match(sig, brighter[1:]) >= 0.95
    shuffled = sig[rng.permutation(len(sig))]
    assert footage_match(sig, shuffled) < 0.5
    assert np.isnan(footage_match(sig[:5], sig[:5]))  # too short to tell


def _record_at_once(stores: dict) -> dict:
    """`record_footage` of one signature for each clip in `stores` (clip -> its Storage), in threads released
    together, each comparison slow after it listed the rows (0.5 s): both look before either could finish. Returns
    clip -> the partitions it names."""
    import threading
    import time

    from handclust_assets.defs.ingest.footage import compare_with_others, record_footage
    from handclust_assets.lib.same_video import FOOTAGE_TABLE
    from handclust_assets.lib.tables import write_table

    rng = np.random.default_rng(0)
    sig = np.clip(np.cumsum(rng.normal(0, 6, (30, SIDE * SIDE)), axis=0) + 128, 0, 255).astype(np.uint8)

    def slow_compare(*args, **kw):
        out = compare_with_others(*args, **kw)  # what was there when it looked ...
        time.sleep(0.5)  # ... and a slow comparison after it
        return out

    start, found = threading.Barrier(len(stores)), {}

    def run(clip: str) -> None:
        start.wait()
        row, found[clip] = record_footage(stores[clip], clip, 15.0, sig, compare=slow_compare)[:2]
        write_table(row, stores[clip], FOOTAGE_TABLE, clip)  # as the IO manager writes the step's output

    threads = [threading.Thread(target=run, args=(c,)) for c in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return found


def _joined(found: dict, store) -> None:
    """The pair is joined: at least one names the other and none anything else, and what the table holds after
    both runs makes `lib.same_video` pool the two as one (either way round)."""
    import polars as pl

    from handclust_assets.lib.same_video import duplicate_clips, footage_relations

    (a, la), (b, lb) = sorted(found.items())
    assert (b in la or a in lb) and set(la) <= {b} and set(lb) <= {a}, found
    clips = pl.DataFrame({"clip": [a, b], "content_hash": ["h1", "h2"], "source_path": [None, None]})
    assert duplicate_clips(clips, lambda _: True, footage_relations(store, [a, b])[0]) == {b: a}


def test_two_clips_of_one_footage_compared_at_once_still_find_each_other(tmp_path: Path) -> None:
    """Two clip runs reach `footage_signature` together and each compares slowly. Each writes its row before it
    looks, so the one that looks second sees the other's row and names it (real Parquet rows, two threads)."""
    from handclust_assets.lib.storage import Storage

    store = Storage(str(tmp_path))
    _joined(_record_at_once({"x": store, "y": store}), store)


def test_two_machines_sharing_a_bucket_find_each_others_footage(tmp_path: Path, monkeypatch) -> None:
    """The same on an object store (a moto S3 server), each run with a scratch mirror of its own, as on two
    machines: nothing local is shared between them (a lock file in the scratch mirror, the earlier design, held
    neither back, and both compared before either wrote)."""
    from handclust_assets_tests.scale_support import S3_ENV, bucket_store, moto_server

    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    with moto_server(tmp_path) as endpoint:
        stores = {c: bucket_store(endpoint, tmp_path / f"machine_{c}") for c in ("x", "y")}
        found = _record_at_once(stores)
        _joined(found, stores["x"])


def test_a_piece_cut_without_encoding_lies_within_its_clip_and_nothing_else_does(tmp_path: Path) -> None:
    """A piece copied out of a clip's stream (`ffmpeg -c copy`, real packets) has the clip's keyframes to the byte
    of their pictures: found inside it, at its offset. The clip is not inside the piece, a clip of other footage is
    not inside either, and the same piece encoded again (other keyframes, other pixels) is not found."""
    from handclust_assets.science.footage import keyframe_hashes, within
    from handclust_assets.video.writer import reencode
    from handclust_assets_tests.support import cut_without_encoding

    whole = write_video(tmp_path / "whole.mp4", moving_pattern(300, 320, 180, seed=1, speed=2.0), 30, keyint=30)
    piece = cut_without_encoding(whole, tmp_path / "piece.mp4", 3.0, 7.0)
    other = write_video(tmp_path / "other.mp4", moving_pattern(120, 320, 180, seed=2, speed=2.0), 30, keyint=30)
    again = reencode(piece, tmp_path / "again.mp4", crf=18)
    got = {}
    for p in (whole, piece, other, again):
        tr = motion_track_from_video(p)
        got[p.stem] = (*keyframe_hashes(tr.t_s, tr.intensity, tr.keyframes), tr.duration_s)

    def inside(a: str, b: str) -> float | None:
        (at, ah, ad), (bt, bh, bd) = got[a], got[b]
        return within(at, ah, ad, bt, bh, bd)

    assert len(got["whole"][1]) == 10 and len(got["piece"][1]) == 5
    assert inside("piece", "whole") == pytest.approx(3.0, abs=0.02)
    assert inside("whole", "piece") is None
    assert inside("other", "whole") is None and inside("piece", "other") is None
    assert inside("again", "whole") is None


def test_a_still_scene_recorded_twice_is_not_a_piece_of_the_other(tmp_path: Path) -> None:
    """An unchanging scene (a bench before work starts) recorded twice: the sensor's noise differs between the
    recordings, so no keyframe's picture is the same to the byte, and neither is a piece of the other."""
    from handclust_assets.science.footage import keyframe_hashes, within

    still = next(iter(moving_pattern(1, 160, 96, seed=3))).astype(np.float32)
    got = []
    for i, (name, n) in enumerate((("long", 200), ("short", 80))):
        noise = np.random.default_rng(i)
        frames = [np.clip(still + noise.normal(0, 2.0, still.shape), 0, 255).astype(np.uint8) for _ in range(n)]
        tr = motion_track_from_video(write_video(tmp_path / f"{name}.mp4", frames, 20, keyint=10))
        got.append((*keyframe_hashes(tr.t_s, tr.intensity, tr.keyframes), tr.duration_s))
    (lt, lh, ld), (st_, sh, sd) = got
    assert len(sh) >= 3 and set(sh.tolist()).isdisjoint(lh.tolist())
    assert within(st_, sh, sd, lt, lh, ld) is None


@settings(max_examples=150, deadline=None)
@given(n_in=st.integers(0, 8), n_out=st.integers(0, 12), seed=st.integers(0, 10_000), same=st.booleans(),
       inner_s=st.floats(0.0, 30.0), outer_s=st.floats(0.0, 60.0))
def test_within_needs_enough_different_pictures_at_one_offset(n_in: int, n_out: int, seed: int, same: bool,
                                                              inner_s: float, outer_s: float) -> None:
    """Whatever the keyframes: an offset only for a shorter clip with `MIN_KEYFRAMES` different pictures, all found
    in the longer one at that offset, inside it; a piece taken from a longer clip's own keyframes is found."""
    from handclust_assets.science.footage import MIN_KEYFRAMES, durations_agree, within

    rng = np.random.default_rng(seed)
    ot = np.sort(rng.uniform(0, max(outer_s, 1e-3), n_out))
    oh = rng.integers(0, 4 if same else 2**62, n_out)
    pick = np.sort(rng.choice(n_out, size=min(n_in, n_out), replace=False)) if n_out else np.zeros(0, int)
    it, ih = ot[pick] - (ot[pick[0]] if len(pick) else 0.0), oh[pick]
    got = within(it, ih, inner_s, ot, oh, outer_s)
    if got is not None:
        assert len(set(ih.tolist())) >= MIN_KEYFRAMES and inner_s < outer_s and not durations_agree(inner_s, outer_s)
        assert -1e-9 <= got <= outer_s
        at = {}
        for t, h in zip(ot, oh):
            at.setdefault(int(h), []).append(t)
        assert all(any(abs(t - (ti + got)) <= 0.02 for t in at[int(h)]) for ti, h in zip(it, ih))
    elif (len(set(ih.tolist())) >= MIN_KEYFRAMES and len(set(oh.tolist())) == n_out and inner_s < outer_s
          and not durations_agree(inner_s, outer_s) and ot[pick[0]] + inner_s <= outer_s):
        raise AssertionError("a piece of the longer clip's own keyframes was not found")


def test_rows_written_before_the_keyframes_were_kept_are_read_as_having_none(tmp_path: Path) -> None:
    """A home from before `footage_signature` v2: its rows have no keyframe columns. Reading pieces over old and new
    rows together gives none for the old ones (null columns), and a new clip's run still compares with them."""
    import polars as pl

    from handclust_assets.defs.ingest.footage import FOOTAGE_SCHEMA, pieces_of, record_footage
    from handclust_assets.lib.same_video import FOOTAGE_TABLE, footage_relations
    from handclust_assets.lib.storage import Storage
    from handclust_assets.lib.tables import write_table

    store = Storage(str(tmp_path))
    old_cols = [c for c in FOOTAGE_SCHEMA if c not in ("keyframe_s", "keyframe_hashes", "within", "holds")]
    sig = np.full((20, SIDE * SIDE), 100, np.uint8)
    old = pl.DataFrame([{"clip": "old", "duration_s": 30.0, "hz": 2.0, "side": SIDE, "signature": sig.ravel().tolist(),
                         "same_footage_as": None, "best_match": None}], schema={c: FOOTAGE_SCHEMA[c] for c in old_cols})
    write_table(old, store, FOOTAGE_TABLE, "old")
    t, h = np.arange(5.0), np.arange(5, dtype=np.int64) + 7
    row = record_footage(store, "new", 10.0, sig, keyframes=(t, h))[0]
    write_table(row, store, FOOTAGE_TABLE, "new")
    assert footage_relations(store)[1] == {} and pieces_of(store, "other", 4.0, t[:3], h[:3]) == (["new"], [])


def test_an_all_intra_clip_past_the_cap_keeps_no_keyframes_and_one_under_it_keeps_them_all() -> None:
    """Every frame a keyframe (MJPEG, ProRes): up to `MAX_KEYFRAMES` each is kept; past it none (the row every
    other run reads stays small; such a clip's pieces are then not found)."""
    from handclust_assets.science.footage import MAX_KEYFRAMES, keyframe_hashes

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (MAX_KEYFRAMES + 1, 4, 6), dtype=np.uint8)
    t = np.arange(MAX_KEYFRAMES + 1) / 30.0
    every = np.ones(len(t), bool)
    assert len(keyframe_hashes(t, imgs, every)[1]) == 0
    kept_t, kept_h = keyframe_hashes(t[:-1], imgs[:-1], every[:-1])
    assert len(kept_h) == MAX_KEYFRAMES and len(set(kept_h.tolist())) == MAX_KEYFRAMES
    np.testing.assert_array_equal(kept_t, t[:-1])


@pytest.mark.parametrize("how", ["input_seek", "segment"])
def test_pieces_cut_by_ffmpeg_itself_are_found(tmp_path: Path, how: str) -> None:
    """The cuts users make: `ffmpeg -ss A -i whole -t B -c copy` (an edit list hides the frames before A) and the
    segment muxer's chunks (`-f segment -c copy`), by a real ffmpeg binary (imageio-ffmpeg's)."""
    import subprocess

    import imageio_ffmpeg

    from handclust_assets.science.footage import keyframe_hashes, within

    def keys(p: Path) -> tuple:
        tr = motion_track_from_video(p)
        return (*keyframe_hashes(tr.t_s, tr.intensity, tr.keyframes), tr.duration_s)

    whole = write_video(tmp_path / "whole.mp4", moving_pattern(300, 240, 136, seed=2, speed=2.0), 25, keyint=25)
    ff = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error"]
    if how == "input_seek":
        subprocess.run([*ff, "-ss", "3.4", "-i", str(whole), "-t", "5", "-c", "copy", str(tmp_path / "p.mp4")],
                       check=True)
        pieces, where = [tmp_path / "p.mp4"], [3.4]
    else:
        subprocess.run([*ff, "-i", str(whole), "-c", "copy", "-f", "segment", "-segment_time", "4",
                        "-reset_timestamps", "1", str(tmp_path / "s%02d.mp4")], check=True)
        pieces, where = sorted(tmp_path.glob("s*.mp4")), [0.0, 4.0, 8.0]
    w = keys(whole)
    assert [within(*keys(p), *w) for p in pieces] == pytest.approx(where, abs=0.05)
