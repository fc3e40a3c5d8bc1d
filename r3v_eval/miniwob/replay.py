"""The online scorer: a model's action replayed in the real MiniWoB++ environment.

For the problem of step k of an episode: reset the episode's seed, replay the gold steps before
k, run the model's action, then the gold steps after k (stopping when the episode ends). The
action is right when the episode ends with the full raw reward (1; click-checkboxes gives
partial credit below 1 for a partly right selection). The offline scorer
(:mod:`r3v_eval.benchmarks.miniwob`) is measured against this one (``tests/test_miniwob_env.py``,
``benchmarks/miniwob_agreement.py``).

One browser per task is started on first use and kept until :meth:`OnlineScorer.close`.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from typing import Any

from r3v_eval.benchmarks.base import DataError, Problem
from r3v_eval.benchmarks.miniwob import Action, Click, MiniWob, parse_action, click_pixel
from r3v_eval.miniwob.browser import StepResult, TaskBrowser


@dataclass(frozen=True)
class Verdict:
    correct: bool
    raw_reward: float | None  # None when the episode did not end
    reason: str


def _episode(problem: Problem) -> tuple[str, int, list[Action], int, str]:
    meta = problem.meta or {}
    missing = [k for k in ("task", "seed", "steps", "step", "utterance") if k not in meta]
    if missing:
        raise DataError(f"miniwob problem {problem.id!r}: online scoring needs meta {missing} "
                        "(the rows `r3v data miniwob` writes carry them)")
    steps = [parse_action(s) for s in meta["steps"]]
    if any(s is None for s in steps) or not 0 <= int(meta["step"]) < len(steps):
        raise DataError(f"miniwob problem {problem.id!r}: bad meta.steps / meta.step")
    return str(meta["task"]), int(meta["seed"]), steps, int(meta["step"]), str(meta["utterance"])


class OnlineScorer:
    """Replays actions in real environments (one headless browser per task, reused)."""

    def __init__(self) -> None:
        self._browsers: dict[str, TaskBrowser] = {}
        atexit.register(self.close)

    def browser(self, task: str) -> TaskBrowser:
        if task not in self._browsers:
            self._browsers[task] = TaskBrowser(task)
        return self._browsers[task]

    def _run(self, browser: TaskBrowser, action: Action) -> StepResult:
        if isinstance(action, Click):
            return browser.click(click_pixel(action.x, action.y))
        return browser.type(action.text)

    def verdict(self, problem: Problem, action: Action | None) -> Verdict:
        """Whether ``action`` (None = unparseable) wins the problem's episode in the real env."""
        task, seed, steps, k, utterance = _episode(problem)
        if action is None:
            return Verdict(False, None, "no action")
        browser = self.browser(task)
        seen, _ = browser.reset(seed)
        if seen != utterance:
            raise DataError(f"miniwob problem {problem.id!r}: seed {seed} of {task} now reads "
                            f"{seen!r}, not {utterance!r}: the environment changed since the "
                            "data were generated")
        for gold in steps[:k]:
            if self._run(browser, gold).done:
                raise DataError(f"miniwob problem {problem.id!r}: the gold steps before step "
                                f"{k} ended the episode")
        result = self._run(browser, action)
        for gold in steps[k + 1:]:
            if result.done:
                break
            result = self._run(browser, gold)
        if not result.done:
            return Verdict(False, None, "the episode did not end")
        return Verdict(result.raw_reward == 1.0, result.raw_reward, str(result.reason))

    def close(self) -> None:
        for browser in self._browsers.values():
            browser.close()
        self._browsers.clear()


class OnlineMiniWob(MiniWob):
    """MiniWob scored by the environment itself (``r3v score --online``, the
    ``r3v_miniwob_online`` task): extraction as offline, the verdict by :class:`OnlineScorer`."""

    def __init__(self, scorer: OnlineScorer | None = None) -> None:
        self.scorer = scorer or OnlineScorer()

    def match(self, extracted: str, problem: Problem) -> bool:
        return self.scorer.verdict(problem, parse_action(extracted)).correct


_SHARED: dict[str, Any] = {}


def online_miniwob() -> OnlineMiniWob:
    """One shared online benchmark per process (its browsers are closed at exit)."""
    if "bench" not in _SHARED:
        _SHARED["bench"] = OnlineMiniWob()
    return _SHARED["bench"]
