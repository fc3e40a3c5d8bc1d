"""GeoQA: multiple-choice plane-geometry problems with a diagram (4,998 problems from Chinese
middle-school exams; 3,499 train / 745 validation / 754 test).

Data source
    The official release (github.com/chen-judge/GeoQA) is a Dropbox archive of pickles, and the
    R3V Qwen2-VL companion's processed copy (UniGeo's English translation, questions prefixed
    with "Calculation:") sits on a university file server; neither is on the Hugging Face hub.
    The public hub copy used here is ``hz2475/geoQA`` ("unofficial HF port of GeoQA, with same
    splits from official implementation"): ONE hub split ``train`` holding every problem, with
    columns ``id`` (int), ``subject`` (the problem text), ``choices`` (list of str), ``label``
    (int, index of the right choice), ``formal_point`` (list of knowledge points), ``answer``,
    ``comment`` (the worked explanation), ``original_split`` (the official split) and ``image``.
    Our ``train`` / ``validation`` / ``test`` are the rows whose ``original_split`` names that
    split (``val`` / ``valid`` / ``dev`` count as validation). The problem text is whatever the
    port carries (the official text); to reproduce the companion's English prompts exactly,
    convert its files to the canonical local schema (answer = letter, ``choices`` = options)
    and pass the folder as ``source``.

Scoring (R3V rules, never random credit): the final answer is taken after the last "Answer:"
(or "The answer is", ``\\boxed{}``), else the whole reply; in it, the last "(X)", else the reply
being just a letter, else an option's exact text, else the last standalone option letter, else
the option whose number equals the reply's number. GeoQA-specific: capital letters that name
points ("angle C = 40°", "triangle A B C", "A B parallel C D", "∠A") are not option letters, so
"Answer: angle C = 40°" reads as the option "40". Anything unparseable is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from r3v_eval import answers
from r3v_eval.answers import LETTERS
from r3v_eval.benchmarks.base import DataError, Problem, register
from r3v_eval.benchmarks.kinds import ChoiceBenchmark

# what the port's ``original_split`` may say -> our split name
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}

_GEOMETRY_NOUNS = (
    "angle|angles|point|points|line|lines|side|sides|segment|segments|triangle|triangles|"
    "circle|circles|chord|chords|arc|arcs|vertex|vertices|center|centre|diameter|radius|"
    "tangent|quadrilateral|parallelogram|rectangle|square|rhombus|trapezoid|polygon|ray|rays|"
    "edge|edges|plane|bisector|median|height|altitude|foot|intersection"
)
_GEOMETRY_SYMBOLS = "∠⊙△▱□⊥∥≌∽≅"
# a point name is preceded by a geometry noun or symbol, or by another point name ("A B"),
# or stands next to a relation ("A = 80", "A B parallel C D", "B′")
_BEFORE_POINT = re.compile(
    rf"(?:(?<![A-Za-z])(?:{_GEOMETRY_NOUNS})|[{_GEOMETRY_SYMBOLS}=+×÷<>≤≥≠]|"
    r"(?-i:(?<![A-Za-z0-9'])[A-Z]))\s*$",
    re.IGNORECASE,
)
_AFTER_POINT = re.compile(
    rf"^(?:\s*[{_GEOMETRY_SYMBOLS}=+×÷<>≤≥≠′'’]|\s+[A-Z](?![A-Za-z0-9])|"
    r"\s+(?:parallel|perpendicular|bisects|intersects|meets)\b)"
)
_CAPITAL = re.compile(r"(?<![A-Za-z0-9'])([A-Z])(?![A-Za-z0-9'])")


def mask_point_names(text: str) -> str:
    """Replace capital letters that name geometric points with '#', leaving option letters.

    A letter in parentheses ("(C)") is always an option and is never masked."""
    out = list(text)
    for m in _CAPITAL.finditer(text):
        start, end = m.span()
        if start > 0 and text[start - 1] == "(" and end < len(text) and text[end] == ")":
            continue
        before, after = text[:start], text[end:]
        if _BEFORE_POINT.search(before) or _AFTER_POINT.match(after):
            out[start] = "#"
    return "".join(out)


def normalize_split(value: Any) -> str | None:
    """Our split name for a row's ``original_split`` value (None if unknown)."""
    if value is None:
        return None
    return SPLIT_ALIASES.get(str(value).strip().lower())


