"""The ``tally`` world: a row of dice-like cells, and one question: how many dots in all?

An easy-to-hard world (``research/easy-to-hard.md``): the difficulty level is the number of
items in the row, ``min_items`` (2) to ``max_items`` (6), and a perfect solution repeats one step pattern once per
item, in reading order::

    Solution:
    1. The first is red: 0 + 4 = 4.
    2. After red is blue: 4 + 3 = 7.
    3. The last is blue.

    Answer:
    7

Each item is a cell of one colour (distinct within a picture) showing 1..``max_dots`` dots.
No step names a position: the next item is found by what comes after the current one, and the
chain ends where the row does, so a level-k chain has the shape of a level-(k+1) chain cut
short. Each step line names the item, then adds its dots to the running total. The perception a
base model needs for every level (which item is first and its dots, what comes after an item
or that it is the last, single additions) is phrased as the chain's own words
(:func:`first_seen`, :func:`after_seen`, :func:`last_line`, :func:`fact_line`).

Everything is deterministic: the same seed and knobs give the same rows, questions and pictures.
Levels are spread evenly over every split (problem ``i`` of a split has the ``i``-th level in
turn; one-item rows are off by default: 40 rows in all, two of them in the test split), and a row belongs to one split only (a hash of the row decides), so train
and test never share a problem.

Problem ``meta``::

    {"level": 2, "items": [{"color": "red", "dots": 4}, {"color": "blue", "dots": 3}],
     "rationale": "Solution:\\n1. ...", "split": "test", "index": 1, "seed": 1234}
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from r3v_eval.errors import R3VError
from r3v_eval.prompts import format_rationale, parse_rationale

#: distinct, saturated colours (RGB) in the order the knobs pick them
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (20, 160, 40),
    "blue": (30, 70, 230),
    "yellow": (235, 195, 0),
    "purple": (140, 40, 190),
    "orange": (255, 125, 0),
    "cyan": (0, 190, 205),
    "pink": (255, 110, 180),
}
QUESTION = "How many dots are there in all?"
SPLITS = ("train", "val", "test")
_SPLIT_BUCKETS = 20  # hash bucket 0 -> test, 1 -> val, 2..19 -> train


class TallyConfigError(R3VError):
    """A tally knob out of range (named in the message)."""


@dataclass(frozen=True)
class TallyConfig:
    """The world's knobs: how long a row can be, how many dots a cell can show, the colours,
    and the picture's geometry (one image token per cell with Qwen2-VL's 28-pixel tokens)."""

    min_items: int = 2
    max_items: int = 6
    max_dots: int = 5
    colors: tuple[str, ...] = tuple(COLORS)
    cell: int = 28

    def __post_init__(self) -> None:
        object.__setattr__(self, "colors", tuple(self.colors))
        unknown = [c for c in self.colors if c not in COLORS]
        if unknown:
            raise TallyConfigError(f"tally colors: unknown colour {unknown[0]!r}; known: "
                                   f"{', '.join(COLORS)}")
        if len(set(self.colors)) != len(self.colors):
            raise TallyConfigError(f"tally colors: each colour once, got {list(self.colors)}")
        if not 1 <= self.max_items <= len(self.colors):
            raise TallyConfigError(f"tally max_items: 1..{len(self.colors)} (one colour per item), "
                                   f"got {self.max_items}")
        if not 1 <= self.min_items <= self.max_items:
            raise TallyConfigError(f"tally min_items: 1..max_items ({self.max_items}), "
                                   f"got {self.min_items}")
        if not 1 <= self.max_dots <= 5:
            raise TallyConfigError(f"tally max_dots: 1..5, got {self.max_dots}")
        if self.cell < 14:
            raise TallyConfigError(f"tally cell: at least 14 pixels, got {self.cell}")

    @property
    def levels(self) -> list[int]:
        return list(range(self.min_items, self.max_items + 1))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["colors"] = list(self.colors)
        return d


@dataclass(frozen=True)
class Item:
    color: str
    dots: int


# ---------------------------------------------------------------- the chain's lines
def fact_line(a: int, b: int) -> str:
    return f"{a} + {b} = {a + b}."


def first_seen(item: Item) -> str:
    """What a base model says of the first item: "The first is red: 4." """
    return f"The first is {item.color}: {item.dots}."


def after_seen(prev: Item, item: Item) -> str:
    """What a base model says of the item after ``prev``: "After red is blue: 3." """
    return f"After {prev.color} is {item.color}: {item.dots}."


def last_line(item: Item) -> str:
    return f"The last is {item.color}."


def step_line(items: Sequence[Item], i: int, total: int) -> str:
    """Step ``i`` of a chain: the item, then its dots added to the running ``total``."""
    head = f"The first is {items[0].color}" if i == 0 else f"After {items[i - 1].color} is {items[i].color}"
    return f"{head}: {fact_line(total, items[i].dots)}"


def solution_steps(items: Sequence[Item]) -> tuple[list[str], int]:
    """The step lines of the perfect solution of a row, and its answer."""
    if not items:
        raise ValueError("a tally row has at least one item")
    steps, total = [], 0
    for i, item in enumerate(items):
        steps.append(step_line(items, i, total))
        total += item.dots
    steps.append(last_line(items[-1]))
    return steps, total


def rationale(items: Sequence[Item], style: str = "qwen") -> str:
    steps, total = solution_steps(items)
    return format_rationale(steps, str(total), style)


_FACT = r"(\d+) \+ (\d+) = (\d+)\."
_FIRST = re.compile(r"The first is ([a-z]+): " + _FACT)
_AFTER = re.compile(r"After ([a-z]+) is ([a-z]+): " + _FACT)
_LAST = re.compile(r"The last is ([a-z]+)\.")


def chain_items(reply: str) -> list[Item] | None:
    """The items a reply's chain states, when the chain holds together, else None.

    Holding together means: numbered lines only, one step line per item (the first, then
    each "after" naming the item of the line before), no colour twice, every addition true and
    starting from the running total (0 at first), a last line naming the last item, and an
    answer line stating the total. It reads the reply only, never the picture: a miscounted
    cell carried through correctly holds together."""
    parsed = parse_rationale(reply)
    if parsed is None:
        return None
    steps, answer = parsed
    if len(steps) < 2:
        return None
    items: list[Item] = []
    total = 0
    for j, step in enumerate(steps[:-1]):
        if j == 0:
            m = _FIRST.fullmatch(step)
            color, numbers = (m.group(1), m.groups()[1:]) if m else (None, ())
        else:
            m = _AFTER.fullmatch(step)
            if m and m.group(1) != items[-1].color:
                return None
            color, numbers = (m.group(2), m.groups()[2:]) if m else (None, ())
        if not m or color in {x.color for x in items} or color not in COLORS:
            return None
        a, b, c = (int(g) for g in numbers)
        if a != total or c != a + b:
            return None
        items.append(Item(color, b))
        total = c
    last = _LAST.fullmatch(steps[-1])
    if not last or last.group(1) != items[-1].color:
        return None
    return items if answer.strip() == str(total) else None


def steps_consistent(reply: str) -> bool:
    return chain_items(reply) is not None


# ------------------------------------------------------------------ sampling
def split_of(items: Sequence[Item]) -> str:
    key = " ".join(f"{x.color}:{x.dots}" for x in items)
    b = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:4], "big") % _SPLIT_BUCKETS
    return "test" if b == 0 else "val" if b == 1 else "train"


def random_row(rng: random.Random, level: int, config: TallyConfig) -> list[Item]:
    colors = rng.sample(list(config.colors), level)
    return [Item(c, rng.randint(1, config.max_dots)) for c in colors]


@dataclass
class TallySample:
    split: str
    index: int
    seed: int
    items: list[Item] = field(default_factory=list)

    @property
    def level(self) -> int:
        return len(self.items)

    @property
    def answer(self) -> int:
        return sum(x.dots for x in self.items)

    def meta(self, style: str = "qwen") -> dict[str, Any]:
        return {"level": self.level, "items": [asdict(x) for x in self.items],
                "rationale": rationale(self.items, style), "split": self.split,
                "index": self.index, "seed": self.seed}


def iter_samples(split: str, seed: int, config: TallyConfig | None = None,
                 levels: Sequence[int] | None = None) -> Iterator[TallySample]:
    """The endless sample stream of ``split``: sample ``i`` has level ``levels[i % len]``
    (default: every level in turn), and a row that hashes to another split is redrawn."""
    if split not in SPLITS:
        raise ValueError(f"tally split must be one of {', '.join(SPLITS)}, got {split!r}")
    config = config or TallyConfig()
    levels = list(levels or config.levels)
    bad = [lv for lv in levels if lv not in config.levels]
    if bad:
        raise TallyConfigError(f"tally level {bad[0]} out of range "
                               f"{config.min_items}..{config.max_items}")
    rng = random.Random(f"r3v-tally:{seed}:{split}")
    index = 0
    while True:
        level = levels[index % len(levels)]
        while True:
            items = random_row(rng, level, config)
            if split_of(items) == split:
                break
        yield TallySample(split, index, seed, items)
        index += 1


def generate_samples(n: int, split: str, seed: int, config: TallyConfig | None = None
                     ) -> list[TallySample]:
    stream = iter_samples(split, seed, config)
    return [next(stream) for _ in range(n)]


def items_from_meta(meta: Mapping[str, Any]) -> list[Item]:
    try:
        return [Item(str(x["color"]), int(x["dots"])) for x in meta["items"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"tally meta needs 'items' with 'color' and 'dots' ({e})") from e
