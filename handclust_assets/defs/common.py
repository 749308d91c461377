"""Shared wiring helpers: turn named clip/model errors into Dagster failures the UI shows plainly."""

import functools
from collections.abc import Callable
from typing import Any

import dagster as dg

from handclust_assets.lib.errors import ClipError, ModelUnavailableError


def named_failures(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Re-raise ClipError / ModelUnavailableError as dg.Failure (message first, with file/model metadata)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClipError as e:
            raise dg.Failure(
                description=str(e), metadata={"file": dg.MetadataValue.path(e.path), "problem": e.problem}
            ) from e
        except ModelUnavailableError as e:
            raise dg.Failure(description=str(e), metadata={"model": e.model, "reason": e.reason}) from e

    return wrapper
