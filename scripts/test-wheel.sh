#!/usr/bin/env bash
# The wheel is the product: build it, install it (not editable, no test extras) into a fresh
# virtual environment at the tested versions (constraints.txt), and run from a folder outside
# the checkout, so that nothing of the source tree can be imported, what a pip user runs first:
#   r3v recipes, r3v demo --quick, r3v doctor, and lmms-eval --model r3v_select on a tiny model.
# Any failure stops it, naming the step. CI runs it after the test suite (.ci/run). Most of its
# time is the install (PyTorch and lmms-eval's dependencies, several GB; docs/install.md).
#
#   R3V_CONSTRAINTS=FILE bash scripts/test-wheel.sh   install against another constraints file
#   R3V_WHEEL_KEEP=1 bash scripts/test-wheel.sh       keep the temporary folder (printed) to look in
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PY="${PYTHON:-python3}"
CONSTRAINTS="${R3V_CONSTRAINTS-constraints.txt}"
[ -z "$CONSTRAINTS" ] || CONSTRAINTS="$(realpath "$CONSTRAINTS")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/r3v-wheel.XXXXXX")"
finish() {
  if [ -n "${R3V_WHEEL_KEEP:-}" ]; then echo "test-wheel: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap finish EXIT
STEP="start"
trap 'echo "test-wheel: FAILED at step: $STEP (exit $?)" >&2' ERR
T0=$SECONDS
step() { STEP="$*"; echo "test-wheel [$((SECONDS - T0))s]: $STEP" >&2; }
fail() { echo "test-wheel: FAILED at step: $STEP -- $*" >&2; exit 1; }

step "copy the tracked source (a stale build/ or egg-info cannot reach the wheel)"
mkdir "$WORK/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$WORK/src"
else
  tar --exclude=.venv --exclude=.venv-vllm --exclude=build --exclude='*.egg-info' -cf - . \
    | tar -xf - -C "$WORK/src"
fi

step "make a fresh virtual environment"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q --upgrade pip

step "build the wheel (pip wheel, isolated build)"
"$VPY" -m pip wheel -q --no-deps -w "$WORK/dist" "$WORK/src"
WHEEL="$(ls "$WORK"/dist/r3v-*.whl)"
echo "test-wheel: built $(basename "$WHEEL")" >&2

step "install the wheel, not editable${CONSTRAINTS:+, with -c $(basename "$CONSTRAINTS")}"
"$VPY" -m pip install -q ${CONSTRAINTS:+-c "$CONSTRAINTS"} "$WHEEL"

# from here on: outside the checkout, with nothing of it on the path
mkdir "$WORK/run" && cd "$WORK/run"
unset PYTHONPATH
export PATH="$WORK/venv/bin:$PATH" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  TOKENIZERS_PARALLELISM=false TQDM_DISABLE=1

step "the installed packages come from the wheel, not the checkout"
"$VPY" - "$WORK/venv" <<'EOF' || fail "r3v is imported from outside the fresh environment"
import sys
from pathlib import Path
import r3v_eval, r3v_recipes, r3v_train, tasks
venv = Path(sys.argv[1]).resolve()
for module in (r3v_eval, r3v_train, r3v_recipes, tasks):
    where = Path(module.__file__).resolve()
    assert venv in where.parents, f"{module.__name__} comes from {where}"
EOF

step "r3v recipes (the shipped recipes, by name)"
r3v recipes > recipes.txt
grep -q '^demo/quick/r3v ' recipes.txt || fail "r3v recipes does not list demo/quick/r3v"
r3v recipes --copy copied > /dev/null
[ -f copied/demo/r3v.yaml ] || fail "r3v recipes --copy wrote no copied/demo/r3v.yaml"
status=0; r3v train --recipe demo/r3vv 2> bad.txt || status=$?
[ "$status" -eq 2 ] && grep -q 'close names: demo/r3v' bad.txt \
  || fail "a bad recipe name did not exit 2 naming demo/r3v (exit $status: $(cat bad.txt))"

step "r3v demo --quick"
r3v demo --quick --out demo_quick
[ -s demo_quick/leaderboard.md ] || fail "r3v demo --quick wrote no demo_quick/leaderboard.md"

step "r3v doctor (the plain lmms-eval command)"
r3v doctor

step "lmms-eval --model r3v_select on a tiny model"
r3v tiny-model --arch qwen2_vl --out tiny > /dev/null
lmms-eval --model r3v_select \
  --model_args "pretrained=$WORK/run/tiny,n=2,max_new_tokens=16,device=cpu" \
  --tasks r3v_shapes --limit 4 --batch_size 2 --include_path "$(r3v tasks-dir)" \
  --output_path lmms_out > lmms.log 2>&1 || { status=$?; tail -20 lmms.log >&2; fail "lmms-eval exited $status"; }
# lmms-eval exits 0 even when the task fails: the results file is what is checked
"$VPY" - <<'EOF' || { tail -20 lmms.log >&2; fail "no r3v_shapes select_at_n in lmms_out"; }
import glob, json
files = glob.glob("lmms_out/**/*_results.json", recursive=True)
assert len(files) == 1, files
results = json.load(open(files[0]))["results"]["r3v_shapes"]
assert "select_at_n,none" in results, results
print(f"test-wheel: lmms-eval r3v_select on r3v_shapes: {results['select_at_n,none']}")
EOF

STEP="done"
echo "test-wheel: ok -- the wheel installs and runs outside the checkout ($((SECONDS - T0)) s)" >&2
