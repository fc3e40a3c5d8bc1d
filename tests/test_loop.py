"""The self-training loop end to end on the tiny recipe (real TRL training on CPU).

Sampling and evaluation go through a scripted engine that knows the gold answers, so every
kind of reflection example appears (a random-weight model is never right); training, the
pool, the example builders and the run files are the real ones. The kill-and-resume test
below runs the real model through the real `r3v train` command."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from r3v_train import loop
from r3v_train.config import ConfigError, load_recipe
from helpers import GoldAwareEngine, wait_for
from r3v_train.pool import SamplePool

RECIPE = Path(__file__).parents[1] / "recipes" / "tiny" / "shapes.yaml"
pytestmark = pytest.mark.slow


@pytest.fixture
def scripted(monkeypatch):
    from r3v_eval.benchmarks import get_benchmark

    engine = GoldAwareEngine(get_benchmark("shapes").load("train", limit=200)
                             + get_benchmark("shapes").load("test", limit=200))
    monkeypatch.setattr(loop, "load_engine", lambda *a, **k: engine)
    return engine


@pytest.fixture(scope="module")
def base_model(tiny_qwen):
    return str(tiny_qwen)


def _cfg(tmp_path, base_model, method, **extra):
    sets = [f"model.pretrained={base_model}", f"run.out_dir={tmp_path / method}",
            f"run.method={method}", "train.max_steps=1", "data.train_limit=12",
            "data.test_limit=4"] + [f"{k}={v}" for k, v in extra.items()]
    return load_recipe(RECIPE, sets)


def _examples(run_dir, t):
    return [json.loads(l) for l in (run_dir / f"iter_{t}" / "examples.jsonl").read_text().splitlines()]


def test_r3v_builds_every_kind_and_writes_the_run_files(tmp_path, base_model, scripted):
    cfg = _cfg(tmp_path, base_model, "r3v")
    summary = loop.run(cfg)
    run_dir = Path(cfg.run.out_dir)
    for name in ("config.yaml", "versions.json", "progress.log", "metrics.json"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [h["iteration"] for h in metrics["history"]] == [0, 1, 2]
    assert set(metrics["final"]) == {"greedy", "majority@3", "select@3", "pass@3"}
    assert metrics["final"] == summary["final"]
    for t in (0, 1, 2):
        model = run_dir / f"iter_{t}" / "model"
        assert (model / "adapter_config.json").is_file() and (model / "DONE").exists()
        assert json.loads((run_dir / f"iter_{t}" / "eval.json").read_text())["n_test"] == 4
    # the pool: iteration t's checkpoint drew 3 samples per train question, labelled t
    pool = SamplePool(run_dir / "pool" / "rank0")
    assert pool.iterations() == [0, 1]
    assert pool.stats(0)["n"] == 12 * 3 and 0 < pool.stats(0)["positives"] < 36
    kinds = {e["kind"] for e in _examples(run_dir, 2)}
    assert kinds == {"qa", "teacher", "sft", "refine", "select"}
    ex2 = _examples(run_dir, 2)
    for e in ex2:
        if e["kind"] == "select":
            assert e["prompt"].count("Model's prediction ") == 3
            assert "\n" not in e["completion"] and any(e["meta"]["candidate_correct"])
        if e["kind"] == "refine":
            assert "Judge the correctness of the model's prediction and refine it." in e["prompt"]
            assert e["completion"].endswith(e["completion"].split("Answer:\n")[-1])
    # cumulative pool: iteration 2 sees samples of iterations 0 and 1
    sources = {s[0] for e in ex2 if e["kind"] == "sft" for s in e["sources"]}
    assert sources <= {0, 1} and 1 in sources
    assert json.loads((run_dir / "iter_1" / "model" / "train_metrics.json").read_text())
    # compute: the pool's 2 x 12 x 3 replies and every stage's optimizer steps (warm-up included)
    steps = [json.loads((run_dir / f"iter_{t}" / "model" / "train_metrics.json").read_text())[
        "global_step"] for t in (0, 1, 2)]
    assert metrics["compute"]["generated_samples"] == 72 and metrics["compute"]["optimizer_steps"] == sum(steps)
    assert metrics["compute"]["generated_tokens"] > 72 * 10


def test_eval_settings_are_read(tmp_path, base_model, scripted, monkeypatch):
    """eval.batch_size sizes the evaluation engine (sampling.batch_size the sampling one),
    eval.every_iteration=false evaluates the last iteration only, eval.seed seeds it."""
    asked = []

    def factory(*args, **kwargs):
        asked.append(kwargs["batch_size"])
        return scripted

    monkeypatch.setattr(loop, "load_engine", factory)
    seeds = []
    real_evaluate = loop.strategies.evaluate

    def evaluate(*args, **kwargs):
        seeds.append(kwargs["seed"])
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(loop.strategies, "evaluate", evaluate)
    cfg = _cfg(tmp_path, base_model, "star", **{"sampling.batch_size": 5, "eval.batch_size": 7,
                                                 "eval.every_iteration": "false",
                                                 "eval.seed": 11})
    summary = loop.run(cfg)
    run_dir = Path(cfg.run.out_dir)
    assert asked == [5, 5, 7]  # sample after iterations 0 and 1; evaluate iteration 2 only
    assert seeds == [11]
    assert [h["metrics"] is None for h in summary["history"]] == [True, True, False]
    assert not (run_dir / "iter_0" / "eval.json").exists()
    assert (run_dir / "iter_2" / "eval.json").is_file()
    assert summary["final"] == summary["history"][-1]["metrics"]


def test_matched_compute_control_continues_the_warmup_for_the_reference_steps(
        tmp_path, base_model, scripted):
    """run.method=control: the warm-up's own data, continued from the warm-up checkpoint for
    as many optimizer steps as the reference run's last iteration; no self-generated data."""
    ref = _cfg(tmp_path, base_model, "r3v", **{"run.iterations": 1, "train.max_steps": -1})
    loop.run(ref)
    ref_steps = json.loads((Path(ref.run.out_dir) / "iter_1" / "model" /
                            "train_metrics.json").read_text())["global_step"]
    assert ref_steps > 1  # epoch-based: a count the control must match, not the recipe's cap
    cfg = _cfg(tmp_path, base_model, "control", **{"run.control_reference": ref.run.out_dir})
    summary = loop.run(cfg)
    run_dir = Path(cfg.run.out_dir)
    assert [h["iteration"] for h in summary["history"]] == [0, 1]
    assert summary["history"][1]["control_steps"] == ref_steps
    trained = json.loads((run_dir / "iter_1" / "model" / "train_metrics.json").read_text())
    assert trained["global_step"] == ref_steps
    assert {e["kind"] for e in _examples(run_dir, 1)} == {"qa", "teacher"}
    assert not (run_dir / "pool").exists() or not list((run_dir / "pool").rglob("iter_*.jsonl"))
    assert json.loads((run_dir / "iter_1" / "model" / "train_config.json").read_text())[
        "init_adapter"].endswith("iter_0/model")  # continued from the warm-up checkpoint
    assert summary["final"] == summary["history"][1]["metrics"]
    fixed = _cfg(tmp_path, base_model, "control", **{"run.control_steps": 2,
                                                      "run.out_dir": tmp_path / "fixed"})
    assert loop.run(fixed)["history"][1]["train"]["global_step"] == 2


