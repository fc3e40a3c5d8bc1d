"""The synthetic ``shapes`` world: scenes, pictures, questions and perfect rationales.

CLEVR-Math-style problems without any download: a picture of coloured shapes placed on a
grid, and a question that needs counting plus zero, one or two arithmetic steps::

    How many squares are there?                                              (1 step)
    Remove all red squares. How many objects are left?                       (2 steps)
    Add 2 blue circles. How many circles are there?                          (2 steps)
    Remove all green objects. Then remove all triangles. How many objects are left?  (3 steps)

Everything is deterministic: the same seed and knobs (:class:`ShapesConfig`) give the same
scenes, the same questions and byte-identical PNG files, whatever the global random state.
Each split draws from its own random stream, and a (scene, question) pair belongs to exactly
one split (decided by a hash of the pair), so train and test never share a problem.

This module knows nothing about benchmarks or prompts beyond the rationale format; the
registered benchmark lives in :mod:`r3v_eval.benchmarks.shapes`.

Problem ``meta`` (what :func:`teacher_rationale` and :func:`render_scene` need)::

    {"template": "remove_color_shape", "steps": 2,
     "objects": [{"color": "red", "shape": "square", "row": 1, "col": 2}, ...],  # 1-based
     "ops": [{"op": "remove", "color": "red", "shape": "square"}],
     "query": {"color": null, "shape": null},          # null = any
     "grid_size": 4, "description": "red square at row 1 column 2; ...",
     "rationale": "Solution:\\n1. ...\\n\\nAnswer:\\n7", "split": "test", "index": 0, "seed": 1234}
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from r3v_eval.errors import R3VError
from r3v_eval.prompts import SOLUTION_HEAD, answer_line, format_rationale

# ------------------------------------------------------------------ palette
#: Saturated, mutually distinct colours (RGB), in the order knobs usually pick them.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (20, 160, 40),
    "blue": (30, 70, 230),
    "yellow": (245, 205, 0),
    "purple": (140, 40, 190),
    "orange": (255, 125, 0),
    "cyan": (0, 190, 205),
}
#: Shape names -> plural nouns.
SHAPES: dict[str, str] = {
    "square": "squares",
    "circle": "circles",
    "triangle": "triangles",
    "diamond": "diamonds",
    "cross": "crosses",
    "star": "stars",
}
BACKGROUND = (240, 240, 240)
GRID_LINE = (205, 205, 205)
OUTLINE = (35, 35, 35)

SPLITS = ("train", "val", "test")
_SPLIT_BUCKETS = 20  # hash bucket 0 -> test, 1 -> val, 2..19 -> train


class ShapesConfigError(R3VError):
    """A shapes world that cannot be built; the message names the knob."""


@dataclass(frozen=True)
class ShapesConfig:
    """Difficulty knobs of the shapes world.

    Attributes:
        grid_size: cells per side (4 -> a 4x4 grid).
        image_size: picture side in pixels (112 with a 4x4 grid gives 28 px cells, one cell
            per 28 px patch of Qwen2-VL style encoders).
        colors / shapes: the names used (keys of :data:`COLORS` / :data:`SHAPES`).
        min_objects / max_objects: objects per scene (at most ``grid_size ** 2``).
        steps: allowed question step counts (1 = count, 2 = count + one operation,
            3 = count + two operations).
        max_add: largest number of objects an "Add N ..." step adds.
        templates: restrict to these template names (None = every template whose step count
            is allowed); see :data:`TEMPLATES`.
        shape_scale: shape size as a fraction of the cell side.
        grid_lines: draw faint cell borders.
    """

    grid_size: int = 4
    image_size: int = 112
    colors: tuple[str, ...] = ("red", "green", "blue")
    shapes: tuple[str, ...] = ("square", "circle", "triangle")
    min_objects: int = 3
    max_objects: int = 10
    steps: tuple[int, ...] = (1, 2, 3)
    max_add: int = 3
    templates: tuple[str, ...] | None = None
    shape_scale: float = 0.8
    grid_lines: bool = True

    def __post_init__(self) -> None:
        # accept lists (e.g. from JSON) and normalise them to tuples
        for name in ("colors", "shapes", "steps", "templates"):
            value = getattr(self, name)
            if isinstance(value, (list, str)):
                value = (value,) if isinstance(value, str) else tuple(value)
                object.__setattr__(self, name, value)
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.grid_size, int) or not 1 <= self.grid_size <= 16:
            raise ShapesConfigError(f"grid_size must be an integer in 1..16, got {self.grid_size!r}")
        if not isinstance(self.image_size, int) or self.image_size < 8 * self.grid_size:
            raise ShapesConfigError(f"image_size must be an integer >= 8 px per cell "
                             f"({8 * self.grid_size}), got {self.image_size!r}")
        if not self.colors or len(set(self.colors)) != len(self.colors):
            raise ShapesConfigError(f"colors must be distinct and non-empty, got {self.colors!r}")
        unknown = [c for c in self.colors if c not in COLORS]
        if unknown:
            raise ShapesConfigError(f"unknown colour(s) {unknown}; known: {', '.join(COLORS)}")
        if not self.shapes or len(set(self.shapes)) != len(self.shapes):
            raise ShapesConfigError(f"shapes must be distinct and non-empty, got {self.shapes!r}")
        unknown = [s for s in self.shapes if s not in SHAPES]
        if unknown:
            raise ShapesConfigError(f"unknown shape(s) {unknown}; known: {', '.join(SHAPES)}")
        cells = self.grid_size ** 2
        if not 1 <= self.min_objects <= self.max_objects <= cells:
            raise ShapesConfigError(f"need 1 <= min_objects <= max_objects <= grid cells ({cells}), "
                             f"got {self.min_objects}..{self.max_objects}")
        if not self.steps or any(s not in (1, 2, 3) for s in self.steps):
            raise ShapesConfigError(f"steps must be a non-empty subset of (1, 2, 3), got {self.steps!r}")
        if self.max_add < 1:
            raise ShapesConfigError(f"max_add must be >= 1, got {self.max_add}")
        if self.templates is not None:
            unknown = [t for t in self.templates if t not in TEMPLATES]
            if unknown:
                raise ShapesConfigError(f"unknown template(s) {unknown}; known: {', '.join(TEMPLATES)}")
        if not 0.2 <= self.shape_scale <= 1.0:
            raise ShapesConfigError(f"shape_scale must be in 0.2..1.0, got {self.shape_scale}")
        if not self.active_templates():
            raise ShapesConfigError(f"no template has an allowed step count {self.steps} "
                             f"among {self.templates}")

    def active_templates(self) -> list[str]:
        """The template names this config draws from (in :data:`TEMPLATES` order)."""
        names = self.templates if self.templates is not None else tuple(TEMPLATES)
        return [t for t in TEMPLATES if t in names and TEMPLATES[t] in self.steps]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShapesConfig:
        known = {f.name for f in fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise ShapesConfigError(f"unknown ShapesConfig knob(s): {', '.join(extra)}")
        return cls(**dict(data))


# --------------------------------------------------------------- templates
#: Template name -> number of reasoning steps (count, then one operation per extra step).
TEMPLATES: dict[str, int] = {
    "count_all": 1,                 # How many objects are there?
    "count_color": 1,               # How many red objects are there?
    "count_shape": 1,               # How many squares are there?
    "count_color_shape": 1,         # How many red squares are there?
    "remove_color": 2,              # Remove all red objects. How many objects are left?
    "remove_shape": 2,              # Remove all squares. How many objects are left?
    "remove_color_shape": 2,        # Remove all red squares. How many objects are left?
    "remove_shape_count_color": 2,  # Remove all squares. How many red objects are left?
    "add_count_shape": 2,           # Add 2 blue circles. How many circles are there?
    "add_count_all": 2,             # Add 2 blue circles. How many objects are there?
    "remove_color_then_shape": 3,   # Remove all green objects. Then remove all triangles. ...left?
    "remove_then_add": 3,           # Remove all red squares. Then add 2 blue circles. ...there?
    "add_then_remove": 3,           # Add 2 red circles. Then remove all circles. ...left?
    "remove_color_add_count_shape": 3,  # Remove all red objects. Then add 2 red squares.
                                        # How many squares are there?
}


# ------------------------------------------------------------------ scenes
@dataclass(frozen=True)
class Obj:
    """One object: colour, shape and its cell (row, col are 1-based)."""

    color: str
    shape: str
    row: int
    col: int

    def to_dict(self) -> dict[str, Any]:
        return {"color": self.color, "shape": self.shape, "row": self.row, "col": self.col}


@dataclass
class ShapesSample:
    """One generated problem before it becomes a benchmark :class:`Problem`."""

    objects: list[dict[str, Any]]
    ops: list[dict[str, Any]]
    query: dict[str, Any]
    template: str
    steps: int
    question: str
    answer: int
    index: int = 0
    split: str = "test"
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """Identity of the (scene, question) pair, used to keep splits disjoint."""
        return scene_key(self.objects) + "|" + self.question

    def meta(self, config: ShapesConfig, style: str = "qwen") -> dict[str, Any]:
        meta = {
            "template": self.template,
            "steps": self.steps,
            "objects": [dict(o) for o in self.objects],
            "ops": [dict(op) for op in self.ops],
            "query": dict(self.query),
            "grid_size": config.grid_size,
            "description": describe_scene(self.objects),
            "split": self.split,
            "index": self.index,
            "seed": self.seed,
        }
        meta["rationale"] = rationale_from_meta(meta, style)
        return meta


def scene_key(objects: Sequence[Mapping[str, Any]]) -> str:
    return ";".join(f"{o['row']},{o['col']},{o['color']},{o['shape']}"
                    for o in sorted(objects, key=lambda o: (o["row"], o["col"])))


def random_scene(rng: random.Random, config: ShapesConfig) -> list[dict[str, Any]]:
    """Objects on distinct cells, sorted row-major."""
    g = config.grid_size
    n = rng.randint(config.min_objects, config.max_objects)
    cells = sorted(rng.sample(range(g * g), n))
    return [
        {"color": rng.choice(config.colors), "shape": rng.choice(config.shapes),
         "row": c // g + 1, "col": c % g + 1}
        for c in cells
    ]


def describe_scene(objects: Sequence[Mapping[str, Any]]) -> str:
    """A plain description of the picture, row-major: "red square at row 1 column 2; ..."."""
    if not objects:
        return "There are no objects."
    parts = [f"{o['color']} {o['shape']} at row {o['row']} column {o['col']}"
             for o in sorted(objects, key=lambda o: (o["row"], o["col"]))]
    return "; ".join(parts) + "."


# -------------------------------------------------------------- filtering
def _matches(obj: Mapping[str, Any], color: str | None, shape: str | None) -> bool:
    return (color is None or obj["color"] == color) and (shape is None or obj["shape"] == shape)


def count(objects: Sequence[Mapping[str, Any]], color: str | None = None,
          shape: str | None = None) -> int:
    """How many objects have this colour and/or shape (None = any)."""
    return sum(1 for o in objects if _matches(o, color, shape))


def noun(color: str | None, shape: str | None, n: int = 2) -> str:
    """"red squares", "squares", "red objects", "objects" (singular when n == 1)."""
    if shape is None:
        head = "object" if n == 1 else "objects"
    else:
        head = shape if n == 1 else SHAPES[shape]
    return f"{color} {head}" if color else head


def _be(n: int) -> str:
    return "is" if n == 1 else "are"


def count_sentences(objects: Sequence[Mapping[str, Any]], config: ShapesConfig) -> list[str]:
    """The picture described in the rationales' own phrasing: the total, then the count of
    every colour-shape pair present, in the config's colour and shape order ("There are 5
    objects in total.", "There are 2 red squares.", "There is 1 blue circle.")."""
    total = len(objects)
    out = [f"There {_be(total)} {total} {noun(None, None, total)} in total."]
    for color in config.colors:
        for shape in config.shapes:
            k = count(objects, color, shape)
            if k:
                out.append(f"There {_be(k)} {k} {noun(color, shape, k)}.")
    return out


