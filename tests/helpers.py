"""Test scaffolding shared by several test modules."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_jsonl(path: Path, rows: Iterable[Any]) -> Path:
    """Write a JSON Lines file, one line per row, and return its path.

    A string row is written as it is (a blank or deliberately broken line); anything else is
    written as JSON. Every line ends with a newline; missing folders are created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def free_port() -> int:
    """A TCP port nobody listens on now (for ``accelerate launch --main_process_port``)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, proc, timeout: float = 240) -> bool:
    """Poll ``predicate`` until it holds (True), ``proc`` exits or ``timeout`` passes (False)."""
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def run_folder(root: Path, name: str, method: str, benchmark: str, final: dict[str, float]) -> Path:
    """An r3v run folder as r3v_train.loop writes it (metrics.json, config.yaml, iter_<t>/)."""
    d = root / name
    (d / "iter_1").mkdir(parents=True)
    (d / "iter_1" / "eval.json").write_text(json.dumps({"iteration": 1, "n_test": 10,
                                                        "metrics": final}))
    (d / "config.yaml").write_text(f"run:\n  method: {method}\ndata:\n  benchmark: {benchmark}\n")
    summary = {"method": method, "benchmark": benchmark, "n_train": 20, "n_test": 10,
               "final": final, "history": [{"iteration": 1, "metrics": final}]}
    (d / "metrics.json").write_text(json.dumps(summary, indent=2))
    return d


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module (its sibling scripts importable)."""
    import importlib.util
    import sys

    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"r3v_bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def no_eos(engine):
    """Let every sequence of a random-weight model run to max_new_tokens: no end-of-sequence, and
    never a special or whitespace-only token (they decode to nothing after strip)."""
    engine.model.generation_config.eos_token_id = None
    tok = engine.processor.tokenizer
    blank = {i for i in range(len(tok)) if not tok.decode([i]).strip()}
    engine.model.generation_config.suppress_tokens = sorted(
        blank | set(tok.all_special_ids) | set(tok.added_tokens_decoder))
    return engine


class GoldAwareEngine:
    """Replies right or wrong by a fixed pattern, with real-looking rationales."""

    def __init__(self, problems):
        self.gold = {p.id: p.answer for p in problems}

    def generate(self, requests, sampling, progress=True):
        out = []
        for r in requests:
            gold = self.gold[r.meta["id"]]
            if "Model's prediction 1" in r.prompt:
                out.append([gold])
                continue
            h = zlib.crc32(r.meta["id"].encode())
            replies = []
            for j in range(sampling.n):
                right = (h + j) % 3 != 0 if not sampling.greedy else h % 2 == 0
                ans = gold if right else str(int(gold) + 1)
                replies.append(f"Solution:\n1. I count every object in the picture carefully, "
                               f"sample {j}.\n2. Then I do the arithmetic.\n\nAnswer:\n{ans}")
            out.append(replies)
        return out
