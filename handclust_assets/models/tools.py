"""Tool presence: OWLv2 open-vocabulary detection of configurable prompts -> per-frame max score per prompt."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from handclust_assets.lib.cost import gpu_section
from handclust_assets.models.device import batches, resolve_device, resolve_dtype
from handclust_assets.models.hub import load_pretrained
from handclust_assets.models.spec import ModelSpec

DEFAULT_TOOL_MODEL = "google/owlv2-base-patch16-ensemble"
# The seed's 19 prompts (masonry + assembly work).
DEFAULT_TOOL_PROMPTS = [
    "mason trowel", "mortar bucket", "rebar", "concrete block", "rubber mallet", "spirit level", "gloved hand",
    "bare hand", "safety vest", "brick", "wheelbarrow", "shovel", "hammer", "tape measure", "power drill",
    "scaffold", "hard hat", "work bench", "screwdriver",
]


class Owlv2ToolDetector:
    def __init__(self, spec: ModelSpec, prompts: list[str] | None = None) -> None:
        self.spec = spec
        self.name = spec.model_id
        self.prompts = list(prompts or DEFAULT_TOOL_PROMPTS)
        self.model = None

    def version(self) -> str:
        return self.spec.version() + "|" + ",".join(self.prompts)

    def load(self) -> Owlv2ToolDetector:
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        self.device = resolve_device(self.spec.device)
        self.dtype = resolve_dtype(self.spec.dtype, self.device)
        hint = "HANDCLUST_TOOL_MODEL_PATH"
        self.processor = load_pretrained(self.spec, Owlv2Processor.from_pretrained, hint)
        self.model = load_pretrained(self.spec, Owlv2ForObjectDetection.from_pretrained, hint, dtype=self.dtype)
        self.model.to(self.device).eval()
        return self

    @torch.inference_mode()
    def scores(self, frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, P) float32: per prompt, the highest detection probability (sigmoid logit) in the frame."""
        if self.model is None:
            self.load()
        text = self.processor(text=[self.prompts], padding=True, truncation=True, return_tensors="pt")
        out = []
        for a, b in batches(len(frames), self.spec.batch_size):
            imgs = self.processor(images=list(frames[a:b]), return_tensors="pt")["pixel_values"]
            n = imgs.shape[0]
            ids = text["input_ids"].repeat(n, 1)
            mask = text["attention_mask"].repeat(n, 1)
            with gpu_section():  # GPU seconds for the cost report (a no-op on CPU)
                res = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                 pixel_values=imgs.to(self.device, self.dtype))
                best = torch.sigmoid(res.logits.float()).amax(dim=1)  # (n, P) over (n, patches, P)
            out.append(best.cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, len(self.prompts)), np.float32)
