"""The demo's evidence across seeds: every figure as mean ± sd with the seeds' own values, and
the demo's claims checked in each seed, not on average (the demo is judged on seeds that are
not in the README, so a claim that holds on average only is not a result).

Input: the output folders of ``r3v demo`` (one per seed; each holds the run folders
``warmup/``, ``star/``, ``r3v/``, ``control/``, ...). The numbers are read from the runs'
``metrics.json`` by the leaderboard's own reader (:func:`r3v_eval.leaderboard.load_rows`), so
they are the figures the per-seed leaderboards show. The per-question outcomes of each run's
last evaluation (``iter_<t>/eval_outcomes.jsonl``) give paired differences: two methods answer
the same test questions, so a gain is judged against its paired standard error (the sd of the
per-question differences over sqrt(n)), not against the spread of two independent accuracies.

    r3v demo --seeds 0 1 2 --out r3v_demo          # runs r3v_demo/seed_<S>, then this report
    r3v demo-report r3v_demo/seed_0 r3v_demo/seed_1 r3v_demo/seed_2 --out seeds.md
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from r3v_eval import run_files
from r3v_eval.errors import R3VError
from r3v_eval.leaderboard import load_rows
from r3v_eval.leaderboard.frontier import read_outcomes
from r3v_eval.metric_names import parse_at
from r3v_train.demo.diagnosis import frontier_lines, mean_sd, selection_lines

#: the figures of the across-seed table, per method
FIGURES = ("greedy", "majority@3", "select@3", "pass@3")
#: what a run spent on training (metrics.json "compute", r3v_train/compute.py)
COMPUTE = ("generated_samples", "generated_tokens", "optimizer_steps")
#: the methods' order in the tables (any other run name follows)
ORDER = ("warmup", "star", "r3v", "r3v_no_refine", "r3v_no_select", "grpo", "control")


class DemoReportError(R3VError):
    """A demo folder that cannot be summarised (named in the message)."""


#: how many paired standard errors a gain must clear (the fallback demo's claims)
SE_BAR = 2.0


class Seed(dict):
    """One seed's figures: run name -> metric -> percent; ``outcomes``: run name -> metric ->
    problem id -> right (the run's last evaluation, one entry per test question)."""

    def __init__(self, figures=(), outcomes=None) -> None:
        super().__init__(figures)
        self.outcomes: dict[str, dict[str, dict[str, bool]]] = dict(outcomes or {})


@dataclass(frozen=True)
class Paired:
    """``a`` minus ``b`` on the same questions: mean difference and its standard error, in points."""

    diff: float
    se: float
    n: int


def paired(seed: Seed, a: tuple[str, str], b: tuple[str, str]) -> Paired | None:
    """The paired difference of two (run, metric) outcomes over the questions both answered
    (None when either is missing). Different question sets are an error, not a silent subset."""
    x = seed.outcomes.get(a[0], {}).get(a[1])
    y = seed.outcomes.get(b[0], {}).get(b[1])
    if not x or not y:
        return None
    if set(x) != set(y):
        raise DemoReportError(f"{a[0]} and {b[0]} were evaluated on different questions "
                              f"({len(set(x) ^ set(y))} not shared): paired figures need the same test split")
    d = [int(x[q]) - int(y[q]) for q in sorted(x)]
    sd = statistics.stdev(d) if len(d) > 1 else 0.0
    return Paired(100.0 * statistics.fmean(d), 100.0 * sd / math.sqrt(len(d)), len(d))


@dataclass(frozen=True)
class Claim:
    """One claim of the demo: ``margin`` is how far a seed's figures clear the bar (>= 0
    holds; None when the seed lacks a figure it needs). ``over_seeds``: the claim is on the
    mean of the seeds' margins (its row still shows each seed's)."""

    text: str
    margin: Callable[[Seed], float | None]
    over_seeds: bool = False


def _get(seed: Seed, run: str, metric: str) -> float | None:
    return seed.get(run, {}).get(metric)


def _beats_by_se(seed: Seed, a: str, b: str) -> float | None:
    """How far ``a``'s greedy gain over ``b`` clears :data:`SE_BAR` paired standard errors."""
    p = paired(seed, (a, "greedy"), (b, "greedy"))
    return None if p is None else round(p.diff - SE_BAR * p.se, 6)


def _diff(seed: Seed, a: tuple[str, str], b: tuple[str, str]) -> float | None:
    x, y = _get(seed, *a), _get(seed, *b)
    if x is None or y is None:
        return None
    return round(x - y, 6)  # percentages of whole questions: no float crumbs


#: the claims of the shipped demo (the easy-to-hard issue's fallback: an in-distribution world,
#: docs/demo/README.md), each to hold in every seed unless it says "on the mean over seeds"
CLAIMS = (
    Claim("R3V greedy - warm-up >= 2 paired SE", lambda s: _beats_by_se(s, "r3v", "warmup")),
    Claim("R3V greedy - label-matched control >= 2 paired SE",
          lambda s: _beats_by_se(s, "r3v", "control")),
    Claim("R3V greedy >= STaR greedy on the mean over seeds",
          lambda s: _diff(s, ("r3v", "greedy"), ("star", "greedy")), over_seeds=True),
)
#: the paired differences the report shows per seed (item 4 of the easy-to-hard issue)
DIFFERENCES = (
    ("R3V - warm-up (greedy)", ("r3v", "greedy"), ("warmup", "greedy")),
    ("R3V - control (greedy)", ("r3v", "greedy"), ("control", "greedy")),
    ("R3V - STaR (greedy)", ("r3v", "greedy"), ("star", "greedy")),
    ("select@3 - majority@3 (R3V)", ("r3v", "select@3"), ("r3v", "majority@3")),
)


def read_seed(folder: str | Path) -> Seed:
    """The percentages of every run in one ``r3v demo`` output folder (its only benchmark)."""
    folder = Path(folder)
    runs = sorted(p.parent for p in folder.glob(f"*/{run_files.METRICS}"))
    if not runs:
        raise DemoReportError(f"{folder}: no finished run (no */metrics.json); is it the --out "
                              "folder of an r3v demo?")
    rows, _ = load_rows(runs)
    seed = Seed(outcomes={run.name: last_outcomes(run) for run in runs})
    for row in rows:
        if len(row.cells) != 1:
            raise DemoReportError(f"{folder}: run {row.label!r} covers {len(row.cells)} "
                                  "benchmarks; a demo run has one")
        (bench,) = row.cells
        seed[row.label] = {m: row.value(bench, m) for m in row.metric_names()
                           if row.value(bench, m) is not None}
        for key, value in (row.cells[bench].compute or {}).items():
            seed[row.label][f"compute:{key}"] = float(value)
    return seed


def last_outcomes(run: Path) -> dict[str, dict[str, bool]]:
    """metric -> problem id -> right, from the run's last evaluated iteration ({} when none)."""
    path = run_files.last_iteration_file(run, run_files.EVAL_OUTCOMES)
    if path is None:
        return {}
    out: dict[str, dict[str, bool]] = {}
    for n, line in enumerate(read_outcomes(path), 1):
        try:
            out.setdefault(str(line["metric"]), {})[str(line["problem_id"])] = bool(line["correct"])
        except (KeyError, TypeError) as e:
            raise DemoReportError(f"{path}: outcome {n} is not an outcome ({e})") from None
    return out


def _ordered(names: set[str]) -> list[str]:
    return [n for n in ORDER if n in names] + sorted(names - set(ORDER))


def report(folders: Sequence[str | Path]) -> tuple[str, bool]:
    """Markdown of the across-seed figures and the claims per seed; and whether every claim
    holds in every seed."""
    if not folders:
        raise DemoReportError("give at least one r3v demo output folder")
    seeds = [read_seed(f) for f in folders]
    names = [Path(f).absolute().name for f in folders]  # "." names its folder
    lines = [f"# The demo over {len(seeds)} seed(s): {', '.join(names)}", "",
             "Percent on each seed's test questions; mean ± sd over the seeds, then each seed's "
             "value in the order above.", "",
             "| method | " + " | ".join(FIGURES) + " |", "|:--|" + "--:|" * len(FIGURES)]
    for run in _ordered({r for s in seeds for r in s}):
        cells = []
        for figure in FIGURES:
            values = [s.get(run, {}).get(figure) for s in seeds]
            cells.append(mean_sd(values) if all(v is not None for v in values) else "–")
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    sweep = sorted({m for s in seeds for m in s.get("r3v", {}) if parse_at(m)}, key=parse_at)
    if sweep:
        lines += ["", "R3V's final model as N grows (mean ± sd, per seed):", "",
                  "| figure | value |", "|:--|--:|"]
        for m in sweep:
            values = [s.get("r3v", {}).get(m) for s in seeds]
            if all(v is not None for v in values):
                lines.append(f"| {m} | {mean_sd(values)} |")
    compute = [(run, key) for run in _ordered({r for s in seeds for r in s})
               for key in COMPUTE if all(f"compute:{key}" in s.get(run, {}) for s in seeds)]
    if compute:
        lines += ["", "Training compute (mean over the seeds; see the per-seed leaderboards):", "",
                  "| method | " + " | ".join(k.replace("_", " ") for k in COMPUTE) + " |",
                  "|:--|" + "--:|" * len(COMPUTE)]
        for run in dict.fromkeys(r for r, _ in compute):
            cells = [f"{statistics.fmean(s[run][f'compute:{k}'] for s in seeds):,.0f}"
                     if (run, k) in compute else "–" for k in COMPUTE]
            lines.append(f"| {run} | " + " | ".join(cells) + " |")
    diffs = [(text, [paired(s, a, b) for s in seeds]) for text, a, b in DIFFERENCES]
    if any(p is not None for _, ps in diffs for p in ps):
        lines += ["", "Paired differences on the same test questions, in points (± one paired "
                  "standard error), seed by seed:", "",
                  "| difference | " + " | ".join(names) + " | mean |",
                  "|:--|" + "--:|" * (len(names) + 1)]
        for text, ps in diffs:
            cells = ["n/a" if p is None else f"{p.diff:+.1f} ± {p.se:.1f}" for p in ps]
            mean = (f"{statistics.fmean(p.diff for p in ps):+.1f}"
                    if all(p is not None for p in ps) else "n/a")
            lines.append(f"| {text} | " + " | ".join(cells) + f" | {mean} |")
    lines += frontier_lines([Path(f) for f in folders], _ordered({r for s in seeds for r in s}))
    lines += selection_lines([Path(f) for f in folders])
    lines += ["", "## The claims, seed by seed", "",
              "Margin in points by which each seed clears the claim's bar (negative: it fails); "
              "a claim on the mean over seeds holds when the mean of its margins does.", "",
              "| claim | " + " | ".join(names) + " | holds |",
              "|:--|" + "--:|" * len(names) + ":--|"]
    every = True
    for claim in CLAIMS:
        margins = [claim.margin(s) for s in seeds]
        known = all(m is not None for m in margins)
        if claim.over_seeds:
            ok = known and statistics.fmean(margins) >= 0
            verdict = f"{'yes' if ok else '**no**'} (mean " + (
                f"{statistics.fmean(margins):+.1f})" if known else "n/a)")
        else:
            ok = known and all(m >= 0 for m in margins)
            verdict = "yes" if ok else "**no**"
        every &= ok
        cells = ["n/a" if m is None else f"{m:+.1f}" for m in margins]
        lines.append(f"| {claim.text} | " + " | ".join(cells) + f" | {verdict} |")
    lines.append("")
    return "\n".join(lines), every
