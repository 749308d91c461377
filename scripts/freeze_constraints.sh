#!/usr/bin/env bash
# Rewrite constraints.txt from the current venv (after `bash scripts/setup.sh` with a changed dependency and a
# passing `bash scripts/test.sh`): every installed version, the project itself left out, torch without its local
# +cpu tag.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
python -m pip check
{
  grep '^#' constraints.txt  # the header
  python -m pip freeze --exclude-editable | sed -E 's/^(torch==[0-9.]+)\+cpu$/\1/'
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) packages"