@pytest.mark.parametrize("sets, message", [
    (["run.method=control"], "exactly one of run.control_reference"),
    (["run.method=control", "run.control_steps=3", "run.control_reference=x"], "exactly one"),
    (["run.method=control", "run.control_steps=3", "run.warmup=false"], "run.warmup: true"),
    (["run.control_steps=3"], "apply to run.method=control only"),
    (["run.method=control", "run.control_steps=0"], "run.control_steps: must be >= 1"),
])
def test_control_settings_are_checked_before_any_model_loads(sets, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(RECIPE, sets)


def test_one_image_budget_for_sampling_evaluation_and_training():
    cfg = load_recipe(RECIPE, ["model.max_pixels=3136", "model.min_pixels=784"])
    assert (cfg.train.max_pixels, cfg.train.min_pixels) == (3136, 784)  # training sees it too
    for key in ("max_pixels", "min_pixels"):
        with pytest.raises(ConfigError, match=f"train.{key}: set model.{key} instead"):
            load_recipe(RECIPE, [f"train.{key}=3136"])
    qwen = load_recipe(RECIPE.parents[1] / "qwen2_vl_2b" / "chartqa.yaml")
    assert qwen.model.max_pixels == qwen.train.max_pixels == 401408


def test_one_dtype_for_sampling_evaluation_and_training():
    qwen = load_recipe(RECIPE.parents[1] / "qwen2_vl_2b" / "chartqa.yaml")
    assert qwen.model.dtype == "bfloat16" and qwen.train.bf16 is True
    assert qwen.train.model_dtype == "auto"  # LoRA loads bf16; full FT keeps fp32 master weights
    tiny = load_recipe(RECIPE)
    assert tiny.model.dtype == "float32" and (tiny.train.bf16, tiny.train.model_dtype) == (
        False, "float32")
    auto = load_recipe(RECIPE, ["model.dtype=auto"])
    assert (auto.train.bf16, auto.train.model_dtype) == (None, "auto")
    for key in ("bf16", "model_dtype"):
        with pytest.raises(ConfigError, match=f"train.{key}: set model.dtype instead"):
            load_recipe(RECIPE, [f"train.{key}=true"])
    with pytest.raises(ConfigError, match="float16 cannot train"):
        load_recipe(RECIPE, ["model.dtype=float16"])


def test_control_reference_without_a_trained_iteration_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no trained iteration"):
        loop.reference_steps(tmp_path)


def unread_recipe_keys(sources: dict[str, str]) -> list[str]:
    """Recipe keys no code reads. The loop's own sections must be read as ``.<section>.<key>``
    (``cfg.eval.batch_size``); ``train``, ``reflect`` and ``grpo`` are handed whole to
    trainer.py / stage.py, reflect.py and grpo.py, which must read ``.<key>`` themselves; a ``grpo`` key
    marked ``trl`` is read by passing it to TRL under its own name (``trl_kwargs()``, checked
    by tests/test_grpo.py)."""
    import dataclasses
    import re as regex

    from r3v_train.config import _section_types

    # train: trainer.py uses the settings, and train_settings.py derives values from them (its
    # validation does not count as a use)
    settings = regex.sub(r"def __post_init__.*?\n    # -+", "", sources["train_settings.py"],
                         flags=regex.S)
    owners = {"train": sources["trainer.py"] + sources["stage.py"] + settings,
              "reflect": sources["reflect.py"] + sources["reflect_config.py"],
              "grpo": sources["grpo.py"]}
    everything = "\n".join(text for name, text in sources.items() if name != "config.py")
    unread = []
    for section, cls in _section_types().items():
        for f in dataclasses.fields(cls):
            if f.metadata.get("trl") and "trl_kwargs()" in owners.get(section, ""):
                continue
            if section in owners:
                found = regex.search(rf"\.{f.name}\b", owners[section])
            else:
                found = regex.search(rf"\.{section}\.{f.name}\b", everything)
            if not found:
                unread.append(f"{section}.{f.name}")
    return unread


def _sources(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*.py")}


def test_every_documented_recipe_key_is_read():
    """A key that nothing reads is a promise the loop does not keep."""
    sources = _sources(Path(loop.__file__).parent)
    assert unread_recipe_keys(sources) == []
    # the check bites: the code before eval.batch_size / eval.every_iteration were read
    stale = {name: text.replace(".eval.batch_size", ".x").replace(".eval.every_iteration", ".x")
             for name, text in sources.items()}
    assert unread_recipe_keys(stale) == ["eval.batch_size", "eval.every_iteration"]


@pytest.mark.parametrize("arch", ["qwen3_vl", "gemma3"])
def test_the_loop_trains_the_newer_families(tmp_path, scripted, arch):
    """Warm-up + one R3V iteration with every kind of example on a tiny Qwen3-VL / Gemma 3,
    built offline by the recipe itself (``tiny:<arch>:tiny``)."""
    cfg = _cfg(tmp_path, f"tiny:{arch}:tiny", "r3v", **{"run.iterations": 1})
    summary = loop.run(cfg)
    run_dir = Path(cfg.run.out_dir)
    assert [h["iteration"] for h in summary["history"]] == [0, 1]
    assert json.loads((run_dir / "base_model" / "r3v_tiny.json").read_text())["arch"] == arch
    assert {e["kind"] for e in _examples(run_dir, 1)} == {"qa", "teacher", "sft", "refine", "select"}
    metrics = json.loads((run_dir / "iter_1" / "model" / "train_metrics.json").read_text())
    assert metrics["global_step"] == 1 and metrics["train_loss"] > 0


@pytest.mark.parametrize("method,kinds", [
    ("star", {"qa", "teacher", "sft"}),
    ("r3v_no_refine", {"qa", "teacher", "sft", "select"}),
    ("r3v_no_select", {"qa", "teacher", "sft", "refine"}),
])
def test_baselines_and_ablations_train_only_their_kinds(tmp_path, base_model, scripted, method, kinds):
    cfg = _cfg(tmp_path, base_model, method)  # warm-up + 2 iterations, as the tiny recipe
    summary = loop.run(cfg)
    assert [h["iteration"] for h in summary["history"]] == [0, 1, 2]
    assert {e["kind"] for e in _examples(Path(cfg.run.out_dir), 2)} == kinds


def test_full_fine_tuning_continuing_from_the_previous_iteration(tmp_path, base_model, scripted):
    cfg = _cfg(tmp_path, base_model, "star", **{"train.method": "full", "run.iterations": 2,
                                                "run.start": "previous"})
    summary = loop.run(cfg)
    run_dir = Path(cfg.run.out_dir)
    for t in (0, 1, 2):
        model = run_dir / f"iter_{t}" / "model"
        assert (model / "config.json").is_file() and not (model / "adapter_config.json").exists()
    assert [h["iteration"] for h in summary["history"]] == [0, 1, 2]
    # full fine-tuning continues a saved model: iteration t's base is iteration t-1's model
    bases = [json.loads((run_dir / f"iter_{t}" / "model" / "train_config.json").read_text())["base_model_path"]
             for t in (0, 1, 2)]
    assert bases[0] == base_model
    assert bases[1].endswith("iter_0/model") and bases[2].endswith("iter_1/model")


@pytest.mark.parametrize("start, inits", [
    ("base", [None, None, None]),
    ("warmup", [None, "iter_0/model", "iter_0/model"]),
    ("previous", [None, "iter_0/model", "iter_1/model"]),
])
def test_run_start_picks_where_each_iteration_trains_from(tmp_path, base_model, scripted,
                                                         start, inits):
    cfg = _cfg(tmp_path, base_model, "star", **{"run.start": start})
    loop.run(cfg)
    run_dir = Path(cfg.run.out_dir)
    got = [json.loads((run_dir / f"iter_{t}" / "model" / "train_config.json").read_text())[
        "init_adapter"] for t in (0, 1, 2)]
    assert [g if g is None else "/".join(Path(g).parts[-2:]) for g in got] == inits


def test_runs_share_one_warmup_and_its_samples(tmp_path, base_model, scripted, monkeypatch):
    """run.warmup_from: STaR and R3V start from one warm-up checkpoint and one set of
    iteration-0 samples, kept in the warm-up's folder; settings must agree."""
    warm = _cfg(tmp_path, base_model, "r3v", **{"run.iterations": 0, "run.name": "warmup",
                                                "run.out_dir": tmp_path / "warm"})
    loop.run(warm)
    calls = []
    real = loop.strategies.sample_candidates
    monkeypatch.setattr(loop.strategies, "sample_candidates", lambda *a, **k: calls.extend(
        p.id for p in a[2] if "-train-" in p.id) or real(*a, **k))
    shared = {"run.warmup_from": warm.run.out_dir, "run.start": "warmup", "run.iterations": 1}
    star = loop.run(_cfg(tmp_path, base_model, "star", **shared))
    assert len(calls) == len(set(calls)) == 12  # STaR drew the iteration-0 samples ...
    r3v = loop.run(_cfg(tmp_path, base_model, "r3v", **shared))
    assert len(calls) == 12  # ... and R3V reused them
    pool = SamplePool(tmp_path / "warm" / "pool" / "rank0")
    assert pool.iterations() == [0] and pool.stats(0)["n"] == 12 * 3
    for run_dir in (tmp_path / "star", tmp_path / "r3v"):
        assert not (run_dir / "iter_0" / "model").exists()  # no warm-up of its own
        assert not list((run_dir / "pool").rglob("iter_0.jsonl"))
        assert json.loads((run_dir / "iter_1" / "model" / "train_config.json").read_text())[
            "init_adapter"] == str(tmp_path / "warm" / "iter_0" / "model")
    warm_metrics = json.loads((tmp_path / "warm" / "iter_0" / "eval.json").read_text())["metrics"]
    assert star["history"][0]["metrics"] == r3v["history"][0]["metrics"] == warm_metrics
    assert json.loads((tmp_path / "warm" / "metrics.json").read_text())["name"] == "warmup"
    # settings that must agree, and a warm-up that is not there
    with pytest.raises(ConfigError, match=r"other settings \(sampling.temperature\)"):
        loop.run(_cfg(tmp_path, base_model, "star", **shared, **{
            "sampling.temperature": 0.5, "run.out_dir": tmp_path / "hot"}))
    with pytest.raises(ConfigError, match="not a run folder"):
        loop.run(_cfg(tmp_path, base_model, "star", **{
            "run.warmup_from": tmp_path / "nowhere", "run.out_dir": tmp_path / "x"}))


@pytest.mark.parametrize("sets, message", [
    (["run.start=scratch"], "run.start: 'scratch' is not one of base, warmup, previous"),
    (["run.start=warmup", "run.warmup=false"], "run.start=warmup needs the warm-up"),
    (["run.warmup_from=x", "run.warmup=false"], "run.warmup_from shares a warm-up"),
    (["data.options.colour=red"], "data.options: benchmark 'shapes' takes no option 'colour'"),
    (["data.options.sizes={dev: 3}"], "shapes sizes: unknown split 'dev'"),
    (["data.teacher_repeats=0"], "data.teacher_repeats: must be >= 1"),
    (["eval.ns=[1, 4]", "eval.n=3"], "eval.ns: 4 is not between 1 and eval.n=3"),
    (["eval.select_choice=vote"], "eval.select_choice: must be one of generate, candidates"),
    (["model.perception_examples=10", "model.pretrained=Qwen/Qwen2-VL-2B-Instruct"],
     "pre-trains a tiny:<arch>:<size> base only"),
    (["run.iterations.x=1"], "run.iterations.x.*iterations is not a mapping"),
])
def test_loop_keys_are_checked_before_any_model_loads(sets, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(RECIPE, sets)


def test_nested_overrides_keep_the_rest_of_a_mapping():
    demo = RECIPE.parents[1] / "demo" / "r3v.yaml"
    cfg = load_recipe(demo, ["data.options.seed=7"])
    assert cfg.data.options["seed"] == 7 and cfg.data.options["config"]["grid_size"] == 3
    quick = load_recipe(RECIPE.parents[1] / "demo" / "quick" / "r3v.yaml")
    # the quick overlay changes the sizes, the world of the full recipe stays
    assert quick.data.options["sizes"] == {"train": 24, "test": 16}
    assert quick.data.options["config"] == cfg.data.options["config"]


def test_teacher_selection_keys():
    from r3v_eval.benchmarks import get_benchmark

    train = get_benchmark("shapes").load("train", limit=200)
    cfg = load_recipe(RECIPE, ["data.teacher_limit=null", "data.teacher_max_steps=2",
                               "data.teacher_per_template=2"])
    teacher = loop.teacher_rationales(cfg, train)
    picked = [p for p in train if p.id in teacher]
    assert all(p.meta["steps"] <= 2 for p in picked)
    per_template = {}
    for p in picked:
        per_template[p.meta["template"]] = per_template.get(p.meta["template"], 0) + 1
    assert set(per_template.values()) == {2} and len(per_template) >= 5
    # the first ones in train order
    first = next(p for p in train if p.meta["steps"] <= 2)
    assert first.id in teacher
    from r3v_eval.benchmarks import Problem

    bare = [Problem(id="q", question="?", answer="1", benchmark="shapes",
                    meta={"rationale": "Solution:\n1. x\n\nAnswer:\n1"})]
    with pytest.raises(ConfigError, match="meta 'template'"):
        loop.teacher_rationales(load_recipe(RECIPE, ["data.teacher_per_template=1"]), bare)
    from r3v_train.reflect import build_warmup

    bench = get_benchmark("shapes")
    warm = build_warmup(bench, train, teacher, qa=False, teacher_repeats=3)
    assert warm.counts["teacher"] == 3 * len(teacher)


def test_teacher_templates_keep_the_named_question_types_only():
    from r3v_eval.benchmarks import get_benchmark

    train = get_benchmark("shapes").load("train", limit=200)
    names = ["count_all", "remove_then_add"]
    cfg = load_recipe(RECIPE, ["data.teacher_limit=null", "data.teacher_max_steps=3",
                               f"data.teacher_templates={names}"])
    teacher = loop.teacher_rationales(cfg, train)
    assert {p.meta["template"] for p in train if p.id in teacher} == set(names)
    assert len(teacher) == sum(p.meta["template"] in names for p in train)
    with pytest.raises(ConfigError, match="unknown template.*count_al\\b"):
        loop.teacher_rationales(load_recipe(RECIPE, ["data.teacher_templates=[count_al]"]), train)
    with pytest.raises(ConfigError, match="data.teacher_templates: an empty list"):
        load_recipe(RECIPE, ["data.teacher_templates=[]"])


def test_teacher_skip_words_leave_those_questions_to_self_training():
    import re

    from r3v_eval.benchmarks import get_benchmark

    train = get_benchmark("shapes").load("train", limit=200)
    base = ["data.teacher_limit=null", "data.teacher_max_steps=3"]
    every = loop.teacher_rationales(load_recipe(RECIPE, base), train)
    teacher = loop.teacher_rationales(load_recipe(RECIPE, base + ["data.teacher_skip_words=[Blue]"]),
                                      train)
    blue = {p.id for p in train if re.search(r"\bblue\b", p.question)}
    assert blue & set(every)                     # the world asks about blue things
    assert set(teacher) == set(every) - blue     # case-insensitive; nothing else dropped
    # whole words only: "blu" is in no question as a word
    partial = loop.teacher_rationales(load_recipe(RECIPE, base + ["data.teacher_skip_words=[blu]"]),
                                      train)
    assert partial == every
    for bad in ("[]", "['two words']", "[blue.]"):
        with pytest.raises(ConfigError, match="data.teacher_skip_words"):
            load_recipe(RECIPE, [f"data.teacher_skip_words={bad}"])


def test_distill_trains_teacher_rationales_only(tmp_path, base_model, scripted):
    cfg = _cfg(tmp_path, base_model, "distill")
    summary = loop.run(cfg)
    run_dir = Path(cfg.run.out_dir)
    assert {e["kind"] for e in _examples(run_dir, 0)} == {"teacher"}
    assert [h["iteration"] for h in summary["history"]] == [0]
    assert not (run_dir / "pool").exists()


def test_star_dpo_trains_dpo_after_sft_or_says_why_not(tmp_path, base_model, scripted):
    cfg = _cfg(tmp_path, base_model, "star_dpo")
    summary = loop.run(cfg)
    run_dir = Path(cfg.run.out_dir)
    for t in (1, 2):
        assert (run_dir / f"iter_{t}" / "dpo_model" / "DONE").exists()
        assert {e["kind"] for e in _examples(run_dir, t)} == {"qa", "teacher", "sft"}
    assert summary["history"][2]["train"]["dpo"]


def test_a_second_run_with_another_config_in_the_same_folder_is_refused(tmp_path, base_model, scripted):
    cfg = _cfg(tmp_path, base_model, "star", **{"run.iterations": 0})
    loop.run(cfg)
    other = _cfg(tmp_path, base_model, "star", **{"run.iterations": 0, "train.learning_rate": 0.5})
    with pytest.raises(ConfigError, match="train.learning_rate"):
        loop.run(other)


def test_wrong_recipe_keys_fail_fast_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="train.lora_rank: unknown key"):
        load_recipe(RECIPE, ["train.lora_rank=8"])
    with pytest.raises(ConfigError, match="run.method"):
        load_recipe(RECIPE, ["run.method=magic"])
    with pytest.raises(ConfigError, match="sampling.n: expected an integer"):
        load_recipe(RECIPE, ["sampling.n=three"])
    with pytest.raises(ConfigError, match="data.benchmark"):
        load_recipe(RECIPE, ["data.benchmark=imagenet"])
    res = subprocess.run([sys.executable, "-m", "r3v_train.cli", "train", "--recipe", str(RECIPE),
                          "--set", "eval.nn=3"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "eval.nn: unknown key" in res.stderr


def test_every_shipped_recipe_validates():
    root = RECIPE.parents[1]
    recipes = [p for p in root.glob("*/*.yaml") if p.parent.name not in ("backbones", "accelerate")]
    assert len(recipes) >= 55
    for path in recipes:
        cfg = load_recipe(path)
        assert cfg.model.pretrained


@pytest.mark.parametrize("backbone,hub,max_pixels", [
    ("qwen3_vl_2b", "Qwen/Qwen3-VL-2B-Instruct", 524288),
    ("qwen3_vl_4b", "Qwen/Qwen3-VL-4B-Instruct", 524288),
    ("qwen3_vl_8b", "Qwen/Qwen3-VL-8B-Instruct", 524288),
    ("gemma3_4b", "google/gemma-3-4b-it", None),
])
def test_todays_backbones_have_a_recipe_per_benchmark(backbone, hub, max_pixels):
    folder = RECIPE.parents[1] / backbone
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    assert names == ["chartqa", "clevr_math", "geoqa", "m3cot", "miniwob", "tabmwp"]
    for name in names:
        cfg = load_recipe(folder / f"{name}.yaml")
        assert cfg.model.pretrained == hub and cfg.data.benchmark == name
        assert cfg.model.prompt_style == "qwen2"
        # 512 image tokens per picture, as the Qwen2-VL recipes (Qwen3-VL: 32x32 px per token)
        assert cfg.model.max_pixels == max_pixels
        assert (cfg.train.learning_rate, cfg.train.lora_r, cfg.sampling.n) == (3e-5, 64, 3)


def test_kill_and_resume_loses_and_redoes_nothing(tmp_path):
    """Kill a real `r3v train` mid-sampling and again mid-training; the same command finishes."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "r3v_train.cli", "train", "--recipe", str(RECIPE),
           "--set", f"run.out_dir={out}", "--set", "run.iterations=1",
           "--set", "sampling.chunk_size=4", "--set", "train.max_steps=12",
           "--set", "data.test_limit=4"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    log = out / "progress.log"

    # 1) kill during sampling, once at least one chunk is in the pool
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: log.exists() and "sampled 4/" in log.read_text(), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    pool = SamplePool(out / "pool" / "rank0")
    before = {(s.question_id, s.sample_index): s.reply for s in pool.read_iteration(0)}
    assert 0 < len(before) < 24 * 3

    # 2) resume; kill during training of iteration 1, once a checkpoint exists
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt_dir = out / "iter_1" / "model"
    # a complete checkpoint (its trainer_state.json is written last)
    assert wait_for(lambda: ckpt_dir.exists()
                    and any(ckpt_dir.glob("checkpoint-*/trainer_state.json")), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (ckpt_dir / "DONE").exists()

    # 3) resume to the end
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    text = log.read_text()
    finished = {q for q, _ in before if all((q, j) in before for j in range(3))}
    assert f"({len(finished)} already in the pool)" in text
    after = {(s.question_id, s.sample_index): s.reply for s in SamplePool(out / "pool" / "rank0").read_iteration(0)}
    assert len(after) == 24 * 3
    assert all(after[k] == v for k, v in before.items()), "finished samples must not be redone"
    assert (ckpt_dir / "DONE").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["iteration"] for h in metrics["history"]] == [0, 1]
    assert metrics["history"][1]["train"]
    assert "iteration 1: resuming from checkpoint-" in text

    # 4) the interrupted run's metrics.json is an uninterrupted run's, train figures included
    whole = tmp_path / "whole"
    res = subprocess.run([*cmd[:-2], "--set", "data.test_limit=4", "--set",
                          f"run.out_dir={whole}"], env=env, capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    # timings, memory, where it resumed, and transformers' logging window (the loss logged
    # last averages the steps since the last log or the restart, whichever came later)
    volatile = {"train_runtime_s", "tokens_per_s", "samples_per_s", "resumed_from", "reused",
                "peak_rss_gb", "peak_gpu_memory_gb", "log_history", "last_logged_loss"}

    def steady(value):
        if isinstance(value, dict):
            return {k: steady(v) for k, v in value.items() if k not in volatile}
        if isinstance(value, list):
            return [steady(v) for v in value]
        return round(value, 5) if isinstance(value, float) else value

    def differences(a, b, path=""):
        if isinstance(a, dict) and isinstance(b, dict):
            return [d for k in sorted(set(a) | set(b))
                    for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
        return [] if a == b else [f"{path}: {a!r} != {b!r}"]

    assert differences(steady(metrics), steady(json.loads((whole / "metrics.json").read_text()))) == []


def test_two_processes_shard_the_pool_and_match_one_process(tmp_path):
    """`accelerate launch --num_processes 2` on CPU: the ranks split the sampling (no sample
    twice, none lost), rank 0 evaluates, training runs distributed; at a learning rate of 1e-12
    the weights stay the base's (to ~1e-12), so every figure must equal a one-process run's."""
    from helpers import free_port

    sets = ["run.iterations=1", "train.learning_rate=1e-12", "train.max_steps=2",
            "data.train_limit=10", "data.test_limit=4", "sampling.chunk_size=3", "eval.n=2"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false")
    train = ["-m", "r3v_train.cli", "train", "--recipe", str(RECIPE)]
    one, two = tmp_path / "one", tmp_path / "two"
    accelerate = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu",
                  "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                  "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    for cmd, out in (([sys.executable], one), (accelerate, two)):
        res = subprocess.run([*cmd, *train, *(a for s in [*sets, f"run.out_dir={out}"]
                                             for a in ("--set", s))],
                             env=env, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]

    def pool(out):
        return [s for d in sorted((out / "pool").glob("rank*"))
                for s in SamplePool(d).read_iteration(0)]

    assert sorted(p.name for p in (two / "pool").glob("rank*")) == ["rank0", "rank1"]
    both = pool(two)
    keys = [(s.question_id, s.sample_index) for s in both]
    assert len(keys) == len(set(keys)) == 10 * 3  # no duplicate, none lost
    assert {q for q, _ in keys} == {s.question_id for s in pool(one)}
    replies = {(s.question_id, s.sample_index): s.reply for s in pool(one)}
    assert {k: s.reply for k, s in zip(keys, both)} == replies  # seeded per request
    assert all(SamplePool(two / "pool" / r).read_iteration(0) for r in ("rank0", "rank1"))
    m1, m2 = (json.loads((out / "metrics.json").read_text()) for out in (one, two))
    assert m2["final"] == m1["final"] and m2["history"][1]["pool"] == m1["history"][1]["pool"]
    trained = json.loads((two / "iter_1" / "model" / "train_metrics.json").read_text())
    assert trained["world_size"] == 2
