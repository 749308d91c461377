"""Which model, where from, on what device: the part of a model that makes results stale when it changes."""

from __future__ import annotations

import hashlib
import os
import re
import time
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


_SHA = re.compile(r"^[0-9a-f]{40}$")
_COMMIT_CACHE: dict[tuple[str, str], tuple[float, str | None]] = {}
COMMIT_TTL_S = float(os.environ.get("HANDCLUST_REVISION_TTL_S", "600"))


def cached_commit(model_id: str, revision: str) -> str | None:
    """The commit the local HF cache holds for `model_id@revision` (what would load offline), if any."""
    if _SHA.match(revision):
        return revision
    from huggingface_hub import constants

    ref = Path(constants.HF_HUB_CACHE) / f"models--{model_id.replace('/', '--')}" / "refs" / revision
    try:
        sha = ref.read_text().strip()
    except OSError:
        return None
    return sha if _SHA.match(sha) else None


def hub_commit(model_id: str, revision: str = "main", ttl_s: float | None = None) -> str | None:
    """The commit `revision` (a branch or tag) points to: asked from the hub when it is reachable (so a new
    upload to `main` is noticed), else what the local HF cache holds; None when neither knows. Answers are
    kept for `ttl_s` (env HANDCLUST_REVISION_TTL_S, default 10 min) so sensors do not hammer the hub."""
    if _SHA.match(revision):
        return revision
    key = (model_id, revision)
    ttl = COMMIT_TTL_S if ttl_s is None else ttl_s
    hit = _COMMIT_CACHE.get(key)
    if hit is not None and time.monotonic() - hit[0] < ttl:
        return hit[1]
    from handclust_assets.models.hub import hub_reachable

    sha = None
    if hub_reachable():
        try:
            from huggingface_hub import HfApi

            sha = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None).model_info(
                model_id, revision=revision, timeout=5).sha
        except Exception:  # unknown repo, auth, network: fall back to the cache
            sha = None
    sha = sha or cached_commit(model_id, revision)
    _COMMIT_CACHE[key] = (time.monotonic(), sha)
    return sha


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    revision: str = "main"
    local_path: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 16

    def resolve_source(self) -> str:
        """Local path override, else `<model cache>/<id with / -> __>` if present (the cache is
        $HANDCLUST_MODEL_DIR, else $HANDCLUST_MODEL_CACHE, shared by every storage root), else the hub id."""
        if self.local_path:
            return self.local_path
        from handclust_assets.lib.home import model_cache

        root = os.environ.get("HANDCLUST_MODEL_DIR") or str(model_cache())
        cand = Path(root) / self.model_id.replace("/", "__")
        if cand.is_dir():
            return str(cand)
        return self.model_id

    def version(self) -> str:
        """What makes results stale when it changes: model id @ revision, plus the weights' identity — the
        fingerprint of a local folder, or the hub commit the revision resolves to (hub or HF cache)."""
        src = self.resolve_source()
        v = f"{self.model_id}@{self.revision}"
        if src != self.model_id and Path(src).exists():
            return v + f"#{folder_fingerprint(src)}"
        sha = hub_commit(self.model_id, self.revision)
        return v + (f":{sha[:12]}" if sha and sha != self.revision else "")
