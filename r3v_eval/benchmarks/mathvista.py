"""MathVista: mathematical reasoning in visual contexts (out-of-distribution evaluation only).

Data source: Hugging Face ``AI4Math/MathVista`` (config ``default``; splits ``testmini``
1,000 with answers, ``test`` 5,141 with answers withheld). Columns (dataset card): ``pid``,
``question``, ``image`` (the file name inside the original archive), ``decoded_image`` (the
picture), ``choices`` (list of str, or None), ``unit``, ``precision`` (float, for float
answers), ``answer`` (for multiple choice, the option's *text*), ``question_type``
("multi_choice" | "free_form"), ``answer_type`` ("text" | "integer" | "float" | "list"),
``metadata`` (category, context, grade, img_height, img_width, language, skills, source,
split, task) and ``query`` (the official prompt with its answer-format hint).

Decisions
    * The prompt is built from ``question`` and ``choices`` (options rendered "(A) ..."),
      not from ``query``, so that every benchmark is asked in the paper's own words; ``query``,
      ``precision``, the types and ``metadata`` are kept in ``meta``.
    * Free-form questions end with the paper's free-text ending ("answer the question using
      a single word or phrase."); multiple choice with the option-letter ending.

Scoring is by rule (lmms-eval's MathVista extracts answers with a GPT judge; we never do, and
we never fall back to "the most similar option" for an unreadable reply):
    * multi_choice: the option letter (by the shared rules: "(X)", a bare letter, an option's
      exact text, a standalone letter, the option whose number or text appears) must be the
      letter of the gold option text;
    * integer: the final answer reads as one number equal to the gold ("3.0" is 3; "2.7" is
      wrong: no truncation);
    * float: both rounded to ``precision`` decimals, then equal;
    * list: the last "[...]" (or a comma-separated answer) compared element by element, each
      number rounded to the gold element's decimals;
    * text: case-insensitive exact match.
    Without ``meta`` (``r3v score`` gets only response / answer / choices / unit), the type is
    inferred: choices present -> multiple choice; otherwise a gold "[...]" is a list, a gold
    that reads as a whole number is an integer, another number is a float whose precision is
    the number of decimals written in the gold, and anything else is text.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from r3v_eval import answers
from r3v_eval.benchmarks.base import Benchmark, DataError, Problem, register
from r3v_eval.benchmarks.images import open_image
from r3v_eval.benchmarks.kinds import ChoiceBenchmark

QUESTION_TYPES = ("multi_choice", "free_form")
ANSWER_TYPES = ("text", "integer", "float", "list")
_LIST = re.compile(r"\[([^\[\]]*)\]")


def decimals_in(text: str) -> int | None:
    """How many decimals a plain number is written with ("2.50" -> 2, "3" -> 0); None if the
    text is not a plain decimal number."""
    t = text.strip().replace(",", "")
    m = re.fullmatch(r"[-+−]?\d*(?:\.(\d+))?", t)
    if not m or not re.search(r"\d", t):
        return None
    return len(m.group(1) or "")


def _precision(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(f) or f < 0:
        return None
    return int(f)


def list_elements(text: str) -> list[str] | None:
    """The elements of a list answer: the last "[...]" in ``text``, else ``text`` itself split
    on commas (only when it has one). None when there is no list."""
    found = _LIST.findall(text)
    if found:
        body = found[-1]
    elif "," in text:
        body = text
    else:
        return None
    items = [e.strip().strip("'\"").strip() for e in body.split(",")]
    if not items or any(not e for e in items):
        return None
    return items


def _canonical_element(item: str) -> str:
    if answers.is_number(item):
        return answers.format_number(answers.parse_number(item), places=6)
    return answers.normalize_text(item)


def answer_kind(problem: Problem) -> tuple[str, int | None]:
    """("choice" | "integer" | "float" | "list" | "text", precision for floats)."""
    meta = problem.meta or {}
    if problem.choices and meta.get("question_type") != "free_form":
        return "choice", None
    gold = (problem.answer or "").strip()
    kind = meta.get("answer_type")
    if kind not in ANSWER_TYPES:
        kind = None
    if kind is None:  # no (usable) metadata: infer from the gold answer
        if gold.startswith("[") and list_elements(gold) is not None:
            kind = "list"
        elif answers.is_number(gold):
            value = answers.parse_number(gold)
            kind = "integer" if "." not in gold and value == int(value) else "float"
        else:
            kind = "text"
    precision = None
    if kind == "float":
        precision = _precision(meta.get("precision"))
        if precision is None:
            written = decimals_in(gold)
            precision = written if written is not None else 3
    return kind, precision


@register
class MathVista(Benchmark):
    name = "mathvista"
    hub_id = "AI4Math/MathVista"
    hub_config = None
    hub_splits = {"testmini": "testmini", "test": "test"}
    test_split = "testmini"

    # ---------------------------------------------------------------- loading
    def load_hub(self, split: str, limit: int | None = None) -> list[Problem]:
        if split not in self.hub_splits:
            raise DataError(
                f"MathVista is an out-of-distribution evaluation benchmark with no split "
                f"{split!r} (and no training split); known: {sorted(self.hub_splits)}"
            )
        return super().load_hub(split, limit)

    def problem_from_hub(self, row: dict[str, Any], index: int) -> Problem:
        where = f"{self.hub_id} row {index}"
        for key in ("pid", "question", "question_type"):
            if row.get(key) is None:
                raise DataError(f"{where}: missing {key!r}")
        qtype = str(row["question_type"])
        if qtype not in QUESTION_TYPES:
            raise DataError(f"{where}: unknown question_type {qtype!r}; known: {QUESTION_TYPES}")
        atype = row.get("answer_type")
        if atype is not None and atype not in ANSWER_TYPES:
            raise DataError(f"{where}: unknown answer_type {atype!r}; known: {ANSWER_TYPES}")
        choices = row.get("choices")
        if choices is not None and not isinstance(choices, (list, tuple)):
            raise DataError(f"{where}: 'choices' must be a list or null")
        choices = [str(c) for c in choices] if choices else None
        if qtype == "multi_choice" and (not choices or len(choices) < 2):
            raise DataError(f"{where}: a multi_choice question needs at least 2 choices")
        if row.get("decoded_image") is None:
            raise DataError(f"{where}: no 'decoded_image'")
        image = open_image(row["decoded_image"], where)
        answer = "" if row.get("answer") is None else str(row["answer"])
        if qtype == "multi_choice" and answer.strip() and answers.letter_of(answer, choices) is None:
            raise DataError(f"{where}: answer {answer!r} is not one of the choices {choices}")
        meta: dict[str, Any] = {"question_type": qtype}
        if atype is not None:
            meta["answer_type"] = atype
        precision = _precision(row.get("precision"))
        if precision is not None:
            meta["precision"] = precision
        for key in ("query", "image"):
            if row.get(key):
                meta["image_path" if key == "image" else key] = str(row[key])
        if isinstance(row.get("metadata"), dict):
            meta["metadata"] = dict(row["metadata"])
        return Problem(
            id=str(row["pid"]),
            question=str(row["question"]).strip(),
            answer=answer,
            benchmark=self.name,
            choices=choices if qtype == "multi_choice" else None,
            unit=str(row["unit"]) if row.get("unit") else None,
            image=image,
            meta=meta,
        )

    def problem_from_local(self, row: dict[str, Any], base_dir: Path, where: str) -> Problem:
        problem = super().problem_from_local(row, base_dir, where)
        qtype = problem.meta.get("question_type")
        if qtype is not None and qtype not in QUESTION_TYPES:
            raise DataError(f"{where}: meta.question_type must be one of {QUESTION_TYPES}")
        atype = problem.meta.get("answer_type")
        if atype is not None and atype not in ANSWER_TYPES:
            raise DataError(f"{where}: meta.answer_type must be one of {ANSWER_TYPES}")
        if qtype == "multi_choice" and not problem.choices:
            raise DataError(f"{where}: a multi_choice question needs 'choices'")
        if answer_kind(problem)[0] == "choice" and self.gold_letter(problem) is None:
            raise DataError(f"{where}: answer {problem.answer!r} is not one of the choices")
        return problem

    # -------------------------------------------------------------- prompting
    def cot_ending_for(self, problem: Problem) -> str:
        if answer_kind(problem)[0] == "choice":
            return ChoiceBenchmark.cot_ending
        return Benchmark.cot_ending  # "answer the question using a single word or phrase."

    def select_instruction_for(self, problem: Problem) -> str:
        if answer_kind(problem)[0] == "choice":
            return ChoiceBenchmark.select_instruction
        return Benchmark.select_instruction

    # ---------------------------------------------------------------- scoring
    def extract(self, reply: str, problem: Problem) -> str | None:
        text = answers.final_answer_text(reply)
        if text is None:
            return None
        kind, precision = answer_kind(problem)
        if kind == "choice":
            return answers.parse_choice(text, problem.choices)
        if kind in ("integer", "float"):
            value = answers.parse_number(text, problem.unit)
            if value is None:
                return None
            if kind == "float":
                return f"{round(value, precision):.{precision}f}"
            return answers.format_number(value, places=6)
        if kind == "list":
            items = list_elements(text)
            if items is None:
                return None
            return "[" + ", ".join(_canonical_element(e) for e in items) + "]"
        return answers.normalize_text(text) or None

    def match(self, extracted: str, problem: Problem) -> bool:
        kind, precision = answer_kind(problem)
        gold = (problem.answer or "").strip()
        if kind == "choice":  # the gold is the option's text (read text-first)
            return extracted == self.gold_letter(problem)
        if kind in ("integer", "float"):
            gold_value = answers.parse_number(gold)
            if gold_value is None:
                return False
            pred = float(extracted)
            if kind == "integer":
                return math.isclose(pred, gold_value, rel_tol=0, abs_tol=1e-9)
            return math.isclose(round(pred, precision), round(gold_value, precision),
                                rel_tol=0, abs_tol=10.0 ** -(precision + 6))
        if kind == "list":
            gold_items = list_elements(gold)
            pred_items = list_elements(extracted)
            if gold_items is None or pred_items is None or len(gold_items) != len(pred_items):
                return False
            return all(_elements_equal(p, g) for p, g in zip(pred_items, gold_items))
        return bool(gold) and extracted == answers.normalize_text(gold)


def _elements_equal(pred: str, gold: str) -> bool:
    if answers.is_number(gold):
        if not answers.is_number(pred):
            return False
        places = decimals_in(gold)
        g, p = answers.parse_number(gold), answers.parse_number(pred)
        if places is None:
            return math.isclose(p, g, rel_tol=1e-9, abs_tol=1e-9)
        return math.isclose(round(p, places), round(g, places), rel_tol=0,
                            abs_tol=10.0 ** -(places + 6))
    return answers.normalize_text(pred) == answers.normalize_text(gold)
