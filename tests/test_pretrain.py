"""The demo's base model: perception rows, ``r3v pretrain`` (train, measure, ship) and the
shipped copy, whose checksums are verified before any run uses it."""

import json
import re
import shutil

import pytest

from r3v_eval.benchmarks import get_benchmark
from r3v_eval.benchmarks.shapes import count
from r3v_train.config import ConfigError, load_recipe
from r3v_train.demo.driver import PRETRAIN_RECIPE
from r3v_train.demo.perception import perception_rows
from r3v_train.demo.pretrain import run_pretrain
from r3v_train.demo.shipped import CHECKSUMS, DEMO_BASE, seal, shipped_model
from r3v_train.recipe_library import recipes_root

RECIPES = recipes_root() / "demo"

WORLD = load_recipe(RECIPES / "world.yaml").data.options
SKILLS = {"count": 0.5, "describe": 0.25, "arith": 0.25}


def shapes():
    return get_benchmark("shapes", WORLD)


def test_perception_rows_say_what_the_picture_shows():
    bench = shapes()
    rows = perception_rows(bench, 200, seed=3, skills=SKILLS)
    seen = {r["skill"] for r in rows}
    assert seen == set(SKILLS)
    for r in rows:
        if r["skill"] == "arith":
            a, op, b, result = re.fullmatch(r"(\d+) ([+-]) (\d+) = (\d+)\.", r["completion"]).groups()
            assert int(result) == (int(a) + int(b) if op == "+" else int(a) - int(b)) >= 0
        elif r["skill"] == "describe":
            sentences = r["completion"].split(". ")
            total = int(re.search(r"There (?:is|are) (\d+) object", sentences[0]).group(1))
            parts = [int(re.search(r"(\d+)", s).group(1)) for s in sentences[1:]]
            assert total == sum(parts) and all(parts)
        else:
            assert r["template"].startswith("count_")
            assert re.fullmatch(r"There (is|are) \d+ .+\.", r["completion"])
    # one-step only: no removal, addition or multi-line answer anywhere
    assert not any("Remove" in r["prompt"] or "Add" in r["prompt"] or "\n" in r["completion"]
                   for r in rows)


def test_counting_rows_match_the_scene():
    bench = shapes()
    import dataclasses

    from r3v_train.demo.perception import ONE_STEP_TEMPLATES
    from r3v_eval.benchmarks.shapes import generate_samples

    world = dataclasses.replace(bench.config, templates=ONE_STEP_TEMPLATES)
    samples = generate_samples(30, "val", 5, world)
    rows = perception_rows(bench, 30, seed=5)  # counting only, the same stream
    for s, r in zip(samples, rows):
        n = count(s.objects, s.query.get("color"), s.query.get("shape"))
        assert r["prompt"] == s.question and f" {n} " in r["completion"]


def test_solve_rows_are_one_step_solutions_under_the_cot_prompt():
    from r3v_eval.prompts import COT_PREFIX

    bench = shapes()
    rows = perception_rows(bench, 60, seed=4, skills={"solve": 1, "count": 1})
    solve = [r for r in rows if r["skill"] == "solve"]
    counts = [r for r in rows if r["skill"] == "count"]
    assert solve and counts
    for r in solve:
        question, suffix = r["prompt"].split("\n")
        assert suffix.startswith(COT_PREFIX) and "Remove" not in question and "Add" not in question
        line, answer = re.fullmatch(r"Solution:\n1\. (There (?:is|are) (\d+) [^\n]+\.)\n\nAnswer:\n(\d+)",
                                    r["completion"]).group(1, 3)
        # the same sentence a count row gives, and an answer the benchmark's checker accepts
        assert re.search(r"(\d+)", line).group(1) == answer
    # one stream: the k-th picture of a solve row is the k-th of a counting-only stream
    only = perception_rows(bench, 60, seed=4)
    for r, c in zip(rows, only):
        if r["skill"] == "solve":
            assert r["prompt"].split("\n")[0] == c["prompt"]
            assert f"1. {c['completion']}" in r["completion"]


def test_held_out_rows_are_not_pre_training_rows():
    bench = shapes()
    train = perception_rows(bench, 400, seed=0, skills={"count": 1, "describe": 1})
    held = perception_rows(bench, 200, seed=0, skills={"count": 1, "describe": 1}, split="test")
    key = lambda r: (r["prompt"], r["image"].tobytes())
    assert not {key(r) for r in train} & {key(r) for r in held}


def test_unknown_skill_is_an_error():
    with pytest.raises(ValueError, match="count, solve, describe, arith"):
        perception_rows(shapes(), 4, seed=0, skills={"read": 1.0})


