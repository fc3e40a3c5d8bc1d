"""Real MiniWoB++ episodes -> problems in the canonical schema (``r3v data miniwob``).

An episode is played with its gold actions (:mod:`r3v_eval.miniwob.gold`); before each step
the screenshot, the gold action and the target's boxes are recorded, so a task that needs
several actions becomes one problem per step (the earlier gold steps already done, and listed
in the question as "Previous actions"). An episode is kept only when its gold actions win it
(raw reward 1) and every click target shows in the screenshot; a target's boxes are exactly
the pixels where a click reaches it (a corner covered by another element is left out).
Skipped episodes are counted by reason and reported.

Splits are deterministic by ``seed``: each task draws its test episodes' seeds from one stream
and its train episodes' seeds from another (even and odd numbers: never shared). A train
problem identical to a test problem (same instruction and screenshot) is dropped and counted.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from r3v_eval.benchmarks.miniwob import VIEWPORT, Click, Type, click_pixel
from r3v_eval.errors import R3VError
from r3v_eval.miniwob import gold
from r3v_eval.miniwob.browser import TaskBrowser

DEFAULT_TASKS = tuple(gold.RULES)
MAX_EPISODES_PER_PROBLEM = 20  # give up on a task that skips this many episodes per problem


@dataclass
class StepProblem:
    """One recorded step: what the model sees and the gold answer."""

    task: str
    seed: int
    step: int
    utterance: str
    image: Image.Image
    steps: list[str]          # the whole episode's gold actions
    boxes: list[list[float]]  # the target's boxes for a click, [] for typing

    @property
    def id(self) -> str:
        return f"{self.task}-{self.seed}-{self.step}"

    def question(self) -> str:
        done = self.steps[:self.step]
        return self.utterance + (f"\nPrevious actions: {'; '.join(done)}" if done else "")

    def row(self, image_path: str) -> dict[str, Any]:
        return {"id": self.id, "question": self.question(), "answer": self.steps[self.step],
                "image": image_path,
                "meta": {"task": self.task, "seed": self.seed, "step": self.step,
                         "steps": self.steps, "boxes": self.boxes,
                         "viewport": list(VIEWPORT), "utterance": self.utterance}}


class Skip(Exception):
    """An episode that yields no problems (the message is the counted reason)."""


def gold_click(boxes: list[list[float]]) -> Click:
    """A click with two-decimal fractions near the middle of the largest box, whose pixel
    lies inside that box (at least one pixel from its edges when the box allows)."""
    left, top, right, bottom = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    width, height = VIEWPORT

    def fractions(lo: float, hi: float, size: int) -> list[float]:
        mid = (lo + hi) / 2 / size
        cands = sorted({round(mid + d / 100, 2) for d in range(-5, 6)}, key=lambda v: abs(v - mid))
        return [v for v in cands if 0 <= v <= 1]

    for margin in (1, 0):
        for x in fractions(left, right, width):
            for y in fractions(top, bottom, height):
                px, py = click_pixel(x, y)
                if (left + margin <= px < right - margin and top + margin <= py < bottom - margin):
                    return Click(x, y)
    raise Skip("target too small for a two-decimal click")


def play_episode(browser: TaskBrowser, seed: int) -> list[StepProblem]:
    """Play one episode with its gold actions, recording each step (Skip when unusable)."""
    utterance, elements = browser.reset(seed)
    try:
        plan = gold.plan(browser.task, utterance, elements)
    except gold.NoGold as exc:
        raise Skip(f"no gold: {exc}") from None
    recorded: list[tuple[Image.Image, str, list[list[float]]]] = []
    result = None
    for step in plan:
        if result is not None and result.done:
            raise Skip("the episode ended before its last gold step")
        image = browser.screenshot()
        if isinstance(step, gold.Text):
            action, boxes = Type(step.text), []
            result = browser.type(step.text)
        else:
            boxes = browser.hit_boxes(list(step.refs))
            if not boxes:
                raise Skip("target hidden or outside the screenshot")
            action = gold_click(boxes)
            result = browser.click(click_pixel(action.x, action.y))
        recorded.append((image, str(action), boxes))
    if result is None or not result.done or result.raw_reward != 1.0:
        raise Skip("gold actions did not win (reward "
                   f"{None if result is None else result.raw_reward})")
    steps = [action for _, action, _ in recorded]
    return [StepProblem(browser.task, seed, k, utterance, image, steps, boxes)
            for k, (image, _, boxes) in enumerate(recorded)]


def episode_seeds(seed: int, task: str, split: str):
    """The endless, deterministic stream of episode seeds of one task and split (test: even,
    train: odd, so the splits never share an episode)."""
    rng = random.Random(f"{seed}/{task}")
    if split == "train":
        rng = random.Random(f"{seed}/{task}/train")
    parity = 0 if split == "test" else 1
    seen: set[int] = set()
    while True:
        s = 2 * rng.randrange(10**8) + parity
        if s not in seen:
            seen.add(s)
            yield s


def quotas(n: int, tasks: list[str]) -> dict[str, int]:
    """``n`` problems spread over the tasks as evenly as possible (earlier tasks get the rest)."""
    base, extra = divmod(n, len(tasks))
    return {t: base + (i < extra) for i, t in enumerate(tasks)}


def image_key(question: str, image: Image.Image) -> str:
    return hashlib.sha256(question.encode() + image.tobytes()).hexdigest()


@dataclass
class SplitReport:
    problems: int = 0
    episodes: int = 0
    skipped: Counter = field(default_factory=Counter)
    per_task: Counter = field(default_factory=Counter)


def generate_split(split: str, n: int, tasks: list[str], seed: int, scale: int, out: Path,
                   exclude: set[str] | None = None, log: Callable[[str], None] = print
                   ) -> tuple[SplitReport, set[str], str]:
    """Write ``out/<split>.jsonl`` and its screenshots; returns the report, the content keys of
    the problems written (to keep train apart from test) and the browser version."""
    from tqdm import tqdm

    report = SplitReport()
    keys: set[str] = set()
    version = "unknown"
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    tmp = out / f"{split}.jsonl.tmp"
    with tmp.open("w", encoding="utf-8") as fh, tqdm(total=n, desc=f"miniwob {split}",
                                                     disable=n == 0) as bar:
        for task, quota in quotas(n, tasks).items():
            if quota == 0:
                continue
            made = 0
            with TaskBrowser(task, scale=scale) as browser:
                version = browser.browser_version()
                seeds = episode_seeds(seed, task, split)
                tries = 0
                while made < quota:
                    tries += 1
                    if tries > MAX_EPISODES_PER_PROBLEM * quota:
                        raise RuntimeError(
                            f"miniwob {task}: {tries - 1} episodes gave only {made} of {quota} "
                            f"problems (skips: {dict(report.skipped)})")
                    episode_seed = next(seeds)
                    report.episodes += 1
                    try:
                        records = play_episode(browser, episode_seed)
                    except Skip as exc:
                        report.skipped[f"{task}: {exc}"] += 1
                        continue
                    for rec in records[:quota - made]:
                        key = image_key(rec.question(), rec.image)
                        if exclude and key in exclude:
                            report.skipped[f"{task}: same as a test problem"] += 1
                            continue
                        rel = f"images/{split}/{rec.id}.png"
                        rec.image.save(out / rel)
                        fh.write(json.dumps(rec.row(rel), ensure_ascii=False) + "\n")
                        keys.add(key)
                        made += 1
                        report.per_task[task] += 1
                        bar.update(1)
            report.problems += made
    tmp.replace(out / f"{split}.jsonl")
    return report, keys, version


def write_miniwob_dataset(out: str | Path, n_train: int, n_test: int, seed: int = 0,
                          tasks: list[str] | None = None, scale: int = 1,
                          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate the test split, then the train split, into ``out`` (see the module docstring);
    writes ``config.json`` (tasks, seed, counts, skips, versions) and returns it."""
    tasks = list(tasks or DEFAULT_TASKS)
    unknown = [t for t in tasks if t not in gold.RULES]
    if unknown:
        raise R3VError(f"no gold rule for MiniWoB task(s) {unknown}; known: "
                         f"{', '.join(gold.RULES)}")
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise R3VError(f"n_train={n_train}, n_test={n_test}: need non-negative counts, not both 0")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    test, test_keys, version = generate_split("test", n_test, tasks, seed, scale, out, log=log)
    train, _, version2 = generate_split("train", n_train, tasks, seed, scale, out,
                                       exclude=test_keys, log=log)
    config = {
        "benchmark": "miniwob", "seed": seed, "tasks": tasks, "scale": scale,
        "viewport": list(VIEWPORT), "n_test": n_test, "n_train": n_train,
        "splits": {name: {"problems": r.problems, "episodes": r.episodes,
                          "per_task": dict(r.per_task), "skipped": dict(r.skipped)}
                   for name, r in (("test", test), ("train", train))},
        "versions": {"miniwob": metadata.version("miniwob"),
                     "selenium": metadata.version("selenium"),
                     "chromium": version if version != "unknown" else version2,
                     "python": platform.python_version()},
        "seconds": round(time.time() - start, 1),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name, r in (("test", test), ("train", train)):
        skipped = sum(r.skipped.values())
        log(f"{name}: {r.problems} problems from {r.episodes} episodes over "
            f"{len(r.per_task)} tasks; {skipped} episodes skipped"
            + (": " + "; ".join(f"{k} ×{v}" for k, v in sorted(r.skipped.items())) if skipped else ""))
    return config
