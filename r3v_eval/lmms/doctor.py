"""``r3v doctor``: does the plain ``lmms-eval`` command run on this install?

A reproduction suite breaks when a dependency it does not pin changes under it (filelock 4.3.0
removed ``filelock._api``, which lmms-eval 0.7.3's evaluator imports, and every evaluation died
on a fresh install). This check runs the real console command, ``lmms-eval --model dummy
--tasks r3v_shapes --limit 2`` (lmms-eval's own weight-free model, so it needs no checkpoint
and no network), and passes only when a results file with the task's ``accuracy`` comes back.
lmms-eval logs evaluation errors and still exits 0, so the results file is what is checked.
On failure it names the error lmms-eval printed, the versions involved and the fix.
``scripts/setup.sh`` runs it last, so a broken install fails set-up (and CI) loudly.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from r3v_eval import provenance
from r3v_eval.lmms import tasks_dir

#: distributions whose versions a failure report shows
WATCHED = ("lmms_eval", "filelock", "datasets", "transformers", "torch", "accelerate")
#: known breakages: a substring of the error -> what it means and what to do
KNOWN_CAUSES = {
    "filelock._api": ("filelock >= 4.3 removed `filelock._api`, which lmms-eval 0.7.3's evaluator "
                      "imports; install filelock < 4.3 (constraints.txt pins 4.2.12)"),
    "decord": ("lmms-eval's qwen2_vl / qwen2_5_vl models import decord: pip install decord"),
}
_ERROR_LINE = re.compile(r"\b([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")


@dataclass
class DoctorReport:
    ok: bool
    command: list[str]
    reason: str = ""
    hints: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    log_tail: str = ""

    def render(self) -> str:
        if self.ok:
            return ("r3v doctor: ok -- the plain `lmms-eval` command ran r3v_shapes and wrote its "
                    f"results ({versions_line(self.versions)})")
        lines = [f"r3v doctor: FAILED -- the plain `lmms-eval` command cannot run: {self.reason}",
                 f"  command:  {' '.join(self.command)}",
                 f"  versions: {versions_line(self.versions)}"]
        lines += [f"  cause:    {hint}" for hint in self.hints]
        lines.append("  fix:      install the tested versions: bash scripts/setup.sh "
                     "(pip install -c constraints.txt -e '.[test]')")
        if self.log_tail:
            lines.append("  lmms-eval's last output lines:")
            lines += [f"    {line}" for line in self.log_tail.splitlines()]
        return "\n".join(lines)


def installed_versions(names=WATCHED) -> dict[str, str]:
    return provenance.installed_versions(names, missing="not installed")


def versions_line(versions: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def failure_reason(log: str) -> str:
    """The last ``SomeError: message`` line lmms-eval printed ('' when there is none)."""
    for line in reversed(log.splitlines()):
        match = _ERROR_LINE.search(line.strip())
        if match:
            return f"{match.group(1)}: {match.group(2).strip()}"
    return ""


def known_causes(text: str) -> list[str]:
    return [hint for needle, hint in KNOWN_CAUSES.items() if needle in text]


def lmms_eval_executable() -> str:
    """The ``lmms-eval`` console script of this interpreter's environment."""
    beside = Path(sys.executable).parent / "lmms-eval"
    if beside.is_file():
        return str(beside)
    found = shutil.which("lmms-eval")
    if found is None:
        raise FileNotFoundError("the `lmms-eval` command is not installed in this environment "
                                f"(looked beside {sys.executable} and on PATH)")
    return found


def check_lmms_eval(timeout: float = 600.0) -> DoctorReport:
    """Run the plain ``lmms-eval`` command on ``r3v_shapes`` and report whether it worked."""
    versions = installed_versions()
    with tempfile.TemporaryDirectory(prefix="r3v_doctor_") as tmp:
        try:
            exe = lmms_eval_executable()
        except FileNotFoundError as exc:
            return DoctorReport(False, ["lmms-eval"], str(exc), versions=versions)
        command = [exe, "--model", "dummy", "--tasks", "r3v_shapes", "--limit", "2",
                   "--include_path", str(tasks_dir()), "--output_path", tmp]
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TQDM_DISABLE="1")
        try:
            proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return DoctorReport(False, command, f"no answer within {timeout:.0f} s",
                                versions=versions)
        log = proc.stdout + proc.stderr
        files = glob.glob(os.path.join(tmp, "**", "*_results.json"), recursive=True)
        metric = None
        if files:
            results = json.loads(Path(files[0]).read_text()).get("results", {})
            metric = results.get("r3v_shapes", {}).get("accuracy,none")
        if proc.returncode == 0 and metric is not None:
            return DoctorReport(True, command, versions=versions)
        reason = failure_reason(log) or (f"exit status {proc.returncode}" if proc.returncode
                                         else "no results file was written")
        tail = "\n".join(log.strip().splitlines()[-8:])
        return DoctorReport(False, command, reason, known_causes(log), versions, tail)


def main() -> int:
    report = check_lmms_eval()
    print(report.render(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1
