"""GPU evidence (issue 15): real-size decode throughput against the memory roofline, and
real-size LoRA training steps, in one prepared run.

Per backbone (Qwen2-VL-2B and Qwen2.5-VL-3B, built from their hub config.json values with random
weights by :func:`real_size.build_real_size_model`, around r3v's offline stand-in tokenizer and
the Qwen chat-template format; nothing is downloaded; the recipes' ``max_pixels`` 401,408 and
real-size pictures from :mod:`real_size`):

1. **Decode.** ``--prompts`` chart CoT prompts x N = 3 samples x ``--new-tokens`` (384, the
   recipes' ``max_new_tokens``) through the product's ``hf`` engine
   (:class:`r3v_eval.engines.hf.HFEngine`, loaded with ``--device`` / ``--dtype``, the paper's
   sampling: temperature 0.9, top-p 0.95, top-k 50), end-of-sequence disabled as in
   ``sampling.py`` so every row decodes exactly the same number of tokens, at each of
   ``--batch-sizes`` (prompts per ``generate`` call; rows = prompts x 3). Each batch size runs
   the same prompts in full twice, then with one new token (the prefill alone); the difference
   of the second full pass's and the one-token pass's ``generate`` times is the decode time. The
   first full pass is timed too and kept under ``cold_pass``: on the H200 every shape seen for
   the first time (each decode step's context length) cost host work, and the first pass ran
   2-3x slower than the same pass repeated (``--no-warm-pass`` skips the repeat). Figures:
   tokens/s end to end (all new tokens / the engine's wall time), decode tokens/s, milliseconds
   per decode step, and the **share of the memory-bandwidth roofline**: the bytes a decode step
   must read (the language model's weights, tied embeddings counted once as the output head,
   plus the KV cache at the step's context length: layers x 2 x KV heads x head dim x dtype
   bytes x tokens x rows, padding included) summed over the steps, per second of decode time,
   divided by the bandwidth **measured in this run** (a large device-to-device tensor copy,
   bytes read and written; a memcpy on CPU). Target: >= 50% at the best batch size.
2. **Training.** ``--train-steps`` LoRA steps of ``r3v_train.trainer.train_sft`` (the project's
   TRL path with its :class:`TrainSettings`: LoRA r=64 on the language model, gradient
   checkpointing, length grouping, bf16 on a GPU) on R3V's longest example kind, a self-select
   prompt over three full-length candidates (:func:`real_size.longest_example`), pictures cycling
   through the four real sizes. Figures: tokens/s (real tokens over the whole ``trainer.train``,
   and after the first step), padding share, peak GPU memory (``max_memory_allocated``; "n/a
   (CPU)" on CPU).

Everything, with the device's name, the package versions and the settings, goes to
``gpu_<device-slug>.json`` in ``--out-dir`` (``benchmarks/results/`` by default on CUDA) or to
``--out``; the file is rewritten after every part, so a run cut short keeps what it measured.
A part that fails is reported (``failures``; exit status 1) and the run goes on with the next.
Parts not started because ``--budget-s`` was spent are listed under ``skipped``.

Time: the defaults (32 prompts at batch sizes 8 and 32, i.e. 24 and 96 rows; 5 training steps of
8 examples) are sized to finish in <= 8 minutes on one H200, with ``--budget-s 420`` as a guard
(``gpu_run.sh`` passes it). Measured on one H200 (2026-11-30, before the repeated pass was
added): 295 s in all; per backbone a 10-15 s build, 86-100 s of cold decode passes and 19 s of
training; the repeated passes add about 2 minutes. Results and what they showed:
``benchmarks/results/GPU.md``.

On CPU the same script runs with the tiny random-weight models of the same architectures
(``--tiny tiny|small``, :func:`r3v_train.tiny.build_tiny_model`), which is how the test suite
runs it (``tests/test_bench_gpu.py``)::

    python benchmarks/gpu.py --device cuda --dtype bfloat16              # real size, one GPU
    python benchmarks/gpu.py --tiny tiny --prompts 2 --batch-sizes 1 2 --new-tokens 8 \\
        --train-steps 2 --train-batch-size 2 --out-dir /tmp/gpu           # a CPU smoke run

Set-up on the GPU machine that may be lent (Python 3.12, torch 2.11, transformers 5.17, peft,
accelerate, torchvision, pyarrow, pandas, xxhash installed; no network): trl and datasets and
their pure-Python needs that are missing there, dill and multiprocess, travel as wheels, the
versions pinned in ``constraints.txt`` (1.74 MiB together, measured). Here, in the repository
root (``wheels/`` is git-ignored)::

    python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux2014_x86_64 -d wheels \\
        trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19

then on the GPU machine, with ``wheels`` carried along: ``bash benchmarks/gpu_run.sh``. It
installs the wheels (``pip install --no-index --no-deps --target``) when trl is missing, checks
what datasets needs of the installed pyarrow (>= 24), fsspec (<= 2026.9.0) and huggingface_hub
(>= 1.31), and runs this script with ``--budget-s 420`` into ``$OUT``. vLLM cannot be measured
there: its CUDA wheels are hundreds of MB, over the 64 MiB that can travel.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import platform
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCHMARKS))

from real_size import (  # noqa: E402  (sibling benchmark scripts)
    CANDIDATE_TOKENS,
    PICTURES,
    REAL_CONFIGS,
    build_real_size_model,
    chart_problem,
    longest_example,
    recipe_max_pixels,
)
from sampling import disable_eos  # noqa: E402
from training import steady_tokens_per_s, step_probe  # noqa: E402

TARGET_ROOFLINE_SHARE = 0.5
NOT_ON_CPU = "n/a (CPU)"
VLLM_NOTE = ("not measured: vLLM's CUDA wheels (hundreds of MB) cannot travel to the lent GPU "
             "machine (64 MiB of wheels at most, no network); the vllm engine stays tested at "
             "its boundary (tests/test_vllm_engine.py)")
#: the packages whose versions the figures are recorded with
VERSIONS_OF = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "tokenizers")


# ============================================================================ the device
def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def device_slug(device: str, name: str, tiny: str | None) -> str:
    """``nvidia-h200``; on CPU ``cpu`` (``cpu_tiny`` / ``cpu_small`` with tiny models)."""
    if device.startswith("cuda"):
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    else:
        slug = "cpu"
    return f"{slug}_{tiny}" if tiny else slug


def git_commit() -> str | None:
    """The checked-out commit of this repository (None where there is no git history)."""
    import subprocess

    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def synchronize(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def copy_bandwidth(device: str, nbytes: int, repeats: int = 10) -> dict:
    """Bytes per second moved by a device-to-device copy of ``nbytes`` (a memcpy on CPU),
    counting the bytes read and the bytes written, as memory bandwidth is quoted."""
    import torch

    src = torch.ones(nbytes, dtype=torch.uint8, device=device)
    dst = torch.zeros_like(src)
    for _ in range(3):
        dst.copy_(src)
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    synchronize(device)
    seconds = time.perf_counter() - t0
    del src, dst
    return {"bytes_per_s": 2 * nbytes * repeats / seconds, "copy_bytes": nbytes,
            "repeats": repeats, "seconds": seconds}


def peak_memory_gib(device: str) -> float | str:
    import torch

    if torch.device(device).type == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return NOT_ON_CPU


def reset_peak_memory(device: str) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def free_memory(device: str) -> None:
    import torch

    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


# ============================================================================ decode
def decode_weight_bytes(model) -> int:
    """Bytes of the weights every decode step reads: the language model and its output head,
    the vision tower left out (it runs in the prefill only); an untied input embedding is left
    out too (a step looks up one row of it per sequence), a tied one counts once as the head."""
    from r3v_train.stage import is_vision_param

    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    total = 0
    for name, p in model.named_parameters():  # shared tensors are listed once
        if is_vision_param(name) or (p is embed and head is not embed):
            continue
        total += p.numel() * p.element_size()
    return total


def kv_bytes_per_token(config, dtype_bytes: int) -> int:
    """KV-cache bytes one token position holds over all layers: layers x 2 (K and V) x KV heads x
    head dim x dtype bytes."""
    text = getattr(config, "text_config", config)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return text.num_hidden_layers * 2 * text.num_key_value_heads * head_dim * dtype_bytes


class GenerateLog:
    """Inside ``with``: every ``model.generate`` call (the engine makes one per batch) is timed,
    the device synchronised on both sides, and its rows, prompt length (padded) and new tokens
    recorded."""

    def __init__(self, model, device) -> None:
        self.model, self.device = model, device
        self.calls: list[dict] = []

    def __enter__(self) -> "GenerateLog":
        generate = self.model.generate

        def timed(*args, **kwargs):
            synchronize(self.device)
            t0 = time.perf_counter()
            out = generate(*args, **kwargs)
            synchronize(self.device)
            prompt = int(kwargs["input_ids"].shape[1])
            self.calls.append({"rows": int(out.shape[0]), "prompt_tokens": prompt,
                               "new_tokens": int(out.shape[1]) - prompt,
                               "seconds": time.perf_counter() - t0})
            return out

        self.model.generate = timed  # an instance attribute over the class's method
        return self

    def __exit__(self, *exc) -> None:
        del self.model.generate


def decode_step_bytes(calls: list[dict], weight_bytes: int, kv_token_bytes: int) -> int:
    """Bytes read by the decode steps of ``calls`` (the prefill left out): the k-th step after
    the prefill reads the weights and the cache of prompt + k positions of every row."""
    total = 0
    for c in calls:
        steps, rows, prompt = c["new_tokens"] - 1, c["rows"], c["prompt_tokens"]
        positions = steps * prompt + steps * (steps + 1) // 2
        total += steps * weight_bytes + kv_token_bytes * rows * positions
    return total


def decode_requests(count: int):
    """``count`` CoT prompts on charts of the four real picture sizes in turn."""
    from r3v_eval import prompts
    from r3v_eval.engines.base import GenRequest

    sizes = list(PICTURES.values())
    out = []
    for i in range(count):
        bench, problem = chart_problem(sizes[i % len(sizes)], i)
        out.append(GenRequest(prompts.cot_prompt(bench, problem, "qwen2"), problem.image))
    return out


def measure_decode(folder: Path, args, bandwidth: float, max_pixels: int, budget,
                   texts: dict | None = None) -> dict:
    from r3v_eval.engines.base import PAPER_SAMPLING, Sampling
    from r3v_eval.engines.hf import HFEngine

    engine = HFEngine(str(folder), device=args.device, dtype=args.dtype, max_pixels=max_pixels,
                      batch_size=max(args.batch_sizes))
    disable_eos(engine)
    model = engine.model
    dtype_bytes = next(model.parameters()).element_size()
    weight_bytes = decode_weight_bytes(model)
    kv_token = kv_bytes_per_token(model.config, dtype_bytes)
    requests = decode_requests(args.prompts)
    sampling = dataclasses.replace(PAPER_SAMPLING, max_new_tokens=args.new_tokens, seed=args.seed)
    prefill_only = dataclasses.replace(sampling, max_new_tokens=1)
    engine.generate(requests[:1], Sampling(n=1, temperature=0.9, max_new_tokens=4),
                    progress=False)  # first-call overheads (kernels, allocator) left out
    out = {"dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
           "weight_bytes_per_step": weight_bytes, "kv_cache_bytes_per_token": kv_token,
           "prompts": len(requests), "n": sampling.n, "new_tokens": args.new_tokens,
           "sampling": dataclasses.asdict(sampling), "batches": []}
    for batch_size in args.batch_sizes:
        if budget.spent(f"decode at batch size {batch_size}"):
            continue
        engine.batch_size = batch_size
        reset_peak_memory(args.device)
        passes = []  # (generate calls, wall seconds) of each full pass: cold first, then warm
        for _ in range(1 if args.no_warm_pass else 2):
            with GenerateLog(model, engine.device) as full:
                t0 = time.perf_counter()
                completions = engine.generate(requests, sampling, progress=False)
                passes.append((full.calls, time.perf_counter() - t0))
        if texts is not None:  # for the graph path's token agreement
            texts[batch_size] = completions
        with GenerateLog(model, engine.device) as prefill:
            engine.generate(requests, prefill_only, progress=False)
        calls, wall = passes[-1]
        figures = decode_figures(batch_size, prefill.calls, calls, wall, weight_bytes, kv_token,
                                 bandwidth, args)
        if len(passes) == 2:
            figures["cold_pass"] = cold_pass_figures(passes[0], prefill.calls, figures, bandwidth)
        figures["peak_gpu_memory_gib"] = peak_memory_gib(args.device)
        out["batches"].append(figures)
    del engine, model
    if out["batches"]:
        best = max(out["batches"], key=lambda b: b["roofline_share"])
        out["best"] = {"batch_size": best["batch_size"], "roofline_share": best["roofline_share"],
                       "target": TARGET_ROOFLINE_SHARE,
                       "target_met": best["roofline_share"] >= TARGET_ROOFLINE_SHARE}
    return out


def decode_seconds(full: list[dict], prefill: list[dict]) -> float:
    """Decode time of a full pass: its ``generate`` seconds minus the one-token pass's."""
    return sum(c["seconds"] for c in full) - sum(c["seconds"] for c in prefill)


