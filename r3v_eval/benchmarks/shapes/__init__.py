"""The synthetic ``shapes`` world and its registered benchmark (generated offline).

A synthetic world is a package of one module per idea, each importing only those above it::

    world.py       the knobs (ShapesConfig), templates, scenes and their arithmetic
    sampler.py     a deterministic stream of problems per split, splits disjoint
    rationales.py  the teacher's perfect solution, and the check that a reply's steps hold
    render.py      the picture of a scene
    benchmark.py   the registered Benchmark: problems with pictures, scoring, teacher rationales
    dataset.py     the benchmark written to files in the canonical schema (r3v data shapes)

A world knows nothing of training: what pre-trains a base model on it lives on the training
side (:mod:`r3v_train.demo.perception`). The names below are the world's public surface.
"""

from r3v_eval.benchmarks.shapes.benchmark import (  # noqa: F401
    DEFAULT_SEED,
    DEFAULT_SIZES,
    ShapesBenchmark,
    problem_id,
    sample_to_problem,
)
from r3v_eval.benchmarks.shapes.dataset import answer_stats, write_shapes_dataset  # noqa: F401
from r3v_eval.benchmarks.shapes.rationales import (  # noqa: F401
    rationale_steps,
    steps_consistent,
    teacher_rationale,
)
from r3v_eval.benchmarks.shapes.render import png_bytes, render_scene  # noqa: F401
from r3v_eval.benchmarks.shapes.sampler import generate_samples, iter_samples, split_bucket  # noqa: F401
from r3v_eval.benchmarks.shapes.world import (  # noqa: F401
    COLORS,
    SHAPES,
    TEMPLATES,
    ShapesConfig,
    ShapesSample,
    apply_ops,
    count,
    noun,
    scene_key,
    solve,
)
