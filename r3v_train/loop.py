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

Runs can share a warm-up (``run.warmup_from``): STaR, R3V and the matched-compute control
then start from one iteration-0 checkpoint, and the samples it draws are kept once, in the
warm-up run's pool, for every run that shares it.

The run folder's files are named in :mod:`r3v_eval.run_files`; the method table that decides
which stages run is :mod:`r3v_train.methods`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import yaml

from r3v_eval import run_files, strategies
from r3v_eval.benchmarks import Benchmark, Problem, get_benchmark
from r3v_eval.engines import load_engine
from r3v_eval.engines.base import Sampling
from r3v_eval.errors import R3VError
from r3v_eval.provenance import write_atomic, write_jsonl
from r3v_train.compute import run_compute
from r3v_train.config import ConfigError, R3VConfig
from r3v_train.demo.perception import perception_replay
from r3v_train.demo.pretrain import resolve_pretrained
from r3v_train.grpo import grpo_stage
from r3v_train.methods import get_method
from r3v_train.pool import Sample, SamplePool, pool_stats
from r3v_train.reflect import (
    BuildResult,
    ReflectConfig,
    build_dpo_pairs,
    build_examples,
    build_warmup,
    combine,
    problems_by_id,
)
from r3v_train.rundir import RunDir, barrier, config_differences, dist
from r3v_train.stage import latest_checkpoint
from r3v_train.teacher import teacher_rationales
from r3v_train.tracking import LoopTracker
from r3v_train.trainer import train_dpo, train_sft


# ------------------------------------------------------------------ stages
def pool_root(run: RunDir, sampler_iter: int) -> Path:
    """The pool folder of the samples drawn by iteration ``sampler_iter``'s checkpoint: a shared
    warm-up's own pool for iteration 0 (every run sharing it draws the same samples), else
    this run's."""
    if sampler_iter == 0 and run.cfg.run.warmup_from:
        return Path(run.cfg.run.warmup_from) / run_files.POOL
    return run.path / run_files.POOL


def drawn_samples(run: RunDir, sampler_iter: int) -> list[Sample]:
    """Every rank's samples of one iteration (the pool is sharded by process under
    ``accelerate launch``; a run may resume with another process count)."""
    out: list[Sample] = []
    for d in sorted(pool_root(run, sampler_iter).glob("rank*")):
        out.extend(SamplePool(d).read_iteration(sampler_iter))
    return out


def all_samples(run: RunDir, up_to_iteration: int) -> list[Sample]:
    """The samples of iterations 0 .. ``up_to_iteration``."""
    return [s for t in range(up_to_iteration + 1) for s in drawn_samples(run, t)]


def sample_stage(run: RunDir, bench: Benchmark, problems: Sequence[Problem], sampler_iter: int,
                 engine_factory) -> dict[str, Any]:
    """Sample every train question N times with the checkpoint of ``sampler_iter`` (the pool
    labels them with that iteration). Finished samples are skipped; work is appended chunk by
    chunk so a kill loses at most one chunk."""
    cfg = run.cfg
    rank, world = dist()
    n = cfg.sampling.n
    done = {(s.question_id, s.sample_index) for s in drawn_samples(run, sampler_iter)}
    barrier()  # every rank has read the pool before any rank appends to it
    missing = [p for p in problems if any((p.id, j) not in done for j in range(n))]
    todo = missing[rank::world]
    pool = SamplePool(pool_root(run, sampler_iter) / f"rank{rank}")
    if todo:
        run.log(f"iteration {sampler_iter + 1}: sampling {len(todo)} questions x {n} "
                f"({len(problems) - len(missing)} already in the pool)")
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
        close_engine(engine)
    barrier()
    return pool_stats(drawn_samples(run, sampler_iter))


def close_engine(engine: Any) -> None:
    """Free an engine before the next stage makes its own (vLLM's engine process holds its
    memory until shut down; the hf engine's model is freed when the last reference goes)."""
    close = getattr(engine, "close", None)
    if close is not None:
        close()


