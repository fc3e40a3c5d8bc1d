"""From the sample pool to training examples, by the paper's rules (configurable).

Self-training data of one iteration (see ``/R3V.md``, "How the official code runs it"), built
per question over *all* its samples so far, "most recent" meaning the largest
``(iteration, sample_index)``:

* **sft** — (I, x) -> y+ : the most recent positive (``max_sft_per_question`` most recent).
  Prompt: :func:`r3v_eval.prompts.cot_prompt`, the very prompt the samples were drawn with.
* **refine** — (I, x, y-) -> y+ : only when the question has both positives and negatives;
  input the most recent negative, target the most recent positive. With
  ``max_refine_per_question = k > 1`` the i-th most recent negative is paired with the
  i-th most recent positive (cycling through the positives). Prompt:
  :func:`r3v_eval.prompts.refine_prompt`.
* **select** — (I, x, {y1..yN}) -> the bare gold answer : for each mix ``(p, q)`` of
  ``select_mixes`` (default 2 positives + 1 negative, and 1 positive + 2 negatives) one item
  when the question has at least ``p`` positives and ``q`` negatives, built from the ``p``
  most recent positives and the ``q`` most recent negatives, shuffled with a seeded RNG that
  depends only on (seed, question, mix, item), so a question's items do not change when
  other questions come or go. More items per question (``max_select_per_question``) slide
  the window one sample further into the past, round-robin over the mixes. Prompt:
  :func:`r3v_eval.prompts.select_prompt`; target: the gold answer (for multiple choice, the
  gold option letter), checked to score as correct with the benchmark's own ``score()``.
* **dpo** (STaR+DPO baseline, :func:`build_dpo_pairs`) — prompt = CoT prompt, chosen = the
  most recent positive, rejected = the most recent negative.

Quality filter (the Qwen2-VL variant's rule; :attr:`ReflectConfig.min_rationale_chars`,
:attr:`ReflectConfig.drop_answer_first`): a reply of at most 50 characters (stripped), or one
that begins with "Answer" (any case; an answer with no chain of thought), is never a target
and never a select candidate. Like the Qwen2-VL code, it also keeps such replies out of
refine inputs and DPO rejections unless ``filter_negative_inputs=False``. The rules run on
what the filter leaves: a question whose only positive is filtered out has no SFT item.

Consistent positives (:attr:`ReflectConfig.consistent_positives`, off in the paper): a reply
with the right answer is a positive only when its chain of thought also holds together by the
benchmark's own step check (:meth:`~r3v_eval.benchmarks.base.Benchmark.steps_consistent`:
for ``shapes``, every fact true and carried from line to line, the answer the chain's last
value). A right answer reached by a broken chain ("2 - 2 = 1.", then "Answer: 1") is counted
(``inconsistent_positive``) and never used: not a target, not a candidate, not a refine input.

Warm-up (iteration 0, :func:`build_warmup`): one direct-answer QA pair per training problem
(prompt :func:`r3v_eval.prompts.direct_prompt`, target the gold answer) plus teacher-written
rationales (prompt: the CoT prompt).

Teacher rationale file (:func:`r3v_train.teacher.load_teacher_rationales`): JSON Lines, UTF-8, one object per
line keyed by problem id; blank lines are ignored; other keys are allowed and ignored::

    {"id": "shapes-train-00012", "rationale": "Solution:\\n1. There are 3 red circles.\\n2. ...\\n\\nAnswer:\\n5"}

A rationale must end with an ``Answer:`` line whose answer scores correct for its problem
(checked with the benchmark's ``score()``); one that does not, and one whose id is not a
training problem, is counted and reported (:attr:`BuildResult.skipped`), never trained on.

Every builder returns a :class:`BuildResult`: the :class:`Example` records, their counts per
kind, and counted skips with a few example ids. :func:`combine` joins results and
:meth:`BuildResult.shuffled` mixes everything into one multi-task data set (seeded).
An example names its problem by id; :meth:`Example.load_image` (or :func:`load_images`)
fetches the picture from a problems-by-id mapping when the trainer needs it.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from r3v_eval import prompts
from r3v_eval.benchmarks.base import Benchmark, Problem
from r3v_train.pool import Sample, SamplePool, group_by_question
from r3v_train.reflect_config import ReflectConfig  # noqa: F401  (what build_examples takes)

KINDS = ("qa", "teacher", "perception", "sft", "refine", "select", "dpo")
MAX_REPORTED_IDS = 10
_ANSWER_LINE = re.compile(r"Answer:")


# ------------------------------------------------------------------ records
@dataclass
class Example:
    """One training example: the user turn's text and the assistant turn's target.

    The picture is referenced by ``problem_id``; ``sources`` lists the pool samples used, as
    ``[iteration, sample_index]`` pairs (prompt candidates in shown order, then the target)."""

    kind: str
    problem_id: str
    prompt: str
    completion: str
    rejected: str | None = None
    sources: list[list[int]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown example kind {self.kind!r}; known: {', '.join(KINDS)}")
        if (self.kind == "dpo") != (self.rejected is not None):
            raise ValueError("a 'rejected' completion belongs to dpo examples, and only to them")

    def problem(self, problems_by_id: Mapping[str, Problem]) -> Problem:
        try:
            return problems_by_id[self.problem_id]
        except KeyError:
            raise KeyError(f"{self.kind} example refers to problem {self.problem_id!r}, which is "
                           "not among the given problems") from None

    def load_image(self, problems_by_id: Mapping[str, Problem]):
        """The problem's picture (a PIL image, or None for a text-only problem)."""
        return self.problem(problems_by_id).load_image()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Example:
        return cls(**row)


