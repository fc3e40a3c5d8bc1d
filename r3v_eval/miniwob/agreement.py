"""How often the offline scorer (boxes, exact text) agrees with the online one (the real env).

Per problem, the gold action and perturbed ones are scored both ways. The perturbations are
deterministic by seed, in families:

* click problems: ``inside`` (another pixel of a gold box), ``near-miss`` (1-3 px outside a
  box), ``random`` (any pixel of the task area), ``other-step`` (another step's gold click),
  ``type`` (typing the instruction's first quoted text, or "x");
* type problems: ``case`` (letters' case swapped), ``short`` (last character dropped),
  ``longer`` (a character added), ``other-step`` (a gold click of the same episode instead).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from r3v_eval.benchmarks.base import Problem
from r3v_eval.benchmarks.miniwob import (
    Action, Click, Type, action_is_right, inside, parse_action, problem_boxes,
)
from r3v_eval.miniwob.replay import OnlineScorer


def _fraction(pixel: int, size: int) -> float:
    return round((pixel + 0.5) / size, 4)


def perturbed_actions(problem: Problem, rng: random.Random) -> list[tuple[str, Action]]:
    """(family, action) pairs for one problem, the gold action first."""
    gold = parse_action(problem.answer)
    steps = [parse_action(s) for s in problem.meta["steps"]]
    k = problem.meta["step"]
    other_clicks = [s for j, s in enumerate(steps) if j != k and isinstance(s, Click)]
    out: list[tuple[str, Action]] = [("gold", gold)]
    if isinstance(gold, Type):
        if gold.text.swapcase() != gold.text:
            out.append(("case", Type(gold.text.swapcase())))
        if len(gold.text) > 1:
            out.append(("short", Type(gold.text[:-1])))
        out.append(("longer", Type(gold.text + rng.choice("aZ7"))))
        if other_clicks:
            out.append(("other-step", rng.choice(other_clicks)))
        return out
    boxes, (width, height) = problem_boxes(problem)
    left, top, right, bottom = rng.choice(boxes)
    px, py = rng.randrange(left, right), rng.randrange(top, bottom)
    out.append(("inside", Click(_fraction(px, width), _fraction(py, height))))
    for _ in range(20):
        left, top, right, bottom = rng.choice(boxes)
        d = rng.randint(1, 3)
        px, py = rng.choice([(left - d, rng.randrange(top, bottom)),
                             (right - 1 + d, rng.randrange(top, bottom)),
                             (rng.randrange(left, right), top - d),
                             (rng.randrange(left, right), bottom - 1 + d)])
        if 0 <= px < width and 0 <= py < height and not inside((px, py), boxes):
            out.append(("near-miss", Click(_fraction(px, width), _fraction(py, height))))
            break
    out.append(("random", Click(_fraction(rng.randrange(width), width),
                                _fraction(rng.randrange(50, height), height))))
    if other_clicks:
        out.append(("other-step", rng.choice(other_clicks)))
    quoted = re.findall(r'"([^"]+)"', problem.meta.get("utterance", ""))
    out.append(("type", Type(quoted[0] if quoted else "x")))
    return out


@dataclass
class Agreement:
    """Counts per family: scored, agreed, right offline, right online; and the disagreements."""

    total: Counter = field(default_factory=Counter)
    agreed: Counter = field(default_factory=Counter)
    offline_right: Counter = field(default_factory=Counter)
    online_right: Counter = field(default_factory=Counter)
    disagreements: list[dict] = field(default_factory=list)

    def rate(self, families: Iterable[str] | None = None) -> float:
        fams = list(families) if families is not None else list(self.total)
        n = sum(self.total[f] for f in fams)
        return sum(self.agreed[f] for f in fams) / n if n else 0.0

    def table(self) -> str:
        lines = ["| family | actions | agree | right offline | right online |",
                 "|---|---:|---:|---:|---:|"]
        for f in sorted(self.total, key=lambda f: (f != "gold", f)):
            lines.append(f"| {f} | {self.total[f]} | {100 * self.agreed[f] / self.total[f]:.1f}% "
                         f"| {self.offline_right[f]} | {self.online_right[f]} |")
        n = sum(self.total.values())
        lines.append(f"| all | {n} | {100 * self.rate():.2f}% | "
                     f"{sum(self.offline_right.values())} | {sum(self.online_right.values())} |")
        return "\n".join(lines)


def measure_agreement(problems: list[Problem], scorer: OnlineScorer, seed: int = 0,
                      progress: Callable[[Iterable], Iterable] = lambda x: x) -> Agreement:
    """Score every problem's gold and perturbed actions offline and online."""
    result = Agreement()
    rng = random.Random(seed)
    for problem in progress(problems):
        gold = parse_action(problem.answer)
        boxes = problem.meta.get("boxes") or []
        for family, action in perturbed_actions(problem, rng):
            offline = action_is_right(action, gold, boxes)
            online = scorer.verdict(problem, action)
            result.total[family] += 1
            result.offline_right[family] += offline
            result.online_right[family] += online.correct
            if offline == online.correct:
                result.agreed[family] += 1
            else:
                result.disagreements.append({
                    "id": problem.id, "family": family, "action": str(action),
                    "offline": offline, "online": online.correct,
                    "raw_reward": online.raw_reward, "reason": online.reason})
    return result