def evaluate_stage(run: RunDir, t: int, bench: Benchmark, test: Sequence[Problem],
                   engine_factory, sampled: bool = True) -> dict[str, float]:
    """Greedy accuracy and (``sampled``) majority / select / pass at ``eval.n`` and every
    ``eval.ns`` on the test split; written once to ``iter_<t>/eval.json``."""
    out = run.iter_dir(t) / run_files.EVAL
    if out.exists():
        return json.loads(out.read_text())["metrics"]
    if run.rank != 0:
        barrier()
        return json.loads(out.read_text())["metrics"]
    cfg = run.cfg
    run.log(f"iteration {t}: evaluating on {len(test)} test problems")
    engine = engine_factory()
    n = cfg.eval.n if sampled else 0
    # the sampled metrics draw as the sampling section says (one source for both)
    sampling = Sampling(n=n, temperature=cfg.sampling.temperature, top_p=cfg.sampling.top_p,
                        top_k=cfg.sampling.top_k, max_new_tokens=cfg.eval.max_new_tokens,
                        seed=cfg.eval.seed) if n else None
    ev = strategies.evaluate(engine, bench, test, n=n, sampling=sampling,
                             style=cfg.model.prompt_style,
                             with_select=cfg.eval.select, max_new_tokens=cfg.eval.max_new_tokens,
                             seed=cfg.eval.seed, also_at=tuple(cfg.eval.ns or ()) if n else (),
                             select_choice=cfg.eval.select_choice,
                             select_target=cfg.reflect.select_target)
    close_engine(engine)
    write_jsonl(run.iter_dir(t) / run_files.EVAL_OUTCOMES,
                ({"metric": name, **o.to_dict()} for name, outs in ev.outcomes.items() for o in outs))
    write_atomic(out, json.dumps({"iteration": t, "n_test": len(test), "metrics": ev.metrics},
                                  indent=2))
    run.log(f"iteration {t}: " + ", ".join(f"{k} {v:.4f}" for k, v in ev.metrics.items()))
    barrier()
    return ev.metrics


def train_stage(run: RunDir, t: int, examples: BuildResult, problems: dict[str, Problem],
                init: str | None, **overrides: Any) -> tuple[str, dict[str, Any]]:
    """Train iteration ``t``; ``init`` continues from an earlier iteration's checkpoint (an
    adapter for LoRA, a whole model folder for full fine-tuning), None starts from the base;
    ``overrides`` replace recipe ``train`` settings (``num_train_epochs`` of the warm-up, ``max_steps``
    of the matched-compute control)."""
    cfg = run.cfg
    settings = dataclasses.replace(cfg.train, **overrides)
    d = run.iter_dir(t)
    rows = examples.shuffled(cfg.run.seed + t)
    if not rows:
        raise R3VError(f"iteration {t}: no training examples ({examples.summary()}); a model "
                       "that solves nothing yet needs warm-up data (run.warmup with "
                       "data.warmup_qa or data.teacher_rationales)")
    if run.rank == 0 and not (d / run_files.EXAMPLES).exists():
        write_jsonl(d / run_files.EXAMPLES, (e.to_dict() for e in rows))
    run.log(f"iteration {t}: training on {len(rows)} examples ({examples.summary()})")
    data = [{"prompt": e.prompt, "completion": e.completion, "image": e.load_image(problems)}
            for e in rows]
    out = d / run_files.MODEL
    say_resume(run, t, out)
    if cfg.train.method == "full":
        result = train_sft(init or cfg.model.pretrained, data, out, settings)
    else:
        result = train_sft(cfg.model.pretrained, data, out, settings, init_adapter=init)
    return str(out), _train_summary(result)


def say_resume(run: RunDir, t: int, out: Path) -> None:
    """Log "resuming from checkpoint-N" when an unfinished training stage has a checkpoint."""
    checkpoint = None if (out / run_files.DONE).exists() else latest_checkpoint(out)
    if checkpoint is not None:
        run.log(f"iteration {t}: resuming from {checkpoint.name} ({out})")


