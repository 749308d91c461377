"""Video embeddings: V-JEPA 2 over 64-frame windows at 1-s stride, mean-pooled tokens (1024-D for ViT-L).

Preprocessing matches VJEPA2VideoProcessor (resize the short side to crop_size * 256/224, centre crop to
crop_size, scale to [0, 1], ImageNet mean/std) but is done with cv2/numpy: the transformers video processor
needs torchvision, which does not load beside the pinned CPU torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from handclust_assets.lib.cost import gpu_section
from handclust_assets.models.device import resolve_device, resolve_dtype
from handclust_assets.models.hub import load_pretrained
from handclust_assets.models.spec import ModelSpec

DEFAULT_VIDEO_MODEL = "facebook/vjepa2-vitl-fpc64-256"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def window_starts(n_frames: int, fps: float, window_frames: int, stride_s: float) -> list[int]:
    """Start indices of the windows: every `stride_s` seconds; one window when the clip is shorter."""
    stride = max(1, int(round(stride_s * fps)))
    if n_frames <= window_frames:
        return [0]
    starts = list(range(0, n_frames - window_frames + 1, stride))
    if starts[-1] + window_frames < n_frames:  # cover the tail
        starts.append(n_frames - window_frames)
    return starts


def preprocess(frames: np.ndarray, crop: int) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB -> (T, 3, crop, crop) float32 normalised."""
    short = int(round(crop * 256 / 224))
    out = []
    for f in frames:
        h, w = f.shape[:2]
        s = short / min(h, w)
        r = cv2.resize(f, (max(crop, int(round(w * s))), max(crop, int(round(h * s)))), interpolation=cv2.INTER_AREA)
        y0, x0 = (r.shape[0] - crop) // 2, (r.shape[1] - crop) // 2
        c = r[y0 : y0 + crop, x0 : x0 + crop].astype(np.float32) / 255.0
        out.append(((c - MEAN) / STD).transpose(2, 0, 1))
    return np.stack(out)


class VJepa2VideoEncoder:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.name = spec.model_id
        self.model = None

    def version(self) -> str:
        return self.spec.version()

    def load(self) -> VJepa2VideoEncoder:
        from transformers import AutoModel

        self.device = resolve_device(self.spec.device)
        self.dtype = resolve_dtype(self.spec.dtype, self.device)
        self.model = load_pretrained(self.spec, AutoModel.from_pretrained, "HANDCLUST_VIDEO_MODEL_PATH", dtype=self.dtype)
        self.model.to(self.device).eval()
        return self

    @torch.inference_mode()
    def embed_windows(
        self, frames: Sequence[np.ndarray] | np.ndarray, fps: float, window_frames: int | None = None,
        stride_s: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(emb (W, D) float32, t_start_s (W,), t_end_s (W,)). Short clips: the last frame is repeated. `frames`
        may be lazy (`FrameCache.frames()`): each frame is read and preprocessed once, and only the frames of the
        windows to come are kept."""
        if self.model is None:
            self.load()
        cfg = self.model.config
        wf = int(window_frames or cfg.frames_per_clip)
        n = len(frames)
        crop = int(cfg.crop_size)
        starts = window_starts(n, fps, wf, stride_s)
        ready: dict[int, np.ndarray] = {}  # preprocessed frames the coming windows still need (not the whole clip)

        def window(s: int) -> np.ndarray:
            idx = [min(j, n - 1) for j in range(s, s + wf)]  # short clips: the last frame repeated
            for j in sorted(set(idx) - ready.keys()):
                ready[j] = preprocess(frames[j : j + 1], crop)[0]
            return np.stack([ready[j] for j in idx])

        embs = []
        bs = max(1, self.spec.batch_size // 8)
        for i in range(0, len(starts), bs):
            clip = np.stack([window(s) for s in starts[i : i + bs]])
            if i + bs < len(starts):
                for j in [j for j in ready if j < starts[i + bs]]:
                    del ready[j]
            x = torch.from_numpy(clip).to(self.device, self.dtype)
            with gpu_section():  # GPU seconds for the cost report (a no-op on CPU)
                pooled = self.model(pixel_values_videos=x, skip_predictor=True).last_hidden_state.mean(dim=1)
            embs.append(pooled.float().cpu().numpy())
        emb = np.concatenate(embs).astype(np.float32)
        t0 = np.asarray(starts, np.float64) / fps
        t1 = np.minimum(t0 + wf / fps, n / fps)
        return emb, t0, t1
