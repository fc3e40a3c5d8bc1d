"""Leaderboard tables from evaluation outputs: lmms-eval result files and r3v run folders (what
``r3v train`` and ``r3v demo`` write), as Markdown (stdout or a file), CSV and PNG plots; run
folders add their learning curves (:mod:`r3v_eval.leaderboard.curves`).

Inputs (files, or folders searched recursively)::

    <output_path>/<model>/<date>_results.json   lmms-eval: results[task]["<metric>,none"]
    <run>/metrics.json                          r3v train: {"method", "benchmark", "final", ...}
    <run>/config.yaml + iter_<t>/eval.json      an unfinished r3v run (latest evaluated iteration)

Rows are methods, columns are benchmarks (``r3v_`` prefix stripped) plus ``avg``; cells are
accuracy in percent. A row is

- for lmms-eval: the model name plus a short tag of its model args, e.g. ``r3v_select(n=3)`` or
  ``r3v_cot(chartqa_r3v/iter_4)`` for an adapter; files with the same model and model args
  (ignoring device / batch size) are one row, one column per task;
- for runs: the run's name (``run.name``, default its method); runs of one method on different benchmarks share the row, and
  when two runs of one method cover the same benchmark each is named by its folder;

Metrics are kept by family: ``greedy`` (Test@1), ``majority@N``, ``select@N``, ``pass@N`` (the
oracle), plus ``accuracy`` = each row's own answer (greedy for ``r3v_cot`` and for runs,
select@N for ``r3v_select``, majority@N for ``r3v_majority``). Any other metric name found in
the inputs (e.g. an lmms-eval task's own ``relaxed_overall``) can be chosen with ``metric=``.

A benchmark missing for a row shows ``–`` and is left out of that row's average (marked ``*``).
Deltas against a baseline row are percentage points computed from unrounded values; a row's
``avg`` delta is the mean of its per-benchmark deltas over the benchmarks both rows have.
The paper's numbers (``reference="qwen-vl"`` / ``"llava"``) come from secondary notes on the
paper (see R3V.md) and are always labelled "(paper, 2nd-hand)".
"""

from r3v_eval.leaderboard.board import (  # noqa: F401
    Leaderboard,
    build_leaderboard,
    build_table,
    delta_table,
    run_leaderboard,
    write_outputs,
)
from r3v_eval.leaderboard.inputs import (  # noqa: F401
    adapter_name,
    discover,
    load_rows,
    parse_model_args,
    read_lmms_results,
    read_run,
)
from r3v_eval.leaderboard.paper import PAPER, REFERENCES, SECOND_HAND  # noqa: F401
from r3v_eval.leaderboard.records import (  # noqa: F401
    BENCHMARK_ORDER,
    Cell,
    LeaderboardError,
    Row,
    normalize_metric,
    resolve_metric,
)
from r3v_eval.leaderboard.tables import DASH  # noqa: F401
