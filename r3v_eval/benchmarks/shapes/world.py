"""The ``shapes`` world itself: its knobs, its templates, its scenes and their arithmetic.

CLEVR-Math-style problems without any download: a picture of coloured shapes placed on a
grid, and a question that needs counting plus zero, one or two arithmetic steps::

    How many squares are there?                                              (1 step)
    Remove all red squares. How many objects are left?                       (2 steps)
    Add 2 blue circles. How many circles are there?                          (2 steps)
    Remove all green objects. Then remove all triangles. How many objects are left?  (3 steps)

This module is the vocabulary the rest of the package shares (:mod:`.sampler` draws problems,
:mod:`.rationales` writes and checks solutions, :mod:`.render` draws pictures,
:mod:`.benchmark` registers the benchmark, :mod:`.dataset` writes files). It imports none of
them.

Problem ``meta`` (what :func:`~.rationales.teacher_rationale` and
:func:`~.render.render_scene` need)::

    {"template": "remove_color_shape", "steps": 2, "level": 2,         # level = steps
     "objects": [{"color": "red", "shape": "square", "row": 1, "col": 2}, ...],  # 1-based
     "ops": [{"op": "remove", "color": "red", "shape": "square"}],
     "query": {"color": null, "shape": null},          # null = any
     "grid_size": 4, "description": "red square at row 1 column 2; ...",
     "rationale": "Solution:\\n1. ...\\n\\nAnswer:\\n7", "split": "test", "index": 0, "seed": 1234}
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from r3v_eval.errors import R3VError

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

SPLITS = ("train", "val", "test")


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

    def meta(self, config: ShapesConfig) -> dict[str, Any]:
        """The problem's ``meta`` without its rationale (:func:`.benchmark.sample_to_problem`
        adds it, in the prompt style asked for)."""
        return {
            "template": self.template,
            "steps": self.steps,
            "level": self.steps,  # the difficulty level (the leaderboard's frontier): its steps
            "objects": [dict(o) for o in self.objects],
            "ops": [dict(op) for op in self.ops],
            "query": dict(self.query),
            "grid_size": config.grid_size,
            "description": describe_scene(self.objects),
            "split": self.split,
            "index": self.index,
            "seed": self.seed,
        }


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
def matches(obj: Mapping[str, Any], color: str | None, shape: str | None) -> bool:
    """Whether an object has this colour and/or shape (None = any)."""
    return (color is None or obj["color"] == color) and (shape is None or obj["shape"] == shape)

def count(objects: Sequence[Mapping[str, Any]], color: str | None = None,
          shape: str | None = None) -> int:
    """How many objects have this colour and/or shape (None = any)."""
    return sum(1 for o in objects if matches(o, color, shape))


def noun(color: str | None, shape: str | None, n: int = 2) -> str:
    """"red squares", "squares", "red objects", "objects" (singular when n == 1)."""
    if shape is None:
        head = "object" if n == 1 else "objects"
    else:
        head = shape if n == 1 else SHAPES[shape]
    return f"{color} {head}" if color else head


def be(n: int) -> str:
    """"is" for one, "are" for any other number."""
    return "is" if n == 1 else "are"


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
            cur = [o for o in cur if not matches(o, op.get("color"), op.get("shape"))]
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


