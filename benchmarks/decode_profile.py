"""Where a decode step of the ``hf`` engine goes: the follow-up to ``gpu.py``'s first GPU run.

``gpu.py``'s first H200 run measured the ``hf`` engine at 2-4% of the memory-bandwidth roofline,
with the milliseconds per decode step nearly doubling from 24 to 96 rows (38 -> 73 ms on
Qwen2-VL-2B). This script splits a step's time, side by side in one run on one model (the
real-size random-weight model of a backbone, or a tiny one on CPU):

* the decode milliseconds per step (a full pass minus a one-token pass, as in ``gpu.py``) of six
  ways to pick the next token, in the order given by ``--ways`` (a way may be named twice: the
  first pass over new shapes is the slow one, see ``benchmarks/results/GPU.md``): the engine's
  seeded per-row sampler (:class:`r3v_eval.engines.hf.RowSampler`, the product path), the same
  sampler handed to ``model.generate`` directly, the same with its one-hot scores arg-maxed
  instead of sampled, a logits processor that changes nothing, transformers' built-in sampler
  with the same temperature / top-k / top-p, and greedy decoding;
* ``torch.profiler`` traces of ``--profile-ways``: a full pass and a one-token pass, so that a
  decode step's wall time, the device's busy time (its own events) and the host-device
  synchronisations are their difference per step, plus the tables of the full pass.

    python benchmarks/decode_profile.py --device cuda                     # real size, one GPU
    python benchmarks/decode_profile.py --device cpu --tiny tiny --prompts 2 --batch-sizes 1 2 \\
        --new-tokens 8 --out-dir /tmp/prof                                 # a CPU smoke run

Figures go to ``decode_profile_<device-slug>.json`` in ``--out-dir`` (``benchmarks/results/``
by default on CUDA), the profiler tables beside it as ``.txt``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

import gpu  # noqa: E402  (the sibling benchmark: device helpers, model building, timing)
from real_size import REAL_CONFIGS, recipe_max_pixels  # noqa: E402

WAYS = ("row_sampler", "row_sampler_direct", "row_sampler_argmax", "identity_processor",
        "transformers_sampler", "greedy")


class IdentityProcessor:
    """A logits processor that changes nothing: what a custom processor costs by itself."""

    def __call__(self, input_ids, scores):
        return scores


def _generate_rows(engine, requests, way: str, new_tokens: int, seed: int) -> None:
    """One pass over ``requests`` with 3 rows per prompt, the next token picked ``way``."""
    import torch

    from r3v_eval.engines.base import PAPER_SAMPLING, Sampling

    paper = dataclasses.replace(PAPER_SAMPLING, max_new_tokens=new_tokens, seed=seed)
    if way == "row_sampler":
        engine.generate(requests, paper, progress=False)
    elif way == "greedy":  # greedy rows cannot differ, so each prompt goes in three times
        tripled = [r for r in requests for _ in range(paper.n)]
        prompts_per_call = engine.batch_size
        engine.batch_size = prompts_per_call * paper.n  # the same rows per call as sampling
        try:
            engine.generate(tripled, Sampling(n=1, temperature=0.0, max_new_tokens=new_tokens),
                            progress=False)
        finally:
            engine.batch_size = prompts_per_call
    else:  # straight to model.generate, one call per batch of prompts
        from r3v_eval.engines.base import sample_seeds
        from r3v_eval.engines.hf import RowSampler

        if way not in WAYS:
            raise ValueError(f"unknown way {way!r}; one of {WAYS}")
        tok = engine.processor.tokenizer
        for idxs in engine.batches(requests):
            reqs = [requests[i] for i in idxs]
            inputs = engine.encode(reqs)
            kw = {"max_new_tokens": new_tokens, "num_return_sequences": paper.n,
                  "pad_token_id": tok.pad_token_id}
            if way == "transformers_sampler":
                kw.update(do_sample=True, temperature=paper.temperature, top_p=paper.top_p,
                          top_k=paper.top_k)
            elif way == "identity_processor":
                kw.update(do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                          logits_processor=[IdentityProcessor()])
            else:  # the engine's sampler, its one-hot scores then sampled or arg-maxed
                seeds = [x for r in reqs for x in sample_seeds(seed, r, paper.n)]
                kw["logits_processor"] = [RowSampler(paper, seeds, engine.device)]
                if way == "row_sampler_direct":
                    kw.update(do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
                else:  # greedy keeps one row per prompt: the rows are expanded first
                    kw.update(do_sample=False, temperature=None, top_p=None, top_k=None,
                              num_return_sequences=1)
                    ids, rest = engine.model._expand_inputs_for_generation(
                        expand_size=paper.n, is_encoder_decoder=False, **inputs)
                    inputs = {"input_ids": ids, **rest}
            with torch.inference_mode():
                engine.model.generate(**inputs, **kw)


def decode_ms_per_step(engine, requests, way: str, new_tokens: int, seed: int) -> dict:
    """Decode milliseconds per step of ``way``: the full pass minus the one-token pass."""
    model = engine.model
    with gpu.GenerateLog(model, engine.device) as full:
        _generate_rows(engine, requests, way, new_tokens, seed)
    with gpu.GenerateLog(model, engine.device) as prefill:
        _generate_rows(engine, requests, way, 1, seed)
    decode_s = gpu.decode_seconds(full.calls, prefill.calls)
    steps = sum(c["new_tokens"] - 1 for c in full.calls)
    rows = max(c["rows"] for c in full.calls)
    return {"way": way, "rows_per_call": rows, "generate_calls": len(full.calls),
            "decode_s": decode_s, "steps": steps,
            "ms_per_step": gpu.per_step_ms(decode_s, steps)}


def _profiled(engine, requests, way: str, new_tokens: int, seed: int):
    """(profiler, wall seconds) of one pass of ``way``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    on_cuda = torch.device(engine.device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    gpu.synchronize(engine.device)
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        _generate_rows(engine, requests, way, new_tokens, seed)
        gpu.synchronize(engine.device)
    return prof, time.perf_counter() - t0


def _tally(prof) -> dict:
    """Device-busy microseconds (the device's own events) and host-device syncs of a trace."""
    from torch.autograd import DeviceType

    events = prof.key_averages()
    kernels = [e for e in events if e.device_type != DeviceType.CPU]
    return {"device_us": sum(e.self_device_time_total or 0 for e in kernels),
            "kernels": kernels,
            "syncs": {e.key: e.count for e in events if e.key in (
                "cudaStreamSynchronize", "cudaMemcpyAsync", "cudaDeviceSynchronize")}}


def profile_step(engine, requests, way: str, new_tokens: int, seed: int, out_stem: Path) -> dict:
    """``way`` under ``torch.profiler``, a full pass and a one-token pass, so that what one
    decode step costs (wall, device-busy time, host syncs) is their difference per step."""
    import torch

    on_cuda = torch.device(engine.device).type == "cuda"
    full, full_wall = _profiled(engine, requests, way, new_tokens, seed)
    one, one_wall = _profiled(engine, requests, way, 1, seed)
    f, o = _tally(full), _tally(one)
    steps = (new_tokens - 1) * len(engine.batches(requests))
    tables = [f"## {way}, {new_tokens} tokens, sorted by {k}\n"
              + full.key_averages().table(sort_by=k, row_limit=25)
              for k in (["self_device_time_total"] if on_cuda else []) + ["self_cpu_time_total"]]
    text = out_stem.with_name(f"{out_stem.name}_{way}.txt")
    text.write_text("\n\n".join(tables) + "\n")
    wall_ms = gpu.per_step_ms(full_wall - one_wall, steps)
    device_ms = (gpu.per_step_ms((f["device_us"] - o["device_us"]) / 1e6, steps) if on_cuda
                 else None)
    top = sorted(f["kernels"], key=lambda e: e.self_device_time_total or 0, reverse=True)[:10]
    return {"way": way, "new_tokens": new_tokens, "steps": steps,
            "wall_ms_per_step": wall_ms,
            "device_busy_ms_per_step": device_ms,
            "device_busy_share": device_ms / wall_ms if device_ms and wall_ms else None,
            "host_syncs_per_step": {k: (v - o["syncs"].get(k, 0)) / steps
                                    for k, v in f["syncs"].items()},
            "top_device_ops_full_pass": [{"op": e.key, "calls": e.count,
                                          "self_device_ms": (e.self_device_time_total or 0) / 1e3}
                                         for e in top],
            "tables": text.name}


def _ms(value: float | None) -> str:
    return "(no longer than the one-token pass: decode more tokens)" if value is None \
        else f"{value:7.2f} ms"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="qwen2_vl_2b", choices=list(REAL_CONFIGS))
    ap.add_argument("--tiny", choices=("tiny", "small"), default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--profile-tokens", type=int, default=16)
    ap.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS)
    ap.add_argument("--profile-ways", nargs="+", default=["row_sampler"], choices=WAYS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    # what gpu.py's checks and model builder read
    args.train_steps = args.train_batch_size = args.candidate_tokens = 1
    gpu.check_args(args)
    import torch

    from r3v_eval.engines.hf import HFEngine
    from r3v_eval.provenance import installed_versions, write_json

    name = gpu.device_name(args.device)
    slug = gpu.device_slug(args.device, name, args.tiny)
    out_dir = args.out_dir or (BENCHMARKS / "results" if args.device.startswith("cuda") else None)
    results: dict = {"device": args.device, "device_name": name, "git_commit": gpu.git_commit(),
                     "versions": installed_versions(gpu.VERSIONS_OF, missing="not installed"),
                     "settings": {k: str(v) if isinstance(v, Path) else v
                                  for k, v in vars(args).items()},
                     "ways": []}
    work = Path(tempfile.mkdtemp(prefix="r3v_decode_profile_"))
    built = gpu.build_model_folder(args.backbone, args, work / args.backbone)
    results["model"] = built
    print(f"{built['model']}: {built['parameters'] / 1e6:.1f}M parameters on {name}; torch "
          f"{torch.__version__}", flush=True)
    engine = HFEngine(str(work / args.backbone), device=args.device, dtype=args.dtype,
                      max_pixels=recipe_max_pixels(args.backbone),
                      batch_size=max(args.batch_sizes))
    gpu.disable_eos(engine)
    requests = gpu.decode_requests(args.prompts)
    _generate_rows(engine, requests[:1], "row_sampler", 4, args.seed)  # first-call overheads
    for batch_size in args.batch_sizes:
        engine.batch_size = batch_size
        for way in args.ways:
            row = decode_ms_per_step(engine, requests, way, args.new_tokens, args.seed)
            row["batch_size"] = batch_size
            results["ways"].append(row)
            print(f"  {batch_size:>3} prompts ({row['rows_per_call']} rows) {way:<21} "
                  f"{_ms(row['ms_per_step'])} per decode step", flush=True)
    stem = (out_dir or work) / f"decode_profile_{slug}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    engine.batch_size = min(args.batch_sizes)
    results["profiles"] = []
    for way in args.profile_ways:
        p = profile_step(engine, requests[:engine.batch_size], way, args.profile_tokens,
                         args.seed, stem)
        results["profiles"].append(p)
        busy = ("" if p["device_busy_share"] is None else
                f", device busy {_ms(p['device_busy_ms_per_step'])} "
                f"({p['device_busy_share']:.0%})")
        print(f"  profile {way} ({engine.batch_size} prompts): {_ms(p['wall_ms_per_step'])} "
              f"per step{busy}; host syncs per step {p['host_syncs_per_step']}", flush=True)
        for op in p["top_device_ops_full_pass"]:
            print(f"    {op['self_device_ms']:9.1f} ms  {op['calls']:>6}x  {op['op'][:90]}")
    write_json(stem.with_suffix(".json"), results)
    print(f"figures in {stem.with_suffix('.json')}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
