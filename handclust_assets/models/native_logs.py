"""Quiet native logging: MediaPipe / TFLite write warnings straight to file descriptor 2 from C++ (absl/glog), one
batch per landmarker created — hundreds of lines per run, none of them actionable — and no environment variable
turns them off. `quiet_native_stderr()` captures fd 2 while native code runs, drops the known noise and writes every
other line back, so real errors are never lost."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# lines that say nothing a user can act on (each is printed once per landmarker instance)
NOISE = re.compile(
    r"inference_feedback_manager\.cc|landmark_projection_calculator\.cc.*NORM_RECT|"
    r"Created TensorFlow Lite XNNPACK delegate|Logging before InitGoogle\(\) is written to STDERR|"
    r"gl_context(_egl)?\.cc|face_landmarker_graph|^\s*$"
)
_lock = threading.Lock()
_depth = 0
_saved: int | None = None
_capture = None


def _release() -> None:
    """Restore fd 2 and forward what was captured, minus the noise."""
    global _saved, _capture
    if _saved is None or _capture is None:
        return
    sys.stderr.flush()
    os.dup2(_saved, 2)
    os.close(_saved)
    _capture.seek(0)
    kept = [ln for ln in _capture.read().decode(errors="replace").splitlines() if not NOISE.search(ln)]
    _capture.close()
    _saved, _capture = None, None
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")
        sys.stderr.flush()


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Filter native stderr for the duration (re-entrant and thread-safe: the outermost block captures)."""
    global _depth, _saved, _capture
    with _lock:
        if _depth == 0:
            try:
                sys.stderr.flush()
                _capture = tempfile.TemporaryFile()
                _saved = os.dup(2)
                os.dup2(_capture.fileno(), 2)
            except OSError:  # no fd 2 to redirect (embedded interpreters): leave it alone
                _saved, _capture = None, None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _release()