def reference_steps(reference: str | Path) -> int:
    """Optimizer steps of a run's last trained iteration (what a matched control trains)."""
    ref = Path(reference)
    pattern = f"{run_files.ITER_PREFIX}*/{run_files.MODEL}/{run_files.TRAIN_METRICS}"
    done = [(run_files.iter_number(p.parents[1].name), p) for p in ref.glob(pattern)
            if run_files.iter_number(p.parents[1].name) is not None]
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
    cfg = run.cfg
    d = run.iter_dir(t)
    rows = pairs.shuffled(cfg.run.seed + t)
    run.log(f"iteration {t}: DPO on {len(rows)} pairs")
    data = [{"prompt": e.prompt, "chosen": e.completion, "rejected": e.rejected,
             "image": e.load_image(problems)} for e in rows]
    out = d / run_files.DPO_MODEL
    say_resume(run, t, out)
    if cfg.train.method == "full":
        result = train_dpo(sft_checkpoint, data, out, cfg.train)
    else:
        result = train_dpo(cfg.model.pretrained, data, out, cfg.train, init_adapter=sft_checkpoint)
    return str(out), _train_summary(result)


def compute_stage(run: RunDir, history: Sequence[dict[str, Any]], last_sampled: int) -> dict[str, int]:
    """Generated samples / tokens and optimizer steps of the whole run (r3v_train/compute.py)."""
    replies = [s.reply for s in all_samples(run, up_to_iteration=last_sampled)]
    tokenizer = None
    if replies:
        from r3v_eval.engines.hf import load_processor  # heavy (transformers): only to count tokens

        tokenizer = load_processor(run.cfg.model.pretrained).tokenizer
    return run_compute(history, replies, tokenizer)


def _train_summary(result: Any) -> dict[str, Any]:
    """The scalar training figures of a :class:`~r3v_train.trainer.TrainResult`."""
    metrics = getattr(result, "metrics", None) or {}
    summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool, type(None)))}
    summary["reused"] = bool(getattr(result, "reused", False))
    return summary


# ------------------------------------------------------------------ driver
def reflect_config(cfg: R3VConfig) -> ReflectConfig:
    """The method decides which tasks are on; the recipe's reflect section sets the rest."""
    on = get_method(cfg.run.method).tasks or ("sft",)  # unused where the method builds none
    return dataclasses.replace(cfg.reflect, sft="sft" in on, refine="refine" in on,
                               select="select" in on, prompt_style=cfg.model.prompt_style)


#: what runs sharing a warm-up must agree on (the whole section, or single keys)
SHARED_WARMUP_KEYS = ("model", "data", "sampling", "train", "run.seed", "run.warmup_epochs")


def shared_warmup(cfg: R3VConfig) -> Path | None:
    """The finished run folder whose warm-up this run shares (``run.warmup_from``), checked:
    it must exist, agree on :data:`SHARED_WARMUP_KEYS` and have finished iteration 0."""
    if not cfg.run.warmup_from:
        return None
    src = Path(cfg.run.warmup_from)
    saved_file = src / run_files.CONFIG
    if not saved_file.is_file():
        raise ConfigError(f"run.warmup_from: {src} is not a run folder (no config.yaml); run the "
                          "warm-up's recipe first")
    saved = yaml.safe_load(saved_file.read_text())
    differ = config_differences(saved, cfg.to_dict(), SHARED_WARMUP_KEYS)
    if differ:
        raise ConfigError(f"run.warmup_from: {src} was run with other settings ({', '.join(differ)}); "
                          "runs that share a warm-up must agree on them")
    if not (src / run_files.iter_name(0) / run_files.MODEL / run_files.DONE).is_file():
        raise ConfigError(f"run.warmup_from: {src} has not finished its warm-up "
                          "(iter_0/model/DONE); run its recipe first")
    return src


def control_data(cfg: R3VConfig, bench: Benchmark, train: Sequence[Problem],
                 warm: BuildResult) -> BuildResult:
    """The matched control's training data: every label the self-training runs see, and no
    rationale of the model's own. That is the warm-up's data (teacher rationales, replayed
    perception) plus a direct-answer pair (direct-answer prompt -> gold answer) for every train
    question, whose gold answers self-training uses to split its samples. When the warm-up
    already holds those pairs (``data.warmup_qa``), it is returned as is."""
    if cfg.data.warmup_qa:
        return warm
    qa = build_warmup(bench, train, None, qa=True, prompt_style=cfg.model.prompt_style)
    return combine(warm, qa)


