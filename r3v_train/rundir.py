"""The run folder (:class:`RunDir`) and the process group it is shared by.

A run folder holds the resolved config, the installed versions, a progress log and, per
iteration, what the loop wrote (names: :mod:`r3v_eval.run_files`). Under ``accelerate launch``
/ torchrun every process opens the same folder; only rank 0 writes the shared files, and
:func:`barrier` lets the others wait for it.
"""

from __future__ import annotations

import json
import os
import shutil
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


#: the run folders this process holds the lock of (path -> open lock file)
_HELD: dict[Path, Any] = {}


def lock_run_folder(path: Path) -> None:
    """Hold ``path``'s lock for the rest of this process (a second ``r3v train`` on the folder
    is refused at once). The lock is the kernel's (``flock``): a killed run never leaves it
    behind."""
    import fcntl  # POSIX only: imported where the lock is taken

    key = path.resolve()
    if key in _HELD:
        return
    fh = open(key / run_files.LOCK, "a+", encoding="utf-8")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise ConfigError(f"{path} is in use by a running r3v command ({holder}); wait for it "
                          "to finish, or use another run.out_dir") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}\n")
    fh.flush()
    _HELD[key] = fh


def finished_work(path: Path) -> list[str]:
    """What a run folder holds that a finished stage wrote: ``DONE`` markers (a trained model,
    a pre-trained base), evaluations, samples in the pool (relative paths; empty: none)."""
    found = [p for p in path.rglob(run_files.DONE)]
    found += path.glob(f"{run_files.ITER_PREFIX}*/{run_files.EVAL}")
    found += [p for p in (path / run_files.POOL).rglob("*.jsonl") if p.stat().st_size > 0]
    return sorted(str(p.relative_to(path)) for p in found)


def clear_unfinished(path: Path) -> list[str]:
    """Remove what an unfinished first start left (partial checkpoints, a half-built base,
    training sets, empty pool files): the folders r3v writes, nothing else. Returns their names."""
    gone = []
    for p in sorted(path.iterdir()):
        if p.name in (run_files.BASE_MODEL, run_files.BASE_INIT, run_files.POOL, run_files.METRICS) \
                or run_files.iter_number(p.name) is not None:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
            gone.append(p.name)
    return gone


class RunDir:
    """The run folder: resolved config, versions, progress log, per-iteration files.

    Opening it takes the folder's lock (rank 0) and checks the saved config: the same config
    resumes; another config is refused once a stage has finished (naming the differences), and
    replaces the saved one, with what the failed start left removed, while none has."""

    def __init__(self, cfg: R3VConfig) -> None:
        self.cfg = cfg
        self.path = Path(cfg.run.out_dir)
        self.rank = dist()[0]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if not os.access(self.path, os.W_OK):
                raise PermissionError(13, "not writable")
        except OSError as exc:
            raise ConfigError(f"run.out_dir: cannot write the run folder {self.path} "
                              f"({exc.strerror or exc}); choose another run.out_dir") from None
        if self.rank == 0:
            lock_run_folder(self.path)
        resolved = cfg.to_dict()
        cfg_path = self.path / run_files.CONFIG
        changed: list[str] = []
        if cfg_path.exists():
            saved = yaml.safe_load(cfg_path.read_text())
            if saved != json.loads(json.dumps(resolved)):
                changed = config_differences(saved, resolved, resolved) or ["sections"]
                done = finished_work(self.path)
                if done:
                    raise ConfigError(
                        f"{self.path} holds a run with a different config (differs in: "
                        f"{', '.join(changed)}) and finished work ({done[0]}"
                        f"{f' and {len(done) - 1} more' if len(done) > 1 else ''}); use another "
                        "run.out_dir to start afresh")
        barrier()  # every rank has compared before rank 0 rewrites
        if self.rank == 0 and (changed or not cfg_path.exists()):
            gone = clear_unfinished(self.path) if changed else []
            write_atomic(cfg_path, yaml.safe_dump(resolved, sort_keys=False))
            write_atomic(self.path / run_files.VERSIONS,
                         json.dumps(installed_versions(), indent=2))
            if changed:
                self.log(f"{self.path}: no stage had finished; starting afresh with the new config "
                         f"(differs in: {', '.join(changed)})"
                         + (f"; removed {', '.join(gone)}" if gone else ""))
        barrier()

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
