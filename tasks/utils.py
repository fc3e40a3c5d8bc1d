"""Functions the r3v_* task YAMLs point at (``!function utils.NAME``).

lmms-eval loads this file by path, not as part of a package, so everything is imported
absolutely from :mod:`r3v_eval.lmms.task`; nothing is implemented here.
"""

from r3v_eval.lmms.task import (  # noqa: F401
    R3VTask,
    doc_to_target,
    doc_to_text,
    doc_to_visual,
    process_results,
    process_results_miniwob_online,
)
