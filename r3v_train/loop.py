"""The R3V iteration driver, read top to bottom like the paper's algorithm:

    warm-up (iteration 0): train on direct-answer QA pairs + teacher rationales
    for t = 1 .. T:
        sample   the train split N times with the checkpoint of iteration t-1   (pool.py)
        split    each sample into positive / negative by the benchmark's answer check
        build    SFT / refine / select examples from all samples so far       (reflect.py)
        train    a fresh adapter on the base model (or continue)               (trainer.py)
        evaluate greedy, majority@N, select@N, pass@N on the test split       (strategies.py)

Every stage is resumable: a run killed anywhere and started again with the same command
continues where it stopped. Samples are appended whole, chunk by chunk, to an append-only
pool (finished samples are never redone); a training stage is finished only once its
``DONE`` marker exists (TRL checkpoints are resumed otherwise); an evaluation is finished
only once its metrics file exists (written atomically).

Run directory layout::

    config.yaml  versions.json  progress.log  metrics.json
    pool/rank<r>/iter_<t>.jsonl              samples drawn by the checkpoint of iteration t
    iter_<t>/examples.jsonl                  the training set of iteration t (for audit)
    iter_<t>/model/                          adapter (or full model) + train_metrics.json
    iter_<t>/eval.json  iter_<t>/eval_outcomes.jsonl
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from r3v_eval import strategies
from r3v_eval.benchmarks import Benchmark, Problem, get_benchmark
from r3v_eval.engines import load_engine
from r3v_eval.engines.base import Sampling
from r3v_train.config import ConfigError, R3VConfig
from r3v_train.pool import Sample, SamplePool
from r3v_train.reflect import (
    BuildResult,
    ReflectConfig,
    build_dpo_pairs,
    build_examples,
    build_warmup,
    combine,
    load_teacher_rationales,
    problems_by_id,
)

SELF_TRAINING_METHODS = {"r3v": "r3v", "r3v_no_refine": "r3v_no_refine",
                         "r3v_no_select": "r3v_no_select", "star": "star", "star_dpo": "star"}


# ------------------------------------------------------------------ helpers
def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _dist() -> tuple[int, int]:
    """(rank, world size) under ``accelerate launch`` / torchrun; (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _barrier() -> None:
    if _dist()[1] > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("r3v", "torch", "transformers", "trl", "peft", "accelerate", "datasets",
                "lmms-eval", "vllm"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


class RunDir:
    """The run folder: resolved config, versions, progress log, per-iteration files."""

    def __init__(self, cfg: R3VConfig) -> None:
        self.cfg = cfg
        self.path = Path(cfg.run.out_dir)
        self.rank = _dist()[0]
        self.path.mkdir(parents=True, exist_ok=True)
        resolved = cfg.to_dict()
        cfg_path = self.path / "config.yaml"
        if cfg_path.exists():
            saved = yaml.safe_load(cfg_path.read_text())
            if saved != json.loads(json.dumps(resolved)):
                diff = sorted(f"{s}.{k}" for s in resolved for k in resolved[s]
                              if (saved or {}).get(s, {}).get(k) != json.loads(json.dumps(resolved[s][k])))
                raise ConfigError(
                    f"{self.path} holds a run with a different config (differs in: "
                    f"{', '.join(diff) or 'sections'}); use another run.out_dir to start afresh")
        elif self.rank == 0:
            _atomic_write(cfg_path, yaml.safe_dump(resolved, sort_keys=False))
            _atomic_write(self.path / "versions.json", json.dumps(versions(), indent=2))

    def iter_dir(self, t: int) -> Path:
        d = self.path / f"iter_{t}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        print(f"[r3v] {message}", flush=True)
        if self.rank == 0:
            with (self.path / "progress.log").open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")


# ------------------------------------------------------------------ stages
def pool_of(run: RunDir, rank: int | None = None) -> SamplePool:
    rank = run.rank if rank is None else rank
    return SamplePool(run.path / "pool" / f"rank{rank}")


def all_samples(run: RunDir, up_to_iteration: int) -> list[Sample]:
    """Every rank's samples (the pool is sharded by process under accelerate launch)."""
    out: list[Sample] = []
    for d in sorted((run.path / "pool").glob("rank*")):
        out.extend(SamplePool(d).samples(up_to_iteration=up_to_iteration))
    return out


def sample_stage(run: RunDir, bench: Benchmark, problems: Sequence[Problem], sampler_iter: int,
                 engine_factory) -> dict[str, Any]:
    """Sample every train question N times with the checkpoint of ``sampler_iter`` (the pool
    labels them with that iteration). Finished samples are skipped; work is appended chunk by
    chunk so a kill loses at most one chunk."""
    cfg = run.cfg
    rank, world = _dist()
    mine = list(problems)[rank::world]
    pool = pool_of(run)
    n = cfg.sampling.n
    done = pool.done_keys(sampler_iter)
    todo = [p for p in mine if any((p.id, j) not in done for j in range(n))]
    if todo:
        run.log(f"iteration {sampler_iter + 1}: sampling {len(todo)} questions x {n} "
                f"({len(mine) - len(todo)} already in the pool)")
        engine = engine_factory()
        style = cfg.model.prompt_style
        chunk = cfg.sampling.chunk_size
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            sampling = Sampling(n=n, temperature=cfg.sampling.temperature,
                                top_p=cfg.sampling.top_p, top_k=cfg.sampling.top_k,
                                max_new_tokens=cfg.sampling.max_new_tokens,
                                # per iteration only: each request's samples then depend on
                                # the question, not on its chunk, rank or batch (engines seed
                                # every request from this seed and its content)
                                seed=cfg.run.seed * 100_003 + sampler_iter * 10_007)
            replies = strategies.sample_candidates(engine, bench, part, sampling, style)
            new = []
            for p, cands in zip(part, replies):
                for j, reply in enumerate(cands):
                    if (p.id, j) in done:
                        continue
                    s = bench.score(reply, p)
                    new.append(Sample(sampler_iter, p.id, j, style, reply, s.extracted, s.correct))
            pool.append(new)
            run.log(f"  sampled {min(start + chunk, len(todo))}/{len(todo)} questions")
        del engine
    _barrier()
    stats = pool.stats(sampler_iter)
    return stats


def evaluate_stage(run: RunDir, t: int, bench: Benchmark, test: Sequence[Problem],
                   engine_factory) -> dict[str, float]:
    out = run.iter_dir(t) / "eval.json"
    if out.exists():
        return json.loads(out.read_text())["metrics"]
    if run.rank != 0:
        _barrier()
        return json.loads(out.read_text())["metrics"]
    cfg = run.cfg
    run.log(f"iteration {t}: evaluating on {len(test)} test problems")
    engine = engine_factory()
    ev = strategies.evaluate(engine, bench, test, n=cfg.eval.n, style=cfg.model.prompt_style,
                             with_select=cfg.eval.select, max_new_tokens=cfg.eval.max_new_tokens,
                             seed=cfg.eval.seed)
    with (run.iter_dir(t) / "eval_outcomes.jsonl.tmp").open("w", encoding="utf-8") as fh:
        for outs in ev.outcomes.values():
            for o in outs:
                fh.write(json.dumps(o.to_dict(), ensure_ascii=False) + "\n")
    os.replace(run.iter_dir(t) / "eval_outcomes.jsonl.tmp", run.iter_dir(t) / "eval_outcomes.jsonl")
    _atomic_write(out, json.dumps({"iteration": t, "n_test": len(test), "metrics": ev.metrics},
                                  indent=2))
    run.log(f"iteration {t}: " + ", ".join(f"{k} {v:.4f}" for k, v in ev.metrics.items()))
    _barrier()
    return ev.metrics


def train_stage(run: RunDir, t: int, examples: BuildResult, problems: dict[str, Problem],
                init: str | None, max_steps: int | None = None) -> tuple[str, dict[str, Any]]:
    """Train iteration ``t``; ``init`` continues from an earlier iteration's checkpoint (an
    adapter for LoRA, a whole model folder for full fine-tuning), None starts from the base;
    ``max_steps`` overrides the recipe's ``train.max_steps`` (the matched-compute control)."""
    from r3v_train.trainer import train_sft

    cfg = run.cfg
    settings = cfg.train if max_steps is None else dataclasses.replace(cfg.train, max_steps=max_steps)
    d = run.iter_dir(t)
    rows = examples.shuffled(cfg.run.seed + t)
    if run.rank == 0 and not (d / "examples.jsonl").exists():
        _atomic_write(d / "examples.jsonl",
                      "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in rows))
    run.log(f"iteration {t}: training on {len(rows)} examples ({examples.summary()})")
    data = [{"prompt": e.prompt, "completion": e.completion, "image": e.load_image(problems)}
            for e in rows]
    if cfg.train.method == "full":
        result = train_sft(init or cfg.model.pretrained, data, d / "model", settings)
    else:
        result = train_sft(cfg.model.pretrained, data, d / "model", settings, init_adapter=init)
    return str(d / "model"), _train_summary(result)


def reference_steps(reference: str | Path) -> int:
    """Optimizer steps of a run's last trained iteration (what a matched control trains)."""
    ref = Path(reference)
    done = [(int(p.parents[1].name.removeprefix("iter_")), p)
            for p in ref.glob("iter_*/model/train_metrics.json")
            if p.parents[1].name.removeprefix("iter_").isdigit()]
    if not done:
        raise ConfigError(f"run.control_reference: {ref} has no trained iteration "
                          "(iter_<t>/model/train_metrics.json); run the reference first")
    _, path = max(done)  # the last iteration
    steps = json.loads(path.read_text()).get("global_step")
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"run.control_reference: {path} has no global_step")
    return steps


def dpo_stage(run: RunDir, t: int, pairs: BuildResult, problems: dict[str, Problem],
              sft_checkpoint: str) -> tuple[str, dict[str, Any]]:
    from r3v_train.trainer import train_dpo

    cfg = run.cfg
    d = run.iter_dir(t)
    rows = pairs.shuffled(cfg.run.seed + t)
    run.log(f"iteration {t}: DPO on {len(rows)} pairs")
    data = [{"prompt": e.prompt, "chosen": e.completion, "rejected": e.rejected,
             "image": e.load_image(problems)} for e in rows]
    if cfg.train.method == "full":
        result = train_dpo(sft_checkpoint, data, d / "dpo_model", cfg.train)
    else:
        result = train_dpo(cfg.model.pretrained, data, d / "dpo_model", cfg.train,
                           init_adapter=sft_checkpoint)
    return str(d / "dpo_model"), _train_summary(result)


def _train_summary(result: Any) -> dict[str, Any]:
    """The scalar training figures of a :class:`~r3v_train.trainer.TrainResult`."""
    metrics = getattr(result, "metrics", None) or {}
    summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool, type(None)))}
    summary["reused"] = bool(getattr(result, "reused", False))
    return summary


