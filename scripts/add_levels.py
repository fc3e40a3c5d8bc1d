"""Write difficulty levels into the saved outcomes of runs made before their benchmark had them.

    python scripts/add_levels.py RUN [RUN ...]       # RUN: an `r3v train` run folder

The ``shapes`` world's problems carry ``meta["level"]`` (their number of steps) since the
fallback demo's third seed; runs saved before wrote ``"level": null`` into every
``iter_<t>/eval_outcomes.jsonl`` line, so `r3v leaderboard` drew no frontier for them.

For each run this rebuilds the test split exactly as the run loaded it (benchmark, options,
split, source and limit from the run's ``config.yaml``), and **checks that every saved line
still belongs to its problem before touching anything**: each saved reply (and each candidate
reply) is scored again against the rebuilt problem and must give the saved extracted answer and
the saved right / wrong. Only then is each line's ``level`` set and the file rewritten (the
original is kept beside it as ``eval_outcomes.jsonl.orig``). A line whose problem is missing,
or whose reply scores differently, stops the script with the file and line named, exit 2, and
nothing of that run is written. Lines that already carry a level are left as they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from r3v_eval import run_files
from r3v_eval.benchmarks import get_benchmark
from r3v_eval.errors import R3VError
from r3v_eval.leaderboard.frontier import read_outcomes
from r3v_train.run_info import read_run


def _check(bench, problem, reply, extracted, correct, where: str) -> None:
    if not isinstance(reply, str):
        return
    score = bench.score(reply, problem)
    if (score.extracted, score.correct) != (extracted, bool(correct)):
        raise R3VError(f"{where}: the saved reply scores {score.extracted!r} "
                       f"({'right' if score.correct else 'wrong'}) against the rebuilt problem, "
                       f"but the run saved {extracted!r} ({'right' if correct else 'wrong'}): "
                       "the test split is not the one the run used")


def add_levels(run: Path) -> tuple[int, int]:
    """Levels written into ``run``'s outcome files: ``(files rewritten, lines given a level)``."""
    data = read_run(run).config.get("data") or {}
    bench = get_benchmark(data.get("benchmark"), data.get("options") or {})
    test = bench.load(data.get("test_split") or bench.test_split, data.get("source"),
                      data.get("test_limit"))
    problems = {p.id: p for p in test}
    rewritten: dict[Path, list[dict]] = {}
    count = 0
    for _, path in run_files.iteration_files(run, run_files.EVAL_OUTCOMES):
        lines = read_outcomes(path)  # a line that is not JSON: an error naming file and line
        for i, line in enumerate(lines, 1):
            if line.get("level") is not None:
                continue
            where = f"{path}: line {i}"
            problem = problems.get(line.get("problem_id"))
            if problem is None:
                raise R3VError(f"{where}: problem {line.get('problem_id')!r} is not in the "
                               "rebuilt test split")
            _check(bench, problem, line.get("reply"), line.get("extracted"),
                   line.get("correct"), where)
            for k, cand in enumerate(line.get("candidates") or []):
                _check(bench, problem, cand, line["candidate_answers"][k],
                       line["candidate_correct"][k], f"{where}, candidate {k + 1}")
            level = (problem.meta or {}).get("level")
            if level is None:
                raise R3VError(f"{where}: the benchmark {bench.name!r} gives its problems no "
                               "level (meta 'level'); nothing to add")
            line["level"] = level
            count += 1
        rewritten[path] = lines
    for path, lines in rewritten.items():
        original = path.with_name(path.name + ".orig")
        if not original.exists():
            original.write_bytes(path.read_bytes())
        path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return len(rewritten), count


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    for arg in argv:
        try:
            files, count = add_levels(Path(arg))
        except R3VError as exc:
            print(f"add_levels: {exc}", file=sys.stderr)
            return 2
        print(f"{arg}: {count} outcome lines given a level in {files} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
