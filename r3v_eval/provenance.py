"""Where results come from, written so that a reader never sees half a file.

``write_atomic`` / ``write_json`` write whole files (a temporary file, then a rename), so a run
killed mid-write leaves the old file or the new one, never a torn one; ``installed_versions``
records the packages a result was produced with.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

#: the packages whose versions a run or a training stage records
RECORDED_PACKAGES = ("r3v", "torch", "transformers", "trl", "peft", "accelerate", "datasets",
                     "lmms-eval", "vllm")


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` whole (temporary file in the same folder, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON, written whole."""
    return write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    """One JSON value per line, written whole."""
    return write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def installed_versions(names: Iterable[str] = RECORDED_PACKAGES, *,
                       missing: str | None = None) -> dict[str, str]:
    """``{package: version}``; a package that is not installed is left out (``missing=None``)
    or given the ``missing`` text."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if missing is not None:
                out[name] = missing
    return out
