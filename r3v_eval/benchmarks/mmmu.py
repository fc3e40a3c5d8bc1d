"""MMMU: college-level multi-discipline questions over images (out-of-distribution evaluation
only: the paper never trains on it, and there is no training split).

Data source: Hugging Face ``MMMU/MMMU``, one config per subject (30 subjects, listed in
:data:`SUBJECTS`); splits ``dev`` (5 per subject, 150), ``validation`` (30 per subject, 900),
``test`` (10,500, answers withheld). Columns: ``id`` ("validation_Accounting_1"),
``question``, ``options`` (a *string* holding a Python list literal), ``explanation``,
``image_1`` .. ``image_7``, ``img_type``, ``answer`` (an option letter, or free text for open
questions), ``topic_difficulty``, ``question_type`` ("multiple-choice" | "open"),
``subfield``. (``lmms-lab/MMMU`` is the same data with all subjects concatenated.)

Decisions
    * Subjects: ``hub_config = None`` loads every subject in :attr:`MMMU.subjects` one config
      at a time and concatenates them (the 900-question validation set by default). Set
      ``hub_config`` to one subject name, or narrow ``subjects``, to load fewer.
    * Images: R3V passes every image the question and its options reference ("<image 2>"
      -> ``image_2``; every present image when none is referenced). Our engines take one
      picture per prompt, so by default (``image_mode = "merge"``) the referenced images are
      pasted side by side, in order, into one picture; ``image_mode = "first"`` keeps only the
      first. The question text keeps its "<image N>" placeholders verbatim (as lmms-eval's
      default, non-interleaved MMMU prompt does); the references are listed in
      ``meta["image_refs"]``.
    * Default split is ``validation`` (900; the test answers are not public);
      ``dev+validation`` (1,050) is the set R3V evaluated on (VLMEvalKit's MMMU_DEV_VAL).
      Asking for ``train`` is a clear error.

Scoring (rules after MMMU's own rule-based evaluation, no GPT judge; an unparseable reply is
always wrong, never MMMU's random pick):
    * multiple choice: the option letter by the shared rules (:func:`answers.parse_choice`:
      "(X)", a bare letter, an option's exact text, a standalone letter, then option text);
      a gold written as a list ("['A', 'C']") accepts any of its letters.
    * open, numeric gold (a number, optionally with a unit: "6.5 cm", "30%"): the reply's
      final answer must read as one number, equal to the gold after rounding both to 2
      decimals or within 1% of it.
    * open, text gold: case-insensitive, the gold (any element of a list gold) equals the
      final answer or appears in it as a whole word or phrase.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from typing import Any

from PIL import Image

from r3v_eval import answers
from r3v_eval.answers import LETTERS
from r3v_eval.benchmarks import hub
from r3v_eval.benchmarks.base import Benchmark, DataError, Problem, register
from r3v_eval.benchmarks.images import open_image, to_rgb
from r3v_eval.benchmarks.kinds import ChoiceBenchmark

SUBJECTS = (
    "Accounting", "Agriculture", "Architecture_and_Engineering", "Art", "Art_Theory",
    "Basic_Medical_Science", "Biology", "Chemistry", "Clinical_Medicine", "Computer_Science",
    "Design", "Diagnostics_and_Laboratory_Medicine", "Economics", "Electronics",
    "Energy_and_Power", "Finance", "Geography", "History", "Literature", "Manage", "Marketing",
    "Materials", "Math", "Mechanical_Engineering", "Music", "Pharmacy", "Physics", "Psychology",
    "Public_Health", "Sociology",
)
QUESTION_TYPES = ("multiple-choice", "open")
MAX_IMAGES = 7
_IMAGE_REF = re.compile(r"<image (\d+)>")
_NUMBER_WITH_UNIT = re.compile(
    r"\s*[$€£]?\s*[-+−]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+(?:\.\d+)?)?"
    r"\s*(?:%|°|[A-Za-z$°/²³]{1,12})?\.?\s*"
)


def literal_list(text: str) -> list[str] | None:
    """The elements of a Python list literal held in a string ("['A', 'B']"), else None."""
    t = text.strip() if isinstance(text, str) else ""
    if not (t.startswith("[") and t.endswith("]")):
        return None
    try:
        value = ast.literal_eval(t)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(value, (list, tuple)):
        return None
    return [str(v) for v in value]


def gold_number(text: str) -> float | None:
    """The gold's value when the gold is a number, optionally with a unit; else None."""
    if answers.is_number(text):
        return answers.parse_number(text)
    if _NUMBER_WITH_UNIT.fullmatch(text):
        return answers.parse_number(text)
    return None


