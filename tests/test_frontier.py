"""The frontier: accuracy per difficulty level per run and iteration, read from the runs'
saved outcomes, as a leaderboard table and a plot; levels travel from the problem to the
outcome; teacher rationales can be limited to the easy levels; the matched control sees every
train answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r3v_eval.benchmarks import Problem, get_benchmark
from r3v_eval.leaderboard import build_leaderboard
from r3v_eval.leaderboard.board import write_outputs
from r3v_eval.leaderboard.frontier import count_levels, read_frontier
from r3v_eval.leaderboard.records import LeaderboardError
from r3v_eval.strategies import Outcome, greedy_cot, level_of
from helpers import run_folder
from test_leaderboard import table_lines

RECIPE = Path(__file__).parents[1] / "recipes" / "tiny" / "shapes.yaml"


def _outcomes(folder: Path, t: int, right: dict[int, tuple[int, int]], metric="greedy"):
    """iter_<t>/eval_outcomes.jsonl with ``right[level] = (right, asked)`` greedy outcomes,
    plus a majority outcome per level that the frontier must ignore."""
    d = folder / f"iter_{t}"
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for level, (ok, asked) in right.items():
        for i in range(asked):
            o = Outcome(f"q{level}_{i}", "greedy", "r", "1", i < ok, level=level)
            lines.append({"metric": metric, **o.to_dict()})
        lines.append({"metric": "majority@3", **Outcome("m", "majority", None, None, True,
                                                        level=level).to_dict()})
    (d / "eval_outcomes.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")


def test_frontier_counts_greedy_outcomes_per_level_and_per_iteration(tmp_path):
    run = run_folder(tmp_path, "r3v", "r3v", "shapes", {"greedy": 0.5})
    _outcomes(run, 0, {1: (4, 4), 2: (1, 4), 3: (0, 4)})
    _outcomes(run, 2, {1: (4, 4), 2: (3, 4), 3: (1, 4)})
    f = read_frontier(run, "r3v")
    assert sorted(f.levels) == [0, 2]
    assert f.levels[0] == {1: (4, 4), 2: (1, 4), 3: (0, 4)}  # majority lines ignored
    assert f.accuracy(2, 2) == 0.75 and f.accuracy(2, 9) is None
    board = build_leaderboard([run])
    rows = table_lines(board.markdown(), "the frontier")
    assert rows["run, iteration"] == ["level 1", "level 2", "level 3"]
    assert rows["r3v, iter 0"] == ["100.0", "25.0", "0.0"]
    assert rows["r3v, iter 2"] == ["100.0", "75.0", "25.0"]
    written = write_outputs(board, tmp_path / "board" / "leaderboard.md")
    png = [p for p in written if p.name == "leaderboard_frontier.png"]
    assert png and png[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_sharing_a_warm_up_starts_its_frontier_at_the_warm_up(tmp_path, monkeypatch):
    """STaR / R3V / control runs with run.warmup_from take iteration 0 from the warm-up's
    folder: by its path, or, when that path is relative to another folder (the demo's runs
    copied elsewhere), as the run's sibling; a warm-up that is nowhere adds nothing."""
    import yaml

    warm = run_folder(tmp_path, "warmup", "r3v", "shapes", {"greedy": 0.3})
    _outcomes(warm, 0, {1: (3, 4), 2: (1, 4)})
    star = run_folder(tmp_path, "star", "star", "shapes", {"greedy": 0.5})
    _outcomes(star, 4, {1: (4, 4), 2: (2, 4)})
    cfg = star / "config.yaml"
    config = yaml.safe_load(cfg.read_text()) or {}
    config.setdefault("run", {})["warmup_from"] = "r3v_demo/warmup"  # relative to another cwd
    cfg.write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path / "star")
    f = read_frontier(star, "star")
    assert sorted(f.levels) == [0, 4] and f.levels[0] == {1: (3, 4), 2: (1, 4)}
    config["run"]["warmup_from"] = str(tmp_path / "nowhere")
    cfg.write_text(yaml.safe_dump(config))
    assert sorted(read_frontier(star, "star").levels) == [4]


def test_runs_without_levels_have_no_frontier(tmp_path):
    run = run_folder(tmp_path, "r3v", "r3v", "shapes", {"greedy": 0.5})
    d = run / "iter_1"
    d.mkdir(exist_ok=True)
    (d / "eval_outcomes.jsonl").write_text(json.dumps(
        {"metric": "greedy", **Outcome("q", "greedy", "r", "1", True).to_dict()}) + "\n")
    assert read_frontier(run, "r3v") is None
    board = build_leaderboard([run])
    assert "the frontier" not in board.markdown()
    written = write_outputs(board, tmp_path / "b" / "lb.md")
    assert not any("frontier" in p.name for p in written)


def test_a_bad_level_or_line_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(LeaderboardError, match="x.jsonl: line 1: level must be an int"):
        count_levels([{"metric": "greedy", "level": "2", "correct": True}], "x.jsonl")
    run = run_folder(tmp_path, "r3v", "r3v", "shapes", {"greedy": 0.5})
    (run / "iter_0").mkdir(exist_ok=True)
    (run / "iter_0" / "eval_outcomes.jsonl").write_text("{not json\n")
    with pytest.raises(LeaderboardError, match="eval_outcomes.jsonl: line 1 is not JSON"):
        read_frontier(run, "r3v")