def problems_by_id(problems: Iterable[Problem] | Mapping[str, Problem]) -> dict[str, Problem]:
    """Index problems by id (an id may appear once)."""
    if isinstance(problems, Mapping):
        return dict(problems)
    out: dict[str, Problem] = {}
    for p in problems:
        if p.id in out:
            raise ValueError(f"problem id {p.id!r} appears twice")
        out[p.id] = p
    return out


def load_images(examples: Sequence[Example], problems: Mapping[str, Problem]) -> list:
    """The picture of every example, in order (see :meth:`Example.load_image`)."""
    return [ex.load_image(problems) for ex in examples]


@dataclass
class BuildResult:
    """Examples plus what was left out and why.

    ``skipped`` counts reasons (e.g. ``filtered_positive``, ``teacher_wrong_answer``);
    ``skipped_ids`` keeps the first few problem ids per reason for the report."""

    examples: list[Example] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    skipped_ids: dict[str, list[str]] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """Examples per kind, every kind listed (zeros included)."""
        c = Counter(ex.kind for ex in self.examples)
        return {k: c.get(k, 0) for k in KINDS}

    def skip(self, reason: str, problem_id: str, n: int = 1) -> None:
        self.skipped[reason] += n
        ids = self.skipped_ids.setdefault(reason, [])
        if len(ids) < MAX_REPORTED_IDS:
            ids.append(problem_id)

    def extend(self, other: BuildResult) -> BuildResult:
        self.examples.extend(other.examples)
        self.skipped.update(other.skipped)
        for reason, ids in other.skipped_ids.items():
            mine = self.skipped_ids.setdefault(reason, [])
            mine.extend(ids[: max(0, MAX_REPORTED_IDS - len(mine))])
        return self

    def shuffled(self, seed: int) -> list[Example]:
        """All examples in one seeded random order (the multi-task training set)."""
        out = list(self.examples)
        random.Random(seed).shuffle(out)
        return out

    def summary(self) -> str:
        parts = [f"{k}={n}" for k, n in self.counts.items() if n]
        line = "examples: " + (", ".join(parts) if parts else "none")
        if self.skipped:
            line += "; skipped: " + ", ".join(f"{r}={n}" for r, n in sorted(self.skipped.items()))
        return line


def combine(*results: BuildResult) -> BuildResult:
    """One result holding every given result's examples and skips (in order)."""
    out = BuildResult()
    for r in results:
        out.extend(r)
    return out


# ------------------------------------------------------------------ helpers
def gold_target(bench: Benchmark, problem: Problem) -> str:
    """The bare final answer a model should give: the gold option letter for multiple
    choice (whether stored as a letter or as the option's text), else the gold answer."""
    if problem.choices:
        letter = bench.gold_letter(problem)
        if letter is not None:
            return letter
    return problem.answer.strip()


def _gold_ok(bench: Benchmark, problem: Problem, target: str) -> bool:
    return bench.score(target, problem).correct


def _grouped(samples: Any, up_to_iteration: int | None) -> dict[str, list[Sample]]:
    if isinstance(samples, SamplePool):
        return samples.by_question(up_to_iteration)
    if isinstance(samples, Mapping):
        flat = [s for group in samples.values() for s in group]
    else:
        flat = list(samples)
    if up_to_iteration is not None:
        flat = [s for s in flat if s.iteration <= up_to_iteration]
    return group_by_question(flat)


