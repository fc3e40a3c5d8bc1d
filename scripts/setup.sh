#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with r3v and its test and miniwob extras, at
# the tested versions of every dependency (constraints.txt), then `r3v doctor` checks that the
# plain `lmms-eval` command runs. The first run downloads PyTorch and lmms-eval's dependencies
# (several GB; ~10 minutes); later runs are quick.
#
#   R3V_CONSTRAINTS=FILE bash scripts/setup.sh   install against another constraints file
#   R3V_CONSTRAINTS= bash scripts/setup.sh       opt out: the newest releases pyproject allows
#                                                (untested; see scripts/update-constraints.sh)
#   R3V_VENV=DIR bash scripts/setup.sh           another environment folder (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${R3V_VENV:-.venv}"
CONSTRAINTS="${R3V_CONSTRAINTS-constraints.txt}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
if [ -n "$CONSTRAINTS" ]; then
  [ -f "$CONSTRAINTS" ] || { echo "setup: constraints file not found: $CONSTRAINTS" >&2; exit 2; }
  "$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" -e ".[test,miniwob]"
else
  echo "setup: R3V_CONSTRAINTS is empty: installing the newest allowed releases (untested set)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade --upgrade-strategy eager -e ".[test,miniwob]"
fi
# fail loudly, with the reason, when the plain `lmms-eval` command cannot run
"$VENV/bin/r3v" doctor
