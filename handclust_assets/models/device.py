"""Device and dtype selection: CUDA (bf16) where present, else Apple MPS, else CPU (fp32)."""

from __future__ import annotations

import torch


def resolve_device(pref: str = "auto") -> str:
    if pref and pref != "auto":
        return pref
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(pref: str, device: str) -> torch.dtype:
    if pref and pref != "auto":
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[pref]
    return torch.bfloat16 if device == "cuda" else torch.float32


def batches(n: int, size: int):  # noqa: ANN201 - tiny generator
    for i in range(0, n, max(1, size)):
        yield i, min(n, i + size)
