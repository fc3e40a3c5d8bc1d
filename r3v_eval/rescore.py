"""Re-score saved replies: the logic behind ``r3v score``.

Input: JSONL, one object per line::

    {"response": str, "answer": str, "choices": [str]?, "unit": str?, "meta": {...}?}

Output: one ``{"correct": bool, "extracted": str|null}`` per input line, same order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, TextIO

from r3v_eval.benchmarks import Benchmark, DataError, Problem, Score
from r3v_eval.benchmarks.base import parse_json_object


@dataclass
class Reply:
    response: str
    problem: Problem


def parse_reply_line(line: str, lineno: int, bench: Benchmark) -> Reply:
    where = f"line {lineno}"
    row = parse_json_object(line, where, "expected a JSON object", name_type=True)
    for key in ("response", "answer"):
        if key not in row:
            raise DataError(f"{where}: missing required key {key!r}")
    if not isinstance(row["response"], str):
        raise DataError(f"{where}: 'response' must be a string")
    if not isinstance(row["answer"], (str, int, float)) or isinstance(row["answer"], bool):
        raise DataError(f"{where}: 'answer' must be a string or a number")
    choices = row.get("choices")
    if choices is not None and (not isinstance(choices, list)
                                or not all(isinstance(c, (str, int, float)) for c in choices)):
        raise DataError(f"{where}: 'choices' must be a list of strings")
    unit = row.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise DataError(f"{where}: 'unit' must be a string")
    meta = row.get("meta") or {}
    if not isinstance(meta, dict):
        raise DataError(f"{where}: 'meta' must be an object")
    unknown = set(row) - {"response", "answer", "choices", "unit", "meta", "id"}
    if unknown:
        raise DataError(f"{where}: unknown key(s) {sorted(unknown)}")
    problem = Problem(
        id=str(row.get("id", lineno)), question="", answer=str(row["answer"]),
        benchmark=bench.name, choices=[str(c) for c in choices] if choices is not None else None,
        unit=unit or None, meta=meta,
    )
    return Reply(row["response"], problem)


def read_replies(lines: Iterable[str], bench: Benchmark) -> list[Reply]:
    """Parse every line first; all bad lines are reported together in one DataError."""
    replies, errors = [], []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            replies.append(parse_reply_line(line, lineno, bench))
        except DataError as exc:
            errors.append(str(exc))
    if errors:
        shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
        raise DataError("bad input:\n  " + "\n  ".join(shown))
    return replies


def rescore(bench: Benchmark, replies: list[Reply], out: TextIO) -> list[Score]:
    scores = [bench.score(r.response, r.problem) for r in replies]
    for s in scores:
        out.write(json.dumps({"correct": s.correct, "extracted": s.extracted}, ensure_ascii=False) + "\n")
    return scores
