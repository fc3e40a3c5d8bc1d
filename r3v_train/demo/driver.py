"""``r3v demo``: self-improvement end to end on one machine, with no network.

A thin driver over what users run: each stage is ``r3v train`` on a recipe shipped under
``recipes/demo/`` (the loop of :mod:`r3v_train.loop`), and the tables and plots are
``r3v leaderboard`` over the run folders. The demo adds only the order of the runs, the seed,
and the output folder:

1. ``warmup``: the shipped base (``shipped:demo_base``: a tiny Qwen2-VL pre-trained once on
   perception by ``r3v pretrain``; ``--pretrain`` rebuilds it first), trained on the warm-up data:
   direct-answer QA pairs for the labelled train split plus a few teacher rationales for one-
   and two-step questions only (iteration 0; no self-training).
2. ``star`` and ``r3v`` (and, with ``--methods``, the ablations and ``grpo``): self-training or RL from the shared
   warm-up (``run.warmup_from``), every iteration retrained from the warm-up checkpoint
   (``run.start: warmup``); both draw their first samples from one pool.
3. ``control``: the warm-up's own data continued for as many optimizer steps as R3V's last
   iteration took (the matched-compute control).
4. ``r3v leaderboard`` over the run folders: greedy, majority@N, select@N and pass@N, greedy
   per iteration, and R3V's select@N vs majority@N as N grows.

Every stage resumes: a killed demo started again with the same command continues.
``--seeds S1 S2 ...`` runs the whole demo once per seed and ends with the across-seed report
of :mod:`r3v_train.demo.claims` (mean ± sd, and the demo's claims checked in every seed).
``recipes/demo/quick/`` holds the same runs at CI size (``--quick``). The recipes are found by
name (``demo/r3v``, :mod:`r3v_train.recipe_library`): from a checkout or from the installed wheel,
and the logged commands run as printed from any folder.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Sequence

from r3v_eval.leaderboard import run_leaderboard
from r3v_train.config import ConfigError, load_recipe
from r3v_train.demo.claims import report
from r3v_train.demo.pretrain import run_pretrain
from r3v_train.demo.shipped import DEMO_BASE, DEMO_RECIPES, PRETRAIN_RECIPE
from r3v_train.loop import run
from r3v_train.recipe_library import recipe_names

#: the runs of ``r3v demo`` in order (each is the shipped recipe demo/<name>)
DEFAULT_METHODS = ("star", "r3v", "control")
ABLATIONS = ("r3v_no_refine", "r3v_no_select")
#: runs that ``--methods`` can add: the ablations and GRPO (not in the default 15-minute budget)
KNOWN_METHODS = (*DEFAULT_METHODS, *ABLATIONS, "grpo")


def data_seed(seed: int) -> int:
    """The shapes data seed of demo seed ``seed`` (another stream than the model seeds)."""
    return 1000 + seed


def stage_overrides(name: str, out: Path, seed: int) -> list[str]:
    """The ``--set`` overrides that put stage ``name`` of a demo seeded ``seed`` under ``out``."""
    sets = [f"run.out_dir={out / name}", f"run.seed={seed}", f"train.seed={seed}",
            f"reflect.seed={seed}", f"data.options.seed={data_seed(seed)}"]
    if name != "warmup":
        sets.append(f"run.warmup_from={out / 'warmup'}")
    if name == "control":
        sets.append(f"run.control_reference={out / 'r3v'}")
    return sets


def demo_stages(methods: Sequence[str] | None) -> list[str]:
    """``warmup`` + the chosen methods, the control (which matches R3V) last."""
    chosen = list(methods or DEFAULT_METHODS)
    unknown = [m for m in chosen if m not in KNOWN_METHODS]
    if unknown:
        raise ConfigError(f"--methods: unknown {unknown[0]!r}; known: {', '.join(KNOWN_METHODS)}")
    if "control" in chosen and "r3v" not in chosen:
        raise ConfigError("--methods: the control matches R3V's compute, so it needs r3v")
    ordered = [m for m in KNOWN_METHODS if m in chosen and m != "control"]
    return ["warmup", *ordered, *(["control"] if "control" in chosen else [])]


def run_demo(out_dir: str | Path = "r3v_demo", seed: int = 0, quick: bool = False,
             methods: Sequence[str] | None = None, pretrain: bool = False) -> int:
    """The demo's runs in order under ``out_dir``; ``pretrain`` first rebuilds the shipped
    base (``r3v pretrain`` into ``out_dir/pretrain``, exported to
    ``r3v_train/demo/assets/demo_base``)."""
    folder = f"{DEMO_RECIPES}/quick" if quick else DEMO_RECIPES
    if pretrain and quick:
        raise ConfigError("--pretrain rebuilds the full demo's shipped base; the quick demo "
                          "pre-trains its own tiny base (drop one of --pretrain / --quick)")
    out = Path(out_dir)
    stages = demo_stages(methods)
    recipes = [f"{folder}/{name}" for name in stages]
    missing = sorted(set(recipes) - set(recipe_names()))
    if missing:
        raise ConfigError(f"the demo's recipe {missing[0]} is not shipped with this r3v: "
                          "reinstall r3v (its wheel, docs/install.md)")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if pretrain:
        sets = [f"run.out_dir={out / 'pretrain'}"]
        _log(out, t0, f"pretrain: r3v pretrain --recipe {PRETRAIN_RECIPE} "
             + " ".join(f"--set {shlex.quote(s)}" for s in sets))
        run_pretrain(load_recipe(PRETRAIN_RECIPE, sets), ship_to=DEMO_BASE)
    for name, recipe in zip(stages, recipes):
        sets = stage_overrides(name, out, seed)
        _log(out, t0, f"{name}: r3v train --recipe {recipe} "
             + " ".join(f"--set {shlex.quote(s)}" for s in sets))
        run(load_recipe(recipe, sets))
    board = run_leaderboard([out / name for name in stages], out=out / "leaderboard.md")
    _log(out, t0, f"done in {(time.time() - t0) / 60:.1f} minutes (seed {seed}"
         f"{', quick' if quick else ''}): {out / 'leaderboard.md'}")
    print(board.markdown())
    return 0


def run_demo_seeds(out_dir: str | Path, seeds: Sequence[int], quick: bool = False,
                   methods: Sequence[str] | None = None, pretrain: bool = False) -> int:
    """The demo once per seed, into ``out_dir/seed_<S>``, then the across-seed report
    (:mod:`r3v_train.demo.claims`) in ``out_dir/seeds.md``: mean ± sd with every seed's value,
    and the demo's claims checked seed by seed."""
    out = Path(out_dir)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: each seed once, got {list(seeds)}")
    for i, seed in enumerate(seeds):
        run_demo(out / f"seed_{seed}", seed=seed, quick=quick, methods=methods,
                 pretrain=pretrain and i == 0)
    text, _ = report([out / f"seed_{seed}" for seed in seeds])
    (out / "seeds.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


def _log(out: Path, t0: float, message: str) -> None:
    line = f"[demo {time.time() - t0:6.0f}s] {message}"
    print(line, flush=True)
    with (out / "demo.log").open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
