"""The demo's evidence across seeds: every figure as mean ± sd with the seeds' own values, and
the demo's claims checked in each seed, not on average (the demo is judged on seeds that are
not in the README, so a claim that holds on average only is not a result).

Input: the output folders of ``r3v demo`` (one per seed; each holds the run folders
``warmup/``, ``star/``, ``r3v/``, ``control/``, ...). The numbers are read from the runs'
``metrics.json`` by the leaderboard's own reader (:func:`r3v_eval.leaderboard.load_rows`), so
they are the figures the per-seed leaderboards show.

    r3v demo --seeds 0 1 2 --out r3v_demo          # runs r3v_demo/seed_<S>, then this report
    r3v demo-report r3v_demo/seed_0 r3v_demo/seed_1 r3v_demo/seed_2 --out seeds.md
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from r3v_eval import run_files
from r3v_eval.errors import R3VError
from r3v_eval.leaderboard import load_rows
from r3v_eval.metric_names import parse_at

#: the figures of the across-seed table, per method
FIGURES = ("greedy", "majority@3", "select@3", "pass@3")
#: what a run spent on training (metrics.json "compute", r3v_train/compute.py)
COMPUTE = ("generated_samples", "generated_tokens", "optimizer_steps")
#: the methods' order in the tables (any other run name follows)
ORDER = ("warmup", "star", "r3v", "r3v_no_refine", "r3v_no_select", "grpo", "control")


class DemoReportError(R3VError):
    """A demo folder that cannot be summarised (named in the message)."""


Seed = dict[str, dict[str, float]]  # run name -> metric -> percent


@dataclass(frozen=True)
class Claim:
    """One claim of the demo: ``margin`` is how far a seed's figures clear the bar (>= 0
    holds; None when the seed lacks a figure it needs)."""

    text: str
    margin: Callable[[Seed], float | None]


def _get(seed: Seed, run: str, metric: str) -> float | None:
    return seed.get(run, {}).get(metric)


def _diff(seed: Seed, a: tuple[str, str], b: tuple[str, str], bar: float = 0.0,
          strict: bool = False) -> float | None:
    x, y = _get(seed, *a), _get(seed, *b)
    if x is None or y is None:
        return None
    margin = round(x - y - bar, 6)  # percentages of whole questions: no float crumbs
    # a strict claim (">") needs a positive margin: report a tie as a (tiny) failure
    return margin - 1e-9 if strict and margin == 0 else margin


def _rising(seed: Seed, run: str, family: str) -> float | None:
    """The smallest step of ``family@N`` as N grows (> 0: rising at every step)."""
    at = sorted((parsed[1], v) for m, v in seed.get(run, {}).items()
                if (parsed := parse_at(m)) and parsed[0] == family)
    if len(at) < 2:
        return None
    return round(min(b[1] - a[1] for a, b in zip(at, at[1:])), 6) - 1e-9


#: the demo-world issue's claims, each to hold in every seed
CLAIMS = (
    Claim("R3V greedy >= warm-up + 10 points",
          lambda s: _diff(s, ("r3v", "greedy"), ("warmup", "greedy"), bar=10.0)),
    Claim("R3V greedy > matched-compute control + 3 points",
          lambda s: _diff(s, ("r3v", "greedy"), ("control", "greedy"), bar=3.0, strict=True)),
    Claim("R3V greedy >= STaR greedy", lambda s: _diff(s, ("r3v", "greedy"), ("star", "greedy"))),
    Claim("R3V select@3 > majority@3",
          lambda s: _diff(s, ("r3v", "select@3"), ("r3v", "majority@3"), strict=True)),
    Claim("R3V select@N rising with N", lambda s: _rising(s, "r3v", "select")),
)


def read_seed(folder: str | Path) -> Seed:
    """The percentages of every run in one ``r3v demo`` output folder (its only benchmark)."""
    folder = Path(folder)
    runs = sorted(p.parent for p in folder.glob(f"*/{run_files.METRICS}"))
    if not runs:
        raise DemoReportError(f"{folder}: no finished run (no */metrics.json); is it the --out "
                              "folder of an r3v demo?")
    rows, _ = load_rows(runs)
    seed: Seed = {}
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


def _mean_sd(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {sd:.1f} ({' / '.join(f'{v:.1f}' for v in values)})"


def _ordered(names: set[str]) -> list[str]:
    return [n for n in ORDER if n in names] + sorted(names - set(ORDER))


def report(folders: Sequence[str | Path]) -> tuple[str, bool]:
    """Markdown of the across-seed figures and the claims per seed; and whether every claim
    holds in every seed."""
    if not folders:
        raise DemoReportError("give at least one r3v demo output folder")
    seeds = [read_seed(f) for f in folders]
    names = [Path(f).name for f in folders]
    lines = [f"# The demo over {len(seeds)} seed(s): {', '.join(names)}", "",
             "Percent on each seed's test questions; mean ± sd over the seeds, then each seed's "
             "value in the order above.", "",
             "| method | " + " | ".join(FIGURES) + " |", "|:--|" + "--:|" * len(FIGURES)]
    for run in _ordered({r for s in seeds for r in s}):
        cells = []
        for figure in FIGURES:
            values = [s.get(run, {}).get(figure) for s in seeds]
            cells.append(_mean_sd(values) if all(v is not None for v in values) else "–")
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    sweep = sorted({m for s in seeds for m in s.get("r3v", {}) if parse_at(m)}, key=parse_at)
    if sweep:
        lines += ["", "R3V's final model as N grows (mean ± sd, per seed):", "",
                  "| figure | value |", "|:--|--:|"]
        for m in sweep:
            values = [s.get("r3v", {}).get(m) for s in seeds]
            if all(v is not None for v in values):
                lines.append(f"| {m} | {_mean_sd(values)} |")
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
    lines += ["", "## The claims, seed by seed", "",
              "Margin in points by which each seed clears the claim's bar (negative: it fails).", "",
              "| claim | " + " | ".join(names) + " | holds in every seed |",
              "|:--|" + "--:|" * len(names) + ":--|"]
    every = True
    for claim in CLAIMS:
        margins = [claim.margin(s) for s in seeds]
        ok = all(m is not None and m >= 0 for m in margins)
        every &= ok
        cells = ["n/a" if m is None else f"{m:+.1f}" for m in margins]
        lines.append(f"| {claim.text} | " + " | ".join(cells) + f" | {'yes' if ok else '**no**'} |")
    lines.append("")
    return "\n".join(lines), every