@register
class GeoQA(ChoiceBenchmark):
    name = "geoqa"
    display_name = "GeoQA"
    hub_id = "hz2475/geoQA"
    hub_config = None
    hub_split = "train"  # the port's only split; ours are selected by ``original_split``
    hub_splits = {"train": "train", "validation": "train", "test": "train"}
    split_column = "original_split"

    # ---------------------------------------------------------------- loading
    def load_hub(self, split: str, limit: int | None = None) -> list[Problem]:
        if split not in self.hub_splits:
            raise DataError(
                f"benchmark {self.name!r} has no split {split!r}; known: {sorted(self.hub_splits)}"
            )
        import datasets  # heavy import, only when really loading from the hub

        ds = datasets.load_dataset(self.hub_id, self.hub_config, split=self.hub_split)
        if self.split_column not in ds.column_names:
            raise DataError(
                f"{self.hub_id}: no {self.split_column!r} column (columns: {ds.column_names})"
            )
        # filter on the split column alone, so no image is decoded for rows we drop
        kept = ds.filter(lambda value: normalize_split(value) == split,
                         input_columns=self.split_column)
        if len(kept) == 0:
            seen = sorted({str(v) for v in ds.unique(self.split_column)})
            raise DataError(
                f"{self.hub_id}: no row has {self.split_column} meaning {split!r} "
                f"(values seen: {seen})"
            )
        return self.problems_from_rows(kept, limit)

    def problems_from_rows(self, rows: Iterable[dict[str, Any]], limit: int | None = None,
                           split: str | None = None) -> list[Problem]:
        """Map hub-shaped rows; with ``split``, keep only rows whose ``original_split`` is it."""
        if split is not None:
            rows = (r for r in rows if normalize_split(r.get(self.split_column)) == split)
        return super().problems_from_rows(rows, limit)

    def problem_from_hub(self, row: dict[str, Any], index: int) -> Problem:
        where = f"{self.hub_id} row {index}"
        question = row.get("subject") or row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}: no problem text ('subject')")
        choices = self.row_choices(row, where)
        letter = None
        label = row.get("label")
        if label is not None:
            try:
                label = int(label)
            except (TypeError, ValueError):
                raise DataError(f"{where}: 'label' must be an integer, got {label!r}") from None
            if not 0 <= label < len(choices):
                raise DataError(f"{where}: 'label' {label} is out of range for "
                                f"{len(choices)} choices")
            letter = LETTERS[label]
        elif isinstance(row.get("answer"), str):
            letter = answers.letter_of(row["answer"], choices)
        if letter is None:
            raise DataError(f"{where}: no usable gold answer ('label' or 'answer')")
        meta: dict[str, Any] = {}
        if row.get(self.split_column) is not None:
            meta["original_split"] = str(row[self.split_column])
        if row.get("formal_point"):
            meta["formal_point"] = [str(p) for p in row["formal_point"]]
        if row.get("comment"):
            meta["comment"] = str(row["comment"])
        if row.get("answer") not in (None, ""):
            meta["answer_field"] = str(row["answer"])
        return self.choice_problem(row, index, where, question.strip(), choices, letter, meta)

    # ---------------------------------------------------------------- scoring
    def extract(self, reply: str, problem: Problem) -> str | None:
        if not problem.choices:
            return None
        text = answers.final_answer_text(reply)
        if text is None:
            return None
        return answers.parse_choice(mask_point_names(text), problem.choices)
