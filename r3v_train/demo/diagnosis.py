"""What the saved outcomes show about *why* the demo's methods differ, across seeds:

- **where the gain is**: each method's greedy accuracy per difficulty level (the frontier of
  its last evaluated iteration, :mod:`r3v_eval.leaderboard.frontier`), mean ± sd over seeds;
- **whether self-select discriminates**: select@3 against majority@3 on the same three
  samples, split by how the three candidates' answers agree and how many are right. On a 2-1
  split majority@3 always takes the pair; select@3 takes the odd one out at some rate. If that
  rate is the same whether the odd one out is right or wrong, the model's choice is not telling
  right chains from wrong ones, and majority voting (which needs no training) wins.

Both read the run folders an ``r3v demo`` writes (``warmup/``, ``star/``, ``r3v/``,
``control/``); :func:`r3v_train.demo.claims.report` prints them under its tables.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Sequence

from r3v_eval import run_files
from r3v_eval.leaderboard.frontier import read_frontier, read_outcomes

#: the candidates' agreement on a question: the sizes of its groups of equal (parseable) answers
SPLITS = {(3,): "all three agree", (2, 1): "2-1 split", (1, 1, 1): "three different answers"}


def split_name(split: tuple[int, ...], n: int = 3) -> str:
    """``(2, 1)`` -> "2-1 split"; a split with unparseable candidates says how many."""
    missing = n - sum(split)
    if not missing and split in SPLITS:
        return SPLITS[split]
    if not split:
        return f"all {n} unparseable"
    return f"{'-'.join(map(str, split))}, {missing} unparseable"


def mean_sd(values: Sequence[float], each: str = ".1f") -> str:
    """``"mean ± sd (v1 / v2 / ...)"``: the across-seed form of every figure in the report."""
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {sd:.1f} ({' / '.join(format(v, each) for v in values)})"


def _last(frontier) -> dict[int, float]:
    t = max(frontier.levels)
    return {lv: frontier.accuracy(t, lv) for lv in frontier.all_levels()}


def frontier_lines(folders: Sequence[Path], runs: Sequence[str]) -> list[str]:
    """Markdown: greedy accuracy per level of each run's last evaluation, mean ± sd (per seed);
    [] when no run carries levels."""
    per: dict[str, list[dict[int, float]]] = {}
    for folder in folders:
        for run in runs:
            f = read_frontier(Path(folder) / run, run)
            if f is not None:
                per.setdefault(run, []).append(_last(f))
    per = {run: v for run, v in per.items() if len(v) == len(folders)}
    if not per:
        return []
    levels = sorted({lv for v in per.values() for d in v for lv in d})
    lines = ["", "Where the gains are: greedy accuracy per difficulty level of each method's "
             "last evaluation (%; mean ± sd, then each seed):", "",
             "| method | " + " | ".join(f"level {lv}" for lv in levels) + " |",
             "|:--|" + "--:|" * len(levels)]
    for run, values in per.items():
        cells = []
        for lv in levels:
            xs = [100 * d[lv] for d in values if d.get(lv) is not None]
            cells.append("–" if len(xs) != len(values) else mean_sd(xs, ".0f"))
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return lines


def selection_counts(run: Path, n: int = 3) -> Counter:
    """``(split, right candidates, select right, majority right) -> questions`` over the last
    evaluation of ``run``, from its select@n and majority@n outcomes (the same n samples)."""
    path = run_files.last_iteration_file(run, run_files.EVAL_OUTCOMES)
    if path is None:
        return Counter()
    lines = read_outcomes(path)
    select = {x["problem_id"]: x for x in lines if x.get("metric") == f"select@{n}"}
    majority = {x["problem_id"]: x for x in lines if x.get("metric") == f"majority@{n}"}
    out: Counter = Counter()
    for q, s in select.items():
        m = majority.get(q)
        if m is None or not s.get("candidates") or m.get("candidates") != s["candidates"]:
            continue  # not the same samples: no paired reading
        answers = [a for a in s["candidate_answers"] if a is not None]  # None: unparseable
        split = tuple(sorted(Counter(answers).values(), reverse=True))
        out[(split, sum(map(bool, s["candidate_correct"])), bool(s["correct"]),
             bool(m["correct"]))] += 1
    return out


def selection_lines(folders: Sequence[Path], run: str = "r3v") -> list[str]:
    """Markdown: select@3 against majority@3 by the candidates' agreement, summed over seeds;
    [] when no seed has both."""
    total: Counter = Counter()
    for folder in folders:
        total += selection_counts(Path(folder) / run)
    if not total:
        return []
    lines = ["", f"Self-select against majority vote ({run}'s select@3 and majority@3 on the same "
             "three samples, questions summed over the seeds):", "",
             "| the three candidates | questions | select@3 right | majority@3 right |",
             "|:--|--:|--:|--:|"]

    def tally(split: tuple[int, ...], right: int) -> tuple[int, int, int]:
        """Questions with this split and this many right candidates: asked, select right,
        majority right."""
        cell = [(k, v) for k, v in total.items() if k[0] == split and k[1] == right]
        return (sum(v for _, v in cell), sum(v for k, v in cell if k[2]),
                sum(v for k, v in cell if k[3]))

    order = list(SPLITS) + sorted({k[0] for k in total} - set(SPLITS), key=lambda s: (-sum(s), s))
    for split in order:
        for right in range(0, 4):
            asked, sel, maj = tally(split, right)
            if asked:
                lines.append(f"| {split_name(split)}, {right} right | {asked} | {sel} | {maj} |")
    # on a 2-1 split with one right candidate the odd one out is right; with two, it is wrong
    odd_right, odd_taken_right, _ = tally((2, 1), 1)
    odd_wrong, pair_taken, _ = tally((2, 1), 2)
    odd_taken_wrong = odd_wrong - pair_taken
    if odd_right and odd_wrong:
        lines += ["", f"On a 2-1 split select@3 takes the odd answer out in "
                  f"{100 * odd_taken_right / odd_right:.0f} % of the questions where it is the "
                  f"right one and in {100 * odd_taken_wrong / odd_wrong:.0f} % of those where it "
                  "is wrong (a choice blind to rightness takes it equally often in both)."]
    return lines
