"""Leaderboard tables from evaluation outputs: lmms-eval result files and r3v run folders (what
``r3v train`` and ``r3v demo`` write), as Markdown (stdout or a file), CSV and PNG plots; run
folders add their learning curves (:mod:`r3v_eval.learning_curves`).

Inputs (files, or folders searched recursively)::

    <output_path>/<model>/<date>_results.json   lmms-eval: results[task]["<metric>,none"]
    <run>/metrics.json                          r3v train: {"method", "benchmark", "final", ...}
    <run>/config.yaml + iter_<t>/eval.json      an unfinished r3v run (latest evaluated iteration)

Rows are methods, columns are benchmarks (``r3v_`` prefix stripped) plus ``avg``; cells are
accuracy in percent. A row is

- for lmms-eval: the model name plus a short tag of its model args, e.g. ``r3v_select(n=3)`` or
  ``r3v_cot(chartqa_r3v/iter_4)`` for an adapter; files with the same model and model args
  (ignoring device / batch size) are one row, one column per task;
- for runs: the run's name (``run.name``, default its method); runs of one method on different benchmarks share the row, and
  when two runs of one method cover the same benchmark each is named by its folder;

Metrics are kept by family: ``greedy`` (Test@1), ``majority@N``, ``select@N``, ``pass@N`` (the
oracle), plus ``accuracy`` = each row's own answer (greedy for ``r3v_cot`` and for runs,
select@N for ``r3v_select``, majority@N for ``r3v_majority``). Any other metric name found in
the inputs (e.g. an lmms-eval task's own ``relaxed_overall``) can be chosen with ``metric=``.

A benchmark missing for a row shows ``–`` and is left out of that row's average (marked ``*``).
Deltas against a baseline row are percentage points computed from unrounded values; a row's
``avg`` delta is the mean of its per-benchmark deltas over the benchmarks both rows have.
The paper's numbers (``reference="qwen-vl"`` / ``"llava"``) come from secondary notes on the
paper (see R3V.md) and are always labelled "(paper, 2nd-hand)".
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r3v_eval.errors import R3VError
from r3v_eval.learning_curves import (
    RunCurve,
    iteration_table,
    plot_iterations,
    plot_sweeps,
    read_curve,
    sweep_tables,
)
from r3v_eval.metric_names import (
    ACCURACY,
    FAMILIES,
    GREEDY,
    LMMS_KEYS,
    SAMPLED_FAMILIES,
    at,
    canonical,
    parse_at,
)
from r3v_eval.tables import DASH, Table

SECOND_HAND = "(paper, 2nd-hand)"
FAMILY_TITLES = {"accuracy": "accuracy: each row's own answer",
                 "greedy": "greedy: chain-of-thought, Test@1",
                 "majority": "majority@N: majority vote over N samples",
                 "select": "select@N: test-time selection over N samples",
                 "pass": "pass@N: oracle, any of N samples correct"}
#: column order: the paper's six tasks, then the OOD sets, then the local synthetic one
BENCHMARK_ORDER = ("tabmwp", "chartqa", "clevr_math", "miniwob", "geoqa", "m3cot", "mmmu",
                   "mathvista", "shapes")
#: model args that do not change an lmms-eval model's answers (one row across them)
IGNORED_MODEL_ARGS = ("device", "batch_size", "max_batch_size")
#: lmms-eval wrappers: what their ``accuracy`` is
LMMS_ACCURACY_FAMILY = {"r3v_cot": "greedy", "r3v_majority": "majority", "r3v_select": "select"}
DEFAULT_N = 3  # r3v_eval.lmms.args.ModelArgs.n: the paper's N when model_args give none
#: adapter path parts that say nothing on their own (named together with their parent)
_GENERIC_PART = re.compile(r"^(model|dpo_model|adapter|lora|final|checkpoint(-\d+)?|iter_\d+)$")

# ------------------------------------------------------------------ the paper
#: Reported numbers (R3V.md, "Reported results"; marked there as secondary-source numbers).
PAPER = {
    "qwen-vl": {
        "backbone": "Qwen-VL",
        "per_task": {
            "GPT-distill": {"tabmwp": 62.30, "chartqa": 46.72, "clevr_math": 51.83,
                            "miniwob": 51.11, "geoqa": 31.43, "m3cot": 47.41},
            "R3V": {"tabmwp": 83.27, "chartqa": 57.36, "clevr_math": 68.81,
                    "miniwob": 82.89, "geoqa": 39.25, "m3cot": 54.66},
        },
        "avg6": {"zero-shot QA": 26.36, "zero-shot CoT": 25.80, "GPT-distill": 48.47,
                 "STaR": 59.28, "R3V": 64.37},
    },
    "llava": {
        "backbone": "LLaVA-1.5",
        "per_task": {},
        "avg6": {"zero-shot QA": 22.66, "zero-shot CoT": 19.37, "GPT-distill": 45.24,
                 "STaR": 55.81, "R3V": 59.03},
    },
}
REFERENCES = ("none", *PAPER)


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
        n = _family_n(metrics, metric)
        if n is not None:
            return metrics[at(metric, n)]
    return None


def _family_n(metrics: dict[str, float], family: str) -> int | None:
    """The largest N the cell reports ``family@N`` for."""
    ns = [p[1] for p in map(parse_at, metrics) if p and p[0] == family]
    return max(ns) if ns else None


def bench_name(task: str) -> str:
    name = task.strip().lower()
    return name.removeprefix("r3v_")


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LeaderboardError(f"cannot read {what} {path}: {exc}") from None


# --------------------------------------------------------------- lmms-eval
def parse_model_args(model_args: Any) -> dict[str, str]:
    """lmms-eval's ``key=value,...`` string (or a dict) -> {key: value-as-text}."""
    if isinstance(model_args, dict):
        return {str(k): str(v) for k, v in model_args.items()}
    out: dict[str, str] = {}
    for part in str(model_args or "").split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def adapter_name(path: str) -> str:
    """``runs/chartqa_r3v/iter_4/model`` -> ``chartqa_r3v/iter_4``; ``out/checkpoint-50`` ->
    ``out/checkpoint-50``; ``my-lora`` -> ``my-lora``."""
    parts = [p for p in re.split(r"[\\/]+", path.strip()) if p and p != "."]
    if not parts:
        return path
    keep = [parts.pop()]
    while _GENERIC_PART.match(keep[0]) and parts:
        keep.insert(0, parts.pop())
    if len(keep) > 1 and keep[-1] == "model":  # the run layout's SFT adapter folder
        keep.pop()
    return "/".join(keep)


