#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with r3v and its test extra installed.
# The first run downloads PyTorch and lmms-eval's dependencies (several GB; ~10 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
