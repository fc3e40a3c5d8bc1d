"""The lmms-eval document of an r3v task, the wrappers' output format, and per-doc scoring.

Document schema (one row of the task's ``datasets.Dataset``; every column always present)::

    id         str    the problem id
    question   str    the question as stored (options are *not* folded in)
    answer     str    the gold answer
    choices    [str]  the options of a multiple-choice question, [] otherwise
    unit       str    the answer's unit, "" if none
    image      Image  the picture (None for a text-only problem); lmms-eval drops this
                      column from the doc that ``process_results`` receives
    meta       str    the problem's ``meta`` dict as a JSON string
    benchmark  str    the registry name of the benchmark ("shapes", "chartqa", ...)

:func:`problem_to_doc` and :func:`doc_to_problem` convert between this row and
:class:`~r3v_eval.benchmarks.base.Problem` without loss (``choices=None`` <-> ``[]``,
``unit=None`` <-> ``""``).

Wrapper output (what ``generate_until`` returns per request):

* ``r3v_cot`` returns the reply text itself, like any lmms-eval model;
* ``r3v_majority`` / ``r3v_select`` return ONE string, a JSON object (see
  :func:`encode_samples`) holding the strategy's final reply and all N candidates, so that
  ``process_results`` derives accuracy, majority@N, select@N and pass@N from one generation.
  ``<`` and ``>`` are written as ``\\u003c`` / ``\\u003e`` so lmms-eval's reasoning-tag
  stripping (``<think>...</think>``) can never cut through the JSON.

:func:`score_doc` accepts both, and any other model's plain reply (then only ``accuracy``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from r3v_eval import strategies
from r3v_eval.benchmarks import Benchmark, Problem, get_benchmark
from r3v_eval.metric_names import ACCURACY, LMMS_KEYS

DOC_COLUMNS = ("id", "question", "answer", "choices", "unit", "image", "meta", "benchmark")
OUTPUT_MARKER = "r3v_strategy"

#: metric names (lmms-eval result keys are "<metric>,none")
MAJORITY, SELECT, PASS = (LMMS_KEYS[f] for f in ("majority", "select", "pass"))
METRICS = (ACCURACY, MAJORITY, SELECT, PASS)


def doc_features():
    """The ``datasets.Features`` of the task's documents."""
    import datasets

    return datasets.Features({
        "id": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "choices": datasets.Sequence(datasets.Value("string")),
        "unit": datasets.Value("string"),
        "image": datasets.Image(),
        "meta": datasets.Value("string"),
        "benchmark": datasets.Value("string"),
    })


def problem_to_doc(problem: Problem) -> dict[str, Any]:
    """The document of one problem (the image as is: a PIL image, a file path or None)."""
    image = problem.image
    if image is not None and not hasattr(image, "mode"):  # a path: the Image feature reads it
        image = str(image)
    return {
        "id": str(problem.id),
        "question": problem.question,
        "answer": str(problem.answer),
        "choices": list(problem.choices) if problem.choices else [],
        "unit": problem.unit or "",
        "image": image,
        "meta": json.dumps(problem.meta or {}, ensure_ascii=False, default=str),
        "benchmark": problem.benchmark,
    }


def is_r3v_doc(doc: Any) -> bool:
    return hasattr(doc, "get") and all(k in doc for k in ("id", "question", "answer", "benchmark"))


def doc_to_problem(doc: dict[str, Any]) -> Problem:
    """Rebuild the problem from a document (with or without its image column)."""
    if not is_r3v_doc(doc):
        keys = sorted(doc) if hasattr(doc, "keys") else type(doc).__name__
        raise ValueError(f"not an r3v task document (columns: {keys}); the r3v models run on "
                         "the r3v_* tasks only (see `r3v tasks-dir`)")
    meta = doc.get("meta") or {}
    if isinstance(meta, str):
        meta = json.loads(meta) if meta.strip() else {}
    return Problem(
        id=str(doc["id"]),
        question=doc["question"],
        answer=str(doc["answer"]),
        benchmark=doc["benchmark"],
        choices=list(doc["choices"]) if doc.get("choices") else None,
        unit=doc.get("unit") or None,
        image=doc.get("image"),
        meta=meta,
    )


# ------------------------------------------------------------ wrapper output
def encode_samples(strategy: str, final: str | None, candidates: Sequence[str],
                   candidate_answers: Sequence[str | None] = ()) -> str:
    """The one-string output of a multi-sample wrapper for one request."""
    payload = {
        OUTPUT_MARKER: strategy,
        "final": final,
        "candidates": list(candidates),
        "candidate_answers": list(candidate_answers),
    }
    text = json.dumps(payload, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def decode_samples(text: Any) -> dict[str, Any] | None:
    """The payload of :func:`encode_samples`, or None when ``text`` is a plain reply."""
    if not isinstance(text, str) or OUTPUT_MARKER not in text:
        return None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or OUTPUT_MARKER not in payload:
        return None
    cands = payload.get("candidates")
    if not isinstance(cands, list) or not all(isinstance(c, str) for c in cands):
        return None
    return payload


# ------------------------------------------------------------------- scoring
_BENCHES: dict[str, Benchmark] = {}


def benchmark_of(name: str) -> Benchmark:
    """One shared benchmark instance per name (registry lookups build a new one each time)."""
    if name not in _BENCHES:
        _BENCHES[name] = get_benchmark(name)
    return _BENCHES[name]


def score_doc(doc: dict[str, Any], results: Sequence[Any],
              bench: Benchmark | None = None) -> dict[str, float]:
    """lmms-eval ``process_results``: metrics of one document from its model output.

    ``results`` holds one element: a plain reply (``r3v_cot`` or any other lmms-eval model)
    -> ``accuracy``; an :func:`encode_samples` payload -> ``accuracy`` (the strategy's final
    answer) plus ``majority_at_n`` and ``pass_at_n`` over the same N candidates, and
    ``select_at_n`` for the select strategy. ``bench`` overrides the document's benchmark
    (the online MiniWob scorer)."""
    problem = doc_to_problem(doc)
    bench = bench or benchmark_of(problem.benchmark)
    output = results[0] if results else ""
    if isinstance(output, list):  # a model that returned several strings: score the first
        output = output[0] if output else ""
    payload = decode_samples(output)
    if payload is None:
        return {ACCURACY: float(bench.score(output if isinstance(output, str) else "", problem).correct)}
    cands = payload["candidates"]
    if not cands:
        return {ACCURACY: 0.0, MAJORITY: 0.0, PASS: 0.0}
    maj = strategies.majority(bench, [problem], [cands])[0]
    hit = strategies.pass_at_n(bench, [problem], [cands])[0]
    metrics = {MAJORITY: float(maj.correct), PASS: float(hit.correct)}
    if payload[OUTPUT_MARKER] == "select":
        final = payload.get("final")
        chosen = float(bench.score(final, problem).correct) if isinstance(final, str) else 0.0
        metrics[SELECT] = chosen
        metrics[ACCURACY] = chosen
    else:
        metrics[ACCURACY] = metrics[MAJORITY]
    return metrics
