"""Pre-training of the tiny demo base VLM, and the shipped copy of it.

Pre-training is not part of R3V: the paper starts from Qwen-VL, which comes able to see. A tiny
model built offline (:mod:`r3v_train.tiny`) starts blind, so before a self-training run on it
means anything it is taught what a real base model already knows: one-step perception rows of
the benchmark (counting per attribute, describing the picture in the rationales' phrasing,
single arithmetic facts; see ``ShapesBenchmark.perception_examples``). It never sees a
multi-step question or rationale here.

Two ways in:

* ``r3v pretrain`` (:func:`pretrain_base`): the long run, done once, resumable, and exported
  (:func:`export_base`) as the model the project ships in ``r3v_train/assets/demo_base``;
  recipes name it ``model.pretrained: shipped:demo_base`` (:func:`shipped_model`, checksums
  verified).
* ``model.perception_examples`` in a recipe (:func:`pretrain_perception`): a short
  counting-only pre-training inside a run, as the quick demo does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r3v_eval.provenance import write_atomic
from r3v_train.config import ConfigError, R3VConfig

if TYPE_CHECKING:
    from r3v_eval.benchmarks import Benchmark, Problem
    from r3v_train.reflect import BuildResult
    from r3v_train.train_settings import TrainSettings

#: the folder of the models the project ships (``shipped:<name>``)
ASSETS = Path(__file__).resolve().parent / "assets"
CHECKSUMS = "SHA256SUMS"
SHIPPED_PREFIX = "shipped:"
#: the demo's base model (``shipped:demo_base``), written by ``r3v pretrain``
DEMO_BASE = ASSETS / "demo_base"


def perception_rows(bench: Benchmark, n: int, seed: int, skills: dict[str, float] | None = None,
                    split: str = "val") -> list[dict[str, Any]]:
    """The benchmark's perception rows (an error naming the benchmark when it has none)."""
    make = getattr(bench, "perception_examples", None)
    if make is None:
        raise ConfigError(f"benchmark {bench.name!r} has no perception questions to pre-train "
                          "on (the synthetic shapes benchmark has)")
    return make(n, seed, skills=skills, split=split)


def perception_replay(bench: Benchmark, n: int, seed: int,
                      skills: dict[str, float] | None = None) -> tuple[BuildResult, dict[str, Problem]]:
    """``n`` perception rows as warm-up examples of kind ``perception`` (``data.warmup_perception``),
    with the problems that hold their pictures (ids ``perception-00000`` ...): the base's own
    pre-training skills, replayed so that fine-tuning on rationales does not erase them."""
    from r3v_eval.benchmarks.base import Problem
    from r3v_train.reflect import BuildResult, Example

    result, problems = BuildResult(), {}
    for i, row in enumerate(perception_rows(bench, n, seed, skills)):
        pid = f"perception-{i:05d}"
        problems[pid] = Problem(id=pid, question=row["prompt"], answer=row["completion"],
                                benchmark=bench.name, image=row["image"],
                                meta={"skill": row["skill"], "template": row["template"]})
        result.examples.append(Example("perception", pid, row["prompt"], row["completion"]))
    return result, problems


def pretrain_perception(init_model: str | Path, out_dir: str | Path, bench: Benchmark,
                        n_examples: int, settings: TrainSettings, *, seed: int,
                        learning_rate: float, epochs: float, skills: dict[str, float] | None = None,
                        progress: bool = True) -> Path:
    """Full fine-tuning of ``init_model`` (vision tower included) on ``n_examples`` perception
    rows of ``bench``; returns the trained model folder (resumable: a finished one is reused,
    an interrupted one continues from its newest checkpoint). ``settings`` gives the batch
    size, schedule, precision and checkpointing."""
    from r3v_train.trainer import train_sft

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
    from r3v_eval.engines import load_engine
    from r3v_eval.engines.base import GenRequest, Sampling

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


