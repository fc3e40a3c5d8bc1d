"""TabMWP: tabular math word problems, the table shown as a picture.

Data sources, in order of fidelity:

* **PromptPG's release** (github.com/lupantech/PromptPG, ``data/tabmwp``), the original data:
  ``problems_{train,dev,test,dev1k,test1k}.json``, each a JSON object ``{pid: problem}`` with
  the fields ``question``, ``choices`` (null or a list of strings), ``answer`` (for multiple
  choice: the option's text), ``unit`` (null or a string such as ``"$"``), ``table_title``,
  ``table`` (the table as "a | b" text), ``table_for_pd``, ``row_num``, ``column_num``,
  ``solution``, ``ques_type`` (``free_text`` / ``multi_choice``), ``ans_type``, ``grade``,
  ``split``; the table pictures are ``tables/<pid>.png``. Pass that folder as ``source``:
  ``TabMWP().load("test", source="PromptPG/data/tabmwp")`` (23,059 train / 7,686 test; R3V's
  official evaluation uses ``test1k``).
* a folder or ``.jsonl`` file in the canonical local schema (see :mod:`.base`); TabMWP extras
  (table text, question type, ...) go in ``meta``.
* the Hugging Face copy ``JiaerX/TabMWP`` (its card: ``image`` (Image), ``id``, ``question``,
  ``options`` (list of strings), ``answer``; one split, ``train``, 23,059 rows). No hub copy
  with the test split and a documented schema was found, so the test split comes from
  PromptPG's files. :meth:`TabMWP.problem_from_hub` also accepts rows shaped like PromptPG's
  problems (``choices``, ``unit``, ``table``, ... with a ``pid``).

Prompt (R3V's official code): the question, then `` (Unit: <unit>)`` when there is a unit, then
the options as ``(A) ...`` lines; the CoT ending depends on the question type.

Scoring follows PromptPG's rules (as R3V's official evaluation does):

* free text: the final answer is read as a number when the gold answer is one
  (``"$"`` and thousands commas stripped, a fraction ``a/b`` becomes ``round(a/b, 3)``, other
  numbers are rounded to 3 places), and both sides compared as those canonical numbers;
  otherwise both are compared as text, lower-cased, with the unit removed.
* multiple choice: the chosen letter ("B", "(B)", "B.") or the option's own text is mapped to
  the option, and the option's text must equal the gold text (lower-cased).
* no answer at all, no number where one is due, an option that cannot be identified: the reply
  is unparseable and wrong (PromptPG guesses the most similar option; we never guess).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from r3v_eval import answers
from r3v_eval.answers import LETTERS
from r3v_eval.benchmarks.base import (
    Benchmark,
    DataError,
    Problem,
    load_local,
    register,
    required_text,
)
from r3v_eval.benchmarks.images import check_image_file, open_image

FREE_TEXT_ENDING = "answer the question using a single word or phrase."
MULTI_CHOICE_ENDING = "answer with the option's letter from the given choices directly."
SELECT_INSTRUCTION = (
    "Which prediction has the right OCR, reasoning and calculations? Give the final answer."
)

PROMPTPG_REPO = "https://github.com/lupantech/PromptPG"
_PROMPTPG_SPLITS = {"validation": "dev", "val": "dev"}
_FRAC = re.compile(r"\\[dt]?frac\{\s*([-+−]?[\d.,]+)\s*\}\{\s*([-+−]?[\d.,]+)\s*\}")
_PROMPTPG_NUMBER = re.compile(r"^[-+]?[\d,./]+$")


# ------------------------------------------------------------- normalising
def gold_number(answer: str) -> float | None:
    """The value of a gold answer under PromptPG's rule, or None when it is a text answer.

    A leading "$" and a trailing ",", "." or "/" are dropped; what is left must be made of
    digits, ",", "." and "/" only (with an optional sign)."""
    text = re.sub(r"^\$", "", answer.strip())
    text = re.sub(r"[,./]$", "", text)
    if not _PROMPTPG_NUMBER.match(text):
        return None
    text = text.replace(",", "")
    try:
        if "/" in text:
            num, den = (answers.exact_number(t) for t in text.split("/", 1))
            exact = isinstance(num, int) and isinstance(den, int) and den and num % den == 0
            return num // den if exact else num / den
        return answers.exact_number(text)  # an int keeps every digit
    except (ValueError, ZeroDivisionError):
        return None


def canonical_number(value: float) -> str:
    """PromptPG's canonical text of a number: rounded to 3 places, no trailing zeros."""
    return answers.format_number(value, places=3)