def _check_styles(groups: Mapping[str, list[Sample]], style: str) -> None:
    styles = Counter(s.prompt_style for group in groups.values() for s in group)
    other = {k: n for k, n in styles.items() if k != style}
    if other:
        raise ValueError(
            f"the pool holds samples drawn with prompt style(s) "
            f"{', '.join(f'{k!r} ({n})' for k, n in sorted(other.items()))} but "
            f"reflect.prompt_style is {style!r}: build with the style the samples were drawn "
            "with, so train and sampling prompts agree")


def _recent_first(samples: Sequence[Sample], distinct: bool) -> list[Sample]:
    out: list[Sample] = []
    seen: set[str] = set()
    for s in reversed(samples):  # samples come oldest first
        text = s.reply.strip()
        if distinct and text in seen:
            continue
        seen.add(text)
        out.append(s)
    return out


@dataclass
class _Split:
    """A question's samples, most recent first, as the rules use them."""

    positives: list[Sample]  # pass the filter: targets and candidates
    neg_candidates: list[Sample]  # pass the filter: select candidates
    neg_inputs: list[Sample]  # refine inputs / DPO rejections
    dropped_positives: int
    inconsistent_positives: int = 0


def _split(samples: Sequence[Sample], config: ReflectConfig, bench: Benchmark,
           problem: Problem) -> _Split:
    recent = _recent_first(samples, config.distinct_rationales)
    pos_all = [s for s in recent if s.correct]
    neg_all = [s for s in recent if not s.correct]
    broken = 0
    if config.consistent_positives:
        held = [s for s in pos_all if bench.steps_consistent(s.reply, problem)]
        broken, pos_all = len(pos_all) - len(held), held
    positives = [s for s in pos_all if config.keeps(s.reply)]
    neg_kept = [s for s in neg_all if config.keeps(s.reply)]
    return _Split(positives, neg_kept, neg_kept if config.filter_negative_inputs else neg_all,
                  len(pos_all) - len(positives), broken)


def _check_step_check(bench: Benchmark, config: ReflectConfig) -> None:
    if config.consistent_positives and not bench.has_step_check:
        raise ValueError(f"reflect.consistent_positives is on but benchmark {bench.name!r} has "
                         "no step check (Benchmark.steps_consistent); turn it off")


def _src(s: Sample) -> list[int]:
    return [s.iteration, s.sample_index]


def _ordered_groups(problems: Mapping[str, Problem], groups: Mapping[str, list[Sample]],
                    result: BuildResult):
    """(problem, samples) in the problems' order; pool questions with no problem are skipped."""
    for qid in groups:
        if qid not in problems:
            result.skip("unknown_question", qid)
    for qid, problem in problems.items():
        if groups.get(qid):
            yield problem, groups[qid]


def _shuffle_rng(seed: int, qid: str, mix: tuple[int, int], j: int) -> random.Random:
    return random.Random(f"r3v-select|{seed}|{qid}|{mix[0]},{mix[1]}|{j}")


# ------------------------------------------------------------------ builders
def build_examples(bench: Benchmark, problems: Iterable[Problem] | Mapping[str, Problem],
                   samples: SamplePool | Iterable[Sample] | Mapping[str, Sequence[Sample]],
                   config: ReflectConfig | None = None, *,
                   up_to_iteration: int | None = None) -> BuildResult:
    """The self-training examples (sft, refine, select as configured) of one iteration.

    Args:
        bench: the benchmark (prompts and the gold-answer check).
        problems: the training problems (list or id -> problem); their order is the output's.
        samples: a :class:`SamplePool`, samples, or samples grouped by question id.
        config: the rules; defaults to the paper's full R3V.
        up_to_iteration: use samples of iterations ``<=`` this only (None: all).
    """
    config = config or ReflectConfig()
    problems = problems_by_id(problems)
    groups = _grouped(samples, up_to_iteration)
    _check_styles(groups, config.prompt_style)
    _check_step_check(bench, config)
    style = config.prompt_style
    result = BuildResult()
    for problem, group in _ordered_groups(problems, groups, result):
        qid = problem.id
        split = _split(group, config, bench, problem)
        pos, negc, negi = split.positives, split.neg_candidates, split.neg_inputs
        if split.dropped_positives:
            result.skip("filtered_positive", qid, split.dropped_positives)
        if split.inconsistent_positives:
            result.skip("inconsistent_positive", qid, split.inconsistent_positives)
        if not pos:
            result.skip("no_usable_positive", qid)
            continue
        if config.sft:
            cot = prompts.cot_prompt(bench, problem, style)
            for s in pos[: config.max_sft_per_question]:
                result.examples.append(Example("sft", qid, cot, s.reply.strip(),
                                               sources=[_src(s)]))
        if config.refine and negi:
            for i, neg in enumerate(negi[: config.max_refine_per_question]):
                target = pos[i % len(pos)]
                result.examples.append(Example(
                    "refine", qid, prompts.refine_prompt(bench, problem, neg.reply, style),
                    target.reply.strip(), sources=[_src(neg), _src(target)]))
        if config.select:
            _add_select(bench, problem, pos, negc, config, result)
    return result