def _short(value: str) -> str:
    value = value.rstrip("/\\")
    return re.split(r"[\\/]", value)[-1] if re.search(r"[\\/]", value) else value


def _lmms_label(model: str, args: dict[str, str], extra: Sequence[str] = ()) -> str:
    parts = []
    if model in ("r3v_majority", "r3v_select"):
        parts.append(f"n={args.get('n', DEFAULT_N)}")
    if args.get("adapter", "").lower() not in ("", "none", "null"):
        parts.append(adapter_name(args["adapter"]))
    for key in extra:
        value = args.get(key, "")
        parts.append(_short(value) if key in ("pretrained", "adapter") else f"{key}={value}")
    return f"{model}({', '.join(parts)})" if parts else model


def read_lmms_results(path: Path) -> list[tuple[tuple, dict[str, str], str, dict[str, Cell]]]:
    """One results file -> [(identity, model args, model, {benchmark: Cell})] (one entry)."""
    data = _read_json(path, "lmms-eval results file")
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise LeaderboardError(f"cannot read lmms-eval results file {path}: no 'results' section")
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    model = str(config.get("model") or data.get("model_source") or data.get("model_name")
                or path.parent.name)
    args = parse_model_args(config.get("model_args", ""))
    if model in ("r3v_majority", "r3v_select"):
        args.setdefault("n", str(DEFAULT_N))  # n=3 given or not: the same model
    identity = (model, tuple(sorted((k, v) for k, v in args.items()
                                    if k not in IGNORED_MODEL_ARGS)))
    date = str(data.get("date") or path.name.split("_results.json")[0])
    groups = data.get("group_subtasks") if isinstance(data.get("group_subtasks"), dict) else {}
    n_samples = data.get("n-samples") if isinstance(data.get("n-samples"), dict) else {}
    n = args.get("n", str(DEFAULT_N))  # only the sampling wrappers use it
    cells: dict[str, Cell] = {}
    for task, res in data["results"].items():
        if not isinstance(res, dict) or groups.get(task):  # a group's aggregate: its tasks count
            continue
        raw: dict[str, float] = {}
        for key, value in res.items():
            name, _, flt = str(key).partition(",")
            v = _number(value)
            if v is None or "_stderr" in name or name == "alias":
                continue
            raw[name if flt in ("", "none") else f"{name}[{flt}]"] = v
        if not raw:
            continue
        metrics = dict(raw)
        own = None
        family = LMMS_ACCURACY_FAMILY.get(model)
        if ACCURACY in raw and family:
            own = GREEDY if family == GREEDY else at(family, int(n))
            metrics[own] = raw[ACCURACY]
        for family, key in LMMS_KEYS.items():
            if key in raw:
                metrics[at(family, int(n))] = raw[key]
        note = None
        counts = n_samples.get(task)
        if isinstance(counts, dict) and counts.get("effective") != counts.get("original"):
            note = f"{counts.get('effective')} of {counts.get('original')} documents (--limit)"
        cells[bench_name(task)] = Cell(metrics, str(path), date, note, own)
    if not cells:
        raise LeaderboardError(f"cannot read lmms-eval results file {path}: no numeric metrics "
                               "in its 'results' section")
    return [(identity, args, model, cells)]