def per_step_ms(decode_s: float, steps: int) -> float | None:
    """Milliseconds per decode step, or None when the full pass took no longer than the
    one-token pass (noise larger than the decode time: decode more tokens), never a negative
    or zero figure reported as a speed."""
    return 1000 * decode_s / steps if decode_s > 0 and steps > 0 else None


def cold_pass_figures(cold: tuple[list[dict], float], prefill: list[dict], warm: dict,
                      bandwidth: float) -> dict:
    """The first full pass at a batch size, timed like the warm one: on a GPU each new shape
    (every decode step's context length) costs host work the first time it is seen (an H200
    ran the first pass 2-3x slower than the same pass repeated), so a cold pass understates
    what steady sampling reaches."""
    calls, wall = cold
    decode_s = decode_seconds(calls, prefill)
    ms = per_step_ms(decode_s, warm["decode_steps"])  # None: noise outweighed the decode time
    return {"wall_s": wall, "decode_s": decode_s, "ms_per_decode_step": ms,
            "roofline_share": warm["bytes_read_by_decode_steps"] / decode_s / bandwidth
            if ms is not None else None}


def decode_figures(batch_size: int, prefill: list[dict], full: list[dict], wall: float,
                   weight_bytes: int, kv_token: int, bandwidth: float, args) -> dict:
    """The figures of one batch size from its prefill-only and its full ``generate`` calls."""
    expected = args.prompts * 3 * args.new_tokens
    decoded = sum(c["rows"] * c["new_tokens"] for c in full)
    if decoded != expected:
        raise RuntimeError(f"batch size {batch_size}: {decoded} tokens decoded, expected "
                           f"{expected} (prompts x 3 x new tokens): did a row stop early?")
    shapes = [(c["rows"], c["prompt_tokens"]) for c in full]
    if shapes != [(c["rows"], c["prompt_tokens"]) for c in prefill]:
        raise RuntimeError(f"batch size {batch_size}: the prefill-only pass batched the prompts "
                           "differently from the full pass")
    decode_s = decode_seconds(full, prefill)
    steps = sum(c["new_tokens"] - 1 for c in full)
    if decode_s <= 0:
        raise RuntimeError(f"batch size {batch_size}: the full pass took no longer than the "
                           f"prefill-only pass ({decode_s:.4f} s); decode more tokens")
    step_bytes = decode_step_bytes(full, weight_bytes, kv_token)
    achieved = step_bytes / decode_s
    figures = {
        "batch_size": batch_size,
        "rows_per_call": max(c["rows"] for c in full),
        "generate_calls": len(full),
        "prompt_tokens_per_call": [c["prompt_tokens"] for c in full],
        "decoded_tokens": decoded,
        "wall_s": wall,
        "tokens_per_s": decoded / wall,
        "prefill_s": sum(p["seconds"] for p in prefill),
        "decode_s": decode_s,
        "decode_steps": steps,
        "decode_tokens_per_s": sum(c["rows"] * (c["new_tokens"] - 1) for c in full) / decode_s,
        "ms_per_decode_step": 1000 * decode_s / steps,
        "bytes_read_by_decode_steps": step_bytes,
        "roofline_ms_per_decode_step": 1000 * step_bytes / steps / bandwidth,
        "achieved_bytes_per_s": achieved,
        "roofline_share": achieved / bandwidth,
    }
    print(f"    batch {batch_size:>3} prompts ({figures['rows_per_call']} rows): "
          f"{figures['tokens_per_s']:9.1f} tokens/s end to end, "
          f"{figures['decode_tokens_per_s']:9.1f} decode tokens/s, "
          f"{figures['ms_per_decode_step']:7.2f} ms/step (roofline "
          f"{figures['roofline_ms_per_decode_step']:.2f}): "
          f"{figures['roofline_share']:.1%} of the roofline", flush=True)
    return figures


