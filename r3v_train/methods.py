"""The training methods of ``run.method``: one table that the recipe schema
(:mod:`r3v_train.config`), the iteration driver (:mod:`r3v_train.loop`) and the example builder
(:mod:`r3v_train.reflect`) all read.

A method is the stages it runs after the optional warm-up, the self-training tasks its
iterations build (:mod:`r3v_train.reflect`) and whether it samples its own training data::

    r3v            warm-up, then per iteration: sample -> SFT on sft + refine + select
    r3v_no_refine  the same without refine;  r3v_no_select: without select
    star           warm-up, then per iteration: sample -> SFT on positives (STaR)
    star_dpo       STaR, then DPO on positive / negative pairs each iteration
    distill        the teacher rationales only (no QA pairs, no self-training)
    control        the warm-up's own data continued for a reference run's optimizer steps
    grpo           on-policy RL with the answer check as the reward (r3v_train/grpo.py)
"""

from __future__ import annotations

from dataclasses import dataclass

#: what a method can run after the warm-up
STAGES = ("iterate", "dpo", "control", "grpo")
#: the self-training tasks a method's iterations can build
TASKS = ("sft", "refine", "select")


@dataclass(frozen=True)
class Method:
    """One ``run.method``.

    Attributes:
        name: the ``run.method`` value.
        stages: what runs after the warm-up: ``iterate`` (``run.iterations`` rounds of sample
            -> build -> SFT), ``dpo`` (a DPO stage after each iteration's SFT), ``control``
            (the matched-compute control) or ``grpo`` (one GRPO stage); none = the warm-up only.
        tasks: the self-training tasks its iterations build (:data:`TASKS`).
        samples: whether it samples the train split into the pool.
        teacher_only: its warm-up trains the teacher rationales only (no QA pairs), always on.
    """

    name: str
    stages: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    samples: bool = False
    teacher_only: bool = False

    @property
    def iterates(self) -> bool:
        return "iterate" in self.stages

    @property
    def final_iteration_fixed(self) -> bool:
        """Whether its last iteration is 1 (one stage after the warm-up), not ``run.iterations``."""
        return "control" in self.stages or "grpo" in self.stages


def _self_training(name: str, tasks: tuple[str, ...], *extra: str) -> Method:
    return Method(name, ("iterate", *extra), tasks, samples=True)


METHODS: dict[str, Method] = {m.name: m for m in (
    _self_training("r3v", ("sft", "refine", "select")),
    _self_training("star", ("sft",)),
    _self_training("star_dpo", ("sft",), "dpo"),
    Method("distill", teacher_only=True),
    _self_training("r3v_no_refine", ("sft", "select")),
    _self_training("r3v_no_select", ("sft", "refine")),
    Method("control", ("control",)),
    Method("grpo", ("grpo",)),
)}


def get_method(name: str) -> Method:
    """The method ``name`` (a ``ValueError`` naming the known ones otherwise)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]
