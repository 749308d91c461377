"""Loading from the Hugging Face hub or a local folder, with errors that say how to provide a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handclust_assets.errors import ModelUnavailableError
from handclust_assets.models.spec import ModelSpec


def remedies(spec: ModelSpec, env_hint: str) -> list[str]:
    return [
        f"set `local_path` in the resource config (or {env_hint}) to a folder saved with save_pretrained",
        f"put the model under $HANDCLUST_MODEL_DIR/{spec.model_id.replace('/', '__')}",
        f"on a connected machine: `huggingface-cli download {spec.model_id} --revision {spec.revision}` and copy "
        "the HF cache (HF_HOME) here, or run with hub access",
    ]


def load_pretrained(spec: ModelSpec, loader: Callable[..., Any], env_hint: str, **kw: Any) -> Any:
    src = spec.resolve_source()
    try:
        if src == spec.model_id:
            return loader(src, revision=spec.revision, **kw)
        return loader(src, **kw)
    except Exception as e:  # noqa: BLE001 - OSError offline, ValueError for bad configs, etc.
        raise ModelUnavailableError(spec.model_id, f"{type(e).__name__}: {str(e)[:300]}", remedies(spec, env_hint)) from e
