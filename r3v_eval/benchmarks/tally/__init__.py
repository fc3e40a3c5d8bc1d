"""The synthetic ``tally`` benchmark: the demo's easy-to-hard world (see :mod:`.world`).

A row of 1..``max_items`` coloured dice-like cells; the question is always how many dots
there are in all, and the difficulty level (``meta["level"]``) is the number of items.
``load(split)`` generates the split in memory, deterministically, with the levels spread
evenly; ``load(split, source=DIR)`` reads a canonical-schema folder.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from r3v_eval.benchmarks.base import DataError, Problem, register
from r3v_eval.benchmarks.kinds import IntegerBenchmark
from r3v_eval.benchmarks.tally.render import render_row
from r3v_eval.benchmarks.tally.world import (
    QUESTION,
    TallyConfig,
    TallySample,
    after_seen,
    fact_line,
    first_seen,
    generate_samples,
    items_from_meta,
    iter_samples,
    last_line,
    rationale,
    steps_consistent,
)

DEFAULT_SEED = 1234
DEFAULT_SIZES = {"train": 4000, "val": 400, "test": 800}
#: the single-step skills a base model needs for every level, phrased as the chain's lines
PERCEPTION_SKILLS = ("first", "after", "arith")
FIRST_QUESTION = "Which item is first?"


def after_question(color: str) -> str:
    return f"What comes after {color}?"


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

    def perception_examples(self, n: int, seed: int, skills: dict[str, float] | None = None,
                            split: str = "val", style: str = "qwen") -> list[dict[str, Any]]:
        """``n`` one-step rows on fresh rows of every level, answered in the chain's own
        phrasing (what a base model comes able to see; never a chain):

        * ``first``: :data:`FIRST_QUESTION` -> "The first is red: 4.";
        * ``after``: "What comes after red?" -> "After red is blue: 3." or, for the row's last
          item, "The last is red.";
        * ``arith``: "What is 7 + 2?" -> "7 + 2 = 9." (every sum a chain can need).

        Rows come from the ``split`` stream of ``seed`` (``val``: never a train or test row)."""
        skills = dict(skills or {"first": 0.2, "after": 0.6, "arith": 0.2})
        unknown = sorted(set(skills) - set(PERCEPTION_SKILLS))
        if unknown or any(w < 0 for w in skills.values()) or sum(skills.values()) <= 0:
            raise ValueError(f"perception skills: {skills!r}; give non-negative shares of "
                             f"{', '.join(PERCEPTION_SKILLS)} with a positive sum")
        stream = iter_samples(split, seed, self.config)
        rng = random.Random(f"r3v-tally-perception:{seed}:{split}")
        names = [k for k in PERCEPTION_SKILLS if skills.get(k, 0) > 0]
        weights = [skills[k] for k in names]
        top = self.config.max_items * self.config.max_dots
        rows = []
        for _ in range(n):
            skill = rng.choices(names, weights)[0]
            items = next(stream).items
            if skill == "first":
                prompt, completion = FIRST_QUESTION, first_seen(items[0])
            elif skill == "after":
                i = rng.randrange(len(items))
                prompt = after_question(items[i].color)
                completion = (after_seen(items[i], items[i + 1]) if i + 1 < len(items)
                              else last_line(items[i]))
            else:
                b = rng.randint(1, self.config.max_dots)
                a = rng.randint(0, top - b)
                prompt, completion = f"What is {a} + {b}?", fact_line(a, b)
            rows.append({"prompt": prompt, "completion": completion, "skill": skill,
                         "template": skill, "image": render_row(items, self.config)})
        return rows
