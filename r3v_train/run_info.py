"""A finished (or partly finished) run folder, read back: what `r3v export` and `r3v export-data`
need to know about a run, and the per-iteration table both of their cards show.

Nothing here loads a model: the folder's files are named in :mod:`r3v_eval.run_files`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from r3v_eval import run_files
from r3v_eval.errors import R3VError

#: the columns of the per-iteration table: evaluation figures first, then pool and example counts
EVAL_ORDER = ("greedy", "majority", "select", "pass")
COUNT_COLUMNS = (("pool", "positives"), ("pool", "negatives"), ("examples", "sft"),
                 ("examples", "refine"), ("examples", "select"))


@dataclass
class RunInfo:
    """One run folder: its resolved recipe (``config.yaml``), its summary (``metrics.json``, None
    while the run has not finished) and the iterations with a finished training stage."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any] | None

    @property
    def method(self) -> str:
        return str((self.config.get("run") or {}).get("method") or "r3v")

    @property
    def benchmark(self) -> str:
        return str((self.config.get("data") or {}).get("benchmark") or "?")

    def trained(self) -> dict[int, Path]:
        """Iteration -> its final training stage folder (``dpo_model`` after STaR+DPO's SFT,
        else ``model``), for every iteration whose stage finished (``DONE``)."""
        out: dict[int, Path] = {}
        for d in self.path.glob(f"{run_files.ITER_PREFIX}*"):
            t = run_files.iter_number(d.name)
            if t is None:
                continue
            for name in (run_files.DPO_MODEL, run_files.MODEL):
                if (d / name / run_files.DONE).is_file():
                    out[t] = d / name
                    break
        return dict(sorted(out.items()))

    def stage(self, iteration: int | None) -> tuple[int, Path]:
        """``(t, stage folder)`` of ``iteration`` (None: the last trained one); a clear error
        when the run has no trained model or not that iteration."""
        trained = self.trained()
        if not trained:
            raise R3VError(f"{self.path}: no trained model in this run (no "
                           f"iter_<t>/{run_files.MODEL}/{run_files.DONE}); run `r3v train` first")
        if iteration is None:
            return max(trained), trained[max(trained)]
        if iteration not in trained:
            raise R3VError(f"--iteration {iteration}: {self.path} has no trained iteration "
                           f"{iteration} (trained: {', '.join(map(str, trained))})")
        return iteration, trained[iteration]

    def history(self) -> list[dict[str, Any]]:
        """Per-iteration records: ``metrics.json``'s history, or, while the run is unfinished,
        one record per ``iter_<t>/eval.json``."""
        if self.summary and self.summary.get("history"):
            return list(self.summary["history"])
        return [{"iteration": t, "metrics": json.loads(path.read_text())["metrics"]}
                for t, path in run_files.iteration_files(self.path, run_files.EVAL)]

    def compute(self) -> dict[str, int] | None:
        return (self.summary or {}).get("compute")


def read_run(path: str | Path) -> RunInfo:
    """The run folder at ``path``; a clear error when it is not one."""
    path = Path(path)
    cfg_file = path / run_files.CONFIG
    if not path.is_dir() or not cfg_file.is_file():
        raise R3VError(f"{path} is not an r3v run folder (no {run_files.CONFIG}); give the "
                       "run.out_dir of an `r3v train` run")
    try:
        config = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise R3VError(f"{cfg_file}: not a readable recipe ({type(exc).__name__})") from None
    if not isinstance(config, dict):
        raise R3VError(f"{cfg_file}: not a resolved recipe (a mapping of sections)")
    metrics = path / run_files.METRICS
    summary = json.loads(metrics.read_text()) if metrics.is_file() else None
    return RunInfo(path=path, config=config, summary=summary)


def _eval_columns(history: list[dict[str, Any]]) -> list[str]:
    names = {k for h in history for k in (h.get("metrics") or {})}

    def order(name: str) -> tuple[int, int, str]:
        base, _, n = name.partition("@")
        rank = EVAL_ORDER.index(base) if base in EVAL_ORDER else len(EVAL_ORDER)
        return (rank, int(n) if n.isdigit() else 0, name)

    return sorted(names, key=order)


def iteration_table(history: list[dict[str, Any]]) -> str:
    """A Markdown table, one row per iteration: accuracy in % of every evaluated metric, then
    the pool's positives / negatives and the SFT / refine / select examples trained on."""
    evals = _eval_columns(history)
    counts = [(s, k) for s, k in COUNT_COLUMNS if any((h.get(s) or {}).get(k) for h in history)]
    head = ["iteration", *evals, *(f"{k} ({s})" for s, k in counts)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(":--" if i == 0 else "--:"
                                                          for i in range(len(head))) + "|"]
    for h in history:
        metrics = h.get("metrics") or {}
        cells = [str(h.get("iteration"))]
        cells += [f"{100 * metrics[m]:.1f}" if isinstance(metrics.get(m), (int, float)) else ""
                  for m in evals]
        cells += [str((h.get(s) or {}).get(k, "")) for s, k in counts]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compute_lines(compute: dict[str, int] | None) -> str:
    """The run's compute counts as a Markdown list (or why there are none)."""
    if not compute:
        return "Not recorded: the run has not finished (`metrics.json` is written at its end)."
    names = {"generated_samples": "replies generated for training",
             "generated_tokens": "tokens of those replies",
             "optimizer_steps": "optimizer steps (every training stage of the run)"}
    return "\n".join(f"- {names.get(k, k)}: {v:,}" for k, v in compute.items())
