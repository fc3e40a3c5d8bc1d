"""MiniWob (web navigation): a screenshot and an instruction in, one action out.

R3V reports MiniWob, but neither its data nor its scorer was released. The data here come from
the real MiniWoB++ environments (``r3v data miniwob``, :mod:`r3v_eval.miniwob`); the action
format is SeeClick's (the data source of R3V's first author): a click at a point of the
screen, or text typed into the element that has the focus::

    click(x, y)        x, y: the point as fractions of the screenshot's width and height,
                       from its top-left corner (0 <= x, y <= 1), e.g. click(0.49, 0.27)
    type("text")       type the text into the focused element (click it first)

**Coordinate frame.** The screenshot shows the top-left 160 x 210 CSS pixels of the task page
(``meta.viewport``; the instruction bar included), at any resolution (``--scale``), so the same
fractions name the same point at every scale. A click at (x, y) lands on CSS pixel
(floor(x * 160), floor(y * 210)) (:func:`click_pixel`); that pixel is what both scorers use.

Canonical row (``r3v data miniwob`` writes it)::

    {"id": "enter-text-1234-1",
     "question": "Enter \\"Kasey\\" into the text field and press Submit.\\nPrevious actions: click(0.4, 0.3)",
     "answer": "type(\\"Kasey\\")",
     "image": "images/test/enter-text-1234-1.png",
     "meta": {"task": "enter-text", "seed": 1234, "step": 1,
              "steps": ["click(0.4, 0.3)", "type(\\"Kasey\\")", "click(0.33, 0.52)"],
              "boxes": [],                          # CSS px [left, top, right, bottom] of a click's target
              "viewport": [160, 210], "utterance": "Enter \\"Kasey\\" ..."}}

**Offline scoring** (this module; ``r3v score``, training, lmms-eval): a click is right when
its pixel falls inside one of the gold target's boxes (``left <= px < right`` and
``top <= py < bottom``); typed text is right when it equals the gold text exactly
(case-sensitive, white space kept). **Online scoring** (:mod:`r3v_eval.miniwob.replay`;
``r3v score --online``, the ``r3v_miniwob_online`` task) replays the action in the real
environment and takes its reward as the verdict. The reply's action is the last action written
after the last "Answer:" marker (or in the whole reply when there is none); a reply with no
well-formed action is unparseable, hence wrong.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r3v_eval import answers
from r3v_eval.benchmarks.base import Benchmark, DataError, Problem, register

#: the CSS size of the area every MiniWoB screenshot shows (miniwob.constants TASK_WIDTH/HEIGHT)
VIEWPORT = (160, 210)
ACTION_FORMAT = 'click(x, y) with x, y fractions of the screenshot\'s width and height, or type("text")'

_HEAD = re.compile(r"(?<![A-Za-z0-9_])(click|type)\s*\(", re.IGNORECASE)
_NUMBER = re.compile(r"\s*(?:[xy]\s*=\s*)?([0-9]*\.?[0-9]+)\s*")
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "`": "`"}


@dataclass(frozen=True)
class Click:
    """A click at (x, y), fractions of the screenshot's width and height."""

    x: float
    y: float

    def __str__(self) -> str:
        return f"click({self.x:g}, {self.y:g})"


@dataclass(frozen=True)
class Type:
    """Text typed into the focused element (exact: case and white space matter)."""

    text: str

    def __str__(self) -> str:
        return 'type("' + self.text.replace("\\", "\\\\").replace('"', '\\"') + '")'


Action = Click | Type


def click_pixel(x: float, y: float, viewport: tuple[int, int] = VIEWPORT) -> tuple[int, int]:
    """The CSS pixel a click at fractions (x, y) lands on (the same for both scorers)."""
    width, height = viewport
    px = min(width - 1, math.floor(x * width + 1e-6))
    py = min(height - 1, math.floor(y * height + 1e-6))
    return px, py


def inside(pixel: tuple[int, int], boxes: list[list[float]]) -> bool:
    """Whether an integer CSS pixel lies in one of the boxes ``[left, top, right, bottom]``."""
    px, py = pixel
    return any(left <= px < right and top <= py < bottom for left, top, right, bottom in boxes)


def _closing_paren(text: str, start: int) -> int | None:
    """The index of the ")" that closes a call whose "(" ends at ``start`` (quotes respected)."""
    closing: str | None = None
    i = start
    while i < len(text):
        ch = text[i]
        if closing is not None:
            if ch == "\\":
                i += 2
                continue
            if ch == closing and re.match(r"\s*\)", text[i + 1:]):
                closing = None
        elif ch in _QUOTES and re.fullmatch(r"\s*(?:text\s*=\s*)?", text[start:i]):
            closing = _QUOTES[ch]
        elif ch == ")":
            return i
        i += 1
    return None