def warmup_metrics(shared: Path) -> dict[str, float] | None:
    """Iteration 0's evaluation in the run whose warm-up is shared (None: not evaluated)."""
    path = shared / run_files.iter_name(0) / run_files.EVAL
    return json.loads(path.read_text())["metrics"] if path.is_file() else None


def load_split(run: RunDir, bench: Benchmark, split: str, limit: int | None) -> list[Problem]:
    """One split of the recipe's data; rows skipped as malformed are named in progress.log."""
    bench.last_load = None
    problems = bench.load(split, run.cfg.data.source, limit)
    report = getattr(bench, "last_load", None)
    if report is not None and report.skipped:
        run.log(f"{split}: {report.headline()}; skipped: {'; '.join(report.skipped[:5])}"
                + (f" ... and {len(report.skipped) - 5} more" if len(report.skipped) > 5 else ""))
    return problems


def run(cfg: R3VConfig) -> dict[str, Any]:
    """Run (or resume) a whole self-training run; returns the metrics summary."""
    run_dir = RunDir(cfg)
    shared = shared_warmup(cfg)
    method = get_method(cfg.run.method)
    bench = get_benchmark(cfg.data.benchmark, cfg.data.options)
    # the data first: a wrong data.source fails before a model is built or loaded
    train = load_split(run_dir, bench, cfg.data.train_split or bench.train_split,
                       cfg.data.train_limit)
    test = load_split(run_dir, bench, cfg.data.test_split or bench.test_split,
                      cfg.data.test_limit)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(
        cfg.model, pretrained=resolve_pretrained(run_dir, bench, shared)))
    run_dir.cfg = cfg
    problems = problems_by_id(train)
    teacher = teacher_rationales(cfg, train, bench)
    if method.teacher_only and not teacher:
        raise ConfigError("run.method=distill needs data.teacher_rationales")
    run_dir.log(f"run {cfg.run.out_dir}: method {method.name}, {len(train)} train / {len(test)} test "
                f"problems of {bench.name}, {cfg.run.iterations} iterations")

    full = cfg.train.method == "full"

    def engine_for(checkpoint: str | None, batch_size: int):
        # LoRA: the base model + the iteration's adapter; full fine-tuning: the saved model
        model_path = checkpoint if (full and checkpoint) else cfg.model.pretrained
        adapter = None if full else checkpoint

        def make():
            run_dir.log(f"  {cfg.sampling.backend} engine on {model_path}"
                        + (f" with the LoRA adapter {adapter}" if adapter else ""))
            decode = {"decode": cfg.sampling.decode} if cfg.sampling.decode != "generate" else {}
            return load_engine(cfg.sampling.backend, model_path, adapter=adapter,
                               dtype=cfg.model.dtype, device=cfg.model.device,
                               max_pixels=cfg.model.max_pixels,
                               min_pixels=cfg.model.min_pixels, batch_size=batch_size, **decode)
        return make

    iterations = cfg.run.iterations if method.iterates else 0
    final_t = 1 if method.final_iteration_fixed else iterations  # the iteration always evaluated

    def evaluate_if_due(t: int, checkpoint: str | None) -> dict[str, float] | None:
        last = t == final_t
        if not (cfg.eval.every_iteration or last):
            return None
        return evaluate_stage(run_dir, t, bench, test, engine_for(checkpoint, cfg.eval.batch_size),
                              sampled=last or cfg.eval.sampled_every_iteration)

    history: list[dict[str, Any]] = []
    tracker = LoopTracker(cfg.train.report_to, run_dir.path, cfg.run.name or method.name,
                          cfg.to_dict(), run_dir.rank, run_dir.log)

    def record(entry: dict[str, Any]) -> None:  # history, and the tracker (train.report_to)
        history.append(entry)
        if tracker.active:
            sampled = entry["iteration"] - 1 if "pool" in entry else -1
            tracker.log_iteration(entry, compute_stage(run_dir, history, last_sampled=sampled))

    warm = BuildResult()
    checkpoint: str | None = None
    if cfg.run.warmup or method.teacher_only:
        warm = build_warmup(bench, problems, teacher, qa=cfg.data.warmup_qa and not method.teacher_only,
                            prompt_style=cfg.model.prompt_style,
                            teacher_repeats=cfg.data.teacher_repeats)
        if cfg.data.warmup_perception:
            replay, pictures = perception_replay(
                bench, cfg.data.warmup_perception, getattr(bench, "seed", cfg.run.seed),
                cfg.data.warmup_perception_skills or cfg.model.perception_skills)
            warm.extend(replay)
            problems.update(pictures)
        if warm.skipped:
            run_dir.log(f"warm-up data skipped: {dict(warm.skipped)}")
        if shared is not None:
            checkpoint = str(shared / run_files.iter_name(0) / run_files.MODEL)
            run_dir.log(f"iteration 0: the warm-up of {shared}")
            record({"iteration": 0, "metrics": warmup_metrics(shared),
                    "examples": warm.counts, "shared_from": str(shared)})
        else:
            epochs = cfg.run.warmup_epochs or cfg.train.num_train_epochs
            checkpoint, train_info = train_stage(run_dir, 0, warm, problems, None,
                                                 num_train_epochs=epochs)
            metrics = evaluate_if_due(0, checkpoint)
            record({"iteration": 0, "metrics": metrics, "examples": warm.counts,
                    "train": train_info})
    warm_checkpoint = checkpoint
    if "control" in method.stages:  # every label self-training sees, continued for the reference's steps
        steps = cfg.run.control_steps or reference_steps(cfg.run.control_reference)
        labels = control_data(cfg, bench, train, warm)
        run_dir.log(f"matched-compute control: the warm-up's data"
                    + ("" if labels is warm else " + a direct-answer pair per train question")
                    + f", continued for {steps} optimizer steps"
                    + (f" (as {cfg.run.control_reference})" if cfg.run.control_reference else ""))
        checkpoint, train_info = train_stage(run_dir, 1, labels, problems, checkpoint, max_steps=steps)
        metrics = evaluate_if_due(1, checkpoint)
        record({"iteration": 1, "metrics": metrics, "examples": labels.counts,
                "train": train_info, "control_steps": steps})
    if "grpo" in method.stages:  # on-policy RL from the warm-up (or the base): r3v_train/grpo.py
        checkpoint, result = grpo_stage(run_dir, 1, bench, train, checkpoint)
        metrics = evaluate_if_due(1, checkpoint)
        record({"iteration": 1, "metrics": metrics, "train": _train_summary(result)})
    rcfg = reflect_config(cfg)
    for t in range(1, iterations + 1):
        pool_stats = sample_stage(run_dir, bench, train, t - 1,
                                  engine_for(checkpoint, cfg.sampling.batch_size))
        samples = all_samples(run_dir, up_to_iteration=t - 1)
        built = build_examples(bench, problems, samples, rcfg)
        data = combine(warm, built)
        init = {"base": None, "warmup": warm_checkpoint, "previous": checkpoint}[cfg.run.start]
        new_checkpoint, train_info = train_stage(run_dir, t, data, problems, init)
        if "dpo" in method.stages:
            pairs = build_dpo_pairs(bench, problems, samples, rcfg)
            new_checkpoint, dpo_info = dpo_stage(run_dir, t, pairs, problems, new_checkpoint)
            train_info = {"sft": train_info, "dpo": dpo_info}
        checkpoint = new_checkpoint
        metrics = evaluate_if_due(t, checkpoint)
        record({"iteration": t, "metrics": metrics, "pool": pool_stats, "examples": data.counts,
                "skipped": dict(data.skipped), "train": train_info})
    summary = {"name": cfg.run.name or method.name, "method": method.name, "benchmark": bench.name,
               "n_train": len(train), "n_test": len(test),
               "final": history[-1]["metrics"] if history else {},
               "compute": compute_stage(run_dir, history, last_sampled=iterations - 1),
               "history": history}
    tracker.finish()
    if run_dir.rank == 0:
        write_atomic(run_dir.path / run_files.METRICS, json.dumps(summary, indent=2))
    run_dir.log(f"done: {json.dumps(summary['final'])}")
    return summary
