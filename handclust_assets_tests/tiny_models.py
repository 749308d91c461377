"""Tiny randomly initialised DINOv2 / V-JEPA 2 / OWLv2 models saved like hub checkpoints (for tests)."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def make_tiny_dinov2(path: Path, seed: int = 0) -> Path:
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                       image_size=56, patch_size=14)
    Dinov2Model(cfg).save_pretrained(path)
    BitImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 56, "width": 56}, do_convert_rgb=True,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(path)
    return path


def make_tiny_vjepa2(path: Path, seed: int = 0) -> Path:
    from transformers import VJEPA2Config, VJEPA2Model

    torch.manual_seed(seed)
    cfg = VJEPA2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, crop_size=32, patch_size=16,
                       frames_per_clip=8, tubelet_size=2, pred_hidden_size=32, pred_num_hidden_layers=1,
                       pred_num_attention_heads=2, num_pooler_layers=1)
    VJEPA2Model(cfg).save_pretrained(path)
    return path


def make_tiny_owlv2(path: Path, prompts: list[str], seed: int = 0) -> Path:
    from transformers import (
        CLIPTokenizer,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    chars = sorted(set("".join(prompts).replace(" ", "")) | set("abcdefghijklmnopqrstuvwxyz"))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), pad_token="!")
    text = {"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 32, "pad_token_id": 2, "bos_token_id": 0,
            "eos_token_id": 1}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 64, "patch_size": 16}
    cfg = Owlv2Config(text_config=text, vision_config=vision, projection_dim=32)
    Owlv2ForObjectDetection(cfg).save_pretrained(path)
    proc = Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tok)
    proc.save_pretrained(path)
    return path
