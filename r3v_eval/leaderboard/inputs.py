"""Reading the inputs of a leaderboard: lmms-eval result files and r3v run folders, found in
the paths given (folders are searched recursively), into rows."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from r3v_eval import run_files
from r3v_eval.engines.base import PAPER_SAMPLING
from r3v_eval.leaderboard.records import (
    Cell,
    LeaderboardError,
    Row,
    family_n,
    as_number,
    read_json,
    bench_name,
    normalize_metric,
    read_json,
    resolve_metric,
)
from r3v_eval.metric_names import ACCURACY, GREEDY, LMMS_KEYS, at

#: model args that do not change an lmms-eval model's answers (one row across them)
IGNORED_MODEL_ARGS = ("device", "batch_size", "max_batch_size")
#: lmms-eval wrappers: what their ``accuracy`` is
LMMS_ACCURACY_FAMILY = {"r3v_cot": "greedy", "r3v_majority": "majority", "r3v_select": "select"}
DEFAULT_N = PAPER_SAMPLING.n  # lmms.args.ModelArgs.n: the paper's N when model_args give none
#: adapter path parts that say nothing on their own (named together with their parent)
_GENERIC_PART = re.compile(r"^(model|dpo_model|adapter|lora|final|checkpoint(-\d+)?|iter_\d+)$")



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
    data = read_json(path, "lmms-eval results file")
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
            v = as_number(value)
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
    metrics = {normalize_metric(k): v for k, v in ((str(k), as_number(v)) for k, v in final.items())
               if v is not None}
    own = None
    if ACCURACY not in metrics:
        for family in (GREEDY, "select", "majority"):
            value = resolve_metric(metrics, family)
            if value is not None:
                own = family if family == GREEDY else at(family, family_n(metrics, family))
                metrics[ACCURACY] = value
                break
    return Cell(metrics, str(path), note=note, own=own)


#: how a run's select@N took its answer, when not as the paper does (``eval.select_choice``)
SELECT_CHOICE_NOTES = {
    "candidates": "select@N chose among its candidates' answers, the one whose select reply the "
                  "model found most likely (eval.select_choice: candidates)",
}


def _run_config(folder: Path, required: bool) -> dict:
    import yaml

    cfg_file = folder / run_files.CONFIG
    if not required and not cfg_file.is_file():
        return {}
    try:
        cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LeaderboardError(f"cannot read r3v run config {cfg_file}: {exc}") from None
    return cfg if isinstance(cfg, dict) else {}


def _select_note(cfg: dict, cell: Cell) -> None:
    choice = (cfg.get("eval") or {}).get("select_choice", "generate")
    note = SELECT_CHOICE_NOTES.get(choice)
    if note and any(k.startswith("select@") for k in cell.metrics):
        cell.note = f"{cell.note}; {note}" if cell.note else note


def read_run(folder: Path) -> tuple[str, str, Cell]:
    """A run folder -> (method, benchmark, Cell); an unfinished run gives its latest eval."""
    metrics_file = folder / run_files.METRICS
    if metrics_file.is_file():
        data = read_json(metrics_file, "r3v run metrics")
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
        _select_note(_run_config(folder, required=False), cell)
        return method, bench, cell
    cfg = _run_config(folder, required=True)
    evals = sorted(folder.glob(f"{run_files.ITER_PREFIX}*/{run_files.EVAL}"),
                   key=lambda p: run_files.iter_number(p.parent.name) or 0)
    if not evals:
        raise LeaderboardError(f"r3v run {folder} has no metrics.json and no iter_<t>/eval.json yet")
    data = read_json(evals[-1], "r3v evaluation")
    method = str(cfg.get("run", {}).get("name") or cfg.get("run", {}).get("method") or folder.name)
    bench = bench_name(str(cfg.get("data", {}).get("benchmark") or "?"))
    cell = _run_cell(data.get("metrics") if isinstance(data, dict) else None, evals[-1],
                     note=f"unfinished run: latest evaluated {evals[-1].parent.name}")
    _select_note(cfg, cell)
    return method, bench, cell


def _is_run_folder(folder: Path) -> bool:
    if (folder / run_files.METRICS).is_file():
        return True
    return (folder / run_files.CONFIG).is_file() and any(
        folder.glob(f"{run_files.ITER_PREFIX}*/{run_files.EVAL}"))


# --------------------------------------------------------------- discovery
def _classify_json(path: Path) -> str:
    name = path.name
    if name.endswith("_results.json"):
        return "lmms"
    if name == run_files.METRICS:
        return "run"
    data = read_json(path, "file")
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
