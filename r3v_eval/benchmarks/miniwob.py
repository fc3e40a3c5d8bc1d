"""MiniWob (web navigation): a screenshot and an instruction in, one action out.

R3V reports MiniWob, but neither its data nor its scorer was released, so this module fixes
both, and only local data is supported (``load(split, source=...)``, canonical schema)::

    {"id": "click-button-0001",
     "question": "Click on the \\"Submit\\" button.",     # the task instruction
     "answer": "click(Submit)",                           # the one correct action
     "image": "screens/click-button-0001.png",            # the screenshot
     "meta": {"task": "click-button"}}                    # optional (per-task accuracy)

Action format (for gold answers and for model replies alike)::

    click(<target>)              click an element
    type(<target>, "<text>")     type text into a field
    select(<target>, "<option>") pick an option of a list / dropdown
    press(<key>)                 press a key (enter, tab, escape, backspace, space, arrowdown, ...)

``<target>`` names the element as the screenshot shows it (its visible text or label, or the
element reference the data uses). Arguments may be bare or quoted with ``"``, ``'`` or
typographic quotes; a quoted argument may hold commas and parentheses; the argument order is
fixed; ``name=`` prefixes matching the argument names above are allowed
(``type(target="Search", text="cats")``).

Scoring is exact match of the normalised action (action, target, text): the action name and
every argument are compared case-insensitively, quotes removed, runs of white space collapsed,
outer white space dropped; key names have a few aliases (return = enter, esc = escape,
spacebar = space, "arrow down" = arrowdown). The reply's action is the last action written
after the last "Answer:" marker (or in the whole reply when there is no marker). A reply with no
well-formed action (unknown action name, wrong number of arguments, empty argument, unclosed
parenthesis or quote) is unparseable, hence wrong. Gold answers are checked when loading: a
malformed one is an error naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r3v_eval import answers
from r3v_eval.benchmarks.base import Benchmark, DataError, Problem, register

#: action name -> its argument names, in order
ACTIONS: dict[str, tuple[str, ...]] = {
    "click": ("target",),
    "type": ("target", "text"),
    "select": ("target", "option"),
    "press": ("key",),
}
KEY_ALIASES = {
    "return": "enter", "esc": "escape", "spacebar": "space", "del": "delete",
    "arrow down": "arrowdown", "arrow up": "arrowup", "arrow left": "arrowleft",
    "arrow right": "arrowright", "down": "arrowdown", "up": "arrowup", "left": "arrowleft",
    "right": "arrowright",
}
ACTION_FORMAT = (
    'click(<target>), type(<target>, "<text>"), select(<target>, "<option>") or press(<key>)'
)

_HEAD = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(ACTIONS) + r")\s*\(", re.IGNORECASE)
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "`": "`", "«": "»"}


@dataclass(frozen=True)
class Action:
    """A normalised action: its name and its arguments (lower-case, single-spaced)."""

    name: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        def quoted(arg: str) -> str:
            return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'

        return f"{self.name}({', '.join(quoted(a) for a in self.args)})"


def _normalize_arg(arg: str) -> str:
    return re.sub(r"\s+", " ", arg).strip().lower()


def _split_args(text: str, start: int) -> list[str] | None:
    """The arguments of a call whose "(" ends at ``start``, up to its ")"; None if malformed."""
    args: list[str] = []
    current: list[str] = []
    closing: str | None = None  # the closing quote we are inside, if any
    seen_content = False  # whether the current argument has non-space content yet
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if closing is not None:
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 2
                continue
            if ch == closing and re.match(r"\s*[,)]", text[i + 1:]):
                closing = None
            else:
                current.append(ch)
            i += 1
            continue
        if ch in _QUOTES and (not seen_content
                              or re.fullmatch(r"\s*[A-Za-z_]+\s*=\s*", "".join(current))):
            closing = _QUOTES[ch]
            seen_content = True
        elif ch == "(":
            depth += 1
            current.append(ch)
            seen_content = True
        elif ch == ")" and depth > 0:
            depth -= 1
            current.append(ch)
        elif ch in ",)":
            args.append("".join(current))
            if ch == ")":
                return args
            current, seen_content = [], False
        else:
            current.append(ch)
            if not ch.isspace():
                seen_content = True
        i += 1
    return None  # no closing parenthesis (or an unclosed quote)


def parse_action(text: str | None) -> Action | None:
    """The last well-formed action in ``text``, normalised; None when the last one is not."""
    if not text:
        return None
    heads = list(_HEAD.finditer(text))
    if not heads:
        return None
    head = heads[-1]
    name = head.group(1).lower()
    raw = _split_args(text, head.end())
    if raw is None:
        return None
    expected = ACTIONS[name]
    if len(raw) != len(expected):
        return None
    args: list[str] = []
    for arg, arg_name in zip(raw, expected):
        kw = re.match(r"\s*([A-Za-z_]+)\s*=\s*(.*)$", arg, re.DOTALL)
        if kw and kw.group(1).lower() in expected:
            if kw.group(1).lower() != arg_name:
                return None  # keyword arguments out of the fixed order
            arg = kw.group(2)
        value = _normalize_arg(arg)
        if not value:
            return None
        if arg_name == "key":
            value = KEY_ALIASES.get(value, value)
        args.append(value)
    return Action(name, tuple(args))


@register
class MiniWob(Benchmark):
    """One web action per screenshot; exact match of the normalised action."""

    name = "miniwob"
    hub_id = None
    cot_ending = f"answer with a single action: {ACTION_FORMAT}."
    select_instruction = "Which prediction is correct? Give the final answer with a single action."

    # ---------------------------------------------------------------- loading
    def load_hub(self, split: str, limit: int | None = None) -> list[Problem]:
        raise DataError(
            "miniwob: no public data set exists; pass source=<folder with <split>.jsonl> (or a "
            '.jsonl file) in the canonical schema: {"id", "question": <instruction>, "answer": '
            f'<gold action>, "image": <screenshot path>, "meta": {{"task": ...}}}}; actions are '
            f"{ACTION_FORMAT}"
        )

    def problem_from_local(self, row: dict[str, Any], base_dir: Path, where: str) -> Problem:
        problem = super().problem_from_local(row, base_dir, where)
        if parse_action(problem.answer) is None:
            raise DataError(
                f"{where}: answer {problem.answer!r} is not a valid action ({ACTION_FORMAT})"
            )
        if problem.image is None:
            raise DataError(f"{where}: a MiniWob problem needs a screenshot ('image')")
        return problem

    # ---------------------------------------------------------------- scoring
    def extract(self, reply: str, problem: Problem) -> str | None:
        if not isinstance(reply, str) or not reply.strip():
            return None
        if answers.has_answer_marker(reply):
            text = answers.final_answer_text(reply)
        else:
            text = reply
        action = parse_action(text)
        return None if action is None else str(action)

    def match(self, extracted: str, problem: Problem) -> bool:
        pred = parse_action(extracted)
        gold = parse_action(problem.answer)
        return pred is not None and gold is not None and pred == gold