class _Echo:
    """An engine that answers every request with its problem's gold answer."""

    def __init__(self, problems):
        self.gold = {p.id: p.answer for p in problems}

    def generate(self, requests, sampling, progress=True):
        return [[f"Solution:\n1. x\n\nAnswer:\n{self.gold[r.meta['id']]}"] for r in requests]


def test_outcomes_carry_the_problems_level():
    bench = get_benchmark("shapes")
    problems = bench.load("test", limit=3)
    problems[0].meta["level"] = 4
    problems[1].meta["level"] = True   # not an int level: ignored, not taken as 1
    problems[2].meta.pop("level", None)
    out = greedy_cot(_Echo(problems), bench, problems, progress=False)
    assert [o.level for o in out] == [4, None, None]
    assert [level_of(p) for p in problems] == [4, None, None]


def test_teacher_max_level_keeps_the_easy_levels_only():
    from r3v_train import loop
    from r3v_train.config import ConfigError, load_recipe

    train = get_benchmark("shapes").load("train", limit=60)
    for p in train:
        p.meta["level"] = len(p.meta["objects"])
    cfg = load_recipe(RECIPE, ["data.teacher_limit=null", "data.teacher_max_level=3"])
    teacher = loop.teacher_rationales(cfg, train)
    assert teacher and all(len(p.meta["objects"]) <= 3 for p in train if p.id in teacher)
    assert len(teacher) == sum(len(p.meta["objects"]) <= 3 for p in train)
    bare = [Problem(id="q", question="?", answer="1", benchmark="shapes",
                    meta={"rationale": "Solution:\n1. x\n\nAnswer:\n1"})]
    with pytest.raises(ConfigError, match="meta 'level'"):
        loop.teacher_rationales(cfg, bare)
    with pytest.raises(ConfigError, match="data.teacher_max_level: must be >= 1"):
        load_recipe(RECIPE, ["data.teacher_max_level=0"])


def test_the_control_sees_every_train_answer():
    """Without warm-up QA pairs, the control adds a direct-answer pair per train question to
    the warm-up's data (the labels self-training splits its samples by); with them it trains
    the warm-up's data as is."""
    from r3v_train import loop
    from r3v_train.config import load_recipe
    from r3v_train.reflect import build_warmup

    bench = get_benchmark("shapes")
    train = bench.load("train", limit=12)
    teacher = {p.id: p.meta["rationale"] for p in train[:3]}
    cfg = load_recipe(RECIPE, ["data.warmup_qa=false", "run.method=control", "run.control_steps=2"])
    warm = build_warmup(bench, train, teacher, qa=False)
    labels = loop.control_data(cfg, bench, train, warm)
    assert labels.counts["teacher"] == 3 and labels.counts["qa"] == 12
    qa = [e for e in labels.examples if e.kind == "qa"]
    assert {e.problem_id for e in qa} == {p.id for p in train}
    assert all(e.completion == p.answer for e, p in zip(qa, train))
    with_qa = load_recipe(RECIPE, ["run.method=control", "run.control_steps=2"])
    warm_qa = build_warmup(bench, train, teacher, qa=True)
    assert loop.control_data(with_qa, bench, train, warm_qa) is warm_qa


def _script(name: str):
    import importlib.util

    path = Path(__file__).parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"r3v_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_add_levels_fills_old_runs_only_after_every_reply_scores_as_saved(tmp_path, capsys):
    """scripts/add_levels.py: a run saved before shapes had levels gets each outcome's level
    from the rebuilt test split; a run whose saved replies do not score as saved against that
    split (another data seed) is refused and left as it was."""
    import yaml

    add_levels = _script("add_levels")
    bench = get_benchmark("shapes", {"seed": 7, "sizes": {"test": 12}})
    test = bench.load("test")
    run = tmp_path / "run"
    (run / "iter_1").mkdir(parents=True)
    data = {"benchmark": "shapes", "options": {"seed": 7, "sizes": {"test": 12}}}
    (run / "config.yaml").write_text(yaml.safe_dump({"data": data}))
    lines = []
    for i, p in enumerate(test):
        reply = f"Solution:\n1. x\n\nAnswer:\n{p.answer if i % 3 else int(p.answer) + 1}"
        s = bench.score(reply, p)
        lines.append({"metric": "greedy", **Outcome(p.id, "greedy", reply, s.extracted, s.correct,
                                                    level=None).to_dict()})
    saved = "".join(json.dumps(x) + "\n" for x in lines)
    outcomes = run / "iter_1" / "eval_outcomes.jsonl"
    outcomes.write_text(saved)

    other = tmp_path / "other"
    (other / "iter_1").mkdir(parents=True)
    (other / "config.yaml").write_text(yaml.safe_dump(
        {"data": {**data, "options": {"seed": 8, "sizes": {"test": 12}}}}))
    (other / "iter_1" / "eval_outcomes.jsonl").write_text(saved)
    assert add_levels.main([str(other)]) == 2
    assert "not the one the run used" in capsys.readouterr().err
    assert (other / "iter_1" / "eval_outcomes.jsonl").read_text() == saved

    assert add_levels.main([str(run)]) == 0
    filled = [json.loads(x) for x in outcomes.read_text().splitlines()]
    assert [x["level"] for x in filled] == [p.meta["steps"] for p in test]
    assert [x["correct"] for x in filled] == [x["correct"] for x in lines]
    assert (run / "iter_1" / "eval_outcomes.jsonl.orig").read_text() == saved
    frontier = read_frontier(run, "r3v")
    assert sum(a for _, a in frontier.levels[1].values()) == 12
