"""Errors that name the file and the problem, so a bad clip fails only its own partition."""

from __future__ import annotations

from pathlib import Path


class ClipError(RuntimeError):
    """A clip (or a file beside it) cannot be processed. The message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelUnavailableError(RuntimeError):
    """A model cannot be loaded. The message names the model and the ways to provide it."""

    def __init__(self, model: str, reason: str, remedies: list[str]) -> None:
        self.model = model
        self.reason = reason
        self.remedies = remedies
        lines = "\n".join(f"  - {r}" for r in remedies)
        super().__init__(f"model {model!r} could not be loaded: {reason}\nWays to provide it:\n{lines}")


class NothingYet(RuntimeError):
    """A result that cannot exist yet and is not an error (e.g. no pooled clustering to classify a clip with):
    the asset is skipped with this message, and filled in when what it waits for exists."""
