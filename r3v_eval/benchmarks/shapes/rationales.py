"""Solutions of the ``shapes`` world: the teacher's perfect rationale, and the check that a
reply's steps hold together (:func:`steps_consistent`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from r3v_eval.benchmarks.shapes.world import be, count, matches, noun
from r3v_eval.prompts import format_rationale, parse_rationale


def rationale_steps(objects: Sequence[Mapping[str, Any]], ops: Sequence[Mapping[str, Any]],
                    query: Mapping[str, Any]) -> tuple[list[str], int]:
    """The step sentences of a perfect solution and its final answer.

    Two kinds of line only, each in the phrasing the demo base was pre-trained on: a count
    ("There are 9 objects in total.", "There are 2 red squares.", "Now there is 1 circle.")
    and a single arithmetic fact ("9 - 2 = 7."). First the count of the queried objects, then
    for each operation that changes it the count it touches (a removal) and the fact it
    implies; an operation that cannot change the queried count (removing or adding objects of
    another colour or shape) writes no line. Narrated steps ("Remove all red squares: there
    are 9 - 2 = 7 objects left.") were hybrids the 4-layer demo model mixed up: half of a
    warm-up's wrong two-step replies first went wrong on a count line's words, not its
    numbers ("There are 2 red circles: there are 3 + 2 = 3 objects.")."""
    qc, qs = query.get("color"), query.get("shape")
    cur = [dict(o) for o in objects]
    total = count(cur, qc, qs)
    if qc is None and qs is None:
        steps = [f"There {be(total)} {total} {noun(None, None, total)} in total."]
    else:
        steps = [f"There {be(total)} {total} {noun(qc, qs, total)}."]
    for i, op in enumerate(ops):
        oc, os_ = op.get("color"), op.get("shape")
        if op["op"] == "remove":
            conflict = (qc and oc and qc != oc) or (qs and os_ and qs != os_)
            if not conflict:
                both_c, both_s = qc or oc, qs or os_
                k = count(cur, both_c, both_s)
                lead = "Now there" if i else "There"
                steps.append(f"{lead} {be(k)} {k} {noun(both_c, both_s, k)}.")
                steps.append(f"{total} - {k} = {total - k}.")
                total -= k
            cur = [o for o in cur if not matches(o, oc, os_)]
        else:
            n = op["count"]
            if matches({"color": oc, "shape": os_}, qc, qs):
                steps.append(f"{total} + {n} = {total + n}.")
                total += n
            cur += [{"color": oc, "shape": os_, "row": 0, "col": 0} for _ in range(n)]
    return steps, total


_COUNT_LINE = re.compile(r"(?:There|Now there) (?:is|are) (\d+) [a-z]+(?: [a-z]+)*\.")
_FACT_LINE = re.compile(r"(\d+) ([-+]) (\d+) = (\d+)\.")


def steps_consistent(reply: str, question: str) -> bool:
    """Whether a reply is a chain of this world's rationale lines that holds together: numbered
    counts and facts only; every fact true, starting from the running value (the first count,
    then the last fact's result); a subtraction takes the count stated just before it; an
    addition adds a number the question adds ("Add 2 ..."); the answer line states the last
    value. It reads the reply only, never the picture: a wrong count that is carried through
    correctly passes, "5 + 2 = 6." or "2 - 2 = 1." or an answer the chain did not reach does
    not."""
    parsed = parse_rationale(reply)
    if parsed is None:
        return False
    steps, answer = parsed
    first = _COUNT_LINE.fullmatch(steps[0])
    if not first:
        return False
    running, last_count = int(first.group(1)), None
    for step in steps[1:]:
        counted = _COUNT_LINE.fullmatch(step)
        if counted:
            last_count = int(counted.group(1))
            continue
        fact = _FACT_LINE.fullmatch(step)
        if not fact:
            return False
        a, op, b, c = int(fact.group(1)), fact.group(2), int(fact.group(3)), int(fact.group(4))
        if a != running:
            return False
        if op == "-" and (b != last_count or c != a - b):
            return False
        if op == "+" and (c != a + b or not re.search(rf"\b[Aa]dd {b} ", question)):
            return False
        running, last_count = c, None
    return answer.strip() == str(running)


def rationale_from_meta(meta: Mapping[str, Any], style: str = "qwen") -> str:
    steps, answer = rationale_steps(meta["objects"], meta.get("ops") or [], meta.get("query") or {})
    return format_rationale(steps, str(answer), style)


def teacher_rationale(problem: Any, style: str = "qwen") -> str:
    """The perfect step-by-step solution of a shapes problem, in the paper's format.

    ``problem`` is a :class:`~r3v_eval.benchmarks.base.Problem` (or its ``meta`` dict) whose
    meta holds ``objects``, ``ops`` and ``query``; the rationale is recomputed from them, so
    it is right for every prompt ``style`` ("qwen", "llava", "qwen2")."""
    meta = problem if isinstance(problem, Mapping) else getattr(problem, "meta", None)
    if not meta or "objects" not in meta:
        raise ValueError("teacher_rationale needs a shapes problem (meta with 'objects', 'ops', "
                         "'query')")
    return rationale_from_meta(meta, style)


