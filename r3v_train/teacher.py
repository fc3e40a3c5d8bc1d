"""The teacher rationales of the warm-up: the file they are read from
(:func:`load_teacher_rationales`) and the recipe's narrowing of them (:func:`teacher_rationales`).

Teacher rationale file: JSON Lines, UTF-8, one object per line, ``{"id": <problem id>,
"rationale": <text>}``; an id appears once (format and checks: :mod:`r3v_train.reflect`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from r3v_eval.benchmarks import Benchmark, Problem, get_benchmark
from r3v_eval.benchmarks.base import DataError, iter_jsonl_objects
from r3v_train.config import ConfigError, R3VConfig


def load_teacher_rationales(path: str | Path) -> dict[str, str]:
    """Read a teacher rationale file (format in the module docstring): id -> rationale."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"teacher rationale file not found: {path}")
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    rows = iter_jsonl_objects(path, 'a line must be a JSON object {"id": ..., "rationale": ...}')
    for lineno, where, row in rows:
        for key in ("id", "rationale"):
            if key not in row:
                raise DataError(f"{where}: missing required key {key!r}")
            if not isinstance(row[key], str) or not row[key].strip():
                raise DataError(f"{where}: {key!r} must be a non-empty string, got "
                                f"{row[key]!r}")
        pid = row["id"]
        if pid in out:
            raise DataError(f"{where}: id {pid!r} already given at line {first_line[pid]}")
        out[pid] = row["rationale"]
        first_line[pid] = lineno
    return out


def teacher_rationales(cfg: R3VConfig, train: Sequence[Problem],
                       bench: Benchmark | None = None) -> dict[str, str]:
    """The teacher rationales of the warm-up, in train order: ``data.teacher_rationales``
    narrowed by ``teacher_templates``, ``teacher_max_steps``, ``teacher_max_level``, ``teacher_skip_words``,
    ``teacher_per_template`` and ``teacher_limit``. ``bench``: the run's benchmark (built from ``cfg`` when not given), whose
    ``question_templates`` also count as known names."""
    spec = cfg.data.teacher_rationales
    if not spec:
        return {}
    if spec == "builtin":
        teacher = {p.id: p.meta["rationale"] for p in train if p.meta.get("rationale")}
        if not teacher:
            raise ConfigError(f"data.teacher_rationales=builtin: benchmark {cfg.data.benchmark!r} "
                              "has no built-in rationales")
    else:
        teacher = load_teacher_rationales(spec)
    per_template: dict[str, int] = {}
    keep = []
    wanted = cfg.data.teacher_templates
    if wanted is not None:
        if any("template" not in (p.meta or {}) for p in train):
            raise ConfigError(f"data.teacher_templates: problems of {cfg.data.benchmark!r} name no "
                              "question template (meta 'template')")
        bench = bench or get_benchmark(cfg.data.benchmark, cfg.data.options)
        known = {p.meta["template"] for p in train} | set(getattr(bench, "question_templates", ()))
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise ConfigError(f"data.teacher_templates: unknown template(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
    skip = None
    if cfg.data.teacher_skip_words:
        skip = re.compile(r"\b(?:" + "|".join(map(re.escape, cfg.data.teacher_skip_words)) + r")\b",
                          re.IGNORECASE)
    for p in train:
        if p.id not in teacher:
            continue
        if wanted is not None and p.meta["template"] not in wanted:
            continue
        if skip is not None and skip.search(p.question):
            continue
        if cfg.data.teacher_max_steps is not None:
            if "steps" not in (p.meta or {}):
                raise ConfigError(f"data.teacher_max_steps: problems of {cfg.data.benchmark!r} "
                                  "do not count their reasoning steps (meta 'steps')")
            if p.meta["steps"] > cfg.data.teacher_max_steps:
                continue
        if cfg.data.teacher_max_level is not None:
            if "level" not in (p.meta or {}):
                raise ConfigError(f"data.teacher_max_level: problems of {cfg.data.benchmark!r} "
                                  "carry no difficulty level (meta 'level')")
            if p.meta["level"] > cfg.data.teacher_max_level:
                continue
        if cfg.data.teacher_per_template is not None:
            if "template" not in (p.meta or {}):
                raise ConfigError(f"data.teacher_per_template: problems of {cfg.data.benchmark!r} "
                                  "name no question template (meta 'template')")
            template = p.meta["template"]
            if per_template.get(template, 0) >= cfg.data.teacher_per_template:
                continue
            per_template[template] = per_template.get(template, 0) + 1
        keep.append(p.id)
    if cfg.data.teacher_limit is not None:
        keep = keep[: cfg.data.teacher_limit]
    return {pid: teacher[pid] for pid in keep}
