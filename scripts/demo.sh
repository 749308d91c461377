#!/usr/bin/env bash
# Fresh machine -> set up and run the main job: the demo on synthetic helmet-cam clips.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
handclust demo "$@"