def arithmetic_facts(config: ShapesConfig) -> list[tuple[str, str]]:
    """Every single operation a rationale of this world can write, as (question, statement):
    ("What is 5 - 2?", "5 - 2 = 3."). Counts never exceed ``max_objects + 2 * max_add``
    (at most two operations per question), removals never go below zero."""
    top = config.max_objects + 2 * config.max_add
    facts = [(f"What is {a} - {b}?", f"{a} - {b} = {a - b}.")
             for a in range(top + 1) for b in range(a + 1)]
    facts += [(f"What is {a} + {b}?", f"{a} + {b} = {a + b}.")
              for b in range(1, config.max_add + 1) for a in range(top - b + 1)]
    return facts


# -------------------------------------------------------------- questions
def question_text(ops: Sequence[Mapping[str, Any]], query: Mapping[str, Any]) -> str:
    """CLEVR-Math wording of a program: operations as sentences, then the question."""
    sentences = []
    for i, op in enumerate(ops):
        lead = "Then " if i else ""
        if op["op"] == "remove":
            verb = "remove" if i else "Remove"
            sentences.append(f"{lead}{verb} all {noun(op.get('color'), op.get('shape'))}.")
        else:
            verb = "add" if i else "Add"
            n = op["count"]
            sentences.append(f"{lead}{verb} {n} {noun(op['color'], op['shape'], n)}.")
    where = "left" if ops and ops[-1]["op"] == "remove" else "there"
    sentences.append(f"How many {noun(query.get('color'), query.get('shape'))} are {where}?")
    return " ".join(sentences)


