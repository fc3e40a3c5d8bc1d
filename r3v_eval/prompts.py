"""The prompts of R3V, in the paper's wording, per prompt style.

Styles:
    ``qwen``  (Qwen-VL, the paper's main setting): question + "\\nFirst generate a step-by-step
              solution, then <benchmark ending>"; rationales "Solution:\\n1. ...\\n\\nAnswer:\\n<a>".
    ``llava`` (LLaVA-1.5): question + "\\nLet's think step by step."; rationales without "Solution:".
    ``qwen2`` (Qwen2-VL / Qwen2.5-VL companion): question + "\\nAnswer the question with
              Chain-of-Thought."; rationales as ``qwen``.

Every function returns the user-turn *text*; the image goes alongside it through the
processor's chat template (see :mod:`r3v_eval.engines`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from r3v_eval.benchmarks.base import Benchmark, Problem

PROMPT_STYLES = ("qwen", "llava", "qwen2")

COT_PREFIX = "First generate a step-by-step solution, then "
LLAVA_COT = "Let's think step by step."
QWEN2_COT = "Answer the question with Chain-of-Thought."
REFINE_HEADER = "\nModel's prediction:\n"
REFINE_INSTRUCTION = "\nJudge the correctness of the model's prediction and refine it."


def check_style(style: str) -> str:
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt_style {style!r}; choose one of {', '.join(PROMPT_STYLES)}")
    return style


def _capitalised(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def cot_prompt(bench: "Benchmark", problem: "Problem", style: str = "qwen") -> str:
    """Ask for a chain-of-thought solution ending in an answer."""
    check_style(style)
    question = bench.question_text(problem)
    if style == "qwen":
        return f"{question}\n{COT_PREFIX}{bench.cot_ending_for(problem)}"
    if style == "llava":
        return f"{question}\n{LLAVA_COT}"
    return f"{question}\n{QWEN2_COT}"


def direct_prompt(bench: "Benchmark", problem: "Problem", style: str = "qwen") -> str:
    """Ask for the bare answer (the warm-up QA pairs and the zero-shot QA baseline)."""
    check_style(style)
    return f"{bench.question_text(problem)}\n{_capitalised(bench.cot_ending_for(problem))}"


def refine_prompt(bench: "Benchmark", problem: "Problem", negative: str, style: str = "qwen") -> str:
    """Self-refine: show a (wrong) solution and ask to judge and refine it."""
    check_style(style)
    return f"{bench.question_text(problem)}{REFINE_HEADER}{negative.strip()}{REFINE_INSTRUCTION}"


def select_prompt(bench: "Benchmark", problem: "Problem", candidates: Sequence[str],
                  style: str = "qwen") -> str:
    """Self-select: show N candidate solutions and ask for the final answer."""
    check_style(style)
    if not candidates:
        raise ValueError("select_prompt needs at least one candidate")
    parts = [bench.question_text(problem)]
    for i, cand in enumerate(candidates, 1):
        parts.append(f"\nModel's prediction {i}:\n{cand.strip()}")
    parts.append("\n" + bench.select_instruction_for(problem))
    return "".join(parts)


#: how a solution in the paper's format starts (the llava style leaves it out)
SOLUTION_HEAD = "Solution:\n"


def answer_line(answer: str) -> str:
    """How a solution in the paper's format states its answer: "Answer:\n7"."""
    return f"Answer:\n{answer}"


#: what a self-select reply says: the bare answer (the paper's), or the answer line of a
#: rationale ("Answer:\n7"; ``reflect.select_target``)
SELECT_TARGETS = ("answer", "answer_line")
#: how test-time selection takes its answer: the model writes it (the paper's), or the model's
#: likelihood of each candidate's answer, as a select reply, picks one
SELECT_CHOICES = ("generate", "candidates")


def select_reply(answer: str, target: str = "answer") -> str:
    """The self-select reply that names ``answer``, in the ``target`` format: what a select
    item is trained to answer, and what scoring the candidates (``select_choice:
    candidates``) measures the likelihood of."""
    if target not in SELECT_TARGETS:
        raise ValueError(f"select target must be one of {', '.join(SELECT_TARGETS)}, got {target!r}")
    return answer_line(answer) if target == "answer_line" else answer


def parse_rationale(reply: str) -> tuple[list[str], str] | None:
    """The inverse of :func:`format_rationale`: a reply's step texts (numbers stripped) and its
    answer text, or None when the reply is not in that format (steps not numbered 1, 2, ... in
    order, or no blank line and answer line after them)."""
    text = reply.strip()
    if text.startswith(SOLUTION_HEAD):
        text = text[len(SOLUTION_HEAD):]
    body, sep, answer = text.partition("\n\n" + answer_line(""))
    if not sep:
        return None
    steps = []
    for i, line in enumerate(body.split("\n"), 1):
        head = f"{i}. "
        if not line.startswith(head):
            return None
        steps.append(line[len(head):])
    return steps, answer


def format_rationale(steps: Sequence[str], answer: str, style: str = "qwen") -> str:
    """A solution in the paper's format: numbered steps, a blank line, then "Answer:"."""
    check_style(style)
    body = "\n".join(f"{i}. {s.strip()}" for i, s in enumerate(steps, 1))
    head = "" if style == "llava" else SOLUTION_HEAD
    return f"{head}{body}\n\n{answer_line(answer)}"