# ------------------------------------------------------------------ driver
def reflect_config(cfg: R3VConfig) -> ReflectConfig:
    """The method decides which tasks are on; the recipe's reflect section sets the rest."""
    method = SELF_TRAINING_METHODS.get(cfg.run.method, "star")
    on = ReflectConfig.for_method(method).tasks
    return dataclasses.replace(cfg.reflect, sft="sft" in on, refine="refine" in on,
                               select="select" in on, prompt_style=cfg.model.prompt_style)


def resolve_pretrained(run: RunDir) -> str:
    """A hub id / folder as is; ``tiny:<arch>:<size>`` is built (once) into the run folder."""
    spec = run.cfg.model.pretrained
    if not spec.startswith("tiny:"):
        return spec
    parts = spec.split(":")
    if len(parts) != 3:
        raise ConfigError(f"model.pretrained: {spec!r} is not tiny:<arch>:<size>")
    from r3v_train.tiny import build_tiny_model

    target = run.path / "base_model"
    if run.rank == 0 and not (target / "config.json").exists():
        run.log(f"building {spec} -> {target}")
        build_tiny_model(parts[1], target, size=parts[2], seed=run.cfg.run.seed)
    _barrier()
    return str(target)


def teacher_rationales(cfg: R3VConfig, train: Sequence[Problem]) -> dict[str, str]:
    spec = cfg.data.teacher_rationales
    if not spec:
        return {}
    if spec == "builtin":
        teacher = {p.id: p.meta["rationale"] for p in train if p.meta.get("rationale")}
        if not teacher:
            raise ConfigError(f"data.teacher_rationales=builtin: benchmark {cfg.data.benchmark!r} "
                              "has no built-in rationales")
    else:
        teacher = load_teacher_rationales(spec)
    if cfg.data.teacher_limit is not None:
        order = [p.id for p in train if p.id in teacher][: cfg.data.teacher_limit]
        teacher = {pid: teacher[pid] for pid in order}
    return teacher


