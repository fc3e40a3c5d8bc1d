"""The synthetic ``shapes`` benchmark (CLEVR-Math style, generated offline).

Pictures of coloured shapes on a grid, questions that need counting and one or two
arithmetic steps, integer answers (see :mod:`r3v_eval.shapes_world` for the generator).

``load(split)`` with no ``source`` generates the split in memory, deterministically:
``test`` is the first 500 problems of the seed-1234 test stream, ``train`` the first 5,000 of
the seed-1234 train stream (a separate stream; a (scene, question) pair lives in one split
only). ``load(split, source=DIR)`` reads files written by :func:`write_shapes_dataset`
(``r3v data shapes --out DIR``) or any canonical-schema folder.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

from r3v_eval.benchmarks.base import DataError, Problem, register
from r3v_eval.benchmarks.kinds import IntegerBenchmark
from r3v_eval.prompts import cot_prompt
from r3v_eval.shapes_world import (  # noqa: F401  (re-exported for callers of this module)
    ShapesConfig,
    ShapesSample,
    arithmetic_facts,
    count_sentences,
    generate_samples,
    iter_samples,
    rationale_steps,
    render_scene,
    scene_key,
    split_bucket,
    steps_consistent,
    teacher_rationale,
    write_shapes_dataset,
)

DEFAULT_SEED = 1234
DEFAULT_SIZES = {"train": 5000, "val": 500, "test": 500}
ONE_STEP_TEMPLATES = ("count_all", "count_color", "count_shape", "count_color_shape")
#: what :meth:`ShapesBenchmark.perception_examples` teaches a base model (no reasoning)
PERCEPTION_SKILLS = ("count", "solve", "describe", "arith")
DESCRIBE_QUESTION = "How many objects of each kind are there?"


def problem_id(split: str, index: int) -> str:
    return f"shapes-{split}-{index:05d}"


def sample_to_problem(sample: ShapesSample, config: ShapesConfig | None = None,
                      style: str = "qwen") -> Problem:
    """A generated sample as a benchmark problem, its picture rendered in memory."""
    config = config or ShapesConfig()
    return Problem(
        id=problem_id(sample.split, sample.index),
        question=sample.question,
        answer=str(sample.answer),
        benchmark=ShapesBenchmark.name,
        image=render_scene(sample.objects, config),
        meta=sample.meta(config, style),
    )


@register
class ShapesBenchmark(IntegerBenchmark):
    """Counting + arithmetic over synthetic shape pictures; integer answers."""

    name = "shapes"
    hub_id = None
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
        self.seed = seed
        unknown = sorted(set(sizes or {}) - set(DEFAULT_SIZES))
        if unknown:
            raise ValueError(f"shapes sizes: unknown split {unknown[0]!r}; known: "
                             f"{', '.join(DEFAULT_SIZES)}")
        self.sizes = {**DEFAULT_SIZES, **(sizes or {})}

    @property
    def question_templates(self) -> list[str]:
        """The question templates this world draws from (``data.teacher_templates`` names them)."""
        return self.config.active_templates()

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
            raise DataError(f"benchmark 'shapes' has no split {split!r}; known: "
                            f"{', '.join(sorted(self.sizes))}")
        n = self.sizes[split] if limit is None else min(limit, self.sizes[split])
        samples = generate_samples(n, split, self.seed, self.config)
        return [sample_to_problem(s, self.config) for s in samples]

    def load_hub(self, split: str, limit: int | None = None) -> list[Problem]:
        return self.generate(split, limit)

    @staticmethod
    def teacher_rationale(problem: Problem, style: str = "qwen") -> str:
        return teacher_rationale(problem, style)

    has_step_check = True

    def steps_consistent(self, reply: str, problem: Problem) -> bool:
        return steps_consistent(reply, problem.question)

    def perception_examples(self, n: int, seed: int, skills: dict[str, float] | None = None,
                            split: str = "val", style: str = "qwen") -> list[dict[str, Any]]:
        """``n`` one-step rows on fresh pictures, answered in the rationales' own phrasing: what
        a base VLM comes able to do before any reasoning is trained. ``skills`` maps each of
        :data:`PERCEPTION_SKILLS` to its share of the rows (default: counting only):

        * ``count``: a one-step question, "How many red squares are there?" -> "There are 2
          red squares." (the four one-step templates in turn);
        * ``solve``: the same one-step question under the chain-of-thought prompt (``style``)
          -> its one-step solution in the paper's format ("Solution:\n1. There are 2 red
          squares.\n\nAnswer:\n2"): the count said where rationales say it (a skill learned
          under one wording does not carry over to another in a model this small);
        * ``describe``: :data:`DESCRIBE_QUESTION` -> the total and every colour-shape count
          ("There are 5 objects in total. There are 2 red squares. ...");
        * ``arith``: one arithmetic fact a rationale can need, "What is 5 - 2?" -> "5 - 2 = 3."
          (the picture is attached but not needed).

        Pictures and questions come from the ``split`` stream of ``seed`` (``val``: never a
        train or test problem; ``test``: held out from ``val``). Each row has ``prompt``,
        ``completion``, ``image``, ``skill`` and ``template`` (the count template, else the
        skill)."""
        skills = dict(skills or {"count": 1.0})
        unknown = sorted(set(skills) - set(PERCEPTION_SKILLS))
        if unknown or any(w < 0 for w in skills.values()) or sum(skills.values()) <= 0:
            raise ValueError(f"perception skills: {skills!r}; give non-negative shares of "
                             f"{', '.join(PERCEPTION_SKILLS)} with a positive sum")
        world = dataclasses.replace(self.config, templates=ONE_STEP_TEMPLATES)
        stream = iter_samples(split, seed, world)
        facts = arithmetic_facts(self.config)
        rng = random.Random(f"r3v-perception:{seed}:{split}")
        names = [k for k in PERCEPTION_SKILLS if skills.get(k, 0) > 0]
        weights = [skills[k] for k in names]
        rows = []
        for _ in range(n):
            skill = rng.choices(names, weights)[0]
            sample = next(stream)
            if skill == "describe":
                while split_bucket(scene_key(sample.objects) + "|" + DESCRIBE_QUESTION) != split:
                    sample = next(stream)
                prompt, completion = DESCRIBE_QUESTION, " ".join(
                    count_sentences(sample.objects, self.config))
            elif skill == "arith":
                prompt, completion = rng.choice(facts)
            elif skill == "solve":
                problem = sample_to_problem(sample, world, style)
                prompt = cot_prompt(self, problem, style)
                completion = teacher_rationale(problem, style)
            else:
                steps, _ = rationale_steps(sample.objects, [], sample.query)
                prompt, completion = sample.question, steps[0]
            rows.append({"prompt": prompt, "completion": completion, "skill": skill,
                         "template": sample.template if skill == "count" else skill,
                         "image": render_scene(sample.objects, world)})
        return rows

    def describe(self, problem: Problem) -> str:
        """The scene description (a vision pre-training target)."""
        meta: dict[str, Any] = problem.meta or {}
        if "description" not in meta:
            raise DataError(f"problem {problem.id!r} has no scene description")
        return meta["description"]
