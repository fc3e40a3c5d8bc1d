"""r3v's lmms-eval models against what a user would otherwise run, side by side.

Each pair runs the real ``lmms-eval`` command on the same tiny checkpoint, task, ``--limit``,
batch size and number of decoded tokens, alternating which side goes first:

* **greedy**: ``--model r3v_cot`` vs lmms-eval's own ``--model qwen2_vl`` (``--gen_kwargs
  max_new_tokens=T``);
* **majority@N**: ``--model r3v_majority`` (N samples per question in one engine call) vs
  lmms-eval's ``qwen2_vl`` on a copy of the task with ``repeats: N`` and the filter chain a
  user writes for self-consistency (``regex`` on "Answer: X" -> ``majority_vote`` ->
  ``take_first``), sampling at the same temperature / top-p.

With ``--decode graph`` (the default runs both) the r3v models also run with ``decode=graph``
in ``--model_args`` (issue 29: one prefill per question shared by its N samples, a static KV
cache, the step run eagerly on CPU), timed beside the default ``generate`` path.

End-of-sequence (and every blank or special token) is suppressed in the checkpoint's
generation config, so every completion on both sides decodes exactly T tokens: equal work,
and an untrained model's early stops cannot flatter either side. Times are whole commands
(start-up included); lmms-eval's start-up (``--model dummy`` on the same task and limit) is
measured too and the ratios are also given net of it.

    python benchmarks/lmms_models.py                     # 400 questions x 96 tokens, batch 16
    python benchmarks/lmms_models.py --limit 100 --repeats 1 --json /tmp/x.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def build_checkpoint(out: Path, size: str) -> Path:
    """A tiny Qwen2-VL whose generation config never stops early."""
    from transformers import AutoTokenizer

    from r3v_train.tiny import build_tiny_model

    path = Path(build_tiny_model("qwen2_vl", out, size=size, seed=0))
    tok = AutoTokenizer.from_pretrained(path)
    blank = {i for i in range(len(tok)) if not tok.decode([i]).strip()}
    suppressed = sorted(blank | set(tok.all_special_ids) | set(tok.added_tokens_decoder))
    cfg_file = path / "generation_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg.update(eos_token_id=None, suppress_tokens=suppressed)
    cfg_file.write_text(json.dumps(cfg, indent=2))
    return path


def repeats_task(folder: Path, n: int, tokens: int, temperature: float, top_p: float) -> str:
    """A copy of r3v_shapes with ``repeats: n`` and a self-consistency filter chain."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("utils.py", "_default_template_yaml"):
        shutil.copy(ROOT / "tasks" / name, folder / name)
    name = f"r3v_shapes_maj{n}"
    (folder / f"{name}.yaml").write_text(f"""task: {name}
include: _default_template_yaml
dataset_kwargs:
  benchmark: shapes
repeats: {n}
generation_kwargs:
  until: ["<|im_end|>"]
  max_new_tokens: {tokens}
  do_sample: true
  temperature: {temperature}
  top_p: {top_p}
filter_list:
  - name: maj{n}
    filter:
      - function: regex
        regex_pattern: "Answer:\\\\s*(-?[0-9][0-9.,]*)"
      - function: majority_vote
      - function: take_first
""")
    return name


