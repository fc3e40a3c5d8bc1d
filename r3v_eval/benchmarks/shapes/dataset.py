"""Writing the ``shapes`` benchmark to files in the canonical local schema (``r3v data shapes``)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from r3v_eval.benchmarks.base import write_local
from r3v_eval.benchmarks.shapes.benchmark import sample_to_problem
from r3v_eval.benchmarks.shapes.sampler import iter_samples
from r3v_eval.benchmarks.shapes.world import TEMPLATES, ShapesConfig


def answer_stats(answers: Sequence[int | str]) -> dict[str, Any]:
    """Histogram of answers and the share of the most common one."""
    hist = Counter(int(a) for a in answers)
    n = sum(hist.values())
    top, top_n = hist.most_common(1)[0] if hist else (None, 0)
    return {"n": n, "histogram": dict(sorted(hist.items())), "majority_answer": top,
            "majority_share": top_n / n if n else 0.0}


def write_shapes_dataset(out_dir: str | Path, n_train: int, n_test: int, seed: int = 1234,
                         config: ShapesConfig | None = None, progress: bool = True
                         ) -> dict[str, Any]:
    """Write the shapes benchmark in the canonical local schema.

    ``out_dir/train.jsonl``, ``out_dir/test.jsonl``, ``out_dir/images/*.png``, plus
    ``out_dir/rationales.jsonl`` (``{"id", "rationale", "split", "template", "steps"}`` per
    problem, the teacher rationales in the qwen style) and ``out_dir/config.json``.
    Load it back with ``get_benchmark("shapes").load(split, source=out_dir)``.
    Returns a summary (paths, counts, answer statistics, seconds)."""
    config = config or ShapesConfig()
    if n_train < 0 or n_test < 0:
        raise ValueError("n_train and n_test must be >= 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"out_dir": str(out), "seed": seed, "config": config.to_dict()}
    rationale_rows: list[dict[str, Any]] = []
    bar = tqdm(total=n_train + n_test, desc="shapes", unit="problem", disable=not progress)
    try:
        for split, n in (("train", n_train), ("test", n_test)):
            answers: list[int] = []
            templates: Counter[str] = Counter()

            def problems(split: str = split, n: int = n, answers: list = answers,
                         templates: Counter = templates):
                stream = iter_samples(split, seed, config)
                for _ in range(n):
                    sample = next(stream)
                    problem = sample_to_problem(sample, config)
                    answers.append(sample.answer)
                    templates[sample.template] += 1
                    rationale_rows.append({"id": problem.id, "rationale": problem.meta["rationale"],
                                           "split": split, "template": sample.template,
                                           "steps": sample.steps})
                    bar.update(1)
                    yield problem

            path = write_local(problems(), out, split)
            summary[split] = {"path": str(path), "n": n, "answers": answer_stats(answers),
                              "templates": dict(sorted(templates.items()))}
    finally:
        bar.close()
    rat_path = out / "rationales.jsonl"
    with rat_path.open("w", encoding="utf-8") as fh:
        for row in rationale_rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    cfg_path = out / "config.json"
    cfg_path.write_text(json.dumps({
        "benchmark": "shapes", "seed": seed, "n_train": n_train, "n_test": n_test,
        "config": config.to_dict(), "templates": dict(TEMPLATES),
    }, indent=2) + "\n", encoding="utf-8")
    summary["rationales"] = str(rat_path)
    summary["config_path"] = str(cfg_path)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return summary