def apply_ops(objects: Sequence[Mapping[str, Any]], ops: Sequence[Mapping[str, Any]]
              ) -> list[dict[str, Any]]:
    """The object list after the operations (added objects get no cell: row = col = 0)."""
    cur = [dict(o) for o in objects]
    for op in ops:
        if op["op"] == "remove":
            cur = [o for o in cur if not _matches(o, op.get("color"), op.get("shape"))]
        elif op["op"] == "add":
            cur += [{"color": op["color"], "shape": op["shape"], "row": 0, "col": 0}
                    for _ in range(op["count"])]
        else:
            raise ValueError(f"unknown operation {op['op']!r}")
    return cur


def solve(objects: Sequence[Mapping[str, Any]], ops: Sequence[Mapping[str, Any]],
          query: Mapping[str, Any]) -> int:
    """The gold answer, by simulation (independent of the rationale's bookkeeping)."""
    return count(apply_ops(objects, ops), query.get("color"), query.get("shape"))


def rationale_steps(objects: Sequence[Mapping[str, Any]], ops: Sequence[Mapping[str, Any]],
                    query: Mapping[str, Any]) -> tuple[list[str], int]:
    """The step sentences of a perfect solution and its final answer.

    Two kinds of line only, each in the phrasing the demo base was pre-trained on: a count
    ("There are 9 objects in total.", "There are 2 red squares.", "Now there is 1 circle.")
    and a single arithmetic fact ("9 - 2 = 7."). First the count of the queried objects, then
    for each operation that changes it the count it touches (a removal) and the fact it
    implies; an operation that cannot change the queried count (removing or adding objects of
    another colour or shape) writes no line. Narrated steps ("Remove all red squares: there
    are 9 - 2 = 7 objects left.") were hybrids the 4-layer demo model mixed up: half of a
    warm-up's wrong two-step replies first went wrong on a count line's words, not its
    numbers ("There are 2 red circles: there are 3 + 2 = 3 objects.")."""
    qc, qs = query.get("color"), query.get("shape")
    cur = [dict(o) for o in objects]
    total = count(cur, qc, qs)
    if qc is None and qs is None:
        steps = [f"There {_be(total)} {total} {noun(None, None, total)} in total."]
    else:
        steps = [f"There {_be(total)} {total} {noun(qc, qs, total)}."]
    for i, op in enumerate(ops):
        oc, os_ = op.get("color"), op.get("shape")
        if op["op"] == "remove":
            conflict = (qc and oc and qc != oc) or (qs and os_ and qs != os_)
            if not conflict:
                both_c, both_s = qc or oc, qs or os_
                k = count(cur, both_c, both_s)
                lead = "Now there" if i else "There"
                steps.append(f"{lead} {_be(k)} {k} {noun(both_c, both_s, k)}.")
                steps.append(f"{total} - {k} = {total - k}.")
                total -= k
            cur = [o for o in cur if not _matches(o, oc, os_)]
        else:
            n = op["count"]
            if _matches({"color": oc, "shape": os_}, qc, qs):
                steps.append(f"{total} + {n} = {total + n}.")
                total += n
            cur += [{"color": oc, "shape": os_, "row": 0, "col": 0} for _ in range(n)]
    return steps, total