# ============================================================================ decode: graph
#: the decode paths ``--decode-paths`` can time side by side (``graph-compiled``: the graph path
#: with its step compiled by inductor inside the capture; its compile time is reported)
DECODE_PATHS = ("generate", "graph", "graph-compiled")


def common_prefix(a: list[int], b: list[int]) -> int:
    k = 0
    for x, y in zip(a, b):
        if x != y:
            break
        k += 1
    return k


def token_agreement(tokenizer, reference: list[list[str]], got: list[list[str]]) -> dict:
    """How far two runs' completions of the same requests and seeds agree: the share of
    samples that are identical, and the mean share of each reference sample's tokens that the
    other run reproduces before it first differs."""
    same, shares = 0, []
    for ref_req, got_req in zip(reference, got):
        for ref, mine in zip(ref_req, got_req):
            same += ref == mine
            a = tokenizer(ref, add_special_tokens=False)["input_ids"]
            b = tokenizer(mine, add_special_tokens=False)["input_ids"]
            shares.append(common_prefix(a, b) / max(len(a), 1))
    return {"samples": len(shares), "identical_share": same / max(len(shares), 1),
            "mean_common_prefix_share": sum(shares) / max(len(shares), 1)}


def measure_graph_decode(folder: Path, args, bandwidth: float, max_pixels: int, budget,
                         reference: dict, compiled: bool = False) -> dict:
    """The ``hf`` engine with ``decode="graph"`` on the same prompts, seeds and batch sizes as
    :func:`measure_decode`: a cold pass (the static caches made, and on a GPU each step shape
    captured as a CUDA graph, compiled first with ``compiled``), then a warm pass that only
    replays. The decoder times its prefill and its decode steps itself (device synchronised
    around each), so ms per step is decode time / steps. The roofline share counts the bytes
    generate's figures count (weights + the cache up to each step's context), so the two paths
    compare; ``padded_roofline_share`` counts what the static cache's attention reads (the
    whole length bucket). Token agreement is against generate's completions at the same batch
    size (``reference``), in the run's dtype."""
    from r3v_eval.engines.base import PAPER_SAMPLING
    from r3v_eval.engines.hf import HFEngine

    engine = HFEngine(str(folder), device=args.device, dtype=args.dtype, max_pixels=max_pixels,
                      batch_size=max(args.batch_sizes), decode="graph")
    disable_eos(engine)
    decoder = engine.graph_decoder()
    decoder.timing, decoder.max_slots = True, 8
    decoder.compile = bool(compiled)
    model = engine.model
    dtype_bytes = next(model.parameters()).element_size()
    weight_bytes = decode_weight_bytes(model)
    kv_token = kv_bytes_per_token(model.config, dtype_bytes)
    requests = decode_requests(args.prompts)
    sampling = dataclasses.replace(PAPER_SAMPLING, max_new_tokens=args.new_tokens, seed=args.seed)
    out = {"path": "graph-compiled" if compiled else "graph",
           "cuda_graph": decoder.cuda_graph, "check_every": decoder.check_every,
           "length_bucket": decoder.bucket, "batches": []}
    for batch_size in args.batch_sizes:
        if budget.spent(f"graph decode at batch size {batch_size}"):
            continue
        engine.batch_size = batch_size
        decoder.slots.clear()
        free_memory(args.device)
        reset_peak_memory(args.device)
        passes = []
        for _ in range(2):  # cold (makes and captures the slots), then warm (replays)
            first = len(decoder.stats)
            t0 = time.perf_counter()
            completions = engine.generate(requests, sampling, progress=False)
            passes.append((decoder.stats[first:], time.perf_counter() - t0, completions))
        (cold, cold_wall, _), (warm, wall, completions) = passes
        if not warm or sum(st.rows for st in warm) != args.prompts * sampling.n:
            raise RuntimeError(f"batch size {batch_size}: the graph path did not serve every "
                               "batch (it fell back to generate; see the log)")
        steps = sum(st.steps for st in warm)
        if any(st.steps != args.new_tokens - 1 for st in warm):
            raise RuntimeError(f"batch size {batch_size}: a call stopped before "
                               f"{args.new_tokens} tokens")
        decode_s = sum(st.decode_s for st in warm)
        calls = [{"rows": st.rows, "prompt_tokens": st.prompt_tokens, "new_tokens": st.steps + 1}
                 for st in warm]
        step_bytes = decode_step_bytes(calls, weight_bytes, kv_token)
        padded = sum(st.steps * (weight_bytes + kv_token * st.rows * st.length) for st in warm)
        decoded = sum(st.rows * (st.steps + 1) for st in warm)
        figures = {
            "batch_size": batch_size, "rows_per_call": max(st.rows for st in warm),
            "calls": len(warm), "prompt_tokens_per_call": [st.prompt_tokens for st in warm],
            "cache_length_per_call": [st.length for st in warm],
            "decoded_tokens": decoded, "wall_s": wall, "tokens_per_s": decoded / wall,
            "prefill_s": sum(st.prefill_s for st in warm), "decode_s": decode_s,
            "decode_steps": steps,
            "decode_tokens_per_s": sum(st.rows * st.steps for st in warm) / decode_s,
            "ms_per_decode_step": per_step_ms(decode_s, steps),
            "bytes_read_by_decode_steps": step_bytes,
            "roofline_share": step_bytes / decode_s / bandwidth,
            "padded_roofline_share": padded / decode_s / bandwidth,
            "captured": all(st.captured for st in warm),
            "cold_pass": {"wall_s": cold_wall,
                          "decode_s": sum(st.decode_s for st in cold),
                          "slots_made": sum(st.new_slot for st in cold),
                          "capture_s": sum(st.capture_s or 0 for st in cold),
                          "warmup_and_compile_s": sum(st.warmup_s or 0 for st in cold)},
            "peak_gpu_memory_gib": peak_memory_gib(args.device),
        }
        if batch_size in reference:
            figures["agreement_with_generate"] = token_agreement(
                engine.processor.tokenizer, reference[batch_size], completions)
        print(f"    [{out['path']}] batch {batch_size:>3} prompts "
              f"({figures['rows_per_call']} rows): "
              f"{figures['tokens_per_s']:9.1f} tokens/s end to end, "
              f"{figures['ms_per_decode_step']:7.2f} ms/step: {figures['roofline_share']:.1%} "
              f"of the roofline; capture {figures['cold_pass']['capture_s']:.2f} s"
              + (f"; identical samples {figures['agreement_with_generate']['identical_share']:.0%}"
                 if "agreement_with_generate" in figures else ""), flush=True)
        out["batches"].append(figures)
    decoder.slots.clear()
    del engine, model, decoder
    if out["batches"]:
        best = max(out["batches"], key=lambda b: b["roofline_share"])
        out["best"] = {"batch_size": best["batch_size"], "roofline_share": best["roofline_share"],
                       "target": TARGET_ROOFLINE_SHARE,
                       "target_met": best["roofline_share"] >= TARGET_ROOFLINE_SHARE}
    return out