def _add_select(bench: Benchmark, problem: Problem, pos: list[Sample], neg: list[Sample],
                config: ReflectConfig, result: BuildResult) -> None:
    cap = config.max_select_per_question
    if cap is None:
        cap = len(config.select_mixes)
        per_mix = 1
    else:
        per_mix = cap  # round-robin below stops at the cap
    plans: list[tuple[tuple[int, int], int]] = []
    for j in range(per_mix):
        for mix in config.select_mixes:
            p, q = mix
            if len(pos) >= j + p and len(neg) >= j + q:
                plans.append((mix, j))
    plans = plans[:cap]
    if not plans:
        return
    target = gold_target(bench, problem)
    if not _gold_ok(bench, problem, target):
        result.skip("gold_not_scorable", problem.id)
        return
    target = prompts.select_reply(target, config.select_target)
    for mix, j in plans:
        p, q = mix
        chosen = pos[j:j + p] + neg[j:j + q]
        _shuffle_rng(config.seed, problem.id, mix, j).shuffle(chosen)
        result.examples.append(Example(
            "select", problem.id,
            prompts.select_prompt(bench, problem, [s.reply for s in chosen], config.prompt_style),
            target, sources=[_src(s) for s in chosen],
            meta={"mix": [p, q], "candidate_correct": [s.correct for s in chosen]}))


def build_dpo_pairs(bench: Benchmark, problems: Iterable[Problem] | Mapping[str, Problem],
                    samples: SamplePool | Iterable[Sample] | Mapping[str, Sequence[Sample]],
                    config: ReflectConfig | None = None, *,
                    up_to_iteration: int | None = None) -> BuildResult:
    """Preference pairs for the STaR+DPO baseline: per question with both a (filtered)
    positive and a negative, prompt = CoT prompt, chosen = the most recent positive,
    rejected = the most recent negative (``max_dpo_per_question`` pairs, as for refine)."""
    config = config or ReflectConfig()
    problems = problems_by_id(problems)
    groups = _grouped(samples, up_to_iteration)
    _check_styles(groups, config.prompt_style)
    _check_step_check(bench, config)
    result = BuildResult()
    for problem, group in _ordered_groups(problems, groups, result):
        split = _split(group, config, bench, problem)
        if not split.positives or not split.neg_inputs:
            continue
        cot = prompts.cot_prompt(bench, problem, config.prompt_style)
        for i, neg in enumerate(split.neg_inputs[: config.max_dpo_per_question]):
            chosen = split.positives[i % len(split.positives)]
            result.examples.append(Example("dpo", problem.id, cot, chosen.reply.strip(),
                                           rejected=neg.reply.strip(),
                                           sources=[_src(neg), _src(chosen)]))
    return result


def build_warmup(bench: Benchmark, problems: Iterable[Problem] | Mapping[str, Problem],
                 teacher: Mapping[str, str] | None = None, *, qa: bool = True,
                 prompt_style: str = "qwen", teacher_repeats: int = 1) -> BuildResult:
    """Iteration-0 warm-up data: a direct-answer QA pair per problem (when ``qa``) and the
    teacher rationales that pass the checks (see the module docstring), each
    ``teacher_repeats`` times (a few rationales repeated so that their format is learned)."""
    prompts.check_style(prompt_style)
    problems = problems_by_id(problems)
    result = BuildResult()
    if qa:
        for problem in problems.values():
            target = gold_target(bench, problem)
            if not _gold_ok(bench, problem, target):
                result.skip("gold_not_scorable", problem.id)
                continue
            result.examples.append(Example("qa", problem.id,
                                           prompts.direct_prompt(bench, problem, prompt_style),
                                           target))
    for pid, rationale in (teacher or {}).items():
        problem = problems.get(pid)
        if problem is None:
            result.skip("teacher_unknown_id", pid)
            continue
        text = rationale.strip()
        matches = list(_ANSWER_LINE.finditer(text))
        if not matches or not text[matches[-1].end():].strip():
            result.skip("teacher_no_answer_line", pid)
            continue
        if not bench.score(text, problem).correct:
            result.skip("teacher_wrong_answer", pid)
            continue
        result.examples.extend([Example("teacher", pid,
                                        prompts.cot_prompt(bench, problem, prompt_style), text)]
                               * teacher_repeats)
    return result
