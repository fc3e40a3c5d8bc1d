"""The run folder (:class:`RunDir`) and the process group it is shared by.

A run folder holds the resolved config, the installed versions, a progress log and, per
iteration, what the loop wrote (names: :mod:`r3v_eval.run_files`). Under ``accelerate launch``
/ torchrun every process opens the same folder; only rank 0 writes the shared files, and
:func:`barrier` lets the others wait for it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from r3v_eval import run_files
from r3v_eval.provenance import installed_versions, write_atomic
from r3v_train.config import ConfigError, R3VConfig


def dist() -> tuple[int, int]:
    """(rank, world size) under ``accelerate launch`` / torchrun; (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def barrier() -> None:
    """Wait for every process of the run (a no-op in a single process)."""
    if dist()[1] > 1:
        from accelerate import PartialState  # heavy (torch): only under a multi-process launch

        PartialState().wait_for_everyone()


def config_differences(saved: Any, current: dict[str, Any], keys) -> list[str]:
    """The dotted keys where a saved ``config.yaml`` and the current resolved config differ,
    among ``keys``: sections (every key of either side) or ``section.key`` names."""
    saved, current = saved or {}, json.loads(json.dumps(current))  # as YAML reads it back
    out: list[str] = []
    for key in keys:
        section, _, name = key.partition(".")
        theirs, ours = saved.get(section) or {}, current.get(section) or {}
        names = [name] if name else sorted(set(theirs) | set(ours))
        out += [f"{section}.{k}" for k in names if theirs.get(k) != ours.get(k)]
    return out


class RunDir:
    """The run folder: resolved config, versions, progress log, per-iteration files."""

    def __init__(self, cfg: R3VConfig) -> None:
        self.cfg = cfg
        self.path = Path(cfg.run.out_dir)
        self.rank = dist()[0]
        self.path.mkdir(parents=True, exist_ok=True)
        resolved = cfg.to_dict()
        cfg_path = self.path / run_files.CONFIG
        if cfg_path.exists():
            saved = yaml.safe_load(cfg_path.read_text())
            if saved != json.loads(json.dumps(resolved)):
                diff = config_differences(saved, resolved, resolved)
                raise ConfigError(
                    f"{self.path} holds a run with a different config (differs in: "
                    f"{', '.join(diff) or 'sections'}); use another run.out_dir to start afresh")
        elif self.rank == 0:
            write_atomic(cfg_path, yaml.safe_dump(resolved, sort_keys=False))
            write_atomic(self.path / run_files.VERSIONS,
                         json.dumps(installed_versions(), indent=2))

    def iter_dir(self, t: int) -> Path:
        d = self.path / run_files.iter_name(t)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        print(f"[r3v] {message}", flush=True)
        if self.rank == 0:
            with (self.path / run_files.PROGRESS_LOG).open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