def test_replayed_perception_rows_are_warmup_examples_with_their_own_pictures():
    from r3v_train.demo.perception import perception_replay
    from r3v_train.reflect import load_images

    bench = shapes()
    replay, pictures = perception_replay(bench, 40, seed=7, skills={"solve": 1, "arith": 1})
    assert replay.counts["perception"] == 40 and len(pictures) == 40
    rows = perception_rows(bench, 40, seed=7, skills={"solve": 1, "arith": 1})
    images = load_images(replay.examples, pictures)
    for ex, row, img in zip(replay.examples, rows, images):
        assert (ex.prompt, ex.completion) == (row["prompt"], row["completion"])
        assert img.tobytes() == row["image"].tobytes()
    # never a train or test problem of that world (nor one of their ids)
    problems = bench.load("train") + bench.load("test")
    assert not set(pictures) & {p.id for p in problems}
    seen = {(p.question, p.load_image().tobytes()) for p in problems}
    solve = [(ex.prompt.split("\n")[0], img.tobytes())
             for ex, img in zip(replay.examples, images) if ex.prompt.startswith("How many")]
    assert solve and not set(solve) & seen


def test_a_negative_replay_size_is_a_config_error():
    with pytest.raises(ConfigError, match="data.warmup_perception"):
        load_recipe(RECIPES / "warmup.yaml", ["data.warmup_perception=-1"])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """``r3v pretrain`` on the demo recipe, shrunk to a tiny model and 48 rows."""
    tmp = tmp_path_factory.mktemp("pretrain")
    cfg = load_recipe(PRETRAIN_RECIPE, [
        f"run.out_dir={tmp / 'run'}", "model.pretrained=tiny:qwen2_vl:tiny",
        "model.perception_examples=48", "train.per_device_train_batch_size=16", "train.save_steps=2"])
    info = run_pretrain(cfg, ship_to=tmp / "assets" / "mybase", n_eval=24)
    return tmp, info


@pytest.mark.slow
def test_pretrain_measures_every_skill_and_ships_a_checksummed_model(pretrained):
    tmp, info = pretrained
    acc = info["perception_accuracy"]
    assert {"describe", "arith", "all"} <= set(acc) and any(k.startswith("count_") for k in acc)
    assert acc["all"]["n"] == 24 == sum(v["n"] for k, v in acc.items() if k != "all")
    assert info["optimizer_steps"] == 3 and info["examples"] == 48
    shipped = shipped_model("shipped:mybase", assets=tmp / "assets")
    assert json.loads((shipped / "pretrain.json").read_text()) == info
    assert (shipped / "model.safetensors").is_file() and (shipped / CHECKSUMS).is_file()
    assert json.loads((tmp / "run" / "pretrain.json").read_text()) == info
    # a run that names it loads it (its weights, stored in bf16, are read as float32)
    from r3v_eval.engines import load_engine

    engine = load_engine("hf", str(shipped), dtype="float32", device="cpu")
    assert next(engine.model.parameters()).dtype.is_floating_point


@pytest.mark.slow
def test_a_changed_missing_or_unlisted_file_is_refused(pretrained):
    tmp, _ = pretrained
    assets = tmp / "assets_copy"
    shutil.copytree(tmp / "assets", assets)
    folder = assets / "mybase"
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    with pytest.raises(ConfigError, match="config.json does not match its SHA-256"):
        shipped_model("shipped:mybase", assets=assets)
    seal(folder)  # re-listed: accepted again
    shipped_model("shipped:mybase", assets=assets)
    (folder / "extra.txt").write_text("x")
    with pytest.raises(ConfigError, match="extra.txt is not listed"):
        shipped_model("shipped:mybase", assets=assets)
    (folder / "extra.txt").unlink()
    (folder / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="model.safetensors is missing"):
        shipped_model("shipped:mybase", assets=assets)
    with pytest.raises(ConfigError, match="not a shipped model"):
        shipped_model("shipped:nothing", assets=assets)


def test_the_shipped_demo_base_is_intact_and_the_demo_uses_it():
    folder = shipped_model("shipped:demo_base")
    assert folder == DEMO_BASE
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 30e6  # tens of MB at most, in plain git
    info = json.loads((folder / "pretrain.json").read_text())
    assert info["perception_accuracy"]["all"]["n"] >= 1000
    # every demo run names it, and the pre-training recipe rebuilds it on the same world
    assert load_recipe(RECIPES / "world.yaml").model.pretrained == "shipped:demo_base"
    # (the split sizes aside: splits are assigned by a hash of each problem, so the perception
    # rows, drawn from the val stream, do not depend on how many train / test problems there are)
    rebuilt = {k: v for k, v in load_recipe(PRETRAIN_RECIPE).data.options.items() if k != "sizes"}
    assert rebuilt == {k: v for k, v in info["data"]["options"].items() if k != "sizes"}


def test_pretrain_needs_a_tiny_base_to_build():
    cfg = load_recipe(RECIPES / "world.yaml")
    with pytest.raises(ConfigError, match="tiny:<arch>:<size>"):
        run_pretrain(cfg, ship_to=None)


def test_demo_pretrain_is_not_for_the_quick_demo(tmp_path):
    from r3v_train.demo.driver import run_demo

    with pytest.raises(ConfigError, match="--pretrain"):
        run_demo(tmp_path / "out", quick=True, pretrain=True)