# ------------------------------------------------------------------ the shipped base
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_base(model_dir: str | Path, dest: str | Path, *, dtype: str = "bfloat16",
                info: dict[str, Any] | None = None) -> Path:
    """Write the model of ``model_dir`` to ``dest`` as the project ships it: weights in
    ``dtype`` (safetensors), config, processor and tokenizer files, ``info`` as
    ``pretrain.json``, and a ``SHA256SUMS`` of every file (checked by :func:`shipped_model`).
    ``dest`` is replaced."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32)
    model.to(getattr(torch, dtype)).save_pretrained(tmp, safe_serialization=True)
    AutoProcessor.from_pretrained(str(model_dir)).save_pretrained(tmp)
    seal(tmp, info)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def seal(folder: Path, info: dict[str, Any] | None = None) -> None:
    """Write ``info`` as ``pretrain.json`` (when given) and the ``SHA256SUMS`` of every file."""
    if info is not None:
        (folder / "pretrain.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != CHECKSUMS)
    (folder / CHECKSUMS).write_text("".join(f"{sha256(p)}  {p.name}\n" for p in files),
                                    encoding="utf-8")


def shipped_model(spec: str, assets: Path = ASSETS) -> Path:
    """The folder of ``shipped:<name>`` after checking every file against its ``SHA256SUMS``
    (a missing, changed or unlisted file is an error naming it)."""
    name = spec.removeprefix(SHIPPED_PREFIX)
    folder = assets / name
    sums = folder / CHECKSUMS
    if not name or not sums.is_file():
        known = sorted(p.parent.name for p in assets.glob(f"*/{CHECKSUMS}"))
        raise ConfigError(f"model.pretrained: {spec!r} is not a shipped model (known: "
                          f"{', '.join(SHIPPED_PREFIX + k for k in known) or 'none'}); "
                          "`r3v pretrain` builds shipped:demo_base")
    listed = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, file = line.partition("  ")
        listed[file] = digest
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != CHECKSUMS}
    for file in sorted(present | set(listed)):
        if file not in present:
            raise ConfigError(f"{spec}: {folder / file} is missing (listed in {sums})")
        if file not in listed:
            raise ConfigError(f"{spec}: {folder / file} is not listed in {sums}")
        if sha256(folder / file) != listed[file]:
            raise ConfigError(f"{spec}: {folder / file} does not match its SHA-256 in {sums}; "
                              "restore it from git or rebuild it with `r3v pretrain`")
    return folder


# ------------------------------------------------------------------ r3v pretrain
def run_pretrain(cfg: R3VConfig, ship_to: str | Path | None, n_eval: int = 1000) -> dict[str, Any]:
    """``r3v pretrain``: build and pre-train the recipe's ``tiny:<arch>:<size>`` base in
    ``run.out_dir`` (resumable), measure its perception per template on ``n_eval`` held-out
    rows, and (``ship_to``) export it there as a shipped model. Returns the record written to
    ``run.out_dir/pretrain.json`` (and the shipped folder's)."""
    from r3v_eval.benchmarks import get_benchmark
    from r3v_train.loop import RunDir, resolve_pretrained

    if not cfg.model.pretrained.startswith("tiny:") or not cfg.model.perception_examples:
        raise ConfigError("r3v pretrain: the recipe must name a tiny:<arch>:<size> base and "
                          "model.perception_examples > 0 (see recipes/demo/pretrain.yaml)")
    run = RunDir(cfg)
    bench = get_benchmark(cfg.data.benchmark, cfg.data.options)
    started = time.time()
    model_dir = Path(resolve_pretrained(run, bench, None))
    wall = time.time() - started
    trained = json.loads((model_dir / "train_metrics.json").read_text())
    info: dict[str, Any] = {
        "built_from": cfg.model.pretrained, "examples": cfg.model.perception_examples,
        "skills": cfg.model.perception_skills or {"count": 1.0},
        "learning_rate": cfg.model.perception_lr, "epochs": cfg.model.perception_epochs,
        "optimizer_steps": trained.get("global_step"),
        "train_runtime_s": trained.get("train_runtime_s"),
        "wall_s_this_call": round(wall, 1), "seed": cfg.run.seed,
        "data": {"benchmark": cfg.data.benchmark, "options": cfg.data.options},
    }
    built = run.path / "base_init" / "r3v_tiny.json"  # what build_tiny_model made
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
    write_atomic(run.path / "pretrain.json", json.dumps(info, indent=2))
    for name, row in info["perception_accuracy"].items():
        run.log(f"  {name:<18} {row['accuracy']:5.1f}%  ({row['correct']}/{row['n']})")
    return info
