#!/usr/bin/env bash
# Upgrade the tested set of versions deliberately: install the newest releases that
# pyproject.toml allows into a fresh environment (.venv-upgrade), run `r3v doctor` and the whole
# test suite there, and only when both pass rewrite constraints.txt from that environment.
# Review the diff (git diff constraints.txt), commit it, and re-run `bash scripts/setup.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-upgrade
rm -rf "$VENV"
R3V_VENV="$VENV" R3V_CONSTRAINTS= bash scripts/setup.sh
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false "$VENV/bin/python" -m pytest -q
{
  echo "# The tested set of versions: scripts/setup.sh and CI install r3v with pip's -c against this file."
  echo "# Written by scripts/update-constraints.sh on $(date -u +%Y-%m-%d) after the test suite passed"
  echo "# (Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version(), platform.machine())'))."
  echo "# Upgrade deliberately with that script; opt out with R3V_CONSTRAINTS= bash scripts/setup.sh."
  "$VENV/bin/python" -m pip freeze --exclude-editable | grep -v -E '^(-e |r3v[= ])'
} > constraints.txt
echo "constraints.txt updated from $VENV; review: git diff constraints.txt"
