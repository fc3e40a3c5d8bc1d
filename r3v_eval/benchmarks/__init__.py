"""Benchmarks: one module (or, for a synthetic world, one package) per benchmark, each
registering itself with ``@register``.

Every module and package in this package is imported here, so dropping a new one in registers
it; :func:`get_benchmark` looks names up after that.
"""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
import typing
from typing import Any

from r3v_eval.benchmarks.base import (  # noqa: F401
    Benchmark,
    DataError,
    LoadReport,
    Problem,
    Score,
    load_local,
    register,
    registered,
    write_local,
)

_INFRASTRUCTURE = {"base", "errors", "hub", "images", "kinds"}

for _info in pkgutil.iter_modules(__path__):
    if _info.name not in _INFRASTRUCTURE and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")


def get_benchmark(name: str, options: dict[str, Any] | None = None) -> Benchmark:
    """The registered benchmark ``name``, built with keyword ``options`` (a recipe's
    ``data.options``); an option the benchmark does not take is a ``TypeError`` naming it."""
    key = name.lower().replace("-", "_")
    if key.startswith("r3v_"):
        key = key[4:]
    known = registered()
    if key not in known:
        raise DataError(f"unknown benchmark {name!r}; known: {', '.join(sorted(known))}")
    cls = known[key]
    if not options:
        return cls()
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"benchmark {key!r} takes no option {unknown[0]!r}; it takes: "
                        f"{', '.join(accepted) or 'none'}")
    _check_option_types(cls, options)
    return cls(**options)


def _check_option_types(cls: type, options: dict[str, Any]) -> None:
    """A ``TypeError`` naming an option whose value is not of the plainly annotated type
    (int, float, str, bool) the benchmark takes, e.g. ``seed: x``."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):  # an annotation that does not resolve: nothing to check
        return
    for name, value in options.items():
        want = hints.get(name)
        if want is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif want is float:
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                  and math.isfinite(value))
        elif want in (str, bool):
            ok = isinstance(value, want)
        else:
            continue
        if not ok:
            raise TypeError(f"option {name!r} must be {_TYPE_WORDS[want]}, got {value!r}")


_TYPE_WORDS = {int: "an integer", float: "a finite number", str: "a string", bool: "true/false"}


def benchmark_names() -> list[str]:
    return sorted(registered())