# ============================================================================ training
def training_examples(tokenizer, count: int, candidate_tokens: int) -> list[dict]:
    """``count`` self-select examples over three full-length candidates, pictures cycling
    through the four real sizes."""
    sizes = list(PICTURES.values())
    rows = []
    for i in range(count):
        ex = longest_example(tokenizer, sizes[i % len(sizes)], i, candidate_tokens)
        rows.append({"prompt": ex["prompt"], "completion": ex["completion"], "image": ex["image"]})
    return rows


def measure_training(folder: Path, args, max_pixels: int, work: Path) -> dict:
    from r3v_eval.engines.hf import load_processor
    from r3v_train.train_settings import TrainSettings
    from r3v_train.trainer import train_sft

    tokenizer = load_processor(str(folder)).tokenizer
    rows = training_examples(tokenizer, args.train_steps * args.train_batch_size,
                             args.candidate_tokens)
    settings = TrainSettings(max_steps=args.train_steps,
                             per_device_train_batch_size=args.train_batch_size,
                             max_pixels=max_pixels, seed=args.seed, save_strategy="no",
                             logging_steps=args.train_steps)
    probe, per_batch, step_ends = step_probe()
    result = train_sft(folder, rows, work / "train_out", settings, progress=False,
                       callbacks=[probe])
    m = result.metrics
    gpu = m["peak_gpu_memory_gb"]
    figures = {
        "examples": len(rows), "steps": m["global_step"],
        "per_device_train_batch_size": m["per_device_train_batch_size"],
        "gradient_checkpointing": settings.gradient_checkpointing,
        "group_by_length": settings.group_by_length, "bf16": m["bf16"],
        "lora_r": settings.lora_r, "trainable_params": m["trainable_params"],
        "total_params": m["total_params"], "mean_example_tokens": m["mean_example_tokens"],
        "max_example_tokens": m["max_example_tokens"], "tokens_seen": m["tokens_seen"],
        "padded_positions": m["padded_positions"], "train_runtime_s": m["train_runtime_s"],
        "tokens_per_s": m["tokens_per_s"],
        "tokens_per_s_after_first_step": steady_tokens_per_s(
            per_batch, step_ends, m["gradient_accumulation_steps"]),
        "padding_share": m["padding_share"],
        "peak_gpu_memory_gib": NOT_ON_CPU if gpu is None else gpu,
        "peak_rss_gib": m["peak_rss_gb"], "train_loss": m["train_loss"],
    }
    after = figures["tokens_per_s_after_first_step"]
    print(f"    {figures['steps']} LoRA steps x {figures['per_device_train_batch_size']} "
          f"examples (mean {figures['mean_example_tokens']:.0f}, max "
          f"{figures['max_example_tokens']} tokens): {figures['tokens_per_s']:.1f} tokens/s"
          + (f" ({after:.1f} after the first step)" if after else "")
          + f", padding share {figures['padding_share']:.1%}, peak GPU memory "
          + (f"{gpu:.2f} GiB" if gpu is not None else NOT_ON_CPU), flush=True)
    return figures


