"""Sprite cycles (`lib.synthetic_reps.sprite_cycle_clip`): real textures moved along the paths real repetitions
take, the dev set's family of motions that never reverse. The generator's truth, its frames, and the counter on a
few of them (real x264 clips, decoded by the real motion track)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from handclust_assets.lib.rep_eval import count_motion_track
from handclust_assets.lib.synthetic_reps import (
    SPRITE_MOTIONS,
    SpriteCycleSpec,
    sprite_cycle_clip,
    sprite_cycle_specs,
)
from handclust_assets.science.counting import CountingParams
from handclust_assets.video.motion_track import motion_track_from_video
from handclust_assets_tests.support import clip_row


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(video=0)]


def _spec(src: Path, motion: str, **kw: object) -> SpriteCycleSpec:
    base = SpriteCycleSpec(name=f"sp_{motion}", motion=motion, n_cycles=4, period_start_s=0.5, period_end_s=0.5,
                           texture=str(src), texture_s=3.0, background=str(src), background_s=6.0, fps=25.0,
                           width=96, height=72, seed=7)
    return replace(base, **kw)


@pytest.mark.parametrize("motion", SPRITE_MOTIONS)
def test_every_sprite_motion_renders_its_cycles_and_their_truth(shared_clips: Path, tmp_path: Path,
                                                                motion: str) -> None:
    spec = _spec(shared_clips / "02_cups.mp4", motion, camera_wander=0.0, noise=0.0, period_jitter=0.0,
                 period_start_s=0.48, period_end_s=0.48)  # 12 frames a cycle
    path, truth = sprite_cycle_clip(spec, tmp_path)
    assert truth.count == 4 and len(truth.cycle_end_s) == 4
    assert np.allclose(np.diff(truth.cycle_end_s), 0.48)
    assert truth.cycle_end_s[-1] == pytest.approx(truth.duration_s, abs=0.05)
    frames = _frames(path)
    assert len(frames) == round(truth.duration_s * spec.fps)
    # the patch moves within a cycle (phase 0 against mid-cycle: a quarter turn for a spin) ...
    n = 12
    within = float(np.mean(np.abs(frames[0] - frames[n // 2 if motion != "spin" else n // 4])))
    # ... and comes back a cycle later (the camera holds still here; the reach varies from cycle to cycle, x264
    # adds its own error)
    again = float(np.mean(np.abs(frames[0] - frames[n])))
    assert within > 1.0, within
    assert again < within, (again, within)
    assert path.with_suffix(".reps.json").is_file()


def test_an_unknown_sprite_motion_is_refused(shared_clips: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown sprite motion 'wave'"):
        sprite_cycle_clip(_spec(shared_clips / "02_cups.mp4", "wave"), tmp_path)


def test_sprite_specs_cover_the_held_out_range_and_keep_repeating_footage_still() -> None:
    sources = [("a.mp4", 10.0), ("juggle.mp4", 10.0), ("c.avi", 80.0)]
    moving = [s for s in sources if "juggle" not in s[0]]
    for hard in (False, True):
        specs = sprite_cycle_specs(sources, 48, seed=3, hard=hard, moving=moving)
        assert {s.motion for s in specs} == set(SPRITE_MOTIONS)
        mean = np.array([(s.period_start_s + s.period_end_s) / 2 * s.n_cycles for s in specs])
        assert np.all(mean >= 2.5 * 0.95) and np.all(mean <= 38.0 * 1.05)
        assert min(s.n_cycles for s in specs) >= 4 and max(s.n_cycles for s in specs) <= 60
        assert all(s.background != "juggle.mp4" for s in specs if s.background_moves)
        assert any(s.background_moves for s in specs) and not all(s.background_moves for s in specs)
        assert all(s.opacity == (0.85 if hard else 1.0) for s in specs)


@pytest.mark.parametrize("motion,n_cycles,period", [("stir", 12, 0.6), ("spin", 10, 0.8)])
def test_motions_that_never_reverse_are_counted(shared_clips: Path, tmp_path: Path, motion: str, n_cycles: int,
                                                period: float) -> None:
    # round an ellipse, or turning in place a full turn per cycle: no stroke out and back, so a speed signal peaks
    # once per cycle (per cell) rather than twice; over a still real scene, the hand-held camera wandering
    spec = _spec(shared_clips / "02_cups.mp4", motion, n_cycles=n_cycles, period_start_s=period,
                 period_end_s=period * 1.1, width=320, height=240, fps=30.0, seed=11)
    path, truth = sprite_cycle_clip(spec, tmp_path)
    row = clip_row(count_motion_track(motion_track_from_video(path), None, CountingParams(count_to_edges=True)))
    assert abs(row["count_estimate"] - truth.count) <= 1.0, (row, truth.count)