def run(cmd: list[str], out: Path) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               TQDM_DISABLE="1")
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd + ["--output_path", str(out)], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or not glob.glob(str(out / "**" / "*_results.json"), recursive=True):
        raise RuntimeError(f"command failed: {' '.join(cmd)}\n{(proc.stdout + proc.stderr)[-3000:]}")
    return seconds


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=400, help="questions (r3v_shapes test split)")
    ap.add_argument("--tokens", type=int, default=96, help="decoded tokens per completion")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--n", type=int, default=3, help="samples per question for majority@N")
    ap.add_argument("--size", default="tiny", choices=["tiny", "small"])
    ap.add_argument("--repeats", type=int, default=2, help="runs of each command (median)")
    ap.add_argument("--decode", nargs="+", default=["generate", "graph"],
                    choices=["generate", "graph"], help="the r3v models' decode paths to run")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="r3v_lmms_bench_"))
    model = build_checkpoint(work / "model", args.size)
    tasks = str(ROOT / "tasks")
    temperature, top_p = 0.9, 0.95
    maj_task = repeats_task(work / "tasks_repeats", args.n, args.tokens, temperature, top_p)
    lmms = [str(BIN / "lmms-eval"), "--limit", str(args.limit), "--batch_size", str(args.batch_size)]
    upstream_args = f"pretrained={model},device=cpu,device_map=cpu"
    r3v_args = f"pretrained={model},device=cpu,max_new_tokens={args.tokens}"
    commands = {
        "startup (dummy)": lmms + ["--model", "dummy", "--tasks", "r3v_shapes", "--include_path", tasks],
        "r3v_cot": lmms + ["--model", "r3v_cot", "--model_args", r3v_args, "--tasks", "r3v_shapes",
                           "--include_path", tasks],
        "qwen2_vl greedy": lmms + ["--model", "qwen2_vl", "--model_args", upstream_args,
                                   "--tasks", "r3v_shapes", "--include_path", tasks,
                                   "--gen_kwargs", f"max_new_tokens={args.tokens}"],
        f"r3v_majority n={args.n}": lmms + [
            "--model", "r3v_majority", "--tasks", "r3v_shapes", "--include_path", tasks,
            "--model_args", f"{r3v_args},n={args.n},temperature={temperature},top_p={top_p},top_k=50"],
        f"qwen2_vl repeats={args.n} + majority_vote": lmms + [
            "--model", "qwen2_vl", "--model_args", upstream_args, "--tasks", maj_task,
            "--include_path", str(work / "tasks_repeats")],
    }
    graph = {}
    if "graph" in args.decode:
        graph = {"r3v_cot decode=graph": commands["r3v_cot"],
                 f"r3v_majority n={args.n} decode=graph": commands[f"r3v_majority n={args.n}"]}
        graph = {k: [a.replace(r3v_args, f"{r3v_args},decode=graph") for a in v]
                 for k, v in graph.items()}
    if "generate" not in args.decode:
        del commands["r3v_cot"], commands[f"r3v_majority n={args.n}"]
    commands.update(graph)
    times: dict[str, list[float]] = {k: [] for k in commands}
    names = list(commands)
    for r in range(args.repeats):  # start-up first; the others in turn forwards, then backwards
        order = names if r % 2 == 0 else names[:1] + names[:0:-1]
        for name in order:
            times[name].append(run(commands[name], work / "out"))
            print(f"  run {r + 1}: {name}: {times[name][-1]:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    startup = med["startup (dummy)"]
    upstream_maj = f"qwen2_vl repeats={args.n} + majority_vote"

    def ratio(upstream: str, ours: str) -> dict | None:
        if ours not in med:
            return None
        return {"speedup": round(med[upstream] / med[ours], 3),
                "speedup_net_of_startup": round((med[upstream] - startup)
                                                / (med[ours] - startup), 3)}

    pairs = {f"{ours} vs {up}": ratio(up, ours) for ours, up in (
        ("r3v_cot", "qwen2_vl greedy"), ("r3v_cot decode=graph", "qwen2_vl greedy"),
        (f"r3v_majority n={args.n}", upstream_maj),
        (f"r3v_majority n={args.n} decode=graph", upstream_maj))}
    result = {
        "what": "whole lmms-eval commands, median of runs; r3v_shapes test split; EOS suppressed",
        "limit": args.limit, "tokens": args.tokens, "batch_size": args.batch_size, "n": args.n,
        "model": f"r3v tiny-model --arch qwen2_vl --size {args.size}", "repeats": args.repeats,
        "seconds": {k: round(v, 2) for k, v in med.items()},
        "runs": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "speedups": {k: v for k, v in pairs.items() if v is not None},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    print(f"\nstart-up (lmms-eval --model dummy): {startup:.1f} s")
    for name, r in result["speedups"].items():
        ours, up = name.split(" vs ")
        print(f"{ours:32s} {med[ours]:6.1f} s vs {up} {med[up]:6.1f} s -> {r['speedup']:.2f}x "
              f"({r['speedup_net_of_startup']:.2f}x net of start-up)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
