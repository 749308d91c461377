"""The real model-loading code on tiny random models (no hub here), plus the offline scene backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from handclust_assets.lib.errors import ModelUnavailableError
from handclust_assets.models.scene import Dinov2SceneEncoder, EfficientNetLiteSceneEncoder, load_scene_encoder
from handclust_assets.models.spec import ModelSpec
from handclust_assets.models.tools import DEFAULT_TOOL_PROMPTS, Owlv2ToolDetector
from handclust_assets.models.video import VJepa2VideoEncoder, window_starts
from handclust_assets_tests.tiny_models import make_tiny_dinov2, make_tiny_owlv2, make_tiny_vjepa2


def _frames(n: int, seed: int = 0, h: int = 90, w: int = 160) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, h, w, 3), dtype=np.uint8)


def test_tiny_dinov2_through_real_loader(tmp_path: Path) -> None:
    path = make_tiny_dinov2(tmp_path / "dino")
    enc = Dinov2SceneEncoder(ModelSpec("facebook/dinov2-small", local_path=str(path), batch_size=4)).load()
    f = _frames(6)
    e1, e2 = enc.embed(f), enc.embed(f)
    assert e1.shape == (6, 32) and e1.dtype == np.float32 and np.isfinite(e1).all()
    assert np.allclose(np.linalg.norm(e1, axis=1), 1, atol=1e-5) and np.array_equal(e1, e2)
    assert load_scene_encoder(ModelSpec("x/y", local_path=str(path))).name == "x/y"


def test_missing_model_names_model_and_remedies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError) as ei:
        Dinov2SceneEncoder(ModelSpec("nobody/no-such-dinov2")).load()
    msg = str(ei.value)
    assert "nobody/no-such-dinov2" in msg and "local_path" in msg and "HANDCLUST_MODEL_DIR" in msg


def test_offline_fallback_backbone_separates_clips(shared_clips: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from handclust_assets.video.frame_cache import sample_frames

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = load_scene_encoder(ModelSpec("nobody/no-such-dinov2"))
    assert isinstance(enc, EfficientNetLiteSceneEncoder)
    a, _ = sample_frames(shared_clips / "02_cups.mp4", 1, 320)
    b, _ = sample_frames(shared_clips / "05_default_juggle.mp4", 1, 320)
    ea, eb = enc.embed(a[:8]), enc.embed(b[:8])
    assert ea.shape == (8, 1280) and np.isfinite(ea).all()
    within = (ea @ ea.T)[np.triu_indices(8, 1)].mean()
    across = (ea @ eb.T).mean()
    assert within > across + 0.05


def test_tiny_vjepa2_windows(tmp_path: Path) -> None:
    path = make_tiny_vjepa2(tmp_path / "vjepa")
    enc = VJepa2VideoEncoder(ModelSpec("facebook/vjepa2-vitl-fpc64-256", local_path=str(path), batch_size=16)).load()
    f = _frames(60)  # 12 s at 5 fps, 8-frame windows every 1 s
    emb, t0, t1 = enc.embed_windows(f, fps=5.0)
    assert len(window_starts(60, 5.0, 8, 1.0)) == len(emb) == 12  # 11 at 1-s stride + one covering the tail
    assert emb.shape[1] == 32 and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert np.allclose(t0[:3], [0, 1, 2]) and np.allclose(t1 - t0, 8 / 5.0)
    assert np.array_equal(enc.embed_windows(f, fps=5.0)[0], emb)
    short, s0, _ = enc.embed_windows(_frames(3), fps=5.0)  # shorter than a window: padded, one window
    assert short.shape == (1, 32) and s0[0] == 0


def test_tiny_owlv2_tool_scores(tmp_path: Path) -> None:
    path = make_tiny_owlv2(tmp_path / "owl", DEFAULT_TOOL_PROMPTS)
    det = Owlv2ToolDetector(ModelSpec("google/owlv2-base-patch16-ensemble", local_path=str(path), batch_size=2))
    det.load()
    s = det.scores(_frames(3))
    assert len(DEFAULT_TOOL_PROMPTS) == 19 and s.shape == (3, 19) and s.dtype == np.float32
    assert np.all((s >= 0) & (s <= 1)) and np.array_equal(det.scores(_frames(3)), s)


def test_changed_local_weights_change_the_version(tmp_path: Path) -> None:
    import os
    import time

    path = make_tiny_dinov2(tmp_path / "dino")
    spec = ModelSpec("facebook/dinov2-small", local_path=str(path))
    v1 = spec.version()
    time.sleep(0.01)
    make_tiny_dinov2(path, seed=1)
    w = next(path.glob("*.safetensors"))
    os.utime(w, ns=(w.stat().st_atime_ns, w.stat().st_mtime_ns + 10_000_000))
    assert spec.version() != v1 and spec.version().startswith("facebook/dinov2-small@main#")
    assert ModelSpec("facebook/dinov2-small").version() == "facebook/dinov2-small@main"


def test_offline_backbone_bf16_matches_fp32(shared_clips: Path) -> None:
    """The CPU fast path (bf16 autocast + channels-last) gives the same embeddings as fp32, to rounding."""
    from handclust_assets.video.frame_cache import sample_frames

    frames, _ = sample_frames(shared_clips / "03_blocks.mp4", 1, 320)
    e32 = EfficientNetLiteSceneEncoder(dtype="float32").load()
    e16 = EfficientNetLiteSceneEncoder(dtype="bfloat16").load()
    a, b = e32.embed(frames[:6]), e16.embed(frames[:6])
    assert e32.version().endswith("|float32") and e16.version().endswith("|bfloat16")
    assert b.dtype == np.float32 and np.isfinite(b).all()
    assert float((a * b).sum(axis=1).min()) > 0.99


class _CountingFrames:
    """A lazy frame sequence (like `FrameCache.frames()`) that records what the model asked for."""

    def __init__(self, frames: np.ndarray) -> None:
        self._f, self.reads, self.largest = frames, np.zeros(len(frames), int), 0

    def __len__(self) -> int:
        return len(self._f)

    def __getitem__(self, i: int | slice) -> np.ndarray:
        idx = range(*i.indices(len(self))) if isinstance(i, slice) else [i]
        self.reads[list(idx)] += 1
        self.largest = max(self.largest, len(idx))
        return self._f[i]


def test_models_read_a_long_clip_one_batch_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scene, tool and video models take the frame cache's lazy sequence (`FrameCache.frames()`): the same
    embeddings as from every frame in memory, each frame read once, never more than a batch at a time (an hour
    at 5 fps held 7 GB of pixels before; the 20-min product-path clip's scene step peaked at 6.9 GB)."""
    import weakref

    import handclust_assets.models.video as video_module
    from handclust_assets.models.video import preprocess
    from handclust_assets.video.frame_cache import FrameCache, build_frame_cache
    from handclust_assets.video.writer import moving_pattern, write_video

    clip = write_video(tmp_path / "c.mp4", moving_pattern(150, 160, 90), 15.0)
    build_frame_cache(clip, tmp_path / "fc")
    fc = FrameCache(tmp_path / "fc")
    every = fc.all_frames()
    assert len(fc.frames()) == len(every) == 50 and np.array_equal(fc.frames()[3:7], every[3:7])
    assert np.array_equal(fc.frames()[-1], every[-1]) and np.array_equal(np.stack(list(fc.frames())), every)

    scene = Dinov2SceneEncoder(ModelSpec("s", local_path=str(make_tiny_dinov2(tmp_path / "d")), batch_size=4))
    lazy = _CountingFrames(every)
    assert np.array_equal(scene.load().embed(lazy), scene.embed(every))
    assert (lazy.reads == 1).all() and lazy.largest == 4
    assert np.array_equal(scene.embed(fc.frames()), scene.embed(every))

    video = VJepa2VideoEncoder(ModelSpec("v", local_path=str(make_tiny_vjepa2(tmp_path / "v")), batch_size=16)).load()
    lazy = _CountingFrames(every)
    alive, most_alive = [0], [0]  # preprocessed frames held at once (each call's array lives while it is kept)

    def counted(frames: np.ndarray, crop: int) -> np.ndarray:
        out = preprocess(frames, crop)
        alive[0] += len(out)
        most_alive[0] = max(most_alive[0], alive[0])
        weakref.finalize(out, lambda n=len(out): alive.__setitem__(0, alive[0] - n))
        return out

    monkeypatch.setattr(video_module, "preprocess", counted)
    emb, t0, _ = video.embed_windows(lazy, fps=5.0)
    assert (lazy.reads == 1).all() and lazy.largest == 1  # each frame read and preprocessed once
    assert most_alive[0] <= 8 + 2 * 5  # a window and a batch's strides (2 windows, 5 frames), not all 50 frames
    pre = preprocess(every, int(video.model.config.crop_size))  # the whole clip at once, as it used to be
    starts = window_starts(len(every), 5.0, 8, 1.0)
    import torch

    with torch.inference_mode():
        x = torch.from_numpy(np.stack([pre[s : s + 8] for s in starts])).to(video.device, video.dtype)
        want = video.model(pixel_values_videos=x, skip_predictor=True).last_hidden_state.mean(dim=1).float().numpy()
    np.testing.assert_allclose(emb, want, atol=1e-5)

    tools = Owlv2ToolDetector(ModelSpec("t", local_path=str(make_tiny_owlv2(tmp_path / "o", DEFAULT_TOOL_PROMPTS)),
                                        batch_size=2))
    tools.load()
    lazy = _CountingFrames(every[:6])
    assert np.array_equal(tools.scores(lazy), tools.scores(every[:6])) and lazy.largest == 2
