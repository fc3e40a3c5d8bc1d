"""The registered ``shapes`` benchmark (CLEVR-Math style, generated offline).

Pictures of coloured shapes on a grid, questions that need counting and one or two
arithmetic steps, integer answers (the world: :mod:`.world`, drawn by :mod:`.sampler`).

``load(split)`` with no ``source`` generates the split in memory, deterministically:
``test`` is the first 500 problems of the seed-1234 test stream, ``train`` the first 5,000 of
the seed-1234 train stream (a separate stream; a (scene, question) pair lives in one split
only). ``load(split, source=DIR)`` reads files written by
:func:`~.dataset.write_shapes_dataset` (``r3v data shapes --out DIR``) or any canonical-schema
folder.
"""

from __future__ import annotations


from typing import Any

from r3v_eval.benchmarks.base import DataError, Problem, register
from r3v_eval.benchmarks.kinds import GeneratedBenchmark
from r3v_eval.benchmarks.shapes.rationales import (
    rationale_from_meta,
    steps_consistent,
    teacher_rationale,
)
from r3v_eval.benchmarks.shapes.render import render_scene
from r3v_eval.benchmarks.shapes.sampler import generate_samples
from r3v_eval.benchmarks.shapes.world import ShapesConfig, ShapesSample

NAME = "shapes"
DEFAULT_SEED = 1234
DEFAULT_SIZES = {"train": 5000, "val": 500, "test": 500}


def problem_id(split: str, index: int) -> str:
    return f"{NAME}-{split}-{index:05d}"


def sample_to_problem(sample: ShapesSample, config: ShapesConfig | None = None,
                      style: str = "qwen") -> Problem:
    """A generated sample as a benchmark problem, its picture rendered in memory and its
    teacher rationale (in ``style``) in ``meta["rationale"]``."""
    config = config or ShapesConfig()
    meta = sample.meta(config)
    meta["rationale"] = rationale_from_meta(meta, style)
    return Problem(
        id=problem_id(sample.split, sample.index),
        question=sample.question,
        answer=str(sample.answer),
        benchmark=NAME,
        image=render_scene(sample.objects, config),
        meta=meta,
    )


@register
class ShapesBenchmark(GeneratedBenchmark):
    """Counting + arithmetic over synthetic shape pictures; integer answers."""

    name = NAME
    default_sizes = DEFAULT_SIZES
    cot_ending = "answer the question using a single numerical value."
    select_instruction = "Which prediction is correct? Give the final answer with a single numerical value."

    def __init__(self, config: ShapesConfig | dict[str, Any] | None = None,
                 seed: int = DEFAULT_SEED, sizes: dict[str, int] | None = None) -> None:
        """``config``: the world (a :class:`ShapesConfig` or its fields as a mapping, e.g. a
        recipe's ``data.options.config``); ``seed``: the data seed; ``sizes``: problems per
        generated split."""
        if isinstance(config, dict):
            config = ShapesConfig(**config)
        self.config = config or ShapesConfig()
        self.set_sizes(seed, sizes)

    @property
    def question_templates(self) -> list[str]:
        """The question templates this world draws from (``data.teacher_templates`` names them)."""
        return self.config.active_templates()

    def make_problems(self, split: str, n: int) -> list[Problem]:
        samples = generate_samples(n, split, self.seed, self.config)
        return [sample_to_problem(s, self.config) for s in samples]

    @staticmethod
    def teacher_rationale(problem: Problem, style: str = "qwen") -> str:
        return teacher_rationale(problem, style)

    has_step_check = True

    def steps_consistent(self, reply: str, problem: Problem) -> bool:
        return steps_consistent(reply, problem.question)

    def describe(self, problem: Problem) -> str:
        """The scene in words ("red square at row 1 column 2; ...")."""
        meta: dict[str, Any] = problem.meta or {}
        if "description" not in meta:
            raise DataError(f"problem {problem.id!r} has no scene description")
        return meta["description"]
