"""Benchmarks: one module per benchmark, each registering itself with ``@register``.

Every module in this package is imported here, so dropping a new module in registers it.
"""

import importlib
import pkgutil

from r3v_eval.benchmarks.base import (  # noqa: F401
    Benchmark,
    DataError,
    LoadReport,
    Problem,
    Score,
    benchmark_names,
    get_benchmark,
    load_local,
    register,
    write_local,
)

_INFRASTRUCTURE = {"base", "errors", "hub", "images", "kinds"}

for _info in pkgutil.iter_modules(__path__):
    if _info.name not in _INFRASTRUCTURE and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
