"""GeoQA: multiple-choice plane-geometry problems with a diagram (4,998 problems from Chinese
middle-school exams; 3,499 train / 745 validation / 754 test).

Data sources
    * ``geoqa`` (the default, as R3V ran it): the Qwen2-VL companion's processed copy, i.e.
      UniGeo's English translation with each question prefixed "Calculation:", answers as
      option letters. It is not on the Hugging Face hub: download ``geoQA-data`` from
      :data:`COMPANION_URL` (linked from github.com/Liac-li/MM-self-improve-qwen2vl) and pass
      the folder as ``source``. Its ``train.jsonl`` / ``test.jsonl`` each hold one JSON array
      of ``{"question", "choices", "answer", "image"}`` items, ``image`` a file name under
      ``images/``; a folder in the canonical JSONL schema is read too.
    * ``geoqa_zh`` (a labelled option, never mixed with the above): the hub port
      ``hz2475/geoQA`` of the *Chinese* original ("unofficial HF port of GeoQA, with same
      splits from official implementation"). ONE hub split ``train`` holds every problem (5,010
      rows), with columns ``id`` (int), ``subject`` (the problem text, in Chinese),
      ``choices`` (list of str), ``label`` (int, index of the right choice), ``formal_point``,
      ``answer`` and ``comment`` (the worked explanation), ``original_split`` and ``image``.
      Our ``train`` / ``validation`` / ``test`` are the rows whose ``original_split`` names
      that split (``val`` / ``valid`` / ``dev`` count as validation; secondary counts: 3,503 /
      748 / 759). Its questions are Chinese and the prompt's ending English, so its scores are
      not comparable with the paper's.

Scoring (R3V rules, never random credit): the final answer is taken after the last "Answer:"
(or "The answer is", ``\\boxed{}``), else the whole reply; in it, the last "(X)", else the reply
being just a letter, else an option's exact text, else the last standalone option letter, else
the option whose number equals the reply's number. GeoQA-specific: capital letters that name
points ("angle C = 40°", "triangle A B C", "A B parallel C D", "∠A") are not option letters, so
"Answer: angle C = 40°" reads as the option "40". Anything unparseable is wrong.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from r3v_eval import answers
from r3v_eval.answers import LETTERS
from r3v_eval.benchmarks import hub
from r3v_eval.benchmarks.base import DataError, Problem, load_local, register
from r3v_eval.benchmarks.kinds import ChoiceBenchmark

COMPANION_URL = "https://box.nju.edu.cn/d/e98543150f294501b7fc/"

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


def companion_row(item: Any, default_id: str, where: str) -> dict[str, Any]:
    """One item of the companion's ``geoQA-data`` files as a canonical row (image under
    ``images/``)."""
    if not isinstance(item, dict):
        raise DataError(f"{where}: an item must be a JSON object")
    image = item.get("image")
    if not isinstance(image, str) or not image.strip():
        raise DataError(f"{where}: missing 'image' (a file name under images/)")
    row = {key: item[key] for key in ("question", "choices", "answer") if key in item}
    row["id"] = str(item.get("id", default_id))
    row["image"] = image if "/" in image else f"images/{image}"
    row["meta"] = {"source": "R3V Qwen2-VL companion (UniGeo, English)"}
    return row


@register
class GeoQA(ChoiceBenchmark):
    """GeoQA as R3V ran it: the English (UniGeo) text of the companion's processed copy."""

    name = "geoqa"
    display_name = "GeoQA"

    # ---------------------------------------------------------------- loading
    def load(self, split: str | None = None, source: str | Path | None = None,
             limit: int | None = None) -> list[Problem]:
        split = split or self.test_split
        if source is None:
            raise DataError(
                f"geoqa: R3V's GeoQA (UniGeo's English text) is not on the Hugging Face hub. "
                f"Download the processed copy geoQA-data from {COMPANION_URL} (train.jsonl, "
                "test.jsonl, images/) and pass its folder as source (recipe data.source, or "
                "R3V_DATA_GEOQA for the lmms-eval task r3v_geoqa). The Chinese hub port "
                "hz2475/geoQA is the separate benchmark 'geoqa_zh' (task r3v_geoqa_zh).")
        path = Path(source)
        file = path if path.suffix in (".json", ".jsonl") else path / f"{split}.jsonl"
        if not file.is_file():
            raise DataError(f"geoqa: data file not found: {file}")
        with file.open(encoding="utf-8", errors="replace") as fh:
            first = fh.read(4096).lstrip()[:1]
        if first != "[":
            return load_local(self, file, split, limit)
        return self.load_companion(file, limit)

    def load_companion(self, file: Path, limit: int | None = None) -> list[Problem]:
        """Read one of the companion's files: a JSON array of items (see the module doc)."""
        try:
            items = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{file}: not a JSON array of GeoQA items ({exc})") from None
        if not isinstance(items, list):
            raise DataError(f"{file}: expected a JSON array of GeoQA items")
        report = self.new_report(str(file))
        problems: list[Problem] = []
        for i, item in enumerate(items):
            if limit is not None and len(problems) >= limit:
                break
            where = f"{file}: item {i}"
            problem = report.add(lambda: self.problem_from_local(
                companion_row(item, f"{file.stem}-{i}", where), file.parent, where))
            if problem is not None:
                problems.append(problem)
        self.finish_load(report)
        return problems


    # ---------------------------------------------------------------- scoring
    def extract(self, reply: str, problem: Problem) -> str | None:
        if not problem.choices:
            return None
        text = answers.final_answer_text(reply)
        if text is None:
            return None
        return answers.parse_choice(mask_point_names(text), problem.choices)


@register
class GeoQAChinese(GeoQA):
    """GeoQA's Chinese original, from the hub port ``hz2475/geoQA`` (see the module doc)."""

    name = "geoqa_zh"
    display_name = "GeoQA (Chinese hub port)"
    hub_id = "hz2475/geoQA"
    hub_config = None
    hub_splits = {"train": "train", "validation": "train", "test": "train"}
    split_column = "original_split"

    def load(self, split: str | None = None, source: str | Path | None = None,
             limit: int | None = None) -> list[Problem]:
        """The hub port by default; ``source``: local files in the canonical schema."""
        return ChoiceBenchmark.load(self, split, source, limit)

    def load_hub(self, split: str, limit: int | None = None) -> list[Problem]:
        ds = hub.load_split(self.hub_id, self.hub_config, self.check_hub_split(split))
        if self.split_column not in ds.column_names:
            raise DataError(
                f"{self.hub_id}: no {self.split_column!r} column (columns: {ds.column_names})"
            )
        # filter on the split column alone, so no image is read for rows we drop
        kept = ds.filter(lambda value: normalize_split(value) == split,
                         input_columns=self.split_column)
        if len(kept) == 0:
            seen = sorted({str(v) for v in ds.unique(self.split_column)})
            raise DataError(
                f"{self.hub_id}: no row has {self.split_column} meaning {split!r} "
                f"(values seen: {seen})"
            )
        return self.problems_from_rows(kept, limit)

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
        meta["language"] = "zh"
        if row.get("formal_point"):
            meta["formal_point"] = [str(p) for p in row["formal_point"]]
        if row.get("comment"):
            meta["comment"] = str(row["comment"])
        if row.get("answer") not in (None, ""):
            meta["answer_field"] = str(row["answer"])
        return self.choice_problem(row, index, where, question.strip(), choices, letter, meta)
