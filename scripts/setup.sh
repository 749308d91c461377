#!/usr/bin/env bash
# Create .venv and install HandClust with its dev tools. Idempotent; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch is pinned to the CPU build (2.13.0) in pyproject.toml; a range would pull a multi-GB CUDA build.
# constraints.txt: the versions last measured, so a new release upstream changes nothing on a fresh machine
python -m pip install -q -e '.[dev]' -c constraints.txt
# mediapipe brings opencv-contrib-python; make sure no second cv2 distribution shadows it
if python -m pip show -q opencv-python >/dev/null 2>&1; then
  python -m pip uninstall -q -y opencv-python
  python -m pip install -q --force-reinstall --no-deps "$(python -m pip show opencv-contrib-python | awk '/^Version/{print "opencv-contrib-python=="$2}')"
fi
# Debian's Chromium for the dashboard browser test (root only; skipped where apt is unavailable)
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium"
fi
# MediaPipe models (hand, pose): verified by sha256 into storage/models
handclust fetch-models >/dev/null || echo "warning: MediaPipe models could not be fetched; pose/hands will be skipped"