def _unquote(arg: str) -> str | None:
    """A quoted argument's text (escapes resolved), a bare one's stripped text; None if empty."""
    stripped = arg.strip()
    if stripped[:1] in _QUOTES:
        close = _QUOTES[stripped[0]]
        if len(stripped) < 2 or stripped[-1] != close:
            return None
        body = stripped[1:-1]
        if re.search(r"(?<!\\)" + re.escape(close), body):
            return None  # an unescaped closing quote inside: two arguments, or a broken one
        text = re.sub(r"\\(.)", r"\1", body)
    elif "," in stripped or any(q in stripped for q in _QUOTES):
        return None  # a bare argument with a comma or a quote: several arguments, or broken
    else:
        text = stripped
    return text or None


def parse_action(text: str | None) -> Action | None:
    """The last well-formed action in ``text``; None when the last one is not well formed."""
    if not text:
        return None
    heads = list(_HEAD.finditer(text))
    if not heads:
        return None
    head = heads[-1]
    end = _closing_paren(text, head.end())
    if end is None:
        return None
    inner = text[head.end():end]
    if head.group(1).lower() == "type":
        inner = re.sub(r"^\s*text\s*=\s*", "", inner)
        typed = _unquote(inner)
        return None if typed is None else Type(typed)
    parts = inner.split(",")
    if len(parts) != 2:
        return None
    numbers = [_NUMBER.fullmatch(p) for p in parts]
    if not all(numbers):
        return None
    x, y = (float(m.group(1)) for m in numbers)
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        return None  # outside the screenshot: not a point of this frame
    return Click(x, y)


def action_is_right(action: Action | None, gold: Action, boxes: list[list[float]],
                    viewport: tuple[int, int] = VIEWPORT) -> bool:
    """The offline rule: a click inside a gold box, or exactly the gold text."""
    if isinstance(gold, Type):
        return isinstance(action, Type) and action.text == gold.text
    return isinstance(action, Click) and inside(click_pixel(action.x, action.y, viewport), boxes)


def problem_boxes(problem: Problem) -> tuple[list[list[float]], tuple[int, int]]:
    """The gold target's boxes and the viewport of a click problem (checked)."""
    meta = problem.meta or {}
    boxes = meta.get("boxes")
    if (not isinstance(boxes, list) or not boxes
            or not all(isinstance(b, list) and len(b) == 4 for b in boxes)):
        raise DataError(f"miniwob problem {problem.id!r}: a click answer needs meta.boxes, a "
                        "non-empty list of [left, top, right, bottom] CSS-pixel boxes")
    viewport = meta.get("viewport", list(VIEWPORT))
    if not (isinstance(viewport, list) and len(viewport) == 2):
        raise DataError(f"miniwob problem {problem.id!r}: meta.viewport must be [width, height]")
    return boxes, (int(viewport[0]), int(viewport[1]))


@register
class MiniWob(Benchmark):
    """One web action per screenshot (SeeClick format), scored against the gold element's box."""

    name = "miniwob"
    hub_id = None
    cot_ending = (
        "answer with a single action: click(x, y), where x and y are the point's position as "
        "fractions (0 to 1) of the screenshot's width and height from its top-left corner, or "
        'type("text") to type into the focused element.'
    )
    select_instruction = "Which prediction is correct? Give the final answer with a single action."

    # ---------------------------------------------------------------- loading
    def load_hub(self, split: str, limit: int | None = None) -> list[Problem]:
        raise DataError(
            "miniwob: no public data set exists; generate one from the real environments with "
            "`r3v data miniwob --out DIR` (README, 'MiniWob'), then pass source=DIR"
        )

    def problem_from_local(self, row: dict[str, Any], base_dir: Path, where: str) -> Problem:
        problem = super().problem_from_local(row, base_dir, where)
        gold = parse_action(problem.answer)
        if gold is None:
            raise DataError(f"{where}: answer {problem.answer!r} is not a valid action "
                            f"({ACTION_FORMAT})")
        if problem.image is None:
            raise DataError(f"{where}: a MiniWob problem needs a screenshot ('image')")
        if isinstance(gold, Click):
            try:
                boxes, viewport = problem_boxes(problem)
            except DataError as exc:
                raise DataError(f"{where}: {exc}") from None
            if not inside(click_pixel(gold.x, gold.y, viewport), boxes):
                raise DataError(f"{where}: the gold click {gold} is outside its own boxes {boxes}")
        return problem

    # ---------------------------------------------------------------- scoring
    def extract(self, reply: str, problem: Problem) -> str | None:
        if not isinstance(reply, str) or not reply.strip():
            return None
        text = answers.final_answer_text(reply) if answers.has_answer_marker(reply) else reply
        action = parse_action(text)
        return None if action is None else str(action)

    def match(self, extracted: str, problem: Problem) -> bool:
        gold = parse_action(problem.answer)
        if gold is None:
            raise DataError(f"miniwob problem {problem.id!r}: answer {problem.answer!r} is not "
                            f"a valid action ({ACTION_FORMAT})")
        if isinstance(gold, Type):
            return action_is_right(parse_action(extracted), gold, [])
        boxes, viewport = problem_boxes(problem)
        return action_is_right(parse_action(extracted), gold, boxes, viewport)
