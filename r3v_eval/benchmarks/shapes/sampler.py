"""Drawing problems of the ``shapes`` world: a deterministic stream per split.

Everything is deterministic: the same seed and knobs (:class:`~.world.ShapesConfig`) give the
same scenes and the same questions, whatever the global random state. Each split draws from
its own random stream, and a (scene, question) pair belongs to exactly one split (decided by
a hash of the pair, :func:`split_bucket`), so train and test never share a problem.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from r3v_eval.benchmarks.shapes.world import (
    SPLITS,
    TEMPLATES,
    ShapesConfig,
    ShapesSample,
    apply_ops,
    question_text,
    random_scene,
    solve,
)

_SPLIT_BUCKETS = 20  # hash bucket 0 -> test, 1 -> val, 2..19 -> train
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


