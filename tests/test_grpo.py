"""run.method=grpo: TRL's GRPOTrainer with the benchmark's answer check as the reward.

The end-to-end tests train the tiny Qwen2-VL for real on CPU. A random-weight model is never
right (every reward 0, so GRPO has no signal), so a module fixture first teaches it, in a few
seconds of SFT, to answer the CoT prompt with "Answer:\\n<number>": its sampled numbers are then
right some of the time, and GRPO has something to learn from."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from r3v_eval.benchmarks import get_benchmark
from r3v_eval.prompts import cot_prompt
from r3v_train import loop
from r3v_train.config import ConfigError, load_recipe
from helpers import wait_for
from r3v_train.grpo import GRPOSettings, answer_reward, format_reward, grpo_config, train_grpo
from r3v_train.train_settings import TrainSettings
from r3v_train.trainer import train_sft

RECIPE = Path(__file__).parents[1] / "recipes" / "tiny" / "shapes.yaml"
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")


def _as_completion(text):
    return [{"role": "assistant", "content": text}]


# ------------------------------------------------------------------ the reward
def test_reward_is_the_benchmarks_answer_check():
    bench = get_benchmark("shapes")
    problems = bench.load("train", limit=3)
    by_id = {p.id: p for p in problems}
    p = problems[0]
    wrong = str(int(p.answer) + 1)
    replies = [f"Solution:\n1. I count.\n\nAnswer:\n{p.answer}",   # right
               f"Solution:\n1. I count.\n\nAnswer:\n{wrong}",      # wrong
               "Solution:\n1. I look at the picture.",             # no answer at all
               ""]                                                  # empty
    ids = [p.id] * len(replies)
    completions = [_as_completion(r) for r in replies]
    reward = answer_reward(bench, by_id)
    assert reward(prompts=None, completions=completions, problem_id=ids) == [1.0, 0.0, 0.0, 0.0]
    # the same verdicts as the benchmark's own score(), on every problem
    for q in problems:
        for r in (f"Answer:\n{q.answer}", "Answer: 99", "blah"):
            assert reward(None, [_as_completion(r)], [q.id]) == [float(bench.score(r, q).correct)]
    # the optional format reward: an answer after an explicit marker, right or wrong
    fmt = format_reward(bench, by_id)
    assert fmt(prompts=None, completions=completions, problem_id=ids) == [1.0, 1.0, 0.0, 0.0]
    assert fmt(None, [_as_completion(f"There are {p.answer} objects.")], [p.id]) == [0.0]


# ------------------------------------------------------------------ configuration
@pytest.mark.parametrize("sets, message", [
    (["grpo.num_generations=1"], "grpo: num_generations: GRPO needs a group of >= 2"),
    (["grpo.per_device_train_batch_size=6"], "6 completions per step must be a multiple of "
                                             "num_generations = 4"),
    (["grpo.loss_type=ppo"], "grpo: loss_type: 'ppo' is not one of"),
    (["grpo.scale_rewards=std"], "grpo: scale_rewards"),
    (["grpo.beta=-0.1"], "grpo: beta: must be >= 0"),
    (["grpo.top_p=0"], "grpo: top_p"),
    (["grpo.max_steps=0"], "grpo: max_steps"),
    (["grpo.lr_scheduler_type=cyclic"], "grpo: lr_scheduler_type"),
    (["grpo.learning_rate=0"], "grpo: learning_rate: must be > 0"),
    (["grpo.group_size=4"], "grpo.group_size: unknown key; known keys in grpo: .*num_generations"),
    (["grpo.num_generations=four"], "grpo.num_generations: expected an integer"),
])
def test_grpo_settings_are_checked_before_any_model_loads(sets, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(RECIPE, ["run.method=grpo", *sets])


def test_grpo_runs_for_every_backbone_and_benchmark():
    """`--set run.method=grpo` validates on every shipped recipe; the backbone recipes train
    whole groups of 8 replies, 8 questions per GPU and step."""
    root = RECIPE.parents[1]
    backbones = {p.stem for p in (root / "backbones").glob("*.yaml")}
    recipes = [p for p in root.glob("*/*.yaml") if p.parent.name in backbones] + [RECIPE]
    assert len(backbones) == 9 and len(recipes) == 9 * 6 + 1
    for path in recipes:
        cfg = load_recipe(path, ["run.method=grpo"])
        g = cfg.grpo
        assert cfg.run.method == "grpo"
        assert (g.per_device_train_batch_size * g.gradient_accumulation_steps) % g.num_generations == 0
        if path.parent.name != "tiny":
            assert (g.num_generations, g.learning_rate, cfg.train.method) == (8, 1e-5, "lora")
            assert g.per_device_train_batch_size * g.gradient_accumulation_steps // g.num_generations == 8


def test_grpo_config_takes_the_recipe_under_trls_names():
    from trl import GRPOConfig

    cfg = load_recipe(RECIPE, ["run.method=grpo", "grpo.beta=0.04", "grpo.loss_type=dr_grpo",
                               "grpo.scale_rewards=none", "grpo.temperature=0.9", "grpo.top_k=50"])
    args = grpo_config(cfg.grpo, cfg.train, Path("unused"), cfg.sampling.max_new_tokens)
    assert isinstance(args, GRPOConfig)
    for name, value in cfg.grpo.trl_kwargs().items():
        expected = cfg.sampling.max_new_tokens if name == "max_completion_length" else value
        assert getattr(args, name) == expected, name
    assert args.max_completion_length == 48  # null: the other methods' sampling budget
    # what GRPO shares with SFT comes from the train section; TRL's CPU-hostile defaults are off
    assert args.bf16 is False and args.use_cpu is True
    assert args.gradient_checkpointing is False and args.save_steps == cfg.train.save_steps
    assert args.seed == cfg.train.seed and args.max_grad_norm == cfg.train.max_grad_norm
    # the grpo section is recorded in a run's config only where it is read
    assert "grpo" in cfg.to_dict() and "grpo" not in load_recipe(RECIPE).to_dict()


# ------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def warm_model(tiny_qwen, tmp_path_factory):
    """The tiny Qwen2-VL after a few seconds of SFT: answers the CoT prompt with a number."""
    bench = get_benchmark("shapes")
    rows = [{"prompt": cot_prompt(bench, p, "qwen"), "completion": f"Answer:\n{p.answer}",
             "image": p} for p in bench.load("train", limit=16)]
    out = tmp_path_factory.mktemp("warm") / "model"
    train_sft(str(tiny_qwen), rows, out, TrainSettings(
        method="full", learning_rate=3e-3, lr_scheduler_type="constant", max_steps=40,
        per_device_train_batch_size=8, gradient_checkpointing=False, save_strategy="no"), progress=False)
    return out


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def _grpo_sets(out, base, **extra):
    sets = {"model.pretrained": base, "run.out_dir": out, "run.method": "grpo",
            "run.warmup": "false", "train.method": "full", "train.save_steps": 2,
            "train.logging_steps": 1,
            "data.train_limit": 16, "data.test_limit": 4, "eval.n": 0,
            "grpo.max_completion_length": 8, "grpo.learning_rate": 1e-3,
            "grpo.lr_scheduler_type": "constant", "grpo.max_steps": 4, **extra}
    return [f"{k}={v}" for k, v in sets.items()]


@pytest.mark.slow
def test_grpo_trains_on_the_benchmarks_reward_end_to_end(tmp_path, warm_model):
    """A real GRPOTrainer run through the loop: rewards from the shapes answer check, the
    language model's weights move (the vision tower's do not), evaluation and compute follow."""
    cfg = load_recipe(RECIPE, _grpo_sets(tmp_path / "run", warm_model))
    summary = loop.run(cfg)
    run_dir = Path(cfg.run.out_dir)
    assert [h["iteration"] for h in summary["history"]] == [1]
    model = run_dir / "iter_1" / "model"
    assert (model / "DONE").exists() and not list(model.glob("checkpoint-*"))
    metrics = json.loads((model / "train_metrics.json").read_text())
    assert metrics["kind"] == "grpo" and metrics["global_step"] == 4
    rewards = [e["rewards/answer_correct/mean"] for e in metrics["log_history"]
               if "rewards/answer_correct/mean" in e]
    assert len(rewards) == 4 and all(0 <= r <= 1 for r in rewards)
    assert 0 < sum(rewards) < 4  # right some of the time: a learning signal
    assert any(e.get("grad_norm", 0) > 0 for e in metrics["log_history"])
    before, after = _weights(warm_model), _weights(model)
    moved = [k for k in before if not (before[k] == after[k]).all()]
    assert moved and any(".layers." in k for k in moved)
    assert any("visual" in k for k in before) and not any("visual" in k for k in moved)
    # compute: 4 steps x 16 completions (4 questions x 4 replies), counted through the resume file
    assert metrics["generated_samples"] == 4 * 16 and metrics["completions_per_step"] == 16
    assert 4 * 16 <= metrics["decoded_tokens"] <= 4 * 16 * 8 and metrics["generated_tokens"] > 0
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["compute"] == {"generated_samples": 64, "generated_tokens": metrics["generated_tokens"],
                                "optimizer_steps": 4}
    assert set(saved["final"]) == {"greedy"} and (run_dir / "iter_1" / "eval.json").is_file()
    assert "grpo" in yaml.safe_load((run_dir / "config.yaml").read_text())
    # a finished stage is not trained again
    assert loop.run(cfg)["history"][0]["train"]["reused"] is True


@pytest.mark.slow
def test_grpo_lora_continues_the_warmup_adapter_with_a_reference_copy(tmp_path, tiny_qwen):
    """The tiny recipe's LoRA warm-up, then GRPO continuing that adapter with beta > 0 (TRL keeps
    a frozen copy as the reference); the run's compute adds the warm-up's steps."""
    cfg = load_recipe(RECIPE, [f"model.pretrained={tiny_qwen}", f"run.out_dir={tmp_path / 'run'}",
                               "run.method=grpo", "grpo.beta=0.04", "grpo.max_steps=1",
                               "grpo.max_completion_length=8", "data.train_limit=8",
                               "data.test_limit=2", "eval.n=0", "train.max_steps=1"])
    summary = loop.run(cfg)
    run_dir = Path(cfg.run.out_dir)
    assert [h["iteration"] for h in summary["history"]] == [0, 1]
    model = run_dir / "iter_1" / "model"
    assert (model / "adapter_config.json").is_file() and not (model / "ref").exists()
    assert json.loads((model / "train_config.json").read_text())["init_adapter"].endswith("iter_0/model")
    assert summary["compute"]["optimizer_steps"] == 2  # warm-up 1 + GRPO 1
    assert summary["compute"]["generated_samples"] == 16


@pytest.mark.slow
def test_grpo_new_lora_adapter_learns(tmp_path, warm_model):
    bench = get_benchmark("shapes")
    settings = TrainSettings(method="lora", lora_r=8, lora_alpha=16, lora_dropout=0.0,
                             gradient_checkpointing=False, save_strategy="no")
    grpo = GRPOSettings(num_generations=4, per_device_train_batch_size=16, learning_rate=1e-2,
                        lr_scheduler_type="constant", max_steps=3, max_completion_length=8)
    result = train_grpo(warm_model, bench, bench.load("train", limit=16), tmp_path / "lora", grpo,
                        settings, prompt_style="qwen", max_new_tokens=48, progress=False)
    from safetensors.torch import load_file

    adapter = load_file(str(tmp_path / "lora" / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all("language_model" in k for k in adapter)
    assert any(v.abs().sum() > 0 for v in lora_b)  # initialised at 0: GRPO moved it
    assert result.metrics["generated_samples"] == 48
    again = train_grpo(warm_model, bench, bench.load("train", limit=16), tmp_path / "lora", grpo,
                       settings, prompt_style="qwen", max_new_tokens=48, progress=False)
    assert again.reused


# ------------------------------------------------------------------ kill and resume
def _per_step(folder):
    metrics = json.loads((Path(folder) / "iter_1" / "model" / "train_metrics.json").read_text())
    return metrics, [(e["step"], e["rewards/answer_correct/mean"], e["loss"])
                     for e in metrics["log_history"] if "rewards/answer_correct/mean" in e]


@pytest.mark.slow
def test_kill_and_resume_continues_from_the_checkpoint(tmp_path, warm_model):
    """Kill a real `r3v train` GRPO stage once a checkpoint exists; the same run resumes from
    it and ends exactly as an uninterrupted one (same rewards and losses per step, same
    generated-sample and token counts)."""
    def sets(out):
        return _grpo_sets(out, warm_model, **{"grpo.max_steps": 8, "grpo.max_completion_length": 16})

    out = tmp_path / "killed"
    stage = out / "iter_1" / "model"
    cmd = [sys.executable, "-m", "r3v_train.cli", "train", "--recipe", str(RECIPE),
           *[a for s in sets(out) for a in ("--set", s)]]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: any(stage.glob("checkpoint-*/trainer_state.json")), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (stage / "DONE").exists()
    loop.run(load_recipe(RECIPE, sets(out)))  # the same run, resumed
    resumed, resumed_steps = _per_step(out)
    assert resumed["resumed_from"] and "checkpoint-" in resumed["resumed_from"]

    whole = tmp_path / "whole"
    loop.run(load_recipe(RECIPE, sets(whole)))
    uninterrupted, whole_steps = _per_step(whole)
    assert [s for s, _, _ in resumed_steps] == list(range(1, 9))
    assert resumed_steps == whole_steps
    assert resumed["generated_samples"] == uninterrupted["generated_samples"] == 8 * 16
    assert resumed["generated_tokens"] == uninterrupted["generated_tokens"]
