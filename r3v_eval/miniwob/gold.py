"""The gold actions of a MiniWoB++ episode, derived from its instruction and its DOM alone.

Each rule reads the instruction (``utterance``) and the elements of the first observation and
returns a plan: the steps that win the episode, each a :class:`Target` to click (the elements
whose area counts as the target) or a :class:`Text` to type into the focused element. No rule
peeks at the task's hidden state; an instruction a rule does not understand, or a target that
is missing or ambiguous, raises :class:`NoGold` (the episode is skipped and counted).

The tasks are those whose gold can be derived exactly (measured on the real environment,
section 5): single clicks, and short click / type sequences that become one problem per step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from r3v_eval.miniwob.browser import Element


@dataclass(frozen=True)
class Target:
    """Click one of these elements: their boxes are the target's area (several when, e.g.,
    several buttons carry the asked-for text, or a label and its checkbox)."""

    refs: tuple[int, ...]
    name: str  # what the target is, for reports


@dataclass(frozen=True)
class Text:
    text: str


Step = Target | Text


class NoGold(Exception):
    """The episode's gold cannot be derived (the message says why)."""


def _match(pattern: str, utterance: str) -> re.Match:
    m = re.fullmatch(pattern, utterance.strip())
    if m is None:
        raise NoGold(f"instruction not understood: {utterance!r}")
    return m


def _refs(elements: list[Element], name: str, keep: Callable[[Element], bool],
          exactly_one: bool = False) -> Target:
    refs = tuple(e.ref for e in elements if e.ref > 0 and keep(e))
    if not refs:
        raise NoGold(f"no element for {name}")
    if exactly_one and len(refs) != 1:
        raise NoGold(f"{len(refs)} elements for {name}: ambiguous")
    return Target(refs, name)


def _by_id(elements: list[Element], element_id: str) -> Target:
    return _refs(elements, f"#{element_id}", lambda e: e.id == element_id, exactly_one=True)


def _button(elements: list[Element], text: str) -> Target:
    return _refs(elements, f"button {text!r}", lambda e: e.tag == "button" and e.text == text)


def _labelled(elements: list[Element], text: str) -> Target:
    """The <label> holding a checkbox / radio and exactly this text, with its input (the input
    box reaches outside the label's line box; clicking either toggles the input)."""
    labels = {e.parent for e in elements if e.tag == "t" and e.text == text}
    by_ref = {e.ref: e for e in elements}
    labels = {ref for ref in labels if ref in by_ref and by_ref[ref].tag == "label"}
    if len(labels) != 1:
        raise NoGold(f"{len(labels)} labels read {text!r}")
    (label,) = labels
    inputs = tuple(e.ref for e in elements if e.parent == label and e.tag.startswith("input_"))
    return Target((label, *inputs), f"option {text!r}")


# ------------------------------------------------------------------ the rules
def click_button(u: str, els: list[Element]) -> list[Step]:
    return [_button(els, _match(r'Click on the "(.+)" button\.', u).group(1))]


def click_link(u: str, els: list[Element]) -> list[Step]:
    text = _match(r'Click on the link "(.+)"\.', u).group(1)
    return [_refs(els, f"link {text!r}", lambda e: "alink" in e.classes.split() and e.text == text)]


def _close_button(els: list[Element]) -> Target:
    return _refs(els, "the dialog's x", lambda e: e.tag == "button"
                 and "ui-dialog-titlebar-close" in e.classes.split(), exactly_one=True)


def click_dialog(u: str, els: list[Element]) -> list[Step]:
    _match(r'Close the dialog box by clicking the "x"\.', u)
    return [_close_button(els)]


def click_dialog_2(u: str, els: list[Element]) -> list[Step]:
    label = _match(r'Click the button in the dialog box labeled "(Cancel|OK|x)"\.', u).group(1)
    return [_close_button(els) if label == "x" else _button(els, label)]


def click_tab(u: str, els: list[Element]) -> list[Step]:
    n = _match(r"Click on Tab #(\d)\.", u).group(1)
    return [_refs(els, f"Tab #{n}", lambda e: e.tag == "a" and e.text == f"Tab #{n}",
                  exactly_one=True)]


def click_test(u: str, els: list[Element]) -> list[Step]:
    _match(r"Click the button\.", u)
    return [_button(els, "Click Me!")]


