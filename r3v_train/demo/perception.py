"""What a tiny base VLM is pre-trained on before any reasoning: one-step perception rows of a
synthetic world, answered in the phrasing its rationales use.

Pre-training is not part of R3V (the paper starts from a VLM that comes able to see), and a
world knows nothing of it: the rows are built here from the world's public parts. A world
that a tiny base can be pre-trained on has an entry in :data:`PERCEPTION` (benchmark name ->
row maker); :func:`perception_rows` looks it up.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from r3v_eval.benchmarks import Benchmark, Problem
from r3v_eval.benchmarks.shapes import (
    ShapesBenchmark,
    ShapesConfig,
    count,
    iter_samples,
    noun,
    rationale_steps,
    render_scene,
    sample_to_problem,
    scene_key,
    split_bucket,
    teacher_rationale,
)
from r3v_eval.benchmarks.shapes.world import be
from r3v_eval.benchmarks.tally import TallyBenchmark, after_seen, fact_line, first_seen, last_line, render_row
from r3v_eval.benchmarks.tally import iter_samples as tally_samples
from r3v_eval.prompts import cot_prompt
from r3v_train.config import ConfigError
from r3v_train.reflect import BuildResult, Example

ONE_STEP_TEMPLATES = ("count_all", "count_color", "count_shape", "count_color_shape")
#: what :func:`shapes_perception_rows` teaches a base model (no reasoning)
PERCEPTION_SKILLS = ("count", "solve", "describe", "arith")
DESCRIBE_QUESTION = "How many objects of each kind are there?"


def count_sentences(objects: Sequence[Mapping[str, Any]], config: ShapesConfig) -> list[str]:
    """The picture described in the rationales' own phrasing: the total, then the count of
    every colour-shape pair present, in the config's colour and shape order ("There are 5
    objects in total.", "There are 2 red squares.", "There is 1 blue circle.")."""
    total = len(objects)
    out = [f"There {be(total)} {total} {noun(None, None, total)} in total."]
    for color in config.colors:
        for shape in config.shapes:
            k = count(objects, color, shape)
            if k:
                out.append(f"There {be(k)} {k} {noun(color, shape, k)}.")
    return out


def arithmetic_facts(config: ShapesConfig) -> list[tuple[str, str]]:
    """Every single operation a rationale of this world can write, as (question, statement):
    ("What is 5 - 2?", "5 - 2 = 3."). Counts never exceed ``max_objects + 2 * max_add``
    (at most two operations per question), removals never go below zero."""
    top = config.max_objects + 2 * config.max_add
    facts = [(f"What is {a} - {b}?", f"{a} - {b} = {a - b}.")
             for a in range(top + 1) for b in range(a + 1)]
    facts += [(f"What is {a} + {b}?", f"{a} + {b} = {a + b}.")
              for b in range(1, config.max_add + 1) for a in range(top - b + 1)]
    return facts