def run(cfg: R3VConfig) -> dict[str, Any]:
    """Run (or resume) a whole self-training run; returns the metrics summary."""
    run_dir = RunDir(cfg)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(
        cfg.model, pretrained=resolve_pretrained(run_dir)))
    run_dir.cfg = cfg
    method = cfg.run.method
    bench = get_benchmark(cfg.data.benchmark)
    train = bench.load(cfg.data.train_split or bench.train_split, cfg.data.source,
                       cfg.data.train_limit)
    test = bench.load(cfg.data.test_split or bench.test_split, cfg.data.source,
                      cfg.data.test_limit)
    problems = problems_by_id(train)
    teacher = teacher_rationales(cfg, train)
    if method == "distill" and not teacher:
        raise ConfigError("run.method=distill needs data.teacher_rationales")
    run_dir.log(f"run {cfg.run.out_dir}: method {method}, {len(train)} train / {len(test)} test "
                f"problems of {bench.name}, {cfg.run.iterations} iterations")

    full = cfg.train.method == "full"

    def engine_for(checkpoint: str | None, batch_size: int):
        # LoRA: the base model + the iteration's adapter; full fine-tuning: the saved model
        model_path = checkpoint if (full and checkpoint) else cfg.model.pretrained
        adapter = None if full else checkpoint

        def make():
            return load_engine(cfg.sampling.backend, model_path, adapter=adapter,
                               dtype=cfg.model.dtype, device=cfg.model.device,
                               max_pixels=cfg.model.max_pixels,
                               min_pixels=cfg.model.min_pixels, batch_size=batch_size)
        return make

    iterations = 0 if method in ("distill", "control") else cfg.run.iterations
    final_t = 1 if method == "control" else iterations  # the iteration always evaluated

    def evaluate_if_due(t: int, checkpoint: str | None) -> dict[str, float] | None:
        last = t == final_t
        if not (cfg.eval.every_iteration or last):
            return None
        return evaluate_stage(run_dir, t, bench, test, engine_for(checkpoint, cfg.eval.batch_size))

    history: list[dict[str, Any]] = []
    warm = BuildResult()
    checkpoint: str | None = None
    if cfg.run.warmup or method == "distill":
        warm = build_warmup(bench, problems, teacher, qa=cfg.data.warmup_qa and method != "distill",
                            prompt_style=cfg.model.prompt_style)
        if warm.skipped:
            run_dir.log(f"warm-up data skipped: {dict(warm.skipped)}")
        checkpoint, train_info = train_stage(run_dir, 0, warm, problems, None)
        metrics = evaluate_if_due(0, checkpoint)
        history.append({"iteration": 0, "metrics": metrics, "examples": warm.counts,
                        "train": train_info})
    if method == "control":  # the warm-up's own data, continued for the reference's steps
        steps = cfg.run.control_steps or reference_steps(cfg.run.control_reference)
        run_dir.log(f"matched-compute control: the warm-up continued for {steps} optimizer steps"
                    + (f" (as {cfg.run.control_reference})" if cfg.run.control_reference else ""))
        checkpoint, train_info = train_stage(run_dir, 1, warm, problems, checkpoint, max_steps=steps)
        metrics = evaluate_if_due(1, checkpoint)
        history.append({"iteration": 1, "metrics": metrics, "examples": warm.counts,
                        "train": train_info, "control_steps": steps})
    rcfg = reflect_config(cfg)
    for t in range(1, iterations + 1):
        pool_stats = sample_stage(run_dir, bench, train, t - 1,
                                  engine_for(checkpoint, cfg.sampling.batch_size))
        samples = all_samples(run_dir, up_to_iteration=t - 1)
        built = build_examples(bench, problems, samples, rcfg)
        data = combine(warm, built)
        init = None if cfg.run.restart_from_base else checkpoint
        new_checkpoint, train_info = train_stage(run_dir, t, data, problems, init)
        if method == "star_dpo":
            pairs = build_dpo_pairs(bench, problems, samples, rcfg)
            new_checkpoint, dpo_info = dpo_stage(run_dir, t, pairs, problems, new_checkpoint)
            train_info = {"sft": train_info, "dpo": dpo_info}
        checkpoint = new_checkpoint
        metrics = evaluate_if_due(t, checkpoint)
        history.append({"iteration": t, "metrics": metrics, "pool": pool_stats,
                        "examples": data.counts, "train": train_info})
    summary = {"method": method, "benchmark": bench.name, "n_train": len(train),
               "n_test": len(test), "final": history[-1]["metrics"] if history else {},
               "history": history}
    if run_dir.rank == 0:
        _atomic_write(run_dir.path / "metrics.json", json.dumps(summary, indent=2))
    run_dir.log(f"done: {json.dumps(summary['final'])}")
    return summary

