"""The install: the tested set of versions and ``r3v doctor``'s check of the plain lmms-eval
command."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from r3v_eval.lmms.doctor import DoctorReport, check_lmms_eval, failure_reason, known_causes

ROOT = Path(__file__).resolve().parents[1]

# the tail of what lmms-eval 0.7.3 printed on a fresh install with filelock 4.3.0 (2026-11-29)
FILELOCK_LOG = """\
2026-11-30 01:25:40 | INFO     | r3v_eval.lmms.models:__init__:64 - r3v_cot: loading /tmp/m
2026-11-30 01:25:40 | ERROR    | lmms_eval.__main__:cli_evaluate:614 - Error during evaluation: \
No module named 'filelock._api'. Please set `--verbosity=DEBUG` to get more information.
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/lmms_eval/evaluator.py", line 134, in _enable_reentrant_filelocks
    import filelock._api as _fl_api
ModuleNotFoundError: No module named 'filelock._api'
"""


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: not an exact pin: {line!r}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_constraints_pin_the_stack_and_a_working_filelock():
    pins = _constraints()
    for name in ("lmms-eval", "transformers", "trl", "torch", "peft", "accelerate", "datasets",
                 "filelock", "decord"):
        assert name in pins, f"constraints.txt does not pin {name}"
    major, minor = (int(x) for x in pins["filelock"].split(".")[:2])
    assert (major, minor) < (4, 3), "filelock >= 4.3 breaks lmms-eval 0.7.3 (filelock._api)"
    assert "r3v" not in pins  # the project itself is never pinned


def test_this_install_matches_the_constraints():
    """The environment the tests run in is the tested set (setup.sh installs with -c)."""
    pins = _constraints()
    differ = {}
    for name in ("lmms-eval", "transformers", "trl", "torch", "filelock", "datasets", "peft"):
        have = metadata.version(name)
        if have != pins[name]:
            differ[name] = (have, pins[name])
    assert not differ, f"installed != constraints.txt: {differ}; run bash scripts/setup.sh"


def test_setup_installs_with_the_constraints_and_runs_the_doctor():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert 'R3V_CONSTRAINTS-constraints.txt' in setup and '-c "$CONSTRAINTS"' in setup
    assert setup.rstrip().endswith('"$VENV/bin/r3v" doctor')
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    test_command = "bash scripts/setup.sh && .venv/bin/python -m pytest -q"
    assert test_command in ci and test_command in readme


def test_failure_reason_and_known_cause_from_lmms_eval_output():
    assert failure_reason(FILELOCK_LOG) == "ModuleNotFoundError: No module named 'filelock._api'"
    assert any("filelock < 4.3" in hint for hint in known_causes(FILELOCK_LOG))
    assert failure_reason("all fine\n") == ""
    report = DoctorReport(False, ["lmms-eval", "--model", "dummy"],
                          failure_reason(FILELOCK_LOG), known_causes(FILELOCK_LOG),
                          {"filelock": "4.3.0"}, "ModuleNotFoundError: ...")
    text = report.render()
    assert text.startswith("r3v doctor: FAILED -- the plain `lmms-eval` command cannot run: "
                           "ModuleNotFoundError")
    assert "filelock 4.3.0" in text and "constraints.txt" in text


@pytest.mark.slow
def test_doctor_runs_the_plain_lmms_eval_command():
    report = check_lmms_eval()
    assert report.ok, report.render()
    assert Path(report.command[0]).name == "lmms-eval" and "r3v_shapes" in report.command
    proc = subprocess.run([str(Path(sys.executable).parent / "r3v"), "doctor"], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("r3v doctor: ok"), proc.stderr[-2000:]