# -------------------------------------------------------------- r3v runs
def _run_cell(final: Any, path: Path, note: str | None = None) -> Cell:
    """r3v metrics ({"greedy": .., "majority@3": .., ...}) -> a Cell whose accuracy is greedy
    (Test@1, the paper's main number), else select@N, else majority@N."""
    if not isinstance(final, dict):
        raise LeaderboardError(f"cannot read r3v metrics {path}: 'final' is not a mapping")
    metrics = {normalize_metric(k): v for k, v in ((str(k), _number(v)) for k, v in final.items())
               if v is not None}
    own = None
    if ACCURACY not in metrics:
        for family in (GREEDY, "select", "majority"):
            value = resolve_metric(metrics, family)
            if value is not None:
                own = family if family == GREEDY else at(family, _family_n(metrics, family))
                metrics[ACCURACY] = value
                break
    return Cell(metrics, str(path), note=note, own=own)


def read_run(folder: Path) -> tuple[str, str, Cell]:
    """A run folder -> (method, benchmark, Cell); an unfinished run gives its latest eval."""
    metrics_file = folder / "metrics.json"
    if metrics_file.is_file():
        data = _read_json(metrics_file, "r3v run metrics")
        if not isinstance(data, dict) or "final" not in data:
            raise LeaderboardError(f"cannot read r3v run metrics {metrics_file}: no 'final' section")
        method = str(data.get("name") or data.get("method") or folder.name)
        bench = bench_name(str(data.get("benchmark") or "?"))
        cell = _run_cell(data["final"], metrics_file)
        if isinstance(data.get("compute"), dict):
            cell.compute = data["compute"]
        if not cell.metrics:
            raise LeaderboardError(f"r3v run {folder}: metrics.json has no final metrics "
                                   "(did the run evaluate anything?)")
        return method, bench, cell
    import yaml

    cfg_file = folder / "config.yaml"
    try:
        cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LeaderboardError(f"cannot read r3v run config {cfg_file}: {exc}") from None
    evals = sorted(folder.glob("iter_*/eval.json"), key=lambda p: int(p.parent.name[5:]))
    if not evals:
        raise LeaderboardError(f"r3v run {folder} has no metrics.json and no iter_<t>/eval.json yet")
    data = _read_json(evals[-1], "r3v evaluation")
    method = str(cfg.get("run", {}).get("name") or cfg.get("run", {}).get("method") or folder.name)
    bench = bench_name(str(cfg.get("data", {}).get("benchmark") or "?"))
    cell = _run_cell(data.get("metrics") if isinstance(data, dict) else None, evals[-1],
                     note=f"unfinished run: latest evaluated {evals[-1].parent.name}")
    return method, bench, cell