# ============================================================================ driver
class Budget:
    """Wall-clock guard: a part not started because the budget is spent is listed in
    ``skipped``, never silently dropped."""

    def __init__(self, seconds: float, skipped: list[dict]) -> None:
        self.seconds, self.skipped, self.start = seconds, skipped, time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def spent(self, part: str) -> bool:
        if self.seconds and self.elapsed() > self.seconds:
            self.skipped.append({"part": part, "reason": f"budget of {self.seconds:g} s spent "
                                                         f"({self.elapsed():.0f} s elapsed)"})
            print(f"  SKIPPED {part}: {self.skipped[-1]['reason']}", flush=True)
            return True
        return False


def build_model_folder(name: str, args, folder: Path) -> dict:
    """The checkpoint folder of ``name``: the tiny model of its architecture (``--tiny``) or its
    real-size random-weight model saved around the stand-in processor."""

    from r3v_eval.engines.hf import resolve_dtype
    from r3v_train.tiny import build_tiny_model, tiny_model_info

    arch = REAL_CONFIGS[name]["arch"]
    t0 = time.perf_counter()
    build_tiny_model(arch, folder, size=args.tiny or "tiny", seed=args.seed)
    if not args.tiny:
        model = build_real_size_model(name, folder, device=args.device,
                                      dtype=resolve_dtype(args.dtype, args.device),
                                      seed=args.seed, save=True)
        del model
        free_memory(args.device)
    info = tiny_model_info(folder)
    return {"arch": arch, "model": f"tiny-{args.tiny}-{arch}" if args.tiny else f"real-{name}",
            "parameters": info["num_parameters"], "build_s": time.perf_counter() - t0,
            "seed": args.seed}