def shapes_perception_rows(bench: ShapesBenchmark, n: int, seed: int,
                           skills: dict[str, float] | None = None, split: str = "val",
                           style: str = "qwen") -> list[dict[str, Any]]:
    """``n`` one-step rows on fresh pictures, answered in the rationales' own phrasing: what
    a base VLM comes able to do before any reasoning is trained. ``skills`` maps each of
    :data:`PERCEPTION_SKILLS` to its share of the rows (default: counting only):

    * ``count``: a one-step question, "How many red squares are there?" -> "There are 2
      red squares." (the four one-step templates in turn);
    * ``solve``: the same one-step question under the chain-of-thought prompt (``style``)
      -> its one-step solution in the paper's format ("Solution:\\n1. There are 2 red
      squares.\\n\\nAnswer:\\n2"): the count said where rationales say it (a skill learned
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
    world = dataclasses.replace(bench.config, templates=ONE_STEP_TEMPLATES)
    stream = iter_samples(split, seed, world)
    facts = arithmetic_facts(bench.config)
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
                count_sentences(sample.objects, bench.config))
        elif skill == "arith":
            prompt, completion = rng.choice(facts)
        elif skill == "solve":
            problem = sample_to_problem(sample, world, style)
            prompt = cot_prompt(bench, problem, style)
            completion = teacher_rationale(problem, style)
        else:
            steps, _ = rationale_steps(sample.objects, [], sample.query)
            prompt, completion = sample.question, steps[0]
        rows.append({"prompt": prompt, "completion": completion, "skill": skill,
                     "template": sample.template if skill == "count" else skill,
                     "image": render_scene(sample.objects, world)})
    return rows


#: what :func:`tally_perception_rows` teaches: the single steps every level needs, in the chain's words
TALLY_SKILLS = ("first", "after", "arith")
FIRST_QUESTION = "Which item is first?"


def after_question(color: str) -> str:
    return f"What comes after {color}?"


def tally_perception_rows(bench: TallyBenchmark, n: int, seed: int,
                          skills: dict[str, float] | None = None, split: str = "val",
                          style: str = "qwen") -> list[dict[str, Any]]:
    """``n`` one-step rows on fresh rows of every level of the tally world, answered in the
    chain's own words (what a base model comes able to see; never a chain):

    * ``first``: :data:`FIRST_QUESTION` -> "The first is red: 4.";
    * ``after``: "What comes after red?" -> "After red is blue: 3." or, for the row's last
      item, "The last is red." (the end of a row, for every length);
    * ``arith``: "What is 7 + 2?" -> "7 + 2 = 9." (every sum a chain can need).

    Rows come from the ``split`` stream of ``seed`` (``val``: never a train or test row).
    Each row has ``prompt``, ``completion``, ``image``, ``skill`` and ``template`` (the skill)."""
    skills = dict(skills or {"first": 0.2, "after": 0.6, "arith": 0.2})
    unknown = sorted(set(skills) - set(TALLY_SKILLS))
    if unknown or any(w < 0 for w in skills.values()) or sum(skills.values()) <= 0:
        raise ValueError(f"perception skills: {skills!r}; give non-negative shares of "
                         f"{', '.join(TALLY_SKILLS)} with a positive sum")
    config = bench.config
    stream = tally_samples(split, seed, config)
    rng = random.Random(f"r3v-tally-perception:{seed}:{split}")
    names = [k for k in TALLY_SKILLS if skills.get(k, 0) > 0]
    weights = [skills[k] for k in names]
    top = config.max_items * config.max_dots
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
            b = rng.randint(1, config.max_dots)
            a = rng.randint(0, top - b)
            prompt, completion = f"What is {a} + {b}?", fact_line(a, b)
        rows.append({"prompt": prompt, "completion": completion, "skill": skill,
                     "template": skill, "image": render_row(items, config)})
    return rows


#: benchmark name -> its perception rows ``(bench, n, seed, skills=, split=)``
PERCEPTION: dict[str, Callable[..., list[dict[str, Any]]]] = {
    ShapesBenchmark.name: shapes_perception_rows,
    TallyBenchmark.name: tally_perception_rows,
}


def perception_rows(bench: Benchmark, n: int, seed: int, skills: dict[str, float] | None = None,
                    split: str = "val") -> list[dict[str, Any]]:
    """The benchmark's perception rows (an error naming the benchmark when it has none)."""
    make = PERCEPTION.get(bench.name)
    if make is None:
        raise ConfigError(f"benchmark {bench.name!r} has no perception questions to pre-train "
                          f"on (these have: {', '.join(sorted(PERCEPTION))})")
    return make(bench, n, seed, skills=skills, split=split)


def perception_replay(bench: Benchmark, n: int, seed: int,
                      skills: dict[str, float] | None = None) -> tuple[BuildResult, dict[str, Problem]]:
    """``n`` perception rows as warm-up examples of kind ``perception`` (``data.warmup_perception``),
    with the problems that hold their pictures (ids ``perception-00000`` ...): the base's own
    pre-training skills, replayed so that fine-tuning on rationales does not erase them."""
    result, problems = BuildResult(), {}
    for i, row in enumerate(perception_rows(bench, n, seed, skills)):
        pid = f"perception-{i:05d}"
        problems[pid] = Problem(id=pid, question=row["prompt"], answer=row["completion"],
                                benchmark=bench.name, image=row["image"],
                                meta={"skill": row["skill"], "template": row["template"]})
        result.examples.append(Example("perception", pid, row["prompt"], row["completion"]))
    return result, problems
