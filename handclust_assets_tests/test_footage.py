"""The same footage under other bytes (`science.footage`): signatures from real decoded motion tracks, and
property-based checks on what real footage gives (constant, tiny, NaN-laden tracks)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
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

    def slow_compare(*args):
        out = compare_with_others(*args)  # what was there when it looked ...
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

    from handclust_assets.lib.same_video import duplicate_clips, footage_links

    (a, la), (b, lb) = sorted(found.items())
    assert (b in la or a in lb) and set(la) <= {b} and set(lb) <= {a}, found
    clips = pl.DataFrame({"clip": [a, b], "content_hash": ["h1", "h2"], "source_path": [None, None]})
    assert duplicate_clips(clips, lambda _: True, footage_links(store, [a, b])) == {b: a}


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
    from handclust_assets.lib.storage import Storage
    from handclust_assets_tests.scale_support import S3_ENV, moto_server

    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    with moto_server(tmp_path) as endpoint:
        opts = {"client_kwargs": {"endpoint_url": endpoint}}
        stores = {c: Storage("s3://lab/handclust", storage_options=opts, scratch=tmp_path / f"machine_{c}")
                  for c in ("x", "y")}
        found = _record_at_once(stores)
        _joined(found, stores["x"])