def run_part(results: dict, part: str, fn, *fn_args):
    """Run one part; a failure is recorded (and printed), and the run goes on."""
    try:
        return fn(*fn_args)
    except Exception as exc:  # noqa: BLE001 -- reported in the figures, exit status 1
        traceback.print_exc()
        results["failures"].append({"part": part, "error": f"{type(exc).__name__}: {exc}"})
        return None


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbones", nargs="+", default=list(REAL_CONFIGS), choices=list(REAL_CONFIGS))
    ap.add_argument("--tiny", choices=("tiny", "small"), default=None,
                    help="the tiny model of each backbone's architecture instead of its real "
                         "size (CPU runs and the test suite)")
    ap.add_argument("--device", default="cuda", help="cuda | cpu (default cuda)")
    ap.add_argument("--dtype", default="auto", help="auto (bfloat16 on a GPU, float32 on CPU), "
                    "bfloat16, float32")
    ap.add_argument("--prompts", type=int, default=32, help="decode prompts (x 3 samples)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32],
                    help="prompts per generate call (rows = 3 x this)")
    ap.add_argument("--new-tokens", type=int, default=384, help="tokens decoded per sample")
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--train-batch-size", type=int, default=8)
    ap.add_argument("--candidate-tokens", type=int, default=CANDIDATE_TOKENS,
                    help="tokens per select candidate in the training examples")
    ap.add_argument("--max-pixels", type=int, default=None,
                    help="image budget (default: the backbone recipe's, 401,408)")
    ap.add_argument("--copy-mib", type=int, default=None,
                    help="bandwidth copy size (default 4096 MiB on a GPU, 256 on CPU)")
    ap.add_argument("--budget-s", type=float, default=0,
                    help="start no new part after this many seconds (0: no limit)")
    ap.add_argument("--no-warm-pass", action="store_true",
                    help="one full decode pass per batch size (by default there are two: the "
                         "first, cold, one's figures are kept under cold_pass and the repeated "
                         "pass is the one reported)")
    ap.add_argument("--decode-paths", nargs="+", default=["generate", "graph"],
                    choices=DECODE_PATHS,
                    help="the hf engine's decode paths to time side by side (graph-compiled: "
                         "the graph path's step compiled by inductor; compile time reported)")
    ap.add_argument("--skip-decode", action="store_true")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a fresh temp folder")
    ap.add_argument("--out", type=Path, default=None, help="write the figures to this file")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="write gpu_<device-slug>.json here (default on CUDA: benchmarks/results)")
    return ap


