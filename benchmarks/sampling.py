"""Sampling throughput: the ``hf`` engine against a one-request-at-a-time generate loop.

Measured side by side in one run, on the same model and the same shapes problems:

* **loop**: what lmms-eval's built-in wrappers do per request: process one prompt, call
  ``generate`` once, and repeat the whole thing for each of the N samples;
* **engine**: :class:`r3v_eval.engines.hf.HFEngine`: batches of prompts with left padding,
  N samples per prompt in one call (each sample a row with its own seeded random stream);
* **majority@N vs select@N**: majority vote costs the N samples; selection costs the same
  samples plus one greedy pass over the self-select prompt.

End-of-sequence is disabled so every completion runs exactly ``--max-new-tokens`` tokens:
both sides then do the same amount of decoding, and an untrained model's early stops
cannot flatter either side.

    python benchmarks/sampling.py                       # tiny 'small' Qwen2-VL on CPU
    python benchmarks/sampling.py --model PATH --device cuda --problems 64
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def disable_eos(engine) -> None:
    """Every completion then runs to max_new_tokens: no early stop can flatter a side."""
    engine.model.generation_config.eos_token_id = None


def one_at_a_time(engine, requests, n: int, max_new_tokens: int, temperature: float) -> int:
    """The plain loop: one prompt, one sample per generate call."""
    import torch

    tok = engine.processor.tokenizer
    made = 0
    for req in requests:
        inputs = engine.encode([req])
        for _ in range(n):
            with torch.inference_mode():
                engine.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=True,
                                      temperature=temperature, top_p=0.95, top_k=50,
                                      pad_token_id=tok.pad_token_id)
            made += 1
    return made


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: build a tiny 'small' Qwen2-VL)")
    ap.add_argument("--size", default="small", choices=["tiny", "small"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--problems", type=int, default=24)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--select-tokens", type=int, default=8,
                    help="tokens decoded for the select answer (the bare final answer)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    import torch

    from r3v_eval import prompts, strategies
    from r3v_eval.benchmarks import get_benchmark
    from r3v_eval.engines.base import GenRequest, Sampling
    from r3v_eval.engines.hf import HFEngine

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model_path = args.model
    if model_path is None:
        from r3v_train.tiny import build_tiny_model

        model_path = str(build_tiny_model("qwen2_vl", Path(tempfile.mkdtemp()) / "m", size=args.size))
    engine = HFEngine(model_path, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    disable_eos(engine)

    bench = get_benchmark("shapes")
    problems = bench.load("test", limit=args.problems)
    requests = [GenRequest(prompts.cot_prompt(bench, p), p.load_image()) for p in problems]
    sampling = Sampling(n=args.n, temperature=0.9, top_p=0.95, top_k=50,
                        max_new_tokens=args.max_new_tokens, seed=0)

    # warm-up (first-call overheads)
    engine.generate(requests[:2], Sampling(n=1, temperature=0.9, max_new_tokens=4), progress=False)

    t0 = time.perf_counter()
    made = one_at_a_time(engine, requests, args.n, args.max_new_tokens, 0.9)
    t_loop = time.perf_counter() - t0

    t0 = time.perf_counter()
    cands = engine.generate(requests, sampling, progress=False)
    t_engine = time.perf_counter() - t0
    assert sum(len(c) for c in cands) == made

    # majority@N costs the samples; select@N adds one greedy pass over the select prompt.
    # A trained model answers it with the bare answer (a few tokens, then end-of-turn); with
    # EOS disabled the pass is capped at --select-tokens so it decodes what a trained one would.
    t0 = time.perf_counter()
    strategies.majority(bench, problems, cands)
    t_vote = time.perf_counter() - t0
    t0 = time.perf_counter()
    strategies.select(engine, bench, problems, cands, max_new_tokens=args.select_tokens,
                      progress=False)
    t_select_pass = time.perf_counter() - t0

    figures = {
        "device": args.device,
        "model": "tiny-" + args.size if args.model is None else args.model,
        "problems": len(problems),
        "n": args.n,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "loop_samples_per_s": made / t_loop,
        "engine_samples_per_s": made / t_engine,
        "engine_speedup": t_loop / t_engine,
        "majority_s": t_engine + t_vote,
        "select_s": t_engine + t_select_pass,
        "select_over_majority": (t_engine + t_select_pass) / (t_engine + t_vote),
    }
    print(f"{'one-at-a-time loop':>22}: {figures['loop_samples_per_s']:8.1f} samples/s")
    print(f"{'hf engine':>22}: {figures['engine_samples_per_s']:8.1f} samples/s")
    print(f"{'speed-up':>22}: {figures['engine_speedup']:8.2f}x   (target >= 3x at N=3)")
    print(f"{'majority@' + str(args.n):>22}: {figures['majority_s']:8.2f} s")
    print(f"{'select@' + str(args.n):>22}: {figures['select_s']:8.2f} s")
    print(f"{'select / majority':>22}: {figures['select_over_majority']:8.2f}x  (target <= 1.5x)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
