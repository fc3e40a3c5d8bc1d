"""MiniWob: generation time, and the agreement of the offline scorer with the online one.

1. ``r3v data miniwob`` (the default 16 tasks, ``--n-test`` problems, one browser at a time)
   into ``--out`` (skipped when that folder already holds the split);
2. every problem's gold action and its perturbations (:mod:`r3v_eval.miniwob.agreement`)
   scored offline (gold boxes, exact text) and online (replayed in the real environment).

    python benchmarks/miniwob_agreement.py --out data/miniwob --n-test 500

Prints the table per perturbation family and writes ``benchmarks/results/miniwob_agreement.json``
(the disagreements listed in full).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path,
                    default=Path(__file__).parent / "results" / "miniwob_agreement.json")
    args = ap.parse_args()

    from tqdm import tqdm

    from r3v_eval.benchmarks import get_benchmark
    from r3v_eval.miniwob.agreement import measure_agreement
    from r3v_eval.miniwob.generate import write_miniwob_dataset
    from r3v_eval.miniwob.replay import OnlineScorer

    if not (args.out / "test.jsonl").is_file():
        write_miniwob_dataset(args.out, n_train=0, n_test=args.n_test, seed=args.seed)
    config = json.loads((args.out / "config.json").read_text())
    problems = get_benchmark("miniwob").load("test", source=args.out)
    start = time.time()
    scorer = OnlineScorer()
    try:
        result = measure_agreement(problems, scorer, seed=args.seed, progress=tqdm)
    finally:
        scorer.close()
    seconds = time.time() - start
    print(result.table())
    print(f"{sum(result.total.values())} actions on {len(problems)} problems scored online in "
          f"{seconds:.0f} s; generation took {config['seconds']} s")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({
        "data": {k: config[k] for k in ("seed", "tasks", "n_test", "versions", "seconds")},
        "problems": len(problems),
        "families": {f: {"actions": result.total[f], "agree": result.agreed[f],
                         "right_offline": result.offline_right[f],
                         "right_online": result.online_right[f]} for f in result.total},
        "agreement": result.rate(),
        "online_seconds": round(seconds, 1),
        "disagreements": result.disagreements,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
