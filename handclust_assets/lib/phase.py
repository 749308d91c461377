"""Coarse phase from a clip's file name (the only label the footage has)."""

from __future__ import annotations

import re

DEFAULT_PHASE_WORDS = ("production", "prep", "transit", "downtime", "demo")


def phase_from_name(name: str, words: tuple[str, ...] | list[str] = DEFAULT_PHASE_WORDS, pattern: str = "") -> str:
    """The phase a file name names, or "unknown".

    With `pattern` (a regex with one group, e.g. r"_(\\w+?)_"), the first group is the phase. Otherwise the
    name is split into lowercase word tokens and the first token that equals, or starts with, a phase word
    wins (so "prepping" counts as "prep"; "production" is not mistaken for "prep" because whole-token
    matches are tried first).
    """
    stem = name.rsplit("/", 1)[-1]
    if pattern:
        m = re.search(pattern, stem)
        return m.group(1).lower() if m else "unknown"
    tokens = [t for t in re.split(r"[^a-z0-9]+", stem.lower()) if t]
    for t in tokens:
        if t in words:
            return t
    for t in tokens:
        for w in words:
            if t.startswith(w):
                return w
    return "unknown"
