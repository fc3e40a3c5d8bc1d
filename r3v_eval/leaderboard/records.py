"""What a leaderboard is made of: rows (a model or a run) of cells (its numbers on one
benchmark), metric lookup in the one vocabulary of :mod:`r3v_eval.metric_names`, and the
error type for inputs that cannot be read."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r3v_eval.errors import R3VError
from r3v_eval.metric_names import SAMPLED_FAMILIES, at, canonical, parse_at

#: column order: the paper's six tasks, then the OOD sets, then the local synthetic one
BENCHMARK_ORDER = ("tabmwp", "chartqa", "clevr_math", "miniwob", "geoqa", "m3cot", "mmmu",
                   "mathvista", "shapes")


class LeaderboardError(R3VError):
    """A user error: a path holding nothing readable, a bad file, an unknown baseline/metric."""


# ------------------------------------------------------------------ records
@dataclass
class Cell:
    """One row's numbers on one benchmark (fractions in [0, 1], or percent for references)."""

    metrics: dict[str, float]  # canonical ("accuracy", "greedy", "majority@3", ...) and raw names
    source: str
    date: str = ""
    note: str | None = None  # e.g. "2 of 500 documents (--limit)"
    own: str | None = None  # which metric "accuracy" is: "greedy", "select@3", ...
    compute: dict[str, int] | None = None  # r3v runs: what training spent (COMPUTE_COLUMNS)


@dataclass
class Row:
    label: str
    kind: str  # "lmms" | "run" | "reference"
    cells: dict[str, Cell] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    alt_label: str | None = None  # used when the label clashes with another row's
    percent: bool = False  # the numbers are already percentages (paper references)
    notes: list[str] = field(default_factory=list)

    def value(self, bench: str, metric: str) -> float | None:
        """The row's percentage for ``metric`` on ``bench`` (None when it has none)."""
        cell = self.cells.get(bench)
        if cell is None:
            return None
        v = resolve_metric(cell.metrics, metric)
        if v is None:
            return None
        return v if self.percent else 100.0 * v

    def metric_names(self) -> set[str]:
        return {k for c in self.cells.values() for k in c.metrics}


def normalize_metric(name: str) -> str:
    """User spelling -> the vocabulary of :mod:`r3v_eval.metric_names`."""
    return canonical(name)


def resolve_metric(metrics: dict[str, float], metric: str) -> float | None:
    """``metric`` (canonical) in one cell: an exact key, or a family ('select' -> 'select@3')."""
    if metric in metrics:
        return metrics[metric]
    if metric in SAMPLED_FAMILIES:
        n = family_n(metrics, metric)
        if n is not None:
            return metrics[at(metric, n)]
    return None


def family_n(metrics: dict[str, float], family: str) -> int | None:
    """The largest N the cell reports ``family@N`` for."""
    ns = [p[1] for p in map(parse_at, metrics) if p and p[0] == family]
    return max(ns) if ns else None


def bench_name(task: str) -> str:
    name = task.strip().lower()
    return name.removeprefix("r3v_")


def as_number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LeaderboardError(f"cannot read {what} {path}: {exc}") from None


def order_benchmarks(names: Iterable[str]) -> list[str]:
    names = set(names)
    known = [b for b in BENCHMARK_ORDER if b in names]
    return known + sorted(names - set(known))
