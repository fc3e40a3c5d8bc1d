"""Test doubles shared by several test modules."""

from __future__ import annotations

from r3v_eval.benchmarks.base import Problem
from r3v_eval.benchmarks.kinds import IntegerBenchmark
from r3v_eval.engines.base import Sampling


class CountingBench(IntegerBenchmark):
    """An unregistered integer benchmark for strategy tests."""

    name = "counting_fake"
    cot_ending = "answer the question using a single numerical value."
    select_instruction = "Which prediction is correct? Give the final answer."


def problems(answers: list[str]) -> list[Problem]:
    return [Problem(id=f"q{i}", question=f"How many things in picture {i}?", answer=a,
                    benchmark="counting_fake") for i, a in enumerate(answers)]


class ScriptedEngine:
    """An engine that answers from a script: prompt substring -> list of completions."""

    def __init__(self, script):
        self.script = script
        self.calls: list[tuple[list[str], Sampling]] = []

    def generate(self, requests, sampling, progress=True):
        self.calls.append(([r.prompt for r in requests], sampling))
        out = []
        for r in requests:
            for key, replies in self.script:
                if key in r.prompt:
                    if callable(replies):
                        replies = replies(r.prompt, sampling)
                    out.append(list(replies)[: sampling.n])
                    break
            else:
                raise AssertionError(f"no scripted reply for prompt {r.prompt!r}")
        return out