def check_args(args) -> None:
    from r3v_eval.engines.hf import resolve_device

    try:
        args.device = resolve_device(args.device)
    except ValueError as exc:  # CUDA asked for and absent
        raise SystemExit(f"--device {args.device}: {exc}; on CPU use --device cpu --tiny tiny")
    if not args.tiny and not args.device.startswith("cuda"):
        raise SystemExit("real-size models (2-4B parameters, 384 decoded tokens) need "
                         "--device cuda; on CPU use --tiny tiny|small")
    for key in ("prompts", "new_tokens", "train_steps", "train_batch_size", "candidate_tokens"):
        if getattr(args, key) < 1:
            raise SystemExit(f"--{key.replace('_', '-')} must be >= 1")
    if args.new_tokens < 2:
        raise SystemExit("--new-tokens must be >= 2 (the decode time is the full pass minus the "
                         "one-token pass)")
    if any(b < 1 for b in args.batch_sizes):
        raise SystemExit("--batch-sizes must be >= 1")


def out_path(args, slug: str) -> Path | None:
    if args.out:
        return args.out
    if args.out_dir:
        return args.out_dir / f"gpu_{slug}.json"
    if args.device.startswith("cuda"):
        return ROOT / "benchmarks" / "results" / f"gpu_{slug}.json"
    return None


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    check_args(args)
    import torch

    from r3v_eval.provenance import installed_versions, write_json

    name = device_name(args.device)
    slug = device_slug(args.device, name, args.tiny)
    path = out_path(args, slug)
    copy_mib = args.copy_mib or (4096 if args.device.startswith("cuda") else 256)
    results: dict = {
        "device": args.device, "device_name": name, "device_slug": slug,
        "python": platform.python_version(), "torch_cuda": torch.version.cuda,
        "git_commit": git_commit(),
        "versions": installed_versions(VERSIONS_OF, missing="not installed"),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "torch_threads": torch.get_num_threads(), "vllm": VLLM_NOTE,
        "target_roofline_share": TARGET_ROOFLINE_SHARE,
        "backbones": {}, "skipped": [], "failures": [],
    }
    budget = Budget(args.budget_s, results["skipped"])

    def save() -> None:
        results["elapsed_s"] = budget.elapsed()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, results)

    print(f"device: {name} ({args.device}); torch {torch.__version__}, "
          + ", ".join(f"{k} {v}" for k, v in results["versions"].items() if k != "torch"),
          flush=True)
    bandwidth = copy_bandwidth(args.device, copy_mib * 2**20)
    results["bandwidth"] = bandwidth
    free_memory(args.device)  # the copy's buffers leave the allocator's cache
    print(f"measured bandwidth: {bandwidth['bytes_per_s'] / 1e9:.1f} GB/s "
          f"({copy_mib} MiB copied {bandwidth['repeats']}x, read + written)", flush=True)
    save()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="r3v_bench_gpu_"))
    for backbone in args.backbones:
        if budget.spent(f"{backbone}: all parts"):
            continue
        folder = work / backbone
        max_pixels = args.max_pixels or recipe_max_pixels(backbone)
        figures = results["backbones"][backbone] = {"max_pixels": max_pixels}
        built = run_part(results, f"{backbone}: build", build_model_folder, backbone, args, folder)
        if built is None:
            save()
            continue
        figures["model"] = built
        print(f"[{backbone}] {built['model']}: {built['parameters'] / 1e6:.1f}M parameters, "
              f"built in {built['build_s']:.1f} s", flush=True)
        save()
        texts: dict = {}  # generate's completions per batch size (graph agreement)
        if ("generate" in args.decode_paths and not args.skip_decode
                and not budget.spent(f"{backbone}: decode")):
            figures["decode"] = run_part(results, f"{backbone}: decode", measure_decode, folder,
                                         args, bandwidth["bytes_per_s"], max_pixels, budget, texts)
            free_memory(args.device)
            save()
        for path_name in ("graph", "graph-compiled"):
            if (path_name in args.decode_paths and not args.skip_decode
                    and not budget.spent(f"{backbone}: decode {path_name}")):
                figures[f"decode_{path_name.replace('-', '_')}"] = run_part(
                    results, f"{backbone}: decode {path_name}", measure_graph_decode, folder,
                    args, bandwidth["bytes_per_s"], max_pixels, budget, texts,
                    path_name == "graph-compiled")
                free_memory(args.device)
                save()
        if not args.skip_training and not budget.spent(f"{backbone}: training"):
            figures["training"] = run_part(results, f"{backbone}: training", measure_training,
                                           folder, args, max_pixels, folder)
            free_memory(args.device)
            save()
        if args.workdir is None:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)  # 4-8 GB of real-size weights
    save()
    for f in results["failures"]:
        print(f"FAIL {f['part']}: {f['error']}")
    print(f"done in {results['elapsed_s']:.0f} s" + (f"; figures in {path}" if path else ""))
    return results


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1:])["failures"] else 0)
