"""``r3v demo --quick`` end to end (real subprocesses, real tiny models): the demo is a thin
driver, so its outputs are the loop's run folders and ``r3v train`` on the shipped demo
recipes reproduces them exactly."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from r3v_train.demo.driver import demo_stages, stage_overrides

pytestmark = pytest.mark.slow
R3V = [sys.executable, "-m", "r3v_train.cli"]
QUICK = Path(__file__).parents[1] / "recipes" / "demo" / "quick"
STAGES = ("warmup", "star", "r3v", "control")


def r3v(*args):
    res = subprocess.run([*R3V, *map(str, args)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    res = r3v("demo", "--quick", "--out", out)
    return out, res.stdout


def test_the_demo_writes_the_loops_run_folders_and_a_leaderboard(demo):
    out, stdout = demo
    for name in STAGES:
        run_dir = out / name
        assert (run_dir / "config.yaml").is_file() and (run_dir / "progress.log").is_file()
        m = metrics(run_dir)
        assert m["name"] == name if name == "warmup" else m["method"] == name
        assert m["final"]["greedy"] is not None
    # one warm-up, shared: the others have no iteration 0 of their own ...
    assert (out / "warmup" / "iter_0" / "model" / "DONE").is_file()
    for name in ("star", "r3v", "control"):
        assert not (out / name / "iter_0").exists()
        assert metrics(out / name)["history"][0]["shared_from"] == str(out / "warmup")
    # ... and one set of iteration-0 samples, drawn once into the warm-up's pool
    assert [p.name for p in (out / "warmup" / "pool").rglob("*.jsonl")] == ["iter_0.jsonl"]
    assert not list((out / "star" / "pool").rglob("iter_0.jsonl"))
    assert not list((out / "r3v" / "pool").rglob("iter_0.jsonl"))
    # the control trained as many optimizer steps as R3V's last iteration
    r3v_steps = json.loads((out / "r3v" / "iter_1" / "model" / "train_metrics.json")
                           .read_text())["global_step"]
    assert metrics(out / "control")["history"][-1]["control_steps"] == r3v_steps
    # R3V's table row and its @N sweep come from one set of 5 samples per question
    final = metrics(out / "r3v")["final"]
    assert {"majority@1", "select@3", "pass@5"} <= set(final)
    assert final["majority@1"] == final["pass@1"]
    md = (out / "leaderboard.md").read_text()
    for heading in ("## greedy: chain-of-thought", "## greedy accuracy per iteration",
                    "## r3v: majority / select / pass as N grows",
                    "## the frontier: greedy accuracy per difficulty level"):
        assert heading in md and heading in stdout
    for png in ("leaderboard.png", "leaderboard_per_iteration.png",
                "leaderboard_select_vs_majority.png", "leaderboard_frontier.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_r3v_train_on_the_demo_recipes_reproduces_the_demo(demo, tmp_path):
    out, _ = demo
    again = tmp_path / "again"
    r3v("train", "--recipe", QUICK / "warmup.yaml", "--set", f"run.out_dir={again / 'warmup'}")
    r3v("train", "--recipe", QUICK / "r3v.yaml", "--set", f"run.out_dir={again / 'r3v'}",
        "--set", f"run.warmup_from={again / 'warmup'}")
    assert metrics(again / "r3v")["final"] == metrics(out / "r3v")["final"]
    # not just equal figures: the same samples and the same replies, word for word
    assert (lines(again / "warmup" / "pool" / "rank0" / "iter_0.jsonl")
            == lines(out / "warmup" / "pool" / "rank0" / "iter_0.jsonl"))
    assert (lines(again / "r3v" / "iter_1" / "eval_outcomes.jsonl")
            == lines(out / "r3v" / "iter_1" / "eval_outcomes.jsonl"))


def test_a_second_demo_resumes_without_redoing_anything(demo):
    out, _ = demo
    done = {p: p.stat().st_mtime_ns for p in out.rglob("DONE")}
    before = {name: metrics(out / name)["final"] for name in STAGES}
    res = r3v("demo", "--quick", "--out", out)
    assert "sampling" not in res.stdout and "evaluating" not in res.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("DONE")} == done
    assert {name: metrics(out / name)["final"] for name in STAGES} == before


def test_stages_and_overrides():
    assert demo_stages(None) == ["warmup", "star", "r3v", "control"]
    assert demo_stages(["control", "r3v_no_select", "r3v"]) == [
        "warmup", "r3v", "r3v_no_select", "control"]
    from r3v_train.config import ConfigError

    with pytest.raises(ConfigError, match="needs r3v"):
        demo_stages(["star", "control"])
    assert demo_stages(["r3v", "grpo", "control"]) == ["warmup", "r3v", "grpo", "control"]
    with pytest.raises(ConfigError, match="unknown 'ppo'"):
        demo_stages(["ppo"])
    sets = stage_overrides("control", Path("o"), 3)
    assert "data.options.seed=1003" in sets and "run.control_reference=o/r3v" in sets
    assert "run.warmup_from=o/warmup" in sets and "train.seed=3" in sets