def normalize_text_answer(text: str, unit: str | None) -> str:
    """A text answer for comparison: the unit removed, lower-case, single spaces, no final dot."""
    t = text
    if unit:  # as a whole word only: unit "m" must not eat the "m" of "swim"
        t = re.sub(r"(?<![A-Za-z0-9])" + re.escape(unit) + r"(?![A-Za-z0-9])", " ", t,
                   flags=re.IGNORECASE)
    return answers.normalize_text(t)


def _latex_fractions(text: str) -> str:
    """``\\frac{16}{95}`` (or ``$\\frac{16}{95}$``) -> ``16/95``, as PromptPG does."""
    text = _FRAC.sub(r"\1/\2", text)
    return re.sub(r"\$(\s*[-+−]?[\d.,]+/[\d.,]+\s*)\$", r"\1", text)


def _clean_choices(value: Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value):
        raise DataError(f"{where}: choices must be a list of strings")
    return list(value) or None


def _meta_from(row: dict[str, Any]) -> dict[str, Any]:
    meta = {k: row[k] for k in ("table_title", "table", "ques_type", "ans_type", "grade",
                                 "solution", "split") if row.get(k) is not None}
    return meta


# -------------------------------------------------------------- benchmark
@register
class TabMWP(Benchmark):
    """Tabular math word problems: free text (numbers or words) and multiple choice."""

    name = "tabmwp"
    hub_id = "JiaerX/TabMWP"
    hub_splits = {"train": "train"}
    cot_ending = FREE_TEXT_ENDING
    select_instruction = SELECT_INSTRUCTION

    # ---------------------------------------------------------------- loading
    def _problem(self, row: dict[str, Any], pid: str, image: Any, where: str) -> Problem:
        question = required_text(row, "question", where)
        if row.get("answer") is None or not str(row["answer"]).strip():
            raise DataError(f"{where}: missing or empty 'answer'")
        choices = _clean_choices(row["choices"] if "choices" in row else row.get("options"), where)
        unit = row.get("unit")
        if unit is not None and not isinstance(unit, str):
            raise DataError(f"{where}: 'unit' must be a string or null")
        answer = self._gold_answer(str(row["answer"]).strip(), choices, where)
        return Problem(
            id=pid,
            question=question.strip(),
            answer=answer,
            benchmark=self.name,
            choices=choices,
            unit=(unit or "").strip() or None,
            image=image,
            meta=_meta_from(row),
        )

    @staticmethod
    def _gold_answer(answer: str, choices: list[str] | None, where: str) -> str:
        """The gold answer as text; for multiple choice, the chosen option's text."""
        if not choices:
            return answer
        texts = [answers.normalize_text(c) for c in choices]
        if answers.normalize_text(answer) in texts:
            return answer
        letter = answers.letter_of(answer, choices)
        if letter is not None:  # some copies store the letter
            return choices[LETTERS.index(letter)]
        raise DataError(f"{where}: answer {answer!r} is not one of the choices {choices}")

    def problem_from_hub(self, row: dict[str, Any], index: int) -> Problem:
        where = f"{self.hub_id} row {index}"
        pid = row.get("pid", row.get("id"))
        pid = str(pid) if pid is not None and str(pid).strip() else f"{index:05d}"
        if row.get("image") is None:
            raise DataError(f"{where}: no table image")
        image = open_image(row["image"], where)
        return self._problem(row, f"tabmwp-{pid}", image, where)

    def problem_from_local(self, row: dict[str, Any], base_dir: Path, where: str) -> Problem:
        problem = super().problem_from_local(row, base_dir, where)
        problem.answer = self._gold_answer(problem.answer.strip(), problem.choices, where)
        return problem

    def load(self, split: str | None = None, source: str | Path | None = None,
             limit: int | None = None) -> list[Problem]:
        """``source`` may be PromptPG's ``data/tabmwp`` folder (``problems_<split>.json`` +
        ``tables/``), a canonical-schema folder or ``.jsonl`` file; none: the hub copy."""
        split = split or self.test_split
        if source is not None:
            folder = Path(source)
            name = _PROMPTPG_SPLITS.get(split, split)
            if folder.is_dir() and (folder / f"problems_{name}.json").is_file():
                return self.load_promptpg(folder, name, limit)
            return load_local(self, source, split, limit)
        return self.load_hub(split, limit)

    def load_hub(self, split: str, limit: int | None = None) -> list[Problem]:
        if split not in self.hub_splits:
            raise DataError(
                f"tabmwp: split {split!r} comes from PromptPG's release, the original data "
                f"(the hub copy {self.hub_id} has only {sorted(self.hub_splits)}). Get it with "
                f"`git clone --depth 1 {PROMPTPG_REPO}` and pass source=PromptPG/data/tabmwp "
                "(recipe data.source, or R3V_DATA_TABMWP for the lmms-eval task r3v_tabmwp); "
                "a folder in the canonical schema works too"
            )
        return super().load_hub(split, limit)

    def load_promptpg(self, folder: str | Path, split: str, limit: int | None = None
                      ) -> list[Problem]:
        """Read PromptPG's release: ``problems_<split>.json`` and ``tables/<pid>.png``."""
        folder = Path(folder)
        path = folder / f"problems_{split}.json"
        if not path.is_file():
            raise DataError(f"tabmwp: PromptPG file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected an object mapping problem ids to problems")
        report = self.new_report(str(path))
        problems: list[Problem] = []
        for pid, row in data.items():
            if limit is not None and len(problems) >= limit:
                break
            problem = report.add(lambda: self._promptpg_problem(folder, path, pid, row))
            if problem is not None:
                problems.append(problem)
        self.finish_load(report)
        return problems

    def _promptpg_problem(self, folder: Path, path: Path, pid: str, row: Any) -> Problem:
        where = f"{path}: problem {pid}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: a problem must be a JSON object")
        image = folder / "tables" / f"{pid}.png"
        if not image.is_file():
            raise DataError(f"{where}: table image not found: {image}")
        check_image_file(image, where)
        return self._problem(row, f"tabmwp-{pid}", str(image), where)

    # -------------------------------------------------------------- prompting
    def question_text(self, problem: Problem) -> str:
        text = problem.question.strip()
        if problem.unit:
            text = f"{text} (Unit: {problem.unit})"
        if problem.choices:
            text += "\nOptions:\n" + "\n".join(
                f"({LETTERS[i]}) {c}" for i, c in enumerate(problem.choices)
            )
        return text

    def cot_ending_for(self, problem: Problem) -> str:
        return MULTI_CHOICE_ENDING if problem.choices else FREE_TEXT_ENDING

    # ---------------------------------------------------------------- scoring
    def extract(self, reply: str, problem: Problem) -> str | None:
        """A letter for multiple choice; a canonical number or a normalised text otherwise."""
        text = answers.answer_text_or_none(reply)
        if text is None:
            return None
        text = _latex_fractions(text)
        if problem.choices:
            return answers.parse_choice(text, problem.choices)
        if gold_number(problem.answer) is not None:
            value = answers.parse_number(text, problem.unit)
            return None if value is None else canonical_number(value)
        return normalize_text_answer(text, problem.unit) or None

    def match(self, extracted: str, problem: Problem) -> bool:
        if problem.choices:
            letter = extracted.strip().upper()
            if len(letter) == 1 and letter in LETTERS[: len(problem.choices)]:
                chosen = problem.choices[LETTERS.index(letter)]
            else:
                chosen = extracted
            return (normalize_text_answer(chosen, problem.unit)
                    == normalize_text_answer(problem.answer, problem.unit))
        gold = gold_number(problem.answer)
        if gold is not None:
            value = answers.parse_number(extracted, problem.unit)
            return value is not None and canonical_number(value) == canonical_number(gold)
        return normalize_text_answer(extracted, problem.unit) == normalize_text_answer(
            problem.answer, problem.unit)