def numbers_match(pred: float, gold: float) -> bool:
    """Equal after rounding to 2 decimals (MMMU's rule), or within 1% of the gold."""
    if round(pred, 2) == round(gold, 2):
        return True
    return gold != 0 and math.isclose(pred, gold, rel_tol=1e-2)


def subject_of(problem_id: str) -> str | None:
    m = re.match(r"^[a-z]+_(.+)_\d+$", problem_id)
    return m.group(1) if m else None


@register
class MMMU(Benchmark):
    name = "mmmu"
    hub_id = "MMMU/MMMU"
    hub_config = None  # None: every subject in ``subjects``; or one subject's name
    subjects: tuple[str, ...] = SUBJECTS
    hub_splits = {"dev": "dev", "validation": "validation", "test": "test",
                  "dev+validation": "dev+validation"}
    test_split = "validation"
    image_mode = "merge"  # "merge" | "first"

    # ---------------------------------------------------------------- loading
    def load_hub(self, split: str, limit: int | None = None) -> list[Problem]:
        if split not in self.hub_splits:
            raise DataError(
                f"MMMU is an out-of-distribution evaluation benchmark with no split {split!r} "
                f"(and no training split); known: {sorted(self.hub_splits)}"
            )
        configs = [self.hub_config] if self.hub_config else list(self.subjects)
        unknown = [c for c in configs if c not in SUBJECTS]
        if unknown:
            raise DataError(f"MMMU: unknown subject(s) {unknown}; known: {', '.join(SUBJECTS)}")
        report = self.new_report(f"{self.hub_id} ({len(configs)} subject(s))")
        problems: list[Problem] = []
        for config in configs:
            ds = hub.load_split(self.hub_id, config, self.hub_splits[split])
            remaining = None if limit is None else limit - len(problems)
            problems.extend(self.problems_from_rows(ds, remaining, report))
            if limit is not None and len(problems) >= limit:
                break
        self.finish_load(report)
        return problems

    def problem_from_hub(self, row: dict[str, Any], index: int) -> Problem:
        where = f"{self.hub_id} row {index}" + (f" ({row['id']})" if row.get("id") else "")
        for key in ("id", "question", "answer", "question_type"):
            if row.get(key) is None:
                raise DataError(f"{where}: missing {key!r}")
        qtype = str(row["question_type"])
        if qtype not in QUESTION_TYPES:
            raise DataError(f"{where}: unknown question_type {qtype!r}; known: {QUESTION_TYPES}")
        raw_options = row.get("options") or "[]"
        options = literal_list(raw_options) if isinstance(raw_options, str) else (
            [str(o) for o in raw_options] if isinstance(raw_options, (list, tuple)) else None)
        if options is None:
            raise DataError(f"{where}: 'options' is not a list literal: {str(raw_options)[:80]!r}")
        answer = str(row["answer"]).strip()
        choices = None
        if qtype == "multiple-choice":
            if len(options) < 2:
                raise DataError(f"{where}: a multiple-choice question needs at least 2 options")
            choices = options
        question = str(row["question"])
        refs = self._image_refs(question, options)
        image = self._pick_image(row, refs, where)
        meta: dict[str, Any] = {"question_type": qtype, "image_refs": refs}
        subject = subject_of(str(row["id"]))
        if subject:
            meta["subject"] = subject
        for key in ("subfield", "img_type", "topic_difficulty", "explanation"):
            if row.get(key) not in (None, ""):
                meta[key] = str(row[key])
        return Problem(
            id=str(row["id"]), question=question, answer=answer, benchmark=self.name,
            choices=choices, image=image, meta=meta,
        )

    @staticmethod
    def _image_refs(question: str, options: list[str]) -> list[int]:
        found = _IMAGE_REF.findall(question + "\n" + "\n".join(options))
        return sorted({int(n) for n in found if 1 <= int(n) <= MAX_IMAGES})

    def _pick_image(self, row: dict[str, Any], refs: list[int], where: str) -> Any:
        if self.image_mode not in ("first", "merge"):
            raise ValueError(f"MMMU.image_mode must be 'first' or 'merge', not {self.image_mode!r}")
        present = [k for k in range(1, MAX_IMAGES + 1) if row.get(f"image_{k}") is not None]
        missing = [k for k in refs if k not in present]
        if missing:
            raise DataError(f"{where}: the question references <image {missing[0]}>, "
                            f"but 'image_{missing[0]}' is empty")
        wanted = refs or present
        if self.image_mode == "first":
            wanted = wanted[:1]
        images = [open_image(row[f"image_{k}"], f"{where} image_{k}") for k in wanted]
        if not images:
            return None
        return images[0] if len(images) == 1 else merge_images(images)

    def problem_from_local(self, row: dict[str, Any], base_dir: Path, where: str) -> Problem:
        problem = super().problem_from_local(row, base_dir, where)
        qtype = problem.meta.get("question_type")
        if qtype is not None and qtype not in QUESTION_TYPES:
            raise DataError(f"{where}: meta.question_type must be one of {QUESTION_TYPES}")
        if qtype == "multiple-choice" and not problem.choices:
            raise DataError(f"{where}: a multiple-choice question needs 'choices'")
        if self._is_choice(problem) and not self._gold_letters(problem):
            raise DataError(f"{where}: answer {problem.answer!r} names no option "
                            f"(A-{LETTERS[len(problem.choices) - 1]})")
        return problem

    # -------------------------------------------------------------- prompting
    def cot_ending_for(self, problem: Problem) -> str:
        if self._is_choice(problem):
            return ChoiceBenchmark.cot_ending
        return Benchmark.cot_ending  # "answer the question using a single word or phrase."

    def select_instruction_for(self, problem: Problem) -> str:
        if self._is_choice(problem):
            return ChoiceBenchmark.select_instruction
        return Benchmark.select_instruction

    # ---------------------------------------------------------------- scoring
    @staticmethod
    def _is_choice(problem: Problem) -> bool:
        return bool(problem.choices) and problem.meta.get("question_type") != "open"

    @staticmethod
    def _gold_letters(problem: Problem) -> set[str]:
        golds = literal_list(problem.answer) or [problem.answer]
        letters = {answers.letter_of(g, problem.choices or [], letter_first=True) for g in golds}
        return {x for x in letters if x}

    def gold_letter(self, problem: Problem) -> str | None:
        letters = self._gold_letters(problem) if self._is_choice(problem) else set()
        return min(letters) if letters else None

    @staticmethod
    def _golds(problem: Problem) -> list[str]:
        return [g for g in (literal_list(problem.answer) or [problem.answer]) if g.strip()]

    def extract(self, reply: str, problem: Problem) -> str | None:
        text = answers.final_answer_text(reply)
        if text is None:
            return None
        if self._is_choice(problem):
            return answers.parse_choice(text, problem.choices)
        if any(gold_number(g) is not None for g in self._golds(problem)):
            value = answers.parse_number(text, problem.unit)
            if value is not None:
                return answers.format_number(value, places=6)
        return answers.normalize_text(text) or None

    def match(self, extracted: str, problem: Problem) -> bool:
        if self._is_choice(problem):
            return extracted in self._gold_letters(problem)
        pred_value = answers.parse_number(extracted) if answers.is_number(extracted) else None
        for gold in self._golds(problem):
            gold_value = gold_number(gold)
            if gold_value is not None:
                if pred_value is not None and numbers_match(pred_value, gold_value):
                    return True
                continue
            norm = answers.normalize_text(gold)
            if norm and (extracted == norm or re.search(
                    r"(?<![a-z0-9])" + re.escape(norm) + r"(?![a-z0-9])", extracted)):
                return True
        return False


def merge_images(images: list[Image.Image], gap: int = 10) -> Image.Image:
    """Paste images side by side (top-aligned, white background) into one RGB picture."""
    rgb = [to_rgb(im) for im in images]
    width = sum(im.width for im in rgb) + gap * (len(rgb) - 1)
    height = max(im.height for im in rgb)
    canvas = Image.new("RGB", (width, height), "white")
    x = 0
    for im in rgb:
        canvas.paste(im, (x, 0))
        x += im.width + gap
    return canvas