_COUNT_LINE = re.compile(r"(?:There|Now there) (?:is|are) (\d+) [a-z]+(?: [a-z]+)*\.")
_FACT_LINE = re.compile(r"(\d+) ([-+]) (\d+) = (\d+)\.")


def steps_consistent(reply: str, question: str) -> bool:
    """Whether a reply is a chain of this world's rationale lines that holds together: numbered
    counts and facts only; every fact true, starting from the running value (the first count,
    then the last fact's result); a subtraction takes the count stated just before it; an
    addition adds a number the question adds ("Add 2 ..."); the answer line states the last
    value. It reads the reply only, never the picture: a wrong count that is carried through
    correctly passes, "5 + 2 = 6." or "2 - 2 = 1." or an answer the chain did not reach does
    not."""
    text = reply.strip()
    if text.startswith(SOLUTION_HEAD):
        text = text[len(SOLUTION_HEAD):]
    body, sep, answer = text.partition("\n\n" + answer_line(""))
    if not sep:
        return False
    steps = []
    for i, line in enumerate(body.split("\n"), 1):
        head = f"{i}. "
        if not line.startswith(head):
            return False
        steps.append(line[len(head):])
    first = _COUNT_LINE.fullmatch(steps[0])
    if not first:
        return False
    running, last_count = int(first.group(1)), None
    for step in steps[1:]:
        counted = _COUNT_LINE.fullmatch(step)
        if counted:
            last_count = int(counted.group(1))
            continue
        fact = _FACT_LINE.fullmatch(step)
        if not fact:
            return False
        a, op, b, c = int(fact.group(1)), fact.group(2), int(fact.group(3)), int(fact.group(4))
        if a != running:
            return False
        if op == "-" and (b != last_count or c != a - b):
            return False
        if op == "+" and (c != a + b or not re.search(rf"\b[Aa]dd {b} ", question)):
            return False
        running, last_count = c, None
    return answer.strip() == str(running)


