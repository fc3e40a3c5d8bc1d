"""Scoring families shared by several benchmarks: integer, relaxed numeric, multiple choice.

A benchmark module picks one family and adds its data mapping and prompt wording.
"""

from __future__ import annotations

from r3v_eval import answers
from r3v_eval.benchmarks.base import Benchmark, Problem


class IntegerBenchmark(Benchmark):
    """Integer answers (CLEVR-Math, shapes): the candidate must read as one whole number."""

    def extract(self, reply: str, problem: Problem) -> str | None:
        value = answers.parse_number(answers.final_answer_text(reply), problem.unit)
        if value is None or value != int(value):
            return None
        return str(int(value))

    def match(self, extracted: str, problem: Problem) -> bool:
        gold = answers.parse_number(problem.answer)
        return gold is not None and float(extracted) == gold


class RelaxedBenchmark(Benchmark):
    """ChartQA's relaxed accuracy: numbers within 5% of gold, else case-insensitive exact match."""

    tolerance = 0.05

    def extract(self, reply: str, problem: Problem) -> str | None:
        text = answers.final_answer_text(reply)
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

    The gold answer may be stored as a letter or as the option's text."""

    cot_ending = "answer with the option's letter from the given choices directly."
    select_instruction = "Which prediction is correct? Give the final answer by selecting the correct option."

    def extract(self, reply: str, problem: Problem) -> str | None:
        if not problem.choices:
            return None
        return answers.parse_choice(answers.final_answer_text(reply), problem.choices)

    def match(self, extracted: str, problem: Problem) -> bool:
        gold = answers.letter_of(problem.answer, problem.choices or [])
        return gold is not None and extracted == gold
