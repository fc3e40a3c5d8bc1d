"""The registered ``tally`` benchmark: rows generated in memory per split, scored as integers,
with the teacher's perfect chains and the chain check of :mod:`.world`."""

from __future__ import annotations


from typing import Any

from r3v_eval.benchmarks.base import Problem, register
from r3v_eval.benchmarks.kinds import GeneratedBenchmark
from r3v_eval.benchmarks.tally.render import render_row
from r3v_eval.benchmarks.tally.world import (
    QUESTION,
    TallyConfig,
    TallySample,
    generate_samples,
    items_from_meta,
    rationale,
    steps_consistent,
)

DEFAULT_SEED = 1234
DEFAULT_SIZES = {"train": 4000, "val": 400, "test": 800}


def problem_id(split: str, index: int) -> str:
    return f"tally-{split}-{index:05d}"


@register
class TallyBenchmark(GeneratedBenchmark):
    """Adding up the dots of a row of cells, item after item; integer answers."""

    name = "tally"
    default_sizes = DEFAULT_SIZES
    cot_ending = "answer the question using a single numerical value."
    select_instruction = "Which prediction is correct? Give the final answer with a single numerical value."
    has_step_check = True

    def __init__(self, config: TallyConfig | dict[str, Any] | None = None,
                 seed: int = DEFAULT_SEED, sizes: dict[str, int] | None = None) -> None:
        if isinstance(config, dict):
            config = TallyConfig(**config)
        self.config = config or TallyConfig()
        self.set_sizes(seed, sizes)

    @property
    def levels(self) -> list[int]:
        return self.config.levels

    def to_problem(self, sample: TallySample, style: str = "qwen") -> Problem:
        return Problem(id=problem_id(sample.split, sample.index), question=QUESTION,
                       answer=str(sample.answer), benchmark=self.name,
                       image=render_row(sample.items, self.config), meta=sample.meta(style))

    def make_problems(self, split: str, n: int) -> list[Problem]:
        return [self.to_problem(s) for s in generate_samples(n, split, self.seed, self.config)]

    @staticmethod
    def teacher_rationale(problem: Problem, style: str = "qwen") -> str:
        meta = problem if isinstance(problem, dict) else (problem.meta or {})
        return rationale(items_from_meta(meta), style)

    def steps_consistent(self, reply: str, problem: Problem) -> bool:
        return steps_consistent(reply)
