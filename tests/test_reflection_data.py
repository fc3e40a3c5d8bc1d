"""CI's end-to-end check of the reflection path through the real `r3v train` command: a model
that is right on some samples and wrong on others (the shipped demo base, which was pre-trained
to see the shapes world and to answer its one-step questions in the rationale format) samples
the train split, and one R3V iteration builds SFT, self-refine and self-select examples from
the real pool (the tiny recipe's random-weight model writes nothing parseable, so it builds
none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
R3V = [sys.executable, "-m", "r3v_train.cli"]
pytestmark = pytest.mark.slow


def test_r3v_train_builds_sft_refine_and_select_examples(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    res = subprocess.run(R3V + ["train", "--recipe", str(ROOT / "recipes" / "tiny" / "reflect.yaml"),
                                "--set", f"run.out_dir={out}"],
                         capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    kinds = Counter(json.loads(line)["kind"]
                    for line in (out / "iter_1" / "examples.jsonl").read_text().splitlines())
    assert kinds["sft"] > 0 and kinds["refine"] > 0 and kinds["select"] > 0, kinds
    pool = [json.loads(line) for p in (out / "pool").rglob("iter_0.jsonl")
            for line in p.read_text().splitlines()]
    assert any(s["correct"] for s in pool) and not all(s["correct"] for s in pool)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {k: v for k, v in metrics["history"][-1]["examples"].items() if v} == dict(kinds)
