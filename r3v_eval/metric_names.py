"""The one vocabulary of result names, used by the loop, the lmms-eval tasks and the leaderboard.

- ``greedy``: one greedy chain-of-thought answer per question (the paper's Test@1);
- ``majority@N``: the majority vote over N sampled answers;
- ``select@N``: the model's own test-time selection among N sampled candidates;
- ``pass@N``: the oracle, right when any of N samples is right (``pass@1`` is one *sampled*
  answer, not the greedy one);
- ``accuracy``: a row's own answer (greedy for ``r3v_cot`` and runs, select@N for ``r3v_select``,
  majority@N for ``r3v_majority``).

lmms-eval metric keys cannot hold ``@N`` (N is a model argument there), so the tasks report
:data:`LMMS_KEYS` (``majority_at_n`` ...), read back as ``majority@N`` with the run's N.
"""

from __future__ import annotations

import re

GREEDY = "greedy"
ACCURACY = "accuracy"
SAMPLED_FAMILIES = ("majority", "select", "pass")
FAMILIES = (GREEDY, *SAMPLED_FAMILIES)
#: the lmms-eval task metric of each sampled family
LMMS_KEYS = {family: f"{family}_at_n" for family in SAMPLED_FAMILIES}

#: other spellings users type (``--metric``) or other tools write
ALIASES = {"test@1": GREEDY, "cot": GREEDY, "greedy_cot": GREEDY, "acc": ACCURACY,
           "maj": "majority", **{key: family for family, key in LMMS_KEYS.items()},
           **{f"{family}@n": family for family in SAMPLED_FAMILIES}}

_AT = re.compile(r"(majority|select|pass)(?:@|_at_)(\d+)")


def at(family: str, n: int) -> str:
    """``at("select", 3) == "select@3"``."""
    if family not in SAMPLED_FAMILIES:
        raise ValueError(f"{family!r} is not a sampled metric family ({', '.join(SAMPLED_FAMILIES)})")
    return f"{family}@{int(n)}"


def parse_at(name: str) -> tuple[str, int] | None:
    """``"select@3"`` (or ``"select_at_3"``) -> ``("select", 3)``; None for any other name."""
    m = _AT.fullmatch(name.strip().lower())
    return (m.group(1), int(m.group(2))) if m else None


def canonical(name: str) -> str:
    """Any spelling -> the vocabulary: ``'Test@1'`` -> ``greedy``, ``'majority_at_n'`` ->
    ``majority`` (the family), ``'select_at_3'`` -> ``select@3``; other names unchanged."""
    key = name.strip().lower().replace(" ", "")
    if key in ALIASES:
        return ALIASES[key]
    parsed = parse_at(key)
    if parsed:
        return at(*parsed)
    return name.strip()