def _is_run_folder(folder: Path) -> bool:
    if (folder / "metrics.json").is_file():
        return True
    return (folder / "config.yaml").is_file() and any(folder.glob("iter_*/eval.json"))


# --------------------------------------------------------------- discovery
def _classify_json(path: Path) -> str:
    name = path.name
    if name.endswith("_results.json"):
        return "lmms"
    if name == "metrics.json":
        return "run"
    data = _read_json(path, "file")
    if isinstance(data, dict) and "iteration" in data and "metrics" in data:
        raise LeaderboardError(f"{path} is one iteration's evaluation of an r3v run: pass the run "
                               "folder (its final metrics.json, or its latest iter_<t>/eval.json "
                               "while it runs)")
    if isinstance(data, dict) and isinstance(data.get("results"), dict):
        return "lmms"
    if isinstance(data, dict) and "final" in data:
        return "run-file"
    raise LeaderboardError(f"{path} is neither an lmms-eval results file (*_results.json) nor "
                           "an r3v run's metrics.json")


def discover(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """Paths -> [(kind, path)], kind in lmms (a results file) or run (a run folder). Folders
    are searched recursively; a run folder is taken whole
    (its subfolders belong to it)."""
    found: list[tuple[str, Path]] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise LeaderboardError(f"no such file or folder: {path}")
        if path.is_file():
            kind = _classify_json(path)
            if kind in ("run", "run-file"):
                found.append(("run", path.parent))
            else:
                found.append((kind, path))
            continue
        before = len(found)
        stack = [path]
        while stack:
            folder = stack.pop()
            if _is_run_folder(folder):
                found.append(("run", folder))
                continue
            try:
                entries = sorted(folder.iterdir())
            except OSError as exc:
                raise LeaderboardError(f"cannot list folder {folder}: {exc}") from None
            found.extend(("lmms", p) for p in entries
                         if p.is_file() and p.name.endswith("_results.json"))
            stack.extend(reversed([p for p in entries if p.is_dir() and not p.name.startswith(".")]))
        if len(found) == before:
            raise LeaderboardError(
                f"{path} holds no lmms-eval results (*_results.json), r3v run (metrics.json) "
                "(r3v demo writes run folders)")
    return found


def load_rows(paths: Iterable[str | Path]) -> tuple[list[Row], list[str]]:
    """Read every input into rows; returns (rows, notes about merges and duplicates)."""
    notes: list[str] = []
    order: list[tuple[str, Any]] = []  # row groups in order of first appearance
    lmms: dict[tuple, dict[str, Any]] = {}
    runs: dict[str, list[tuple[Path, str, Cell]]] = {}
    seen: set[Path] = set()
    for kind, path in discover(paths):
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        if kind == "lmms":
            for identity, args, model, cells in read_lmms_results(path):
                entry = lmms.get(identity)
                if entry is None:
                    entry = lmms[identity] = {"model": model, "args": args, "cells": {},
                                              "sources": []}
                    order.append(("lmms", identity))
                entry["sources"].append(str(path))
                for bench, cell in cells.items():
                    old = entry["cells"].get(bench)
                    if old is not None:
                        newer, older = (cell, old) if cell.date >= old.date else (old, cell)
                        notes.append(f"{_lmms_label(model, args)}: {bench} found in {older.source} "
                                     f"and {newer.source}; used the newer ({newer.date})")
                        cell = newer
                    entry["cells"][bench] = cell
        elif kind == "run":
            method, bench, cell = read_run(path)
            if method not in runs:
                runs[method] = []
                order.append(("run", method))
            runs[method].append((path, bench, cell))

    rows: list[Row] = []
    labels = {ident: _lmms_label(e["model"], e["args"]) for ident, e in lmms.items()}
    for label in set(labels.values()):  # same label, different model args: name what differs
        clash = [i for i, lab in labels.items() if lab == label]
        if len(clash) > 1:
            keys = sorted({k for i in clash for k in lmms[i]["args"]
                           if k not in IGNORED_MODEL_ARGS and k != "n"
                           and len({lmms[j]["args"].get(k) for j in clash}) > 1},
                          key=lambda k: (k != "pretrained", k))
            for i in clash:
                labels[i] = _lmms_label(lmms[i]["model"], lmms[i]["args"], keys)
    for kind, key in order:
        if kind == "lmms":
            e = lmms[key]
            row = Row(labels[key], "lmms", dict(e["cells"]), e["sources"],
                      alt_label=f"{labels[key]} [{Path(e['sources'][0]).parent.parent.name}]")
            rows.append(row)
        elif kind == "run":
            members = runs[key]
            benches = [b for _, b, _ in members]
            if len(set(benches)) == len(benches):
                row = Row(key, "run", {b: c for _, b, c in members},
                          [str(p) for p, _, _ in members],
                          alt_label=f"{key} [{members[0][0].name}]")
                rows.append(row)
            else:
                notes.append(f"runs of method {key} cover the same benchmark more than once: "
                             "each is named by its folder")
                for p, b, c in members:
                    rows.append(Row(p.name, "run", {b: c}, [str(p)],
                                    alt_label=f"{p.name} [{p.parent.name}]"))
        else:
            rows.append(key)
    # one label per row across kinds (e.g. a run and an lmms-eval model both called r3v)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.label] = counts.get(r.label, 0) + 1
    for r in rows:
        if counts[r.label] > 1 and r.alt_label:
            r.label = r.alt_label
    used: dict[str, int] = {}
    for r in rows:
        if r.label in used:
            used[r.label] += 1
            r.label = f"{r.label} #{used[r.label]}"
        else:
            used[r.label] = 1
    for r in rows:
        for bench, cell in sorted(r.cells.items()):
            if cell.note:
                r.notes.append(f"{bench}: {cell.note}")
    return rows, notes


def reference_rows(reference: str) -> list[Row]:
    """The paper's per-task numbers (percent) as rows, labelled as second-hand."""
    if reference in ("none", "", None):
        return []
    if reference not in PAPER:
        raise LeaderboardError(f"--reference {reference!r}: choose one of {', '.join(REFERENCES)}")
    ref = PAPER[reference]
    rows = []
    for method, per_task in ref["per_task"].items():
        cells = {b: Cell({"accuracy": v, "greedy": v}, "R3V.md") for b, v in per_task.items()}
        rows.append(Row(f"{method}, {ref['backbone']} {SECOND_HAND}", "reference", cells,
                        ["R3V.md"], percent=True))
    return rows


# ------------------------------------------------------------------ tables
def order_benchmarks(names: Iterable[str]) -> list[str]:
    names = set(names)
    known = [b for b in BENCHMARK_ORDER if b in names]
    return known + sorted(names - set(known))


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def build_table(rows: Sequence[Row], metric: str, title: str) -> Table | None:
    kept = [r for r in rows if any(r.value(b, metric) is not None for b in r.cells)]
    if not kept:
        return None
    columns = order_benchmarks(b for r in kept for b in r.cells
                               if r.value(b, metric) is not None)
    table = Table(title, metric, columns, [])
    partial = False
    for r in kept:
        cells = [r.value(b, metric) for b in columns]
        present = [c for c in cells if c is not None]
        avg = _mean(present)
        partial |= len(present) < len(columns)
        table.rows.append((r.label, r.kind, cells, avg, len(present)))
    if partial:
        table.notes.append(f"{DASH} = not evaluated; it is left out of that row's average, so an "
                           "avg marked * covers only the benchmarks the row has.")
    return table


def delta_table(table: Table, baseline: str) -> Table:
    base = next(r for r in table.rows if r[0] == baseline)
    keep = [i for i, b in enumerate(base[2]) if b is not None]  # the baseline's benchmarks
    out = Table(f"Δ vs {baseline}: {table.metric}, percentage points", table.metric,
                [table.columns[i] for i in keep], [], delta=True)
    uneven = False
    apart = []
    for label, kind, cells, _avg, _n in table.rows:
        if label == baseline:
            continue
        deltas = [None if cells[i] is None else cells[i] - base[2][i] for i in keep]
        present = [d for d in deltas if d is not None]
        if not present:
            apart.append(label)
            continue
        uneven |= len(present) < len(table.columns)
        out.rows.append((label, kind, deltas, _mean(present), len(present)))
    out.notes.append("Deltas come from unrounded values; a row's avg delta is the mean of its "
                     "deltas over the benchmarks it shares with the baseline.")
    if uneven:
        out.notes.append(f"{DASH} = the row has no number there; an avg marked * covers only "
                         "the benchmarks it shares with the baseline.")
    if apart:
        out.notes.append(f"No benchmark in common with {baseline} (left out): "
                         + ", ".join(apart) + ".")
    return out


def find_row(rows: Sequence[Row], name: str) -> Row:
    """A row by exact label, else by a unique case-insensitive substring."""
    exact = [r for r in rows if r.label == name]
    if exact:
        return exact[0]
    hits = [r for r in rows if name.lower() in r.label.lower()]
    if len(hits) == 1:
        return hits[0]
    labels = ", ".join(repr(r.label) for r in rows)
    if not hits:
        raise LeaderboardError(f"--baseline {name!r}: no such row; rows: {labels}")
    raise LeaderboardError(f"--baseline {name!r} matches several rows: "
                           f"{', '.join(repr(r.label) for r in hits)}")


# ------------------------------------------------------------- leaderboard
@dataclass
class Leaderboard:
    main: Table
    delta: Table | None
    per_metric: list[Table]
    reference: str
    notes: list[str]
    rows: list[Row]
    curves: list[RunCurve] = field(default_factory=list)

    def tables(self) -> list[Table]:
        return [t for t in (self.main, self.delta, *self.per_metric) if t is not None]

    def curve_tables(self) -> list[Table]:
        return [t for t in (iteration_table(self.curves), *sweep_tables(self.curves))
                if t is not None]

    def markdown(self) -> str:
        parts = ["# R3V leaderboard", ""]
        for t in [*self.tables(), *self.curve_tables()]:
            parts += [f"## {t.title}", "", t.markdown(), ""]
            parts += [f"- {n}" for n in t.notes]
            if t.notes:
                parts.append("")
        ref = reference_markdown(self.reference)
        if ref:
            parts += [ref, ""]
        parts += compute_markdown(self.rows)
        row_notes = [f"{r.label}: {n}" for r in self.rows for n in r.notes]
        if self.notes or row_notes:
            parts += ["## Notes", ""] + [f"- {n}" for n in row_notes + self.notes] + [""]
        parts += ["## Sources", ""]
        for r in self.rows:
            if r.kind != "reference":
                parts.append(f"- {r.label}: " + ", ".join(f"`{s}`" for s in r.sources))
        return "\n".join(parts).rstrip() + "\n"

    def csv(self) -> str:
        """Every table, long and wide at once: one line per (table, row); percent, 2 decimals."""
        columns = order_benchmarks({c for t in self.tables() for c in t.columns})
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["table", "metric", "method", "kind", *columns, "avg", "n_benchmarks"])
        for t in self.tables():
            name = "delta" if t.delta else ("main" if t is self.main else "metric")
            for label, kind, cells, avg, n in t.rows:
                by = dict(zip(t.columns, cells))
                w.writerow([name, t.metric, label, kind,
                            *("" if by.get(c) is None else f"{by[c]:.2f}" for c in columns),
                            "" if avg is None else f"{avg:.2f}", n])
        return buf.getvalue()

    def plot(self, path: str | Path) -> Path:
        """A grouped bar plot of the main table (benchmarks and avg; paper rows hatched)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = self.main
        groups = [*t.columns, "avg"]
        nrows = len(t.rows)
        width = 0.8 / max(nrows, 1)
        fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 1.5 + len(groups) * (0.25 * nrows + 0.5))),
                                        4.8 + 0.22 * nrows))
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, (label, kind, cells, avg, _n) in enumerate(t.rows):
            values = [*cells, avg]
            xs = [g + (i - (nrows - 1) / 2) * width for g in range(len(groups))]
            heights = [0.0 if v is None else v for v in values]
            bars = ax.bar(xs, heights, width * 0.95, label=label, color=colors[i % len(colors)],
                          hatch="//" if kind == "reference" else None,
                          alpha=0.6 if kind == "reference" else 1.0)
            if nrows * len(groups) <= 40:
                marks = [""] * len(cells) + ["*" if avg is not None and _n < len(cells) else ""]
                for bar, v, mark in zip(bars, values, marks):
                    ax.annotate(DASH if v is None else f"{v:.1f}{mark}",
                                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylabel(f"{t.metric} (%)")
        ax.set_ylim(0, max(100.0, *(v for r in t.rows for v in (*r[2], r[3]) if v is not None)) * 1.05)
        ax.set_title(f"R3V leaderboard: {t.metric}"
                     + (f"  ({DASH} not evaluated; * avg over the row's benchmarks only)"
                        if any(r[4] < len(t.columns) for r in t.rows) else ""), fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08),
                  ncol=min(3, max(1, nrows)), frameon=False)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


#: r3v runs' training cost (metrics.json "compute", written by r3v_train/compute.py)
COMPUTE_COLUMNS = {"generated_samples": "generated samples", "generated_tokens": "generated tokens",
                   "optimizer_steps": "optimizer steps"}


def compute_markdown(rows: Sequence[Row]) -> list[str]:
    """A "Training compute" section (one line per run row and benchmark), or nothing."""
    lines = [f"| {r.label} | {bench} | " + " | ".join(
        f"{c.compute[k]:,}" if isinstance(c.compute.get(k), int) else DASH for k in COMPUTE_COLUMNS)
        + " |" for r in rows for bench, c in sorted(r.cells.items()) if c.compute]
    if not lines:
        return []
    return ["## Training compute", "",
            "Replies generated for training (offline pool or on-policy groups), their tokens, and "
            "optimizer steps over all training stages, the warm-up included; evaluation not counted.",
            "", "| method | benchmark | " + " | ".join(COMPUTE_COLUMNS.values()) + " |",
            "|:--|:--|" + "--:|" * len(COMPUTE_COLUMNS), *lines, ""]


def reference_markdown(reference: str) -> str:
    if reference in ("none", "", None):
        return ""
    ref = PAPER[reference]
    lines = [f"## Paper reference: {ref['backbone']} {SECOND_HAND}", "",
             ("Reported numbers (Test@1, %) as R3V.md gives them; they come from secondary notes "
              "on the paper and were not checked against its tables."), ""]
    tasks = [b for b in BENCHMARK_ORDER if any(b in v for v in ref["per_task"].values())]
    header = ["method", *tasks, "six-task avg"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|:--|" + "--:|" * (len(header) - 1))
    for method, avg in ref["avg6"].items():
        per = ref["per_task"].get(method, {})
        cells = [f"{per[b]:.2f}" if b in per else DASH for b in tasks]
        lines.append("| " + " | ".join([method, *cells, f"{avg:.2f}"]) + " |")
    if not ref["per_task"]:
        lines += ["", (f"R3V.md gives no per-task numbers for {ref['backbone']}: only six-task "
                       "averages, so no paper row joins the tables above.")]
    return "\n".join(lines)


def build_leaderboard(paths: Sequence[str | Path], *, baseline: str | None = None,
                      reference: str = "none", metric: str = "accuracy") -> Leaderboard:
    rows, notes = load_rows(paths)
    metric = normalize_metric(metric)
    refs = reference_rows(reference)
    family = metric.split("@")[0]
    paper_applies = metric in ("accuracy", "greedy")
    if refs and not paper_applies:
        notes.append(f"the paper rows are Test@1 (greedy) numbers, so they are left out of the "
                     f"{metric} tables")
    main_rows = rows + (refs if paper_applies else [])
    if refs and paper_applies:  # keep the paper rows to the benchmarks the inputs have
        ours = {b for r in rows for b in r.cells if r.value(b, metric) is not None}
        trimmed = []
        for r in refs:
            cells = {b: c for b, c in r.cells.items() if b in ours}
            if cells:
                trimmed.append(Row(r.label, r.kind, cells, r.sources, percent=True))
        if not trimmed:
            notes.append("no input benchmark overlaps the paper's tasks: the paper's numbers are "
                         "only in the paper-reference table")
        main_rows = rows + trimmed
    title = FAMILY_TITLES.get(family, metric)
    if "@" in metric:  # an exact N: "majority@3: majority vote over N samples"
        title = metric + title[title.index(":"):]
    main = build_table(main_rows, metric, f"{title} (%)")
    if main is None:
        available = sorted({k for r in rows for k in r.metric_names()})
        raise LeaderboardError(f"--metric {metric!r}: no input has it; available: "
                               f"{', '.join(available)}")
    if metric == "accuracy":
        used: dict[str, set[str]] = {}
        for r in rows:
            for c in r.cells.values():
                if c.own and "accuracy" in c.metrics:
                    used.setdefault(r.label, set()).add(c.own)
        if len({o for v in used.values() for o in v}) > 1:
            main.notes.append("accuracy is each row's own answer: " + "; ".join(
                f"{label} = {'/'.join(sorted(v))}" for label, v in used.items()))
    _note_n(main, rows, family)
    delta = None
    if baseline is not None:
        base = find_row(main_rows, baseline)
        if base.label not in [r[0] for r in main.rows]:
            raise LeaderboardError(f"--baseline {baseline!r}: row {base.label!r} has no "
                                   f"{metric} numbers")
        if len(main.rows) > 1:
            delta = delta_table(main, base.label)
        else:
            notes.append(f"--baseline {base.label!r} is the only row: no deltas to show")
    families = [f for f in FAMILIES if any(resolve_metric(c.metrics, f) is not None
                                           for r in rows for c in r.cells.values())]
    per_metric = []
    if len(families) > 1:
        for f in families:
            if f == family:
                continue
            t = build_table(rows, f, f"{FAMILY_TITLES[f]} (%)")
            if t is not None:
                _note_n(t, rows, f)
                per_metric.append(t)
    return Leaderboard(main, delta, per_metric, reference, notes, rows + refs, run_curves(rows))


def run_curves(rows: Sequence[Row]) -> list[RunCurve]:
    """The learning curves of the finished runs among ``rows``, labelled as their rows."""
    curves = []
    for r in rows:
        if r.kind != "run":
            continue
        for src in r.sources:
            label = r.label if len(r.sources) == 1 else f"{r.label} [{Path(src).name}]"
            curve = read_curve(Path(src), label)
            if curve is not None:
                curves.append(curve)
    return curves


def _note_n(table: Table, rows: Sequence[Row], family: str) -> None:
    if family not in ("majority", "select", "pass"):
        return
    ns = {}
    for r in rows:
        for c in r.cells.values():
            n = _family_n(c.metrics, family)
            if n is not None and r.label in [x[0] for x in table.rows]:
                ns.setdefault(r.label, set()).add(n)
    if len({n for v in ns.values() for n in v}) > 1:
        table.notes.append("N differs between rows: " + "; ".join(
            f"{label}: N={'/'.join(map(str, sorted(v)))}" for label, v in ns.items()))
    elif ns:
        table.notes.append(f"N = {next(iter(next(iter(ns.values()))))} samples per question.")


def write_outputs(board: Leaderboard, out: str | Path | None) -> list[Path]:
    """Markdown to ``out`` (or stdout when None) plus ``out``.csv and ``out``.png, and for run
    folders ``out``_per_iteration.png and ``out``_select_vs_majority.png."""
    text = board.markdown()
    if out is None:
        print(text, end="")
        return []
    out = Path(out)
    if out.suffix.lower() in (".csv", ".png"):
        raise LeaderboardError(f"--out {out}: give the Markdown file (e.g. {out.with_suffix('.md')}); "
                               "the .csv and .png are written next to it")
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    csv_path = out.with_suffix(".csv")
    csv_path.write_text(board.csv(), encoding="utf-8")
    written = [out, csv_path, board.plot(out.with_suffix(".png"))]
    if iteration_table(board.curves) is not None:
        written.append(plot_iterations(board.curves, out.with_name(out.stem + "_per_iteration.png")))
    if sweep_tables(board.curves):
        written.append(plot_sweeps(board.curves, out.with_name(out.stem + "_select_vs_majority.png")))
    return written


def run_leaderboard(paths: Sequence[str | Path], *, out: str | Path | None = None,
                    baseline: str | None = None, reference: str = "none",
                    metric: str = "accuracy") -> Leaderboard:
    board = build_leaderboard(paths, baseline=baseline, reference=reference, metric=metric)
    written = write_outputs(board, out)
    for p in written:
        print(f"wrote {p}")
    return board
