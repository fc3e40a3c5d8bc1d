"""Training throughput: one R3V iteration's SFT data set, with and without length grouping.

Builds the training set of one self-training iteration on the ``shapes`` benchmark exactly as
:mod:`r3v_train.loop` does (``combine(build_warmup(...), build_examples(...))``, shuffled):

* **qa**      direct-answer pairs (question -> bare answer), one per problem;
* **teacher** the generator's perfect rationales (``problem.meta["rationale"]``) as CoT targets;
* **sft**     CoT prompt -> the most recent positive sample;
* **refine**  prompt showing a wrong rationale -> a right one;
* **select**  prompt showing 3 candidates (2+1 and 1+2 mixes) -> the bare answer.

The "samples" of iteration 0 are synthesised, no model is sampled: each of a question's
``--samples-per-question`` samples is, with probability ``--p-correct``, the perfect rationale
(a positive) or a perturbed copy whose last step and ``Answer:`` line carry a wrong number (a
negative, checked to score wrong with the benchmark's own ``score()``). The quality filter, the
mixes, the prompts and hence the prompt lengths are the real ones.

Then :func:`r3v_train.trainer.train_sft` (LoRA, the default :class:`TrainSettings` apart from
the step count and batch size) trains the same data for ``--steps`` optimizer steps twice, each
in a fresh subprocess (so peak RSS is per run): with ``group_by_length=True`` and without.
By default ``--examples = --steps x --batch-size``, so both runs see every example exactly
once and process the same real tokens; only the batching (hence the padding) differs.

Figures per run: tokens/s (real prompt + image + completion tokens per second of
``trainer.train``, as in ``train_metrics.json``), padded positions/s, examples/s, the padding
share (pad cells / all cells, over all micro-batches, and the mean / max per micro-batch,
recorded by a forward pre-hook), and the peak memory (``ru_maxrss`` of the run's process on
CPU; ``torch.cuda.max_memory_allocated`` on GPU). Target: padding share < 20% with grouping.

    python benchmarks/training.py                                    # tiny 'small' Qwen2-VL, CPU
    python benchmarks/training.py --steps 20 --batch-size 8 --threads 1 \
        --json benchmarks/results/training_cpu.json                  # a busy 2-core machine
    python benchmarks/training.py --device cuda --realistic --steps 20   # Qwen2-VL-2B-sized, GPU

``--realistic`` (CUDA only) builds a Qwen2-VL-2B-shaped model with random weights (text: hidden
1536, 28 layers, 12 heads / 2 KV heads, MLP 8960, vocabulary 151,936, tied embeddings; vision:
depth 32, width 1280, 16 heads) around the tiny model's tokenizer, and renders the pictures at
448 px (256 image tokens each instead of 16).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("grouped", "ungrouped")

# ============================================================================ the data set
def _wrong_copy(bench, problem, rationale: str, rng: random.Random) -> tuple[str, str]:
    """The rationale with a wrong number in its last step and its Answer line."""
    body, sep, answer = rationale.rpartition("\n\nAnswer:\n")
    if not sep:
        raise ValueError(f"{problem.id}: rationale without an Answer line")
    gold = int(answer.strip())
    wrong = rng.choice([gold + d for d in (-2, -1, 1, 2) if gold + d >= 0])
    lines = body.split("\n")
    hits = list(re.finditer(rf"(?<!\d){gold}(?!\d)", lines[-1]))
    if hits:
        h = hits[-1]
        lines[-1] = lines[-1][:h.start()] + str(wrong) + lines[-1][h.end():]
    reply = "\n".join(lines) + sep + str(wrong)
    score = bench.score(reply, problem)
    if score.correct:
        raise AssertionError(f"{problem.id}: perturbed rationale still scores correct")
    return reply, score.extracted


def _samples(bench, problems, n: int, p_correct: float, style: str, seed: int) -> list:
    from r3v_train.pool import Sample

    rng = random.Random(seed)
    out = []
    for p in problems:
        right = p.meta["rationale"]
        for k in range(n):
            if rng.random() < p_correct:
                reply, extracted = right, bench.score(right, p).extracted
            else:
                reply, extracted = _wrong_copy(bench, p, right, rng)
            correct = bench.score(reply, p).correct
            out.append(Sample(iteration=0, question_id=p.id, sample_index=k, prompt_style=style,
                              reply=reply, extracted=extracted, correct=correct))
    return out


def build_dataset(args, work: Path) -> dict:
    """Write ``work/data.jsonl`` (prompt, completion, image path, kind) and the pictures."""
    from r3v_eval.benchmarks.shapes import ShapesBenchmark
    from r3v_eval.benchmarks.shapes import ShapesConfig
    from r3v_train.reflect import ReflectConfig, build_examples, build_warmup, combine

    bench = ShapesBenchmark(config=ShapesConfig(image_size=args.image_size))
    rcfg = ReflectConfig.for_method("r3v", prompt_style=args.prompt_style, seed=args.seed)
    n_problems = max(8, math.ceil(args.examples / 3))
    while True:
        problems = bench.load("train", limit=n_problems)
        teacher = {p.id: p.meta["rationale"] for p in problems}
        warm = build_warmup(bench, problems, teacher, qa=True, prompt_style=args.prompt_style)
        samples = _samples(bench, problems, args.samples_per_question, args.p_correct,
                           args.prompt_style, args.seed)
        built = build_examples(bench, problems, samples, rcfg)
        data = combine(warm, built)
        if len(data.examples) >= args.examples or n_problems >= bench.sizes["train"]:
            break
        n_problems = min(2 * n_problems, bench.sizes["train"])
    rows = data.shuffled(args.seed + 1)[: args.examples]  # as train_stage(t=1) orders them
    by_id = {p.id: p for p in problems}
    images = work / "images"
    images.mkdir(parents=True, exist_ok=True)
    with (work / "data.jsonl").open("w", encoding="utf-8") as fh:
        for ex in rows:
            path = images / f"{ex.problem_id}.png"
            if not path.exists():
                by_id[ex.problem_id].load_image().save(path)
            fh.write(json.dumps({"kind": ex.kind, "prompt": ex.prompt,
                                 "completion": ex.completion, "image": str(path)}) + "\n")
    counts: dict[str, int] = {}
    for ex in rows:
        counts[ex.kind] = counts.get(ex.kind, 0) + 1
    pos = sum(s.correct for s in samples)
    return {"problems": len(problems), "examples": len(rows), "examples_built": len(data.examples),
            "kinds": counts, "samples": len(samples), "positive_samples": pos,
            "skipped": dict(data.skipped)}


# ============================================================================ the model
def build_model(args, work: Path) -> Path:
    from r3v_train.tiny import build_tiny_model

    out = build_tiny_model(args.arch, work / "model", size=args.size, seed=args.seed)
    if not args.realistic:
        return out
    # Qwen2-VL-2B's real shapes, random weights, the tiny tokenizer/processor (ids < vocab).
    import torch

    from real_size import build_real_size_model

    model = build_real_size_model("qwen2_vl_2b", out, device="cuda", dtype=torch.bfloat16,
                                  seed=args.seed, save=True)
    del model
    torch.cuda.empty_cache()
    return out


# ============================================================================ one run (child)
def step_probe():
    """A trainer callback that records each training micro-batch's (real tokens, all cells) from
    its attention mask (a forward pre-hook) and the end time of each optimizer step; returns
    (callback, per_batch, step_ends), the two lists filled while training."""
    import torch
    from transformers import TrainerCallback

    per_batch: list[tuple[int, int]] = []
    step_ends: list[float] = []

    class Probe(TrainerCallback):
        def on_train_begin(self, args_, state, control, model=None, **kw):
            def hook(module, a, kwargs):
                mask = kwargs.get("attention_mask")
                if mask is not None and module.training:
                    per_batch.append((int(mask.sum()), int(mask.numel())))
            model.register_forward_pre_hook(hook, with_kwargs=True)

        def on_step_end(self, args_, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            step_ends.append(time.perf_counter())

    return Probe(), per_batch, step_ends


def steady_tokens_per_s(per_batch: list[tuple[int, int]], step_ends: list[float],
                        accumulation: int) -> float | None:
    """Real tokens per second after the first optimizer step (its first-call overheads left
    out); None with fewer than two steps or when the batches do not line up with the steps."""
    if len(step_ends) < 2 or len(per_batch) != len(step_ends) * accumulation:
        return None
    return sum(r for r, _ in per_batch[accumulation:]) / (step_ends[-1] - step_ends[0])


def run_one(variant: str, work: Path, args) -> dict:
    """Train in this process (a child of :func:`main`) and return its figures."""
    import torch

    from r3v_train.train_settings import TrainSettings
    from r3v_train.trainer import train_sft

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in (work / "data.jsonl").open(encoding="utf-8")]
    probe, per_batch, step_ends = step_probe()

    settings = TrainSettings(
        max_steps=args.steps, per_device_train_batch_size=args.batch_size,
        group_by_length=(variant == "grouped"), seed=args.seed, save_strategy="no",
        logging_steps=max(1, args.steps), report_to="none",
        gradient_checkpointing=not args.no_gradient_checkpointing,
        max_pixels=args.image_size * args.image_size if args.realistic else None)
    out = work / f"run_{variant}"
    result = train_sft(work / "model" if not args.model else args.model, rows, out, settings,
                       progress=False, callbacks=[probe])
    m = result.metrics
    runtime = m["train_runtime_s"]
    examples = m["global_step"] * m["global_batch_size"]
    shares = [(t - r) / t for r, t in per_batch if t]
    steady = steady_tokens_per_s(per_batch, step_ends, m["gradient_accumulation_steps"])
    return {
        "variant": variant,
        "steps": m["global_step"],
        "micro_batches": m["micro_batches"],
        "examples": examples,
        "train_runtime_s": runtime,
        "tokens_seen": m["tokens_seen"],
        "padded_positions": m["padded_positions"],
        "loss_tokens": m["loss_tokens"],
        "tokens_per_s": m["tokens_per_s"],
        "tokens_per_s_after_first_step": steady,
        "padded_positions_per_s": m["padded_positions"] / runtime,
        "examples_per_s": examples / runtime,
        "padding_share": m["padding_share"],
        "padding_share_batch_mean": sum(shares) / len(shares) if shares else None,
        "padding_share_batch_max": max(shares) if shares else None,
        "batch_seq_len_mean": (sum(t for _, t in per_batch) / len(per_batch) / args.batch_size
                               if per_batch else None),
        "hooked_batches": len(per_batch),
        "peak_rss_gb": m["peak_rss_gb"],
        "peak_gpu_memory_gb": m["peak_gpu_memory_gb"],
        "train_loss": m["train_loss"],
        "mean_example_tokens": m["mean_example_tokens"],
        "max_example_tokens": m["max_example_tokens"],
        "trainable_params": m["trainable_params"],
        "total_params": m["total_params"],
        "bf16": m["bf16"],
        "torch_threads": torch.get_num_threads(),
    }


# ============================================================================ driver
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="qwen2_vl", choices=["qwen2_vl", "qwen2_5_vl", "llava"])
    ap.add_argument("--size", default="small", choices=["tiny", "small"])
    ap.add_argument("--model", default=None,
                    help="train this checkpoint folder instead of building a model")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--realistic", action="store_true",
                    help="CUDA only: a Qwen2-VL-2B-sized random-weight model, 448 px pictures")
    ap.add_argument("--steps", type=int, default=10, help="optimizer steps per run")
    ap.add_argument("--batch-size", type=int, default=8, help="per-device batch size")
    ap.add_argument("--examples", type=int, default=None,
                    help="training examples (default: steps x batch size, one epoch)")
    ap.add_argument("--samples-per-question", type=int, default=3)
    ap.add_argument("--p-correct", type=float, default=0.5,
                    help="chance that a synthetic sample is a positive")
    ap.add_argument("--image-size", type=int, default=None,
                    help="picture side in px (default 112; 448 with --realistic)")
    ap.add_argument("--prompt-style", default="qwen", choices=["qwen", "llava", "qwen2"])
    ap.add_argument("--no-gradient-checkpointing", action="store_true")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice, one per core); on a loaded "
                         "machine 1 avoids OpenMP oversubscription, which can cost 10x")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a fresh temp folder")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--_child", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    return ap


def _child_env(device: str, threads: int | None) -> dict:
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # train_sft uses CUDA whenever it sees a GPU
    return env


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    if args.image_size is None:
        args.image_size = 448 if args.realistic else 112
    if args.examples is None:
        args.examples = args.steps * args.batch_size

    if args._child:  # one training run, figures as JSON on the last stdout line
        fig = run_one(args._child, args.workdir, args)
        print("R3V_RESULT " + json.dumps(fig))
        return fig

    if args.device == "cuda" or args.realistic:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda / --realistic need a CUDA GPU, and torch sees none "
                             "here (torch.cuda.is_available() is False); run on CPU with the "
                             "tiny model instead")
        if args.realistic and args.device != "cuda":
            raise SystemExit("--realistic trains a 2B-parameter model: use --device cuda")
    if args.realistic and (args.arch != "qwen2_vl" or args.model):
        raise SystemExit("--realistic builds a Qwen2-VL model: use --arch qwen2_vl, no --model")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="r3v_bench_train_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = build_dataset(args, work)
    t_data = time.perf_counter() - t0
    if not args.model:
        t0 = time.perf_counter()
        build_model(args, work)
        t_model = time.perf_counter() - t0
    else:
        t_model = 0.0
    print(f"data: {data['examples']} examples from {data['problems']} problems "
          f"({', '.join(f'{k}={n}' for k, n in sorted(data['kinds'].items()))}); "
          f"{data['positive_samples']}/{data['samples']} synthetic samples positive; "
          f"built in {t_data:.1f}s, model in {t_model:.1f}s", flush=True)

    runs: dict[str, dict] = {}
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
    for variant in VARIANTS:
        cmd = [sys.executable, str(Path(__file__).resolve()), *passthrough,
               "--_child", variant, "--workdir", str(work)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=_child_env(args.device, args.threads),
                              text=True, capture_output=True, check=False)
        if proc.returncode:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
            raise SystemExit(f"the {variant} run failed (exit {proc.returncode})")
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("R3V_RESULT ")][-1]
        runs[variant] = json.loads(line[len("R3V_RESULT "):])
        runs[variant]["process_wall_s"] = time.perf_counter() - t0

    g, u = runs["grouped"], runs["ungrouped"]
    ratios = {
        "tokens_per_s": g["tokens_per_s"] / u["tokens_per_s"],
        "examples_per_s": g["examples_per_s"] / u["examples_per_s"],
        "padding_share": (g["padding_share"] / u["padding_share"]
                          if u["padding_share"] else None),
        "peak_memory": ((g["peak_gpu_memory_gb"] / u["peak_gpu_memory_gb"])
                        if g["peak_gpu_memory_gb"] else g["peak_rss_gb"] / u["peak_rss_gb"]),
    }
    if g["tokens_per_s_after_first_step"] and u["tokens_per_s_after_first_step"]:
        ratios["tokens_per_s_after_first_step"] = (g["tokens_per_s_after_first_step"]
                                                   / u["tokens_per_s_after_first_step"])
    gpu = g["peak_gpu_memory_gb"] is not None
    mem_key, mem_name = (("peak_gpu_memory_gb", "peak GPU mem (GiB)") if gpu
                         else ("peak_rss_gb", "peak RSS (GiB)"))
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    figures = {
        "device": "cuda" if gpu else "cpu",
        "model": ("realistic-qwen2-vl-2b" if args.realistic
                  else args.model or f"tiny-{args.size}-{args.arch}"),
        "total_params": g["total_params"],
        "trainable_params": g["trainable_params"],
        "steps": args.steps,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "gradient_checkpointing": not args.no_gradient_checkpointing,
        "torch_threads": runs["grouped"]["torch_threads"],
        "data": data,
        "runs": runs,
        "grouped_over_ungrouped": ratios,
        "target_padding_share_grouped_below": 0.20,
        "target_met": g["padding_share"] < 0.20,
        "load_average_at_end": load,
        "cpu_count": os.cpu_count(),
    }

    def row(name: str, key: str, fmt: str, ratio: float | None = None) -> None:
        gv, uv = g[key], u[key]
        r = "" if ratio is None else f"{ratio:8.2f}x"
        print(f"{name:>26}: {format(gv, fmt):>10} {format(uv, fmt):>10}  {r}")

    print(f"model {figures['model']} ({g['total_params'] / 1e6:.1f}M params, "
          f"{g['trainable_params'] / 1e6:.2f}M trainable LoRA), {figures['device']}, "
          f"{g['torch_threads']} torch thread(s), "
          f"{args.steps} steps x batch {args.batch_size}; mean example "
          f"{g['mean_example_tokens']:.0f} tokens, max {g['max_example_tokens']}")
    print(f"{'':>26}  {'grouped':>10} {'ungrouped':>10}  grouped/ungrouped")
    row("tokens/s", "tokens_per_s", ".1f", ratios["tokens_per_s"])
    if "tokens_per_s_after_first_step" in ratios:
        row("tokens/s after 1st step", "tokens_per_s_after_first_step", ".1f",
            ratios["tokens_per_s_after_first_step"])
    row("padded positions/s", "padded_positions_per_s", ".1f",
        g["padded_positions_per_s"] / u["padded_positions_per_s"])
    row("examples/s", "examples_per_s", ".2f", ratios["examples_per_s"])
    row("padding share (all)", "padding_share", ".1%", ratios["padding_share"])
    row("padding share batch mean", "padding_share_batch_mean", ".1%")
    row("padding share batch max", "padding_share_batch_max", ".1%")
    row("padded seq len (mean)", "batch_seq_len_mean", ".1f")
    row("real tokens", "tokens_seen", "d")
    row("train runtime (s)", "train_runtime_s", ".1f")
    row(mem_name, mem_key, ".3f", ratios["peak_memory"])
    print(f"padding share with grouping: {g['padding_share']:.1%} "
          f"({'meets' if figures['target_met'] else 'MISSES'} the < 20% target)")
    if load:
        print(f"load average (1/5/15 min) at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
              f"on {os.cpu_count()} CPUs")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if args.workdir is None:  # our own temp folder: model, pictures, adapters
        shutil.rmtree(work, ignore_errors=True)
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
