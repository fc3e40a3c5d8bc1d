"""Pre-training of the tiny demo base VLM, and where a run's base model comes from.

Pre-training is not part of R3V: the paper starts from Qwen-VL, which comes able to see. A tiny
model built offline (:mod:`r3v_train.tiny`) starts blind, so before a self-training run on it
means anything it is taught what a real base model already knows: one-step perception rows of
the benchmark (counting per attribute, describing the picture in the rationales' phrasing,
single arithmetic facts; :mod:`r3v_train.demo.perception`). It never sees a multi-step
question or rationale here.

Two ways in:

* ``r3v pretrain`` (:func:`run_pretrain`): the long run, done once, resumable, and exported
  (:func:`~r3v_train.demo.shipped.export_base`) as the model the project ships in
  ``r3v_train/demo/assets/demo_base``; recipes name it ``model.pretrained: shipped:demo_base``
  (:func:`~r3v_train.demo.shipped.shipped_model`, checksums verified).
* ``model.perception_examples`` in a recipe (:func:`pretrain_perception`, through
  :func:`resolve_pretrained`): a short counting-only pre-training inside a run, as the quick
  demo does.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from r3v_eval import run_files
from r3v_eval.benchmarks import Benchmark, get_benchmark
from r3v_eval.engines import load_engine
from r3v_eval.engines.base import GenRequest, Sampling
from r3v_eval.provenance import write_atomic
from r3v_train.config import ConfigError, R3VConfig
from r3v_train.demo.perception import perception_rows
from r3v_train.demo.shipped import SHIPPED_PREFIX, export_base, seal, shipped_model
from r3v_train.model_source import check_pretrained
from r3v_train.rundir import RunDir, barrier
from r3v_train.tiny import INFO_FILE, build_tiny_model
from r3v_train.train_settings import TrainSettings
from r3v_train.trainer import train_sft


def resolve_pretrained(run: RunDir, bench: Benchmark, shared: Path | None) -> str:
    """A hub id / folder as is; ``shipped:<name>`` is a model the project ships (its checksums
    verified); ``tiny:<arch>:<size>`` is built once into the run folder (and pre-trained on
    perception when ``model.perception_examples`` is set), or taken from the run whose warm-up
    this one shares."""
    cfg = run.cfg
    spec = cfg.model.pretrained
    if spec.startswith(SHIPPED_PREFIX):
        return str(shipped_model(spec))
    if not spec.startswith("tiny:"):
        return check_pretrained(spec)
    parts = spec.split(":")
    if len(parts) != 3:
        raise ConfigError(f"model.pretrained: {spec!r} is not tiny:<arch>:<size>")
    if shared is not None:
        return str(shared / run_files.BASE_MODEL)
    target = run.path / run_files.BASE_MODEL
    built = target / (run_files.DONE if cfg.model.perception_examples else "config.json")
    if built.exists():
        return str(target)
    init = run.path / run_files.BASE_INIT if cfg.model.perception_examples else target
    if run.rank == 0 and not (init / "config.json").exists():
        run.log(f"building {spec} -> {init}")
        build_tiny_model(parts[1], init, size=parts[2], seed=cfg.run.seed)
    barrier()
    if cfg.model.perception_examples:
        run.log(f"pre-training the base on {cfg.model.perception_examples} perception questions")
        pretrain_perception(init, target, bench, cfg.model.perception_examples, cfg.train,
                            seed=cfg.run.seed, learning_rate=cfg.model.perception_lr,
                            epochs=cfg.model.perception_epochs,
                            skills=cfg.model.perception_skills)
    return str(target)


def pretrain_perception(init_model: str | Path, out_dir: str | Path, bench: Benchmark,
                        n_examples: int, settings: TrainSettings, *, seed: int,
                        learning_rate: float, epochs: float, skills: dict[str, float] | None = None,
                        progress: bool = True) -> Path:
    """Full fine-tuning of ``init_model`` (vision tower included) on ``n_examples`` perception
    rows of ``bench``; returns the trained model folder (resumable: a finished one is reused,
    an interrupted one continues from its newest checkpoint). ``settings`` gives the batch
    size, schedule, precision and checkpointing."""
    rows = perception_rows(bench, n_examples, seed, skills)
    settings = dataclasses.replace(settings, method="full", freeze_vision=False,
                                   learning_rate=learning_rate, num_train_epochs=epochs,
                                   max_steps=-1)
    train_sft(str(init_model), rows, out_dir, settings, progress=progress)
    return Path(out_dir)


# ------------------------------------------------------------------ perception accuracy
def perception_accuracy(model_path: str | Path, bench: Benchmark, n: int, seed: int,
                        skills: dict[str, float] | None = None, *, batch_size: int = 64,
                        dtype: str = "float32", device: str = "cpu",
                        max_pixels: int | None = None, min_pixels: int | None = None,
                        progress: bool = True) -> dict[str, dict[str, float]]:
    """Greedy accuracy of ``model_path`` on ``n`` held-out perception rows (the ``test``
    stream of ``seed``: never a pre-training row), per template: ``{template: {n, correct,
    accuracy}}`` plus ``all``. A reply is right when it is the expected sentence exactly."""
    rows = perception_rows(bench, n, seed, skills, split="test")
    engine = load_engine("hf", str(model_path), dtype=dtype, device=device,
                         max_pixels=max_pixels, min_pixels=min_pixels, batch_size=batch_size)
    longest = max(len(r["completion"]) for r in rows)
    replies = engine.generate([GenRequest(r["prompt"], r["image"]) for r in rows],
                              Sampling(max_new_tokens=longest // 2 + 16), progress=progress)
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row, (reply,) in zip(rows, replies):
        for key in (row["template"], "all"):
            tally[key][0] += 1
            tally[key][1] += int(reply.strip() == row["completion"])
    return {k: {"n": t, "correct": c, "accuracy": round(100.0 * c / t, 1)}
            for k, (t, c) in sorted(tally.items())}


# ------------------------------------------------------------------ r3v pretrain
def run_pretrain(cfg: R3VConfig, ship_to: str | Path | None, n_eval: int = 1000) -> dict[str, Any]:
    """``r3v pretrain``: build and pre-train the recipe's ``tiny:<arch>:<size>`` base in
    ``run.out_dir`` (resumable), measure its perception per template on ``n_eval`` held-out
    rows, and (``ship_to``) export it there as a shipped model. Returns the record written to
    ``run.out_dir/pretrain.json`` (and the shipped folder's)."""
    if not cfg.model.pretrained.startswith("tiny:") or not cfg.model.perception_examples:
        raise ConfigError("r3v pretrain: the recipe must name a tiny:<arch>:<size> base and "
                          "model.perception_examples > 0 (see recipes/demo/pretrain.yaml)")
    run = RunDir(cfg)
    bench = get_benchmark(cfg.data.benchmark, cfg.data.options)
    started = time.time()
    model_dir = Path(resolve_pretrained(run, bench, None))
    wall = time.time() - started
    trained = json.loads((model_dir / run_files.TRAIN_METRICS).read_text())
    info: dict[str, Any] = {
        "built_from": cfg.model.pretrained, "examples": cfg.model.perception_examples,
        "skills": cfg.model.perception_skills or {"count": 1.0},
        "learning_rate": cfg.model.perception_lr, "epochs": cfg.model.perception_epochs,
        "optimizer_steps": trained.get("global_step"),
        "train_runtime_s": trained.get("train_runtime_s"),
        "wall_s_this_call": round(wall, 1), "seed": cfg.run.seed,
        "data": {"benchmark": cfg.data.benchmark, "options": cfg.data.options},
    }
    built = run.path / run_files.BASE_INIT / INFO_FILE  # what build_tiny_model made
    if built.is_file():
        info["tiny_model"] = json.loads(built.read_text())
    evaluated = model_dir
    if ship_to is not None:
        run.log(f"exporting the base to {ship_to}")
        evaluated = export_base(model_dir, ship_to, info=info)
    run.log(f"measuring perception on {n_eval} held-out rows ({evaluated})")
    info["perception_accuracy"] = perception_accuracy(
        evaluated, bench, n_eval, seed=cfg.run.seed, skills=cfg.model.perception_skills,
        batch_size=cfg.eval.batch_size, dtype=cfg.model.dtype, device=cfg.model.device,
        max_pixels=cfg.model.max_pixels, min_pixels=cfg.model.min_pixels)
    if ship_to is not None:
        seal(Path(ship_to), info)
    write_atomic(run.path / run_files.PRETRAIN_INFO, json.dumps(info, indent=2))
    for name, row in info["perception_accuracy"].items():
        run.log(f"  {name:<18} {row['accuracy']:5.1f}%  ({row['correct']}/{row['n']})")
    return info
