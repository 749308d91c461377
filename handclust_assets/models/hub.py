"""Loading from the Hugging Face hub or a local folder, with errors that say how to provide a model.

When the hub cannot be reached (an offline lab machine, a firewalled cluster node), loaders are called with
`local_files_only=True`: a model already in the HF cache still loads, and a missing one fails at once with
a named error instead of minutes of retries with backoff per model.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from handclust_assets.lib.errors import ModelUnavailableError
from handclust_assets.models.spec import ModelSpec


def remedies(spec: ModelSpec, env_hint: str) -> list[str]:
    return [
        f"set `local_path` in the resource config (or {env_hint}) to a folder saved with save_pretrained",
        f"put the model under $HANDCLUST_MODEL_DIR/{spec.model_id.replace('/', '__')}",
        f"on a connected machine: `hf download {spec.model_id} --revision {spec.revision}` and copy "
        "the HF cache (HF_HOME) here, or run with hub access",
    ]


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=4)
def _reachable(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """False when HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set or the hub's host cannot be connected to."""
    if _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE")):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    return _reachable(url.hostname or "huggingface.co", port, timeout_s)


def load_pretrained(spec: ModelSpec, loader: Callable[..., Any], env_hint: str, **kw: Any) -> Any:
    src = spec.resolve_source()
    try:
        if src == spec.model_id:
            if not hub_reachable():
                kw = {**kw, "local_files_only": True}
            return loader(src, revision=spec.revision, **kw)
        return loader(src, **kw)
    except Exception as e:  # OSError offline, ValueError for bad configs, etc.
        where = "" if src != spec.model_id or hub_reachable() else " (hub unreachable; HF cache checked)"
        raise ModelUnavailableError(spec.model_id, f"{type(e).__name__}: {str(e)[:300]}{where}",
                                    remedies(spec, env_hint)) from e


def probe_model(spec: ModelSpec) -> str | None:
    """Why `spec` cannot be loaded here, judged cheaply without loading weights: a missing local folder, or a hub
    id that is neither in the Hugging Face cache nor reachable. None when it looks available."""
    src = spec.resolve_source()
    if src != spec.model_id:
        return None if os.path.exists(src) else f"local weights {src} do not exist"
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(spec.model_id, "config.json", revision=spec.revision), str):
            return None
    except Exception:  # a broken cache is judged by the hub check below
        pass
    if hub_reachable():
        return None
    return (f"{spec.model_id} is not in the Hugging Face cache and the hub cannot be reached (set the resource's "
            f"local_path, or put it under $HANDCLUST_MODEL_DIR/{spec.model_id.replace('/', '__')})")
