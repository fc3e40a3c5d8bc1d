#!/usr/bin/env bash
# One prepared GPU run of benchmarks/gpu.py (issue 15), for a machine with torch, transformers,
# peft, accelerate, torchvision and pyarrow but no network: trl and datasets (and their pure-Python
# needs dill and multiprocess) come as wheels in ./wheels (see benchmarks/gpu.py's docstring for
# the `pip download` line). Figures and the log go to $OUT (default benchmarks/results).
#
#   bash benchmarks/gpu_run.sh                 # extra arguments go to benchmarks/gpu.py
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"

if ! "$PY" -c "import trl, datasets" 2>/dev/null; then
    if ! ls wheels/*.whl >/dev/null 2>&1; then
        echo "trl / datasets are not installed and there is no wheels/ folder to install them" \
             "from: see the set-up in benchmarks/gpu.py's docstring" >&2
        exit 2
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/r3v-site wheels/*.whl
    export PYTHONPATH=/tmp/r3v-site${PYTHONPATH:+:$PYTHONPATH}
fi
# what datasets 5.2 needs of the packages already there (pip does not check with --no-deps)
"$PY" - <<'EOF'
from importlib.metadata import version
from packaging.version import Version
need = {"pyarrow": (">=", "24.0.0"), "fsspec": ("<=", "2026.9.0"), "huggingface_hub": (">=", "1.31.0")}
for name, (op, bound) in need.items():
    have = Version(version(name))
    ok = have >= Version(bound) if op == ">=" else have <= Version(bound)
    print(f"{name} {have} (datasets needs {op} {bound}){'' if ok else '  <-- MISMATCH'}")
import datasets, peft, torchvision, trl  # noqa: F401,E401  (fail here, not an hour later)
EOF

export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$PY" benchmarks/gpu.py --device cuda --dtype bfloat16 --budget-s 420 --out-dir "$OUT" "$@" \
    2>&1 | tee "$OUT/gpu_run.log"
