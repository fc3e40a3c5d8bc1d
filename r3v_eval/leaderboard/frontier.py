"""The frontier: greedy accuracy per difficulty level, per run and iteration.

Benchmarks whose problems carry a difficulty level (``Problem.meta["level"]``: an int, higher
is harder) write it into every evaluation outcome (:class:`r3v_eval.strategies.Outcome`
``level``). This module reads a run folder's ``iter_<t>/eval_outcomes.jsonl`` (the greedy
outcomes of every evaluated iteration) and counts right / asked per level, so that a reader
sees *where* a method gained: in an easy-to-hard world the line of each self-training
iteration should move right, past the levels the warm-up's teacher rationales covered.

A run whose outcomes carry no level (older runs, benchmarks without levels) has no frontier;
the leaderboard then prints no frontier table and draws no frontier plot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r3v_eval import run_files
from r3v_eval.leaderboard.records import LeaderboardError
from r3v_eval.leaderboard.tables import Table
from r3v_eval.metric_names import GREEDY

#: a level's right and asked counts
Counts = tuple[int, int]


@dataclass
class RunFrontier:
    """Greedy right / asked per level for each evaluated iteration of one run."""

    label: str
    source: Path
    levels: dict[int, dict[int, Counts]] = field(default_factory=dict)  # iteration -> level -> counts

    def accuracy(self, iteration: int, level: int) -> float | None:
        right, asked = self.levels.get(iteration, {}).get(level, (0, 0))
        return right / asked if asked else None

    def all_levels(self) -> list[int]:
        return sorted({lv for per in self.levels.values() for lv in per})


def count_levels(lines: list[dict[str, Any]], where: str) -> dict[int, Counts]:
    """Right / asked per level over the greedy outcomes among ``lines`` (outcomes of another
    metric are ignored; a greedy outcome without a level makes the whole file level-less:
    ``{}``)."""
    counts: dict[int, list[int]] = {}
    for i, line in enumerate(lines, 1):
        if line.get("metric", GREEDY) != GREEDY:
            continue
        level = line.get("level")
        if level is None:
            return {}
        if isinstance(level, bool) or not isinstance(level, int):
            raise LeaderboardError(f"{where}: line {i}: level must be an int, got {level!r}")
        c = counts.setdefault(level, [0, 0])
        c[0] += bool(line.get("correct"))
        c[1] += 1
    return {lv: (c[0], c[1]) for lv, c in sorted(counts.items())}


def read_outcomes(path: Path) -> list[dict[str, Any]]:
    """The outcomes of one ``eval_outcomes.jsonl``, one dict per line (blank lines skipped); a
    line that is not JSON is an error naming the file and the line."""
    lines = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.strip():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError as e:
                raise LeaderboardError(f"{path}: line {n} is not JSON ({e.msg})") from e
    return lines


def read_frontier(folder: Path, label: str) -> RunFrontier | None:
    """The frontier of run folder ``folder`` (None when no evaluated iteration has levels).
    A run that shares a warm-up (``run.warmup_from``) takes its iteration 0 from the warm-up's
    folder, so its panel shows where self-training started."""
    frontier = RunFrontier(label, Path(folder))
    files = run_files.iteration_files(folder, run_files.EVAL_OUTCOMES)
    warmup = run_files.shared_warmup(Path(folder))
    if warmup is not None and all(t != 0 for t, _ in files):
        files = [(t, p) for t, p in run_files.iteration_files(warmup, run_files.EVAL_OUTCOMES)
                 if t == 0] + files
    for t, path in files:
        per = count_levels(read_outcomes(path), str(path))
        if per:
            frontier.levels[t] = per
    return frontier if frontier.levels else None


def frontier_table(frontiers: list[RunFrontier]) -> Table | None:
    """Greedy accuracy (%) per level: one row per (run, evaluated iteration)."""
    frontiers = [f for f in frontiers if f.levels]
    if not frontiers:
        return None
    levels = sorted({lv for f in frontiers for lv in f.all_levels()})
    table = Table("the frontier: greedy accuracy per difficulty level (%)", GREEDY,
                  [f"level {lv}" for lv in levels], [], with_avg=False, row_header="run, iteration")
    for f in frontiers:
        for t in sorted(f.levels):
            cells = [None if f.accuracy(t, lv) is None else 100 * f.accuracy(t, lv) for lv in levels]
            table.rows.append((f"{f.label}, iter {t}", "run", cells, None,
                               sum(v is not None for v in cells)))
    asked = {lv: max(f.levels[t].get(lv, (0, 0))[1] for f in frontiers for t in f.levels)
             for lv in levels}
    table.notes.append("questions per level: " + ", ".join(f"{lv}: {n}" for lv, n in asked.items()))
    return table


def plot_frontier(frontiers: list[RunFrontier], path: Path) -> Path:
    """One panel per run, one line per evaluated iteration (x: level, y: greedy accuracy): in
    an easy-to-hard world the later iterations' lines should lie further right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frontiers = [f for f in frontiers if f.levels]
    if not frontiers:
        raise LeaderboardError("no run with per-level outcomes to plot")
    levels = sorted({lv for f in frontiers for lv in f.all_levels()})
    cols = min(3, len(frontiers))
    rows = (len(frontiers) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False,
                             sharey=True)
    for ax, f in zip([a for row in axes for a in row], frontiers):
        iterations = sorted(f.levels)
        cmap = plt.get_cmap("viridis")
        for k, t in enumerate(iterations):
            xs = [lv for lv in levels if f.accuracy(t, lv) is not None]
            ax.plot(xs, [100 * f.accuracy(t, lv) for lv in xs], marker="o",
                    color=cmap(k / max(1, len(iterations) - 1)), label=f"iter {t}")
        ax.set_title(f.label, fontsize=9)
        ax.set_xticks(levels)
        ax.set_xlabel("difficulty level")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in [a for row in axes for a in row][len(frontiers):]:
        ax.axis("off")
    axes[0][0].set_ylabel("greedy accuracy (%)")
    fig.suptitle("the frontier: accuracy per level, one line per iteration", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