def rationale_from_meta(meta: Mapping[str, Any], style: str = "qwen") -> str:
    steps, answer = rationale_steps(meta["objects"], meta.get("ops") or [], meta.get("query") or {})
    return format_rationale(steps, str(answer), style)


def teacher_rationale(problem: Any, style: str = "qwen") -> str:
    """The perfect step-by-step solution of a shapes problem, in the paper's format.

    ``problem`` is a :class:`~r3v_eval.benchmarks.base.Problem` (or its ``meta`` dict) whose
    meta holds ``objects``, ``ops`` and ``query``; the rationale is recomputed from them, so
    it is right for every prompt ``style`` ("qwen", "llava", "qwen2")."""
    meta = problem if isinstance(problem, Mapping) else getattr(problem, "meta", None)
    if not meta or "objects" not in meta:
        raise ValueError("teacher_rationale needs a shapes problem (meta with 'objects', 'ops', "
                         "'query')")
    return rationale_from_meta(meta, style)


# ---------------------------------------------------------------- sampling
_P_PRESENT = 0.85  # how often a filter names something that is in the scene


def _pick(rng: random.Random, objects: Sequence[Mapping[str, Any]], config: ShapesConfig,
          want_color: bool, want_shape: bool) -> tuple[str | None, str | None]:
    """A colour and/or shape: usually one of an object present, else any from the config."""
    if objects and rng.random() < _P_PRESENT:
        o = rng.choice(list(objects))
        color, shape = o["color"], o["shape"]
    else:
        color, shape = rng.choice(config.colors), rng.choice(config.shapes)
    return (color if want_color else None), (shape if want_shape else None)


