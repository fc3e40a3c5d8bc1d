"""Learning curves of r3v runs, read from their folders' ``metrics.json``:

- greedy accuracy per iteration (iteration 0 = the warm-up), one row per run;
- majority@N, select@N and pass@N as N grows, for every run whose last evaluation reports
  them at several N (``eval.ns``: one set of samples, so the points are comparable).

:mod:`r3v_eval.leaderboard` prints these tables under the main ones and draws their plots.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r3v_eval import run_files
from r3v_eval.metric_names import GREEDY, SAMPLED_FAMILIES, parse_at
from r3v_eval.leaderboard.tables import Table


@dataclass
class RunCurve:
    label: str
    source: Path
    greedy: dict[int, float]           # iteration -> greedy accuracy (0..1)
    final: dict[str, float]            # the last evaluation's metrics

    def sweep(self) -> dict[str, dict[int, float]]:
        """``{family: {N: accuracy}}`` of the last evaluation (families with >= 2 N only)."""
        out: dict[str, dict[int, float]] = {}
        for key, value in self.final.items():
            parsed = parse_at(key)
            if parsed:
                out.setdefault(parsed[0], {})[parsed[1]] = value
        return {f: v for f, v in out.items() if len(v) >= 2}


def read_curve(folder: Path, label: str) -> RunCurve | None:
    """A finished run's curve (None for an unfinished run, which has no ``metrics.json``)."""
    path = folder / run_files.METRICS
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    greedy = {int(h["iteration"]): float(h["metrics"][GREEDY])
              for h in data.get("history", [])
              if isinstance(h.get("metrics"), dict) and GREEDY in h["metrics"]}
    return RunCurve(label, path, greedy, dict(data.get("final") or {}))


def iteration_table(curves: list[RunCurve]) -> Table | None:
    """Greedy accuracy (%) per iteration; None when no run evaluated two iterations."""
    curves = [c for c in curves if c.greedy]
    iterations = sorted({t for c in curves for t in c.greedy})
    if not any(len(c.greedy) > 1 for c in curves):
        return None
    table = Table("greedy accuracy per iteration (%; iteration 0 = the warm-up)", "greedy",
                  [f"iter {t}" for t in iterations], [], with_avg=False, row_header="run")
    for c in curves:
        cells = [100 * c.greedy[t] if t in c.greedy else None for t in iterations]
        table.rows.append((c.label, "run", cells, None, sum(v is not None for v in cells)))
    return table


def sweep_tables(curves: list[RunCurve]) -> list[Table]:
    """For each run with a sweep: majority / select / pass (%) as N grows."""
    tables = []
    for c in curves:
        sweep = c.sweep()
        if not sweep:
            continue
        ns = sorted({n for v in sweep.values() for n in v})
        table = Table(f"{c.label}: majority / select / pass as N grows (%; one set of "
                      f"{max(ns)} samples per question)", "sweep", [f"N={n}" for n in ns], [],
                      with_avg=False, row_header="metric")
        for family in SAMPLED_FAMILIES:
            if family in sweep:
                cells = [100 * sweep[family][n] if n in sweep[family] else None for n in ns]
                table.rows.append((f"{family}@N", "sweep", cells, None, len(cells)))
        tables.append(table)
    return tables


def plot_iterations(curves: list[RunCurve], path: Path) -> Path:
    plt, fig, ax = _axes()
    for c in curves:
        if c.greedy:
            xs = sorted(c.greedy)
            dashed = len(xs) <= 2 and xs[0] == 0  # a warm-up or a control: a reference line
            ax.plot(xs, [100 * c.greedy[t] for t in xs], "--" if dashed else "-", marker="o",
                    label=c.label)
    iterations = sorted({t for c in curves for t in c.greedy})
    return _finish(plt, fig, ax, iterations, "iteration", "greedy CoT accuracy (%)",
                   "accuracy per iteration", path)


def plot_sweeps(curves: list[RunCurve], path: Path) -> Path:
    plt, fig, ax = _axes()
    ns: set[int] = set()
    for c in curves:
        for family, marker in zip(SAMPLED_FAMILIES, "os^"):
            points = c.sweep().get(family)
            if points:
                xs = sorted(points)
                ns.update(xs)
                ax.plot(xs, [100 * points[n] for n in xs], marker=marker,
                        linestyle=":" if family == "pass" else "-", label=f"{c.label} {family}@N")
    return _finish(plt, fig, ax, sorted(ns), "N (samples per question)", "accuracy (%)",
                   "select@N vs majority@N", path)


def _axes() -> tuple[Any, Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    return plt, fig, ax


def _finish(plt, fig, ax, xticks, xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    ax.set_xticks(xticks)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
