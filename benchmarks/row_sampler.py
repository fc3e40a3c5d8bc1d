"""The cost of picking one token: the ``hf`` engine's seeded per-row sampler against
transformers' own warpers, on logits of a real vocabulary, side by side in one run.

``decode_profile.py``'s first H200 run showed the engine's decode step twice as slow with
:class:`r3v_eval.engines.hf.RowSampler` as with greedy decoding or transformers' sampler (59 vs
27-29 ms per step at 24 rows on Qwen2-VL-2B). This times the sampler alone, and each of its
parts (on the H200: about 1 ms per call, so the sampler was not the cause; the first pass over
new shapes was, see ``benchmarks/results/GPU.md``), on ``--rows`` x ``--vocab`` random logits (151,936: the Qwen2 vocabulary), the device
synchronised around every timed loop:

* ``row_sampler``: the whole ``RowSampler.__call__`` (what the engine runs every step);
* its parts: temperature, top-k, top-p mask, the counter-based noise, Gumbel argmax, the one-hot
  scores it returns;
* ``then_transformers``: what transformers does with the returned scores (softmax, multinomial);
* ``transformers_warpers``: temperature + top-k + top-p warpers, softmax and multinomial, the
  built-in sampler's work per step.

    python benchmarks/row_sampler.py --device cuda
    python benchmarks/row_sampler.py --device cpu --rows 6 --repeats 3      # a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn, device: str, repeats: int) -> float:
    """Milliseconds per call of ``fn`` (after one warm-up call), the device synchronised."""
    import torch

    def sync() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return 1000 * (time.perf_counter() - t0) / repeats


def parts(sampler, scores):
    """The steps of ``RowSampler.__call__`` one by one (same order and arithmetic), so each
    can be timed alone; returns the callables and the intermediate tensors they need."""
    from r3v_eval.engines.sampler import uniform_noise

    logits = scores.float() / sampler.temperature
    values, ids = logits.topk(sampler.top_k, dim=-1)

    def top_p_mask():
        probs = values.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs
        return values.masked_fill(before >= sampler.top_p, float("-inf"))

    masked = top_p_mask()
    noise = uniform_noise(sampler.seeds, 0, ids)

    def gumbel_pick():
        import torch

        gumbel = -torch.log(-torch.log(noise))
        return ids.gather(-1, (masked.double() + gumbel).argmax(dim=-1, keepdim=True))

    token = gumbel_pick()

    def one_hot():
        import torch

        return torch.full_like(scores, float("-inf")).scatter_(-1, token, 0.0)

    return {
        "temperature": lambda: scores.float() / sampler.temperature,
        "top_k": lambda: logits.topk(sampler.top_k, dim=-1),
        "top_p_mask": top_p_mask,
        "noise": lambda: uniform_noise(sampler.seeds, 0, ids),
        "gumbel_pick": gumbel_pick,
        "one_hot_scores": one_hot,
    }, one_hot()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--rows", type=int, nargs="+", default=[24, 96])
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--profile", action="store_true",
                    help="also print torch.profiler's table of the whole sampler at the most rows")
    args = ap.parse_args(argv)
    import torch
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    from r3v_eval.engines.base import PAPER_SAMPLING
    from r3v_eval.engines.hf import RowSampler, resolve_device

    device = resolve_device(args.device)
    s = PAPER_SAMPLING
    warpers = LogitsProcessorList([TemperatureLogitsWarper(s.temperature),
                                   TopKLogitsWarper(s.top_k), TopPLogitsWarper(s.top_p)])
    out = {"device": device, "torch": torch.__version__, "vocab": args.vocab,
           "repeats": args.repeats, "sampling": {"temperature": s.temperature, "top_k": s.top_k,
                                                 "top_p": s.top_p}, "rows": {}}
    if torch.device(device).type == "cuda":
        out["device_name"] = torch.cuda.get_device_name()
    for rows in args.rows:
        g = torch.Generator(device=device).manual_seed(0)
        scores = torch.randn(rows, args.vocab, device=device, generator=g)
        input_ids = torch.zeros(rows, 1, dtype=torch.long, device=device)
        sampler = RowSampler(s, list(range(rows)), device)
        steps, returned = parts(sampler, scores)
        ms = {"row_sampler": timed(lambda: sampler(input_ids, scores), device, args.repeats)}
        ms.update({k: timed(f, device, args.repeats) for k, f in steps.items()})
        ms["then_transformers"] = timed(
            lambda: torch.multinomial(returned.softmax(dim=-1), 1), device, args.repeats)
        ms["transformers_warpers"] = timed(
            lambda: torch.multinomial(warpers(input_ids, scores.clone()).softmax(dim=-1), 1),
            device, args.repeats)
        out["rows"][rows] = ms
        print(f"{rows:>4} rows: " + ", ".join(f"{k} {v:.3f} ms" for k, v in ms.items()),
              flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                         if torch.device(device).type == "cuda" else [])
        with profile(activities=acts) as prof:
            for _ in range(10):
                sampler(input_ids, scores)
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize()
        key = "self_device_time_total" if len(acts) == 2 else "self_cpu_time_total"
        table = prof.key_averages().table(sort_by=key, row_limit=30)
        out["profile_table"] = table
        print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