def _add_op(rng: random.Random, config: ShapesConfig, color: str | None = None,
            shape: str | None = None) -> dict[str, Any]:
    return {"op": "add", "count": rng.randint(1, config.max_add),
            "color": color or rng.choice(config.colors), "shape": shape or rng.choice(config.shapes)}


def _program(template: str, rng: random.Random, objects: list[dict[str, Any]],
             config: ShapesConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Operations and query of a template, with arguments drawn from the scene."""
    anyq: dict[str, Any] = {"color": None, "shape": None}
    if template == "count_all":
        return [], anyq
    if template in ("count_color", "count_shape", "count_color_shape"):
        c, s = _pick(rng, objects, config, template != "count_shape", template != "count_color")
        return [], {"color": c, "shape": s}
    if template in ("remove_color", "remove_shape", "remove_color_shape"):
        c, s = _pick(rng, objects, config, template != "remove_shape", template != "remove_color")
        return [{"op": "remove", "color": c, "shape": s}], anyq
    if template == "remove_shape_count_color":
        qc, _ = _pick(rng, objects, config, True, False)
        pool = [o for o in objects if o["color"] == qc]
        _, s = _pick(rng, pool, config, False, True)
        return [{"op": "remove", "color": None, "shape": s}], {"color": qc, "shape": None}
    if template == "add_count_shape":
        _, s = _pick(rng, objects, config, False, True)
        return [_add_op(rng, config, shape=s)], {"color": None, "shape": s}
    if template == "add_count_all":
        return [_add_op(rng, config)], anyq
    if template == "remove_color_then_shape":
        c, _ = _pick(rng, objects, config, True, False)
        first = {"op": "remove", "color": c, "shape": None}
        _, s = _pick(rng, apply_ops(objects, [first]), config, False, True)
        return [first, {"op": "remove", "color": None, "shape": s}], anyq
    if template == "remove_then_add":
        c, s = _pick(rng, objects, config, True, True)
        return [{"op": "remove", "color": c, "shape": s}, _add_op(rng, config)], anyq
    if template == "add_then_remove":
        add = _add_op(rng, config)
        by_shape = rng.random() < 0.5
        c, s = _pick(rng, apply_ops(objects, [add]), config, not by_shape, by_shape)
        return [add, {"op": "remove", "color": c, "shape": s}], anyq
    if template == "remove_color_add_count_shape":
        c, s = _pick(rng, objects, config, True, True)  # the removed colour, the queried shape
        return ([{"op": "remove", "color": c, "shape": None},
                 _add_op(rng, config, shape=s)], {"color": None, "shape": s})
    raise ValueError(f"unknown template {template!r}")


def split_bucket(key: str) -> str:
    b = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:4], "big") % _SPLIT_BUCKETS
    return "test" if b == 0 else "val" if b == 1 else "train"


def iter_samples(split: str, seed: int, config: ShapesConfig | None = None
                 ) -> Iterator[ShapesSample]:
    """An endless, deterministic stream of problems of one split.

    The stream depends only on (split, seed, config); problem i of a shorter run is problem i
    of a longer one. A candidate whose (scene, question) hash belongs to another split is
    skipped, so the splits are disjoint whatever their sizes."""
    config = config or ShapesConfig()
    if split not in SPLITS:
        raise ValueError(f"unknown shapes split {split!r}; known: {', '.join(SPLITS)}")
    rng = random.Random(f"r3v-shapes:{seed}:{split}")
    templates = config.active_templates()
    by_steps: dict[int, list[str]] = {}
    for t in templates:
        by_steps.setdefault(TEMPLATES[t], []).append(t)
    step_choices = sorted(by_steps)
    index = 0
    misses = 0
    while True:
        objects = random_scene(rng, config)
        template = rng.choice(by_steps[rng.choice(step_choices)])
        ops, query = _program(template, rng, objects, config)
        question = question_text(ops, query)
        sample = ShapesSample(objects=objects, ops=ops, query=query, template=template,
                              steps=TEMPLATES[template], question=question,
                              answer=solve(objects, ops, query), index=index, split=split,
                              seed=seed)
        if split_bucket(sample.key()) != split:
            misses += 1
            if misses > 100_000:
                raise ValueError(f"shapes config too small: cannot find new {split!r} problems "
                                 f"({config})")
            continue
        misses = 0
        yield sample
        index += 1


def generate_samples(n: int, split: str = "test", seed: int = 1234,
                     config: ShapesConfig | None = None) -> list[ShapesSample]:
    """The first ``n`` problems of a split's stream (see :func:`iter_samples`)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    stream = iter_samples(split, seed, config)
    return [next(stream) for _ in range(n)]


# --------------------------------------------------------------- rendering
def _shape_points(shape: str, cx: float, cy: float, h: float) -> list[tuple[int, int]]:
    if shape == "triangle":
        pts = [(cx, cy - h), (cx + h, cy + 0.85 * h), (cx - h, cy + 0.85 * h)]
    elif shape == "diamond":
        pts = [(cx, cy - h), (cx + h, cy), (cx, cy + h), (cx - h, cy)]
    elif shape == "cross":
        a = 0.34 * h
        pts = [(cx - a, cy - h), (cx + a, cy - h), (cx + a, cy - a), (cx + h, cy - a),
               (cx + h, cy + a), (cx + a, cy + a), (cx + a, cy + h), (cx - a, cy + h),
               (cx - a, cy + a), (cx - h, cy + a), (cx - h, cy - a), (cx - a, cy - a)]
    elif shape == "star":
        pts = []
        for k in range(10):
            r = h if k % 2 == 0 else 0.5 * h
            ang = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + r * math.cos(ang), cy + r * math.sin(ang) + 0.08 * h))
    else:
        raise ValueError(f"no polygon for shape {shape!r}")
    return [(round(x), round(y)) for x, y in pts]