def click_test_2(u: str, els: list[Element]) -> list[Step]:
    return [_button(els, _match(r"Click button (ONE|TWO)\.", u).group(1))]


def click_button_sequence(u: str, els: list[Element]) -> list[Step]:
    m = _match(r"Click button (ONE), then click button (TWO)\.", u)
    return [_button(els, m.group(1)), _button(els, m.group(2))]


def focus_text(u: str, els: list[Element]) -> list[Step]:
    _match(r"Focus into the textbox\.", u)
    return [_refs(els, "the textbox", lambda e: e.tag == "input_text", exactly_one=True)]


def focus_text_2(u: str, els: list[Element]) -> list[Step]:
    nth = _match(r"Focus into the (1st|2nd|3rd) input textbox\.", u).group(1)
    return [_by_id(els, f"tt{nth[0]}")]


_WIDGET_TAGS = {"radio": "input_radio", "checkbox": "input_checkbox", "text": "input_text",
                "textarea": "textarea", "button": "button"}


def click_widget(u: str, els: list[Element]) -> list[Step]:
    """The click handler sits on each widget's <div>: the whole div is the target."""
    kind = _match(r'Click on a "(radio|checkbox|text|textarea|button)" widget\.', u).group(1)
    by_ref = {e.ref: e for e in els}

    def widget_of(e: Element) -> int | None:
        ref = e.parent
        while ref in by_ref:
            if "widget" in by_ref[ref].classes.split():
                return ref
            ref = by_ref[ref].parent
        return None

    widgets = {widget_of(e) for e in els if e.tag == _WIDGET_TAGS[kind]} - {None}
    if not widgets:
        raise NoGold(f"no {kind} widget")
    return [Target(tuple(sorted(widgets)), f"a {kind} widget")]


def enter_text(u: str, els: list[Element]) -> list[Step]:
    text = _match(r'Enter "(.+)" into the text field and press Submit\.', u).group(1)
    return [_by_id(els, "tt"), Text(text), _by_id(els, "subbtn")]


def enter_password(u: str, els: list[Element]) -> list[Step]:
    pw = _match(r'Enter the password "(.+)" into both text fields and press submit\.', u).group(1)
    return [_by_id(els, "password"), Text(pw), _by_id(els, "verify"), Text(pw),
            _by_id(els, "subbtn")]


def login_user(u: str, els: list[Element]) -> list[Step]:
    m = _match(r'Enter the username "(.+)" and the password "(.+)" into the text fields and '
               r"press login\.", u)
    return [_by_id(els, "username"), Text(m.group(1)), _by_id(els, "password"), Text(m.group(2)),
            _by_id(els, "subbtn")]


def click_option(u: str, els: list[Element]) -> list[Step]:
    name = _match(r"Select (\S+) and click Submit\.", u).group(1)
    return [_labelled(els, name), _by_id(els, "subbtn")]


def click_checkboxes(u: str, els: list[Element]) -> list[Step]:
    names = _match(r"Select (.+) and click Submit\.", u).group(1)
    wanted = [] if names == "nothing" else names.split(", ")
    return [*(_labelled(els, n) for n in wanted), _by_id(els, "subbtn")]


#: task -> rule; the default task set of ``r3v data miniwob`` (16 tasks)
RULES: dict[str, Callable[[str, list[Element]], list[Step]]] = {
    "click-button": click_button,
    "click-link": click_link,
    "click-dialog": click_dialog,
    "click-dialog-2": click_dialog_2,
    "click-tab": click_tab,
    "click-test": click_test,
    "click-test-2": click_test_2,
    "click-widget": click_widget,
    "focus-text": focus_text,
    "focus-text-2": focus_text_2,
    "click-button-sequence": click_button_sequence,
    "click-option": click_option,
    "click-checkboxes": click_checkboxes,
    "enter-text": enter_text,
    "enter-password": enter_password,
    "login-user": login_user,
}


def plan(task: str, utterance: str, elements: list[Element]) -> list[Step]:
    """The gold steps of one episode (NoGold when they cannot be derived exactly)."""
    if task not in RULES:
        raise ValueError(f"no gold rule for MiniWoB task {task!r}; known: {', '.join(RULES)}")
    return RULES[task](utterance, elements)
