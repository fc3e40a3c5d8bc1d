"""``r3v demo``: the embedded default, with no network.

Current scope (smoke run): render the synthetic shapes benchmark, build the tiny ``small``
Qwen2-VL from scratch, and evaluate it with every strategy (greedy CoT, majority@N,
select@N, pass@N) through the same engine and answer checks that training and lmms-eval
use. The untrained model scores near zero: this run proves the pipeline end to end; the
self-training comparison (warm-up, STaR, R3V, matched-compute control) is the next stage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def run_demo(out_dir: str | Path = "r3v_demo", seed: int = 0, quick: bool = False) -> int:
    from r3v_eval import strategies
    from r3v_eval.benchmarks import get_benchmark, write_local
    from r3v_eval.engines.hf import HFEngine
    from r3v_train.tiny import build_tiny_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    n_test = 8 if quick else 64
    bench = get_benchmark("shapes")
    print(f"[demo] rendering {n_test} shapes test problems -> {out / 'data'}")
    problems = bench.load("test", limit=n_test)
    write_local(problems, out / "data", "test")

    size = "tiny" if quick else "small"
    model_dir = out / f"model-{size}"
    print(f"[demo] building a random-weight {size} Qwen2-VL -> {model_dir}")
    build_tiny_model("qwen2_vl", model_dir, size=size, seed=seed)

    engine = HFEngine(str(model_dir), device="cpu", batch_size=16)
    print("[demo] evaluating: greedy CoT, majority@3, select@3, pass@3")
    ev = strategies.evaluate(engine, bench, problems, n=3, max_new_tokens=32 if quick else 96)
    result = {"model": f"tiny-{size} (untrained)", "benchmark": "shapes", "n_test": n_test,
              "seed": seed, "metrics": ev.metrics, "seconds": round(time.time() - t0, 1)}
    (out / "smoke.json").write_text(json.dumps(result, indent=2))
    with (out / "outcomes.jsonl").open("w") as fh:
        for name, outs in ev.outcomes.items():
            for o in outs:
                fh.write(json.dumps(o.to_dict()) + "\n")
    print("[demo] " + ", ".join(f"{k} {v:.3f}" for k, v in ev.metrics.items()))
    print(f"[demo] wrote {out / 'smoke.json'} in {result['seconds']} s")
    return 0
