"""The loop's own figures in the experiment tracker the recipe names (``train.report_to``).

TRL already logs each training stage's curves (loss, learning rate, ...) to the tracker, one
tracker run per stage, as transformers' ``report_to`` does (TensorBoard: under
``iter_<t>/model/runs/``). What TRL cannot see is the loop: after every iteration,
:class:`LoopTracker` logs that iteration's evaluation figures (greedy, majority@N, select@N,
pass@N, each ``eval/<name>``), the pool's counts (``pool/positives``, ...), the examples it
trained on (``examples/<kind>``), the examples skipped by reason (``skipped/<reason>``) and the
run's compute so far (``compute/optimizer_steps``, ...) at step ``t``, the iteration, into one
tracker run per r3v run (TensorBoard: ``<run folder>/runs/<run name>``, beside TRL's curves
under the same folder: ``tensorboard --logdir <run folder>``).

The trackers are accelerate's (``accelerate.tracking``): ``tensorboard``, ``wandb``,
``mlflow``, ``comet_ml``, ``aim``, ``clearml``, ``dvclive``, ``swanlab``, ``trackio``. Only
the main process logs. A resumed run does not log an iteration twice: the steps already
logged are listed in ``<run folder>/runs/logged_steps.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from r3v_eval.errors import R3VError

LOGGED = "logged_steps.json"
TRACKER_DIR = "runs"


def iteration_figures(entry: dict[str, Any], compute: dict[str, int] | None) -> dict[str, float]:
    """One history entry of the loop (and the compute so far) as flat tracker scalars."""
    out: dict[str, float] = {}
    for section, prefix in (("metrics", "eval"), ("pool", "pool"), ("examples", "examples"),
                            ("skipped", "skipped")):
        for key, value in (entry.get(section) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{prefix}/{key}"] = value
    for key, value in (compute or {}).items():
        out[f"compute/{key}"] = value
    return out


class LoopTracker:
    """The loop's tracker run (a no-op when ``report_to`` is ``none`` or off the main process)."""

    def __init__(self, report_to: str, run_path: Path, run_name: str, config: dict[str, Any],
                 rank: int = 0) -> None:
        self.tracker = None
        self.dir = Path(run_path) / TRACKER_DIR
        self.logged: set[int] = set()
        if report_to in ("none", "", None) or rank != 0:
            return
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS  # heavy (torch): only when tracking

        cls = LOGGER_TYPE_TO_CLASS.get(report_to)
        if cls is None:
            raise R3VError(f"train.report_to: {report_to!r} is not a tracker accelerate knows "
                           f"({', '.join(sorted(LOGGER_TYPE_TO_CLASS))}, or none)")
        self.dir.mkdir(parents=True, exist_ok=True)
        logged = self.dir / LOGGED
        self.logged = set(json.loads(logged.read_text())) if logged.is_file() else set()
        self.tracker = (cls(run_name, str(self.dir)) if cls.requires_logging_directory
                        else cls(run_name))
        self.tracker.start()
        if not self.logged:  # the recipe as the run's hyper-parameters, once
            self.tracker.store_init_configuration(_scalars(config))

    @property
    def active(self) -> bool:
        return self.tracker is not None

    def log_iteration(self, entry: dict[str, Any], compute: dict[str, int] | None) -> None:
        """Log one finished iteration at its step (once per run, also across restarts)."""
        t = int(entry["iteration"])
        if self.tracker is None or t in self.logged:
            return
        self.tracker.log(iteration_figures(entry, compute), step=t)
        self.logged.add(t)
        (self.dir / LOGGED).write_text(json.dumps(sorted(self.logged)))

    def finish(self) -> None:
        if self.tracker is not None:
            self.tracker.finish()
            self.tracker = None


def _scalars(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested recipe as flat ``section.key`` hyper-parameters of tracker-friendly types."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_scalars(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif value is not None:
            out[name] = str(value)
    return out