def render_scene(objects: Sequence[Mapping[str, Any]], config: ShapesConfig | None = None
                 ) -> Image.Image:
    """Draw a scene as an RGB picture: one flat-coloured, outlined shape per occupied cell."""
    config = config or ShapesConfig()
    size, g = config.image_size, config.grid_size
    cell = size / g
    img = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(img)
    if config.grid_lines:
        for k in range(1, g):
            p = round(k * cell)
            draw.line([(p, 0), (p, size - 1)], fill=GRID_LINE, width=1)
            draw.line([(0, p), (size - 1, p)], fill=GRID_LINE, width=1)
    width = max(1, round(size / 112))
    h = cell * config.shape_scale / 2
    for o in objects:
        if not (1 <= o["row"] <= g and 1 <= o["col"] <= g):
            raise ValueError(f"object outside the {g}x{g} grid: {dict(o)}")
        cx = (o["col"] - 0.5) * cell
        cy = (o["row"] - 0.5) * cell
        fill = COLORS[o["color"]]
        shape = o["shape"]
        if shape == "square":
            s = 0.88 * h  # a square looks bigger than a circle of the same width
            draw.rectangle([round(cx - s), round(cy - s), round(cx + s), round(cy + s)],
                           fill=fill, outline=OUTLINE, width=width)
        elif shape == "circle":
            draw.ellipse([round(cx - h), round(cy - h), round(cx + h), round(cy + h)],
                         fill=fill, outline=OUTLINE, width=width)
        else:
            draw.polygon(_shape_points(shape, cx, cy, h), fill=fill, outline=OUTLINE,
                         width=width)
    return img


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------ stats
def answer_stats(answers: Sequence[int | str]) -> dict[str, Any]:
    """Histogram of answers and the share of the most common one."""
    hist = Counter(int(a) for a in answers)
    n = sum(hist.values())
    top, top_n = hist.most_common(1)[0] if hist else (None, 0)
    return {"n": n, "histogram": dict(sorted(hist.items())), "majority_answer": top,
            "majority_share": top_n / n if n else 0.0}


