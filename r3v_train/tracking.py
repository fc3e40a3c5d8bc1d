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
``mlflow``, ``comet_ml``, ``aim``, ``clearml``, ``dvclive``, ``swanlab``, ``trackio`` (another
``report_to`` value: TRL's curves only, and a line in the log saying so). Only the main
process logs. TensorBoard logs at step ``t``; the others log ``iteration`` as a value (with
wandb, TRL's curves share the run, whose own step only grows, so ``eval/*`` ... are plotted
against ``iteration``; only TensorBoard is tested). A resumed run does not log an iteration
twice: the steps already logged are listed in ``<run folder>/runs/logged_steps.json``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Callable

from r3v_eval.errors import R3VError

LOGGED = "logged_steps.json"
TRACKER_DIR = "runs"
ITERATION = "iteration"
#: the tracker names' sections: history entry sections (in this order), then the compute counts
PREFIXES = ("eval", "pool", "examples", "skipped", "compute")


def iteration_figures(entry: dict[str, Any], compute: dict[str, int] | None) -> dict[str, float]:
    """One history entry of the loop (and the compute so far) as flat tracker scalars."""
    out: dict[str, float] = {}
    for section, prefix in zip(("metrics", "pool", "examples", "skipped"), PREFIXES):
        for key, value in (entry.get(section) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{prefix}/{key}"] = value
    for key, value in (compute or {}).items():
        out[f"{PREFIXES[-1]}/{key}"] = value
    return out


class LoopTracker:
    """The loop's tracker run (a no-op when ``report_to`` is ``none`` or off the main process)."""

    def __init__(self, report_to: str, run_path: Path, run_name: str, config: dict[str, Any],
                 rank: int = 0, say: Callable[[str], None] = print) -> None:
        self.tracker = None
        self.dir = Path(run_path) / TRACKER_DIR
        self.logged: set[int] = set()
        if report_to in ("none", "", None) or rank != 0:
            return
        from accelerate import PartialState  # heavy (torch): only when tracking
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        PartialState()  # accelerate's trackers log through its logger, which needs the state

        cls = LOGGER_TYPE_TO_CLASS.get(report_to)
        if cls is None:  # transformers reports to more places than accelerate knows
            say(f"train.report_to={report_to}: TRL reports the training curves; the loop's own "
                f"figures go to {', '.join(sorted(LOGGER_TYPE_TO_CLASS))} only (and metrics.json)")
            return
        if report_to == "tensorboard" and not any(
                importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
            raise R3VError("train.report_to: tensorboard needs the tensorboard package "
                           "(pip install 'r3v[tensorboard]')")
        self.dir.mkdir(parents=True, exist_ok=True)
        logged = self.dir / LOGGED
        self.logged = set(json.loads(logged.read_text())) if logged.is_file() else set()
        if cls.requires_logging_directory:
            self.tracker = cls(run_name, str(self.dir))
        elif report_to == "wandb":  # accelerate's first argument is wandb's project
            self.tracker = cls(os.environ.get("WANDB_PROJECT", "r3v"), name=run_name)
        else:
            self.tracker = cls(run_name)
        self.tracker.start()
        if not self.logged:  # the recipe as the run's hyper-parameters, once
            self.tracker.store_init_configuration(_scalars(config))
        if report_to == "wandb":  # one wandb run also holds TRL's curves: its own step axis
            for prefix in PREFIXES:
                self.tracker.tracker.define_metric(f"{prefix}/*", step_metric=ITERATION)

    @property
    def active(self) -> bool:
        return self.tracker is not None

    def log_iteration(self, entry: dict[str, Any], compute: dict[str, int] | None) -> None:
        """Log one finished iteration at its step (once per run, also across restarts)."""
        t = int(entry["iteration"])
        if self.tracker is None or t in self.logged:
            return
        figures = {ITERATION: t, **iteration_figures(entry, compute)}
        # TensorBoard: the iteration is the step (each writer has its own); wandb: a run's step
        # only grows, and TRL's curves share the run, so the iteration is an axis of its own
        self.tracker.log(figures, step=t if self.tracker.name == "tensorboard" else None)
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
