"""The synthetic ``tally`` world, the demo's easy-to-hard world, and its registered benchmark.

A row of 2..``max_items`` coloured dice-like cells; the question is always how many dots there
are in all; the difficulty level (``meta["level"]``) is the number of items. Laid out as every
synthetic world (see :mod:`r3v_eval.benchmarks.shapes`)::

    world.py       the knobs (TallyConfig), rows, the chain's lines, the chain check, the stream
    render.py      the picture of a row
    benchmark.py   the registered Benchmark

A world knows nothing of training: what pre-trains a base model on it lives on the training
side (:mod:`r3v_train.demo.perception`).
"""

from r3v_eval.benchmarks.tally.benchmark import DEFAULT_SEED, DEFAULT_SIZES, TallyBenchmark, problem_id  # noqa: F401
from r3v_eval.benchmarks.tally.render import render_row  # noqa: F401
from r3v_eval.benchmarks.tally.world import (  # noqa: F401
    COLORS,
    QUESTION,
    Item,
    TallyConfig,
    TallyConfigError,
    TallySample,
    after_seen,
    chain_items,
    fact_line,
    first_seen,
    generate_samples,
    items_from_meta,
    iter_samples,
    last_line,
    rationale,
    steps_consistent,
)
