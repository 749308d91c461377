"""Which model, where from, on what device: the part of a model that makes results stale when it changes."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".model", ".txt", ".task")


def folder_fingerprint(path: str | Path) -> str:
    """Hash of the names, sizes and mtimes of a model folder's config/weight files (cheap, changes on update)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in WEIGHT_SUFFIXES) if p.is_dir() else [p]
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(p) if p.is_dir() else f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    revision: str = "main"
    local_path: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 16

    def resolve_source(self) -> str:
        """Local path override, else $HANDCLUST_MODEL_DIR/<id with / -> __> if present, else the hub id."""
        if self.local_path:
            return self.local_path
        root = os.environ.get("HANDCLUST_MODEL_DIR")
        if root:
            cand = Path(root) / self.model_id.replace("/", "__")
            if cand.is_dir():
                return str(cand)
        return self.model_id

    def version(self) -> str:
        """model id @ revision, plus the local weights' fingerprint when they come from a folder."""
        src = self.resolve_source()
        v = f"{self.model_id}@{self.revision}"
        if src != self.model_id and Path(src).exists():
            v += f"#{folder_fingerprint(src)}"
        return v
