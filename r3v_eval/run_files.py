"""The names of the files and folders in an r3v run folder: one set, shared by what writes a run
(:mod:`r3v_train`) and what reads one (the leaderboard).

Run folder (``run.out_dir``)::

    config.yaml  versions.json  progress.log  metrics.json  pretrain.json (r3v pretrain)
    run.lock                                 held by the `r3v train` running in the folder
    base_model/  base_init/                  a tiny:<arch>:<size> base, built (and pre-trained)
    pool/rank<r>/iter_<t>.jsonl              samples drawn by the checkpoint of iteration t
    iter_<t>/examples.jsonl                  the training set of iteration t (for audit)
    iter_<t>/model/  iter_<t>/dpo_model/     a training stage's folder (below)
    iter_<t>/eval.json  iter_<t>/eval_outcomes.jsonl
    runs/<name>/  runs/logged_steps.json     the loop's figures (train.report_to: tensorboard)

Training stage folder (``iter_<t>/model``)::

    adapter or model files, train_config.json, train_metrics.json, DONE (written last)
"""

from __future__ import annotations

from pathlib import Path

import yaml

CONFIG = "config.yaml"
VERSIONS = "versions.json"
PROGRESS_LOG = "progress.log"
LOCK = "run.lock"
METRICS = "metrics.json"
PRETRAIN_INFO = "pretrain.json"
BASE_MODEL = "base_model"
BASE_INIT = "base_init"
POOL = "pool"
ITER_PREFIX = "iter_"
EXAMPLES = "examples.jsonl"
MODEL = "model"
DPO_MODEL = "dpo_model"
EVAL = "eval.json"
EVAL_OUTCOMES = "eval_outcomes.jsonl"

# a training stage's folder
DONE = "DONE"
TRAIN_METRICS = "train_metrics.json"
TRAIN_CONFIG = "train_config.json"


def iter_name(t: int) -> str:
    """``iter_<t>``: the folder (and pool file stem) of iteration ``t``."""
    return f"{ITER_PREFIX}{t}"


def iter_number(name: str) -> int | None:
    """``t`` of a folder named ``iter_<t>``; None for any other name."""
    rest = name.removeprefix(ITER_PREFIX)
    return int(rest) if rest != name and rest.isdigit() else None


def iteration_files(run: Path, name: str) -> list[tuple[int, Path]]:
    """``(t, run/iter_<t>/name)`` for every iteration folder of ``run`` that holds the file
    ``name``, in iteration order."""
    found = ((iter_number(d.name), d / name) for d in Path(run).glob(ITER_PREFIX + "*"))
    return sorted((t, f) for t, f in found if t is not None and f.is_file())


def last_iteration_file(run: Path, name: str) -> Path | None:
    """``run/iter_<t>/name`` of the last iteration that holds the file (None when none does)."""
    found = iteration_files(run, name)
    return found[-1][1] if found else None


def shared_warmup(run: Path) -> Path | None:
    """The run folder whose warm-up ``run`` shares (``run.warmup_from`` in its ``config.yaml``),
    or None when it shares none or that folder is not found. A relative path is taken from the
    current folder, else as a sibling of ``run`` (where `r3v demo` puts its warm-up), so a set of
    runs copied elsewhere still finds it."""
    cfg = Path(run) / CONFIG
    try:
        config = yaml.safe_load(cfg.read_text(encoding="utf-8")) if cfg.is_file() else None
    except (yaml.YAMLError, UnicodeDecodeError):
        return None  # the readers of config.yaml report it; a frontier just lacks iteration 0
    run_section = config.get("run") if isinstance(config, dict) else None
    source = run_section.get("warmup_from") if isinstance(run_section, dict) else None
    if not source:
        return None
    for folder in (Path(source), Path(run).parent / Path(source).name):
        if (folder / CONFIG).is_file():
            return folder
    return None
