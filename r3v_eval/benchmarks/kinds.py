"""Scoring families shared by several benchmarks: integer, relaxed numeric, multiple choice;
and the base of the synthetic worlds, whose splits are generated in memory.

A benchmark module picks one family and adds its data mapping and prompt wording.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from r3v_eval import answers
from r3v_eval.answers import LETTERS
from r3v_eval.benchmarks.base import Benchmark, DataError, Problem
from r3v_eval.benchmarks.images import open_image


class IntegerBenchmark(Benchmark):
    """Integer answers (CLEVR-Math, shapes): the candidate must read as one whole number."""

    def extract(self, reply: str, problem: Problem) -> str | None:
        value = answers.parse_number(answers.answer_text_or_none(reply), problem.unit)
        if value is None or value != int(value):
            return None
        return str(int(value))

    def match(self, extracted: str, problem: Problem) -> bool:
        gold = answers.parse_number(problem.answer)
        return gold is not None and answers.parse_number(extracted) == gold  # exact for integers


class RelaxedBenchmark(Benchmark):
    """ChartQA's relaxed accuracy: numbers within 5% of gold, else case-insensitive exact match."""

    tolerance = 0.05

    def extract(self, reply: str, problem: Problem) -> str | None:
        text = answers.answer_text_or_none(reply)
        if text is None:
            return None
        if answers.is_number(problem.answer):
            value = answers.parse_number(text, problem.unit)
            if value is not None:
                return answers.format_number(value, places=6)
        yn = answers.yes_no(text)
        if yn is not None and answers.yes_no(problem.answer) is not None:
            return yn
        return answers.normalize_text(text) or None

    def match(self, extracted: str, problem: Problem) -> bool:
        gold_value = answers.parse_number(problem.answer) if answers.is_number(problem.answer) else None
        if gold_value is not None:
            pred_value = answers.parse_number(extracted)
            if pred_value is None:
                return False
            return answers.relaxed_number_match(pred_value, gold_value, self.tolerance)
        return extracted == answers.normalize_text(problem.answer)


class ChoiceBenchmark(Benchmark):
    """Multiple choice: the chosen option letter must equal the gold letter.

    The gold answer may be stored as a letter or as the option's text. The class also holds
    the hub-row mapping that multiple-choice data sets share (options, gold letter, image, the
    finished problem) and checks that a local row has at least 2 options and a gold answer
    naming one of them.
    """

    cot_ending = "answer with the option's letter from the given choices directly."
    select_instruction = "Which prediction is correct? Give the final answer by selecting the correct option."
    display_name: str = ""  # how errors name the benchmark ("GeoQA"); ``name`` if empty

    # ------------------------------------------------------------ row mapping
    @staticmethod
    def row_choices(row: dict[str, Any], where: str) -> list[str]:
        """A hub row's ``choices`` as strings: a list of at least 2 options."""
        choices = row.get("choices")
        if not isinstance(choices, (list, tuple)) or len(choices) < 2:
            raise DataError(f"{where}: 'choices' must be a list of at least 2 options")
        return [str(c) for c in choices]

    @staticmethod
    def row_gold_letter(answer: Any, choices: list[str], where: str,
                        letter_first: bool = False) -> str:
        """The option letter of a gold answer given as an option's text or as a letter
        (``letter_first`` for sources whose gold is a letter by definition)."""
        letter = answers.letter_of(str(answer), choices, letter_first=letter_first)
        if letter is None:
            raise DataError(f"{where}: answer {answer!r} is neither an option letter "
                            f"(A-{LETTERS[len(choices) - 1]}) nor an option's text")
        return letter

    def choice_problem(self, row: dict[str, Any], index: int, where: str, question: str,
                       choices: list[str], letter: str, meta: dict[str, Any]) -> Problem:
        """The problem of a mapped hub row; opens the row's ``image`` and picks its id."""
        image = row.get("image")
        if image is not None:
            image = open_image(image, where)
        return Problem(
            id=str(row["id"]) if row.get("id") not in (None, "") else str(index),
            question=question,
            answer=letter,
            benchmark=self.name,
            choices=choices,
            image=image,
            meta=meta,
        )

    def problem_from_local(self, row: dict[str, Any], base_dir: Path, where: str) -> Problem:
        problem = super().problem_from_local(row, base_dir, where)
        if not problem.choices or len(problem.choices) < 2:
            raise DataError(f"{where}: {self.display_name or self.name} rows need 'choices' "
                            "(a list of at least 2 options)")
        problem.answer = self.row_gold_letter(problem.answer, problem.choices, where)
        return problem

    # ---------------------------------------------------------------- scoring
    def extract(self, reply: str, problem: Problem) -> str | None:
        if not problem.choices:
            return None
        return answers.parse_choice(answers.final_answer_text(reply), problem.choices)

    def gold_letter(self, problem: Problem) -> str | None:
        """Loaded problems hold their gold as the letter (see :meth:`choice_problem`)."""
        return answers.letter_of(problem.answer, problem.choices or [], letter_first=True)

    def match(self, extracted: str, problem: Problem) -> bool:
        gold = self.gold_letter(problem)
        return gold is not None and extracted == gold


class GeneratedBenchmark(IntegerBenchmark):
    """A synthetic world with integer answers whose splits are generated in memory,
    deterministically from a seed (``load(split)``), or read from canonical local files
    (``load(split, source=DIR)``). A world sets ``default_sizes`` (problems per split) and
    implements :meth:`make_problems`."""

    hub_id = None
    default_sizes: dict[str, int] = {}

    def set_sizes(self, seed: int, sizes: dict[str, int] | None) -> None:
        """Keep the data seed and the problems per split (``sizes`` overrides the defaults);
        an unknown split or a count below 0 is an error naming it."""
        self.seed = seed
        unknown = sorted(set(sizes or {}) - set(self.default_sizes))
        if unknown:
            raise ValueError(f"{self.name} sizes: unknown split {unknown[0]!r}; known: "
                             f"{', '.join(self.default_sizes)}")
        self.sizes = {**self.default_sizes, **(sizes or {})}
        bad = {k: v for k, v in self.sizes.items()
               if isinstance(v, bool) or not isinstance(v, int) or v < 0}
        if bad:
            raise ValueError(f"{self.name} sizes: a count >= 0 per split, got {bad}")

    def make_problems(self, split: str, n: int) -> list[Problem]:
        """The first ``n`` problems of ``split``'s stream."""
        raise NotImplementedError

    def load(self, split: str | None = None, source: str | Path | None = None,
             limit: int | None = None) -> list[Problem]:
        """From ``source`` (canonical local files) when given, else generated in memory."""
        split = split or self.test_split
        if source is not None:
            return super().load(split, source, limit)
        return self.generate(split, limit)

    def generate(self, split: str, limit: int | None = None) -> list[Problem]:
        split = {"validation": "val", "dev": "val"}.get(split, split)
        if split not in self.sizes:
            raise DataError(f"benchmark {self.name!r} has no split {split!r}; known: "
                            f"{', '.join(sorted(self.sizes))}")
        n = self.sizes[split] if limit is None else min(limit, self.sizes[split])
        return self.make_problems(split, n)

    def load_hub(self, split: str, limit: int | None = None) -> list[Problem]:
        return self.generate(split, limit)
