"""The registered ``tally`` benchmark: rows generated in memory per split, scored as integers,
with the teacher's perfect chains and the chain check of :mod:`.world`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from r3v_eval.benchmarks.base import DataError, Problem, register
from r3v_eval.benchmarks.kinds import IntegerBenchmark
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
class TallyBenchmark(IntegerBenchmark):
    """Adding up the dots of a row of cells, item after item; integer answers."""

    name = "tally"
    hub_id = None
    cot_ending = "answer the question using a single numerical value."
    select_instruction = "Which prediction is correct? Give the final answer with a single numerical value."
    has_step_check = True

    def __init__(self, config: TallyConfig | dict[str, Any] | None = None,
                 seed: int = DEFAULT_SEED, sizes: dict[str, int] | None = None) -> None:
        if isinstance(config, dict):
            config = TallyConfig(**config)
        self.config = config or TallyConfig()
        self.seed = seed
        unknown = sorted(set(sizes or {}) - set(DEFAULT_SIZES))
        if unknown:
            raise ValueError(f"tally sizes: unknown split {unknown[0]!r}; known: "
                             f"{', '.join(DEFAULT_SIZES)}")
        self.sizes = {**DEFAULT_SIZES, **(sizes or {})}
        bad = {k: v for k, v in self.sizes.items() if not isinstance(v, int) or v < 0}
        if bad:
            raise ValueError(f"tally sizes: a count >= 0 per split, got {bad}")

    @property
    def levels(self) -> list[int]:
        return self.config.levels

    def to_problem(self, sample: TallySample, style: str = "qwen") -> Problem:
        return Problem(id=problem_id(sample.split, sample.index), question=QUESTION,
                       answer=str(sample.answer), benchmark=self.name,
                       image=render_row(sample.items, self.config), meta=sample.meta(style))

    def load(self, split: str | None = None, source: str | Path | None = None,
             limit: int | None = None) -> list[Problem]:
        split = split or self.test_split
        if source is not None:
            return super().load(split, source, limit)
        return self.generate(split, limit)

    def generate(self, split: str, limit: int | None = None) -> list[Problem]:
        split = {"validation": "val", "dev": "val"}.get(split, split)
        if split not in self.sizes:
            raise DataError(f"benchmark 'tally' has no split {split!r}; known: "
                            f"{', '.join(sorted(self.sizes))}")
        n = self.sizes[split] if limit is None else min(limit, self.sizes[split])
        return [self.to_problem(s) for s in generate_samples(n, split, self.seed, self.config)]

    def load_hub(self, split: str, limit: int | None = None) -> list[Problem]:
        return self.generate(split, limit)

    @staticmethod
    def teacher_rationale(problem: Problem, style: str = "qwen") -> str:
        meta = problem if isinstance(problem, dict) else (problem.meta or {})
        return rationale(items_from_meta(meta), style)

    def steps_consistent(self, reply: str, problem: Problem) -> bool:
        return steps_consistent(reply)
