"""What :func:`r3v_train.reflect.build_examples` builds: :class:`ReflectConfig`, the
``reflect`` section of a recipe (its tasks are set by ``run.method``, :mod:`r3v_train.methods`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from r3v_eval import prompts
from r3v_train.methods import METHODS, TASKS

#: tasks switched on per self-training method (the ablations are just configs)
METHOD_TASKS: dict[str, tuple[str, ...]] = {name: m.tasks for name, m in METHODS.items()
                                            if m.iterates}


@dataclass
class ReflectConfig:
    """What :func:`build_examples` builds. Defaults follow the paper / official code.

    Attributes:
        sft, refine, select: which self-training tasks are on.
        n_candidates: candidates per select item (N).
        select_mixes: ``(positives, negatives)`` per select item; each sums to ``n_candidates``
            and has at least one positive.
        max_sft_per_question, max_refine_per_question, max_dpo_per_question: caps per question.
        max_select_per_question: cap on select items per question; None = one per mix.
        min_rationale_chars: replies of at most this many characters are dropped (0 = off).
        drop_answer_first: drop replies that begin with "Answer" (no chain of thought).
        filter_negative_inputs: apply the filter to refine inputs and DPO rejections too
            (targets and select candidates are always filtered).
        distinct_rationales: treat replies with identical text as one (off in the paper).
        consistent_positives: a positive must also pass the benchmark's step check (a
            benchmark without one is an error); off in the paper, whose positives are the
            right answers.
        select_target: ``"answer"``, the bare gold answer (the paper's), or ``"answer_line"``,
            the gold answer as a rationale ends it ("Answer:\n7"): one answer format for every
            task, for a model too small to keep two apart (a tiny one trained on bare select
            targets ended its chain-of-thought replies with a bare number).
        prompt_style: the prompt style of the samples and of every prompt built.
        seed: seeds the candidate shuffles.
    """

    sft: bool = True
    refine: bool = True
    select: bool = True
    n_candidates: int = 3
    select_mixes: tuple[tuple[int, int], ...] = ((2, 1), (1, 2))
    max_sft_per_question: int = 1
    max_refine_per_question: int = 1
    max_select_per_question: int | None = None
    max_dpo_per_question: int = 1
    min_rationale_chars: int = 50
    drop_answer_first: bool = True
    filter_negative_inputs: bool = True
    distinct_rationales: bool = False
    consistent_positives: bool = False
    select_target: str = "answer"
    prompt_style: str = "qwen"
    seed: int = 0

    def __post_init__(self) -> None:
        self.select_mixes = tuple(tuple(m) for m in self.select_mixes)  # YAML gives lists
        for name in ("sft", "refine", "select", "drop_answer_first", "filter_negative_inputs",
                     "distinct_rationales", "consistent_positives"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"reflect.{name} must be true or false, got "
                                 f"{getattr(self, name)!r}")
        for name in ("n_candidates", "max_sft_per_question", "max_refine_per_question",
                     "max_dpo_per_question", "min_rationale_chars", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"reflect.{name} must be an integer, got {value!r}")
        for name in ("max_sft_per_question", "max_refine_per_question", "max_dpo_per_question"):
            if getattr(self, name) < 1:
                raise ValueError(f"reflect.{name} must be >= 1 (switch the task off instead), "
                                 f"got {getattr(self, name)}")
        if self.select_target not in prompts.SELECT_TARGETS:
            raise ValueError(f"reflect.select_target must be one of {', '.join(prompts.SELECT_TARGETS)}, "
                             f"got {self.select_target!r}")
        if self.n_candidates < 1:
            raise ValueError(f"reflect.n_candidates must be >= 1, got {self.n_candidates}")
        if self.min_rationale_chars < 0:
            raise ValueError(f"reflect.min_rationale_chars must be >= 0, got "
                             f"{self.min_rationale_chars}")
        m = self.max_select_per_question
        if m is not None and (not isinstance(m, int) or isinstance(m, bool) or m < 1):
            raise ValueError(f"reflect.max_select_per_question must be an integer >= 1 or null, "
                             f"got {m!r}")
        if self.select and not self.select_mixes:
            raise ValueError("reflect.select_mixes is empty while select is on")
        for mix in self.select_mixes:
            if (len(mix) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                         for v in mix)):
                raise ValueError(f"reflect.select_mixes: {list(mix)} is not a pair "
                                 "[positives, negatives] of integers")
            p, q = mix
            if p < 1 or q < 0 or p + q != self.n_candidates:
                raise ValueError(
                    f"reflect.select_mixes: {list(mix)} must have >= 1 positive, >= 0 negatives "
                    f"and sum to n_candidates={self.n_candidates}")
        if len(set(self.select_mixes)) != len(self.select_mixes):
            raise ValueError(f"reflect.select_mixes has a repeated mix: {self.select_mixes}")
        prompts.check_style(self.prompt_style)

    @classmethod
    def for_method(cls, method: str, **overrides: Any) -> ReflectConfig:
        """The config of a training method: ``r3v``, ``r3v_no_refine``, ``r3v_no_select`` or
        ``star`` (SFT on positives only), with any other field overridden."""
        if method not in METHOD_TASKS:
            raise ValueError(f"unknown method {method!r}; choose one of "
                             f"{', '.join(METHOD_TASKS)}")
        on = METHOD_TASKS[method]
        tasks = {t: t in on for t in TASKS}
        clash = set(tasks) & set(overrides)
        if clash:
            raise ValueError(f"method {method!r} sets {', '.join(sorted(clash))}; "
                             "do not override it")
        return cls(**tasks, **overrides)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReflectConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"reflect: unknown key(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known))}")
        return cls(**data)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(t for t in TASKS if getattr(self, t))

    def keeps(self, reply: str) -> bool:
        """Whether a reply passes the quality filter (a real chain of thought)."""
        text = reply.strip()
        if len(text) <= self.min_rationale_chars:
            return False
        if self.drop_answer_first and text.lower().startswith("answer"):
            return False
        return True