# ------------------------------------------------------------------ writing
def write_shapes_dataset(out_dir: str | Path, n_train: int, n_test: int, seed: int = 1234,
                         config: ShapesConfig | None = None, progress: bool = True
                         ) -> dict[str, Any]:
    """Write the shapes benchmark in the canonical local schema.

    ``out_dir/train.jsonl``, ``out_dir/test.jsonl``, ``out_dir/images/*.png``, plus
    ``out_dir/rationales.jsonl`` (``{"id", "rationale", "split", "template", "steps"}`` per
    problem, the teacher rationales in the qwen style) and ``out_dir/config.json``.
    Load it back with ``get_benchmark("shapes").load(split, source=out_dir)``.
    Returns a summary (paths, counts, answer statistics, seconds)."""
    from tqdm.auto import tqdm

    from r3v_eval.benchmarks.base import write_local
    from r3v_eval.benchmarks.shapes import sample_to_problem

    config = config or ShapesConfig()
    if n_train < 0 or n_test < 0:
        raise ValueError("n_train and n_test must be >= 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"out_dir": str(out), "seed": seed, "config": config.to_dict()}
    rationale_rows: list[dict[str, Any]] = []
    bar = tqdm(total=n_train + n_test, desc="shapes", unit="problem", disable=not progress)
    try:
        for split, n in (("train", n_train), ("test", n_test)):
            answers: list[int] = []
            templates: Counter[str] = Counter()

            def problems(split: str = split, n: int = n, answers: list = answers,
                         templates: Counter = templates):
                stream = iter_samples(split, seed, config)
                for _ in range(n):
                    sample = next(stream)
                    problem = sample_to_problem(sample, config)
                    answers.append(sample.answer)
                    templates[sample.template] += 1
                    rationale_rows.append({"id": problem.id, "rationale": problem.meta["rationale"],
                                           "split": split, "template": sample.template,
                                           "steps": sample.steps})
                    bar.update(1)
                    yield problem

            path = write_local(problems(), out, split)
            summary[split] = {"path": str(path), "n": n, "answers": answer_stats(answers),
                              "templates": dict(sorted(templates.items()))}
    finally:
        bar.close()
    rat_path = out / "rationales.jsonl"
    with rat_path.open("w", encoding="utf-8") as fh:
        for row in rationale_rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    cfg_path = out / "config.json"
    cfg_path.write_text(json.dumps({
        "benchmark": "shapes", "seed": seed, "n_train": n_train, "n_test": n_test,
        "config": config.to_dict(), "templates": dict(TEMPLATES),
    }, indent=2) + "\n", encoding="utf-8")
    summary["rationales"] = str(rat_path)
    summary["config_path"] = str(cfg_path)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return summary
