"""TRL glue on tiny offline VLMs: loss masking, LoRA targets, SFT / full / DPO runs, resumption,
sampling from the result, length grouping, launcher configs."""

import json
import math
import re
from collections import namedtuple
from pathlib import Path

import pytest
import torch
from PIL import Image

from r3v_train import stage
from r3v_train import trainer as T
from r3v_train.train_data import LengthGroupedSampler, normalize_records, sequence_lengths
from r3v_train.train_settings import LM_LORA_TARGETS, TrainSettings
from r3v_train.trainer import read_result, train_dpo, train_sft

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
Rec = namedtuple("Rec", "prompt completion image")  # records may be objects, not only dicts


def _fast(**kw) -> TrainSettings:
    base = {"per_device_train_batch_size": 4, "gradient_checkpointing": False, "logging_steps": 1,
            "lora_r": 8, "lora_alpha": 16, "save_strategy": "no", "max_steps": 2}
    base.update(kw)
    return TrainSettings(**base)


def _crash_at_step(step: int):
    """A callback that kills training right after the checkpoint of ``step`` is written."""
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == step:
                raise RuntimeError("simulated crash")

    return Crash()


def _examples(tmp_path: Path, n: int = 8) -> list:
    on_disk = tmp_path / "pic.png"
    Image.new("RGB", (140, 98), (20, 200, 30)).save(on_disk)
    out = []
    for i in range(n):
        if i == 3:
            image = None                        # text-only example mixed in
        elif i == 5:
            image = str(on_disk)                # image given as a path
        else:
            image = Image.new("RGB", (112 + 14 * i, 84), (200, 20 * i, 10))
        prompt = f"How many red cubes are left in scene {i}?" + " Think." * i
        completion = "Solution:\n1. Count the cubes" + " again" * (2 * i) + f".\n\nAnswer:\n{i}"
        out.append(Rec(prompt, completion, image) if i % 2 else
                   {"prompt": prompt, "completion": completion, "image": image})
    return out


def _field(rec, name):
    return rec[name] if isinstance(rec, dict) else getattr(rec, name)


# --------------------------------------------------------------------------- settings
def test_settings_defaults_follow_the_paper_and_validate():
    s = TrainSettings()
    assert (s.method, s.lora_r, s.lora_alpha, s.lora_dropout) == ("lora", 64, 16, 0.05)
    assert (s.learning_rate, s.lr_scheduler_type, s.warmup_ratio, s.num_train_epochs) == (
        3e-5, "constant_with_warmup", 0.1, 3.0)
    assert (s.dpo_beta, s.dpo_learning_rate, s.max_length, s.max_steps) == (0.1, 1e-5, None, -1)
    for f in T.dataclasses.fields(TrainSettings):
        assert f.metadata.get("help"), f"{f.name} has no help text"
    assert TrainSettings(global_batch_size=64, per_device_train_batch_size=8).accumulation_steps(8) == 1
    assert TrainSettings(global_batch_size=64, per_device_train_batch_size=8).accumulation_steps(1) == 8
    with pytest.raises(ValueError, match="global_batch_size"):
        TrainSettings(global_batch_size=64, per_device_train_batch_size=6).accumulation_steps(1)
    for bad, key in [({"method": "qlora"}, "method"), ({"lora_r": 0}, "lora_r"),
                     ({"warmup_ratio": 1.5}, "warmup_ratio"), ({"max_steps": 0}, "max_steps"),
                     ({"lora_target_modules": "(("}, "lora_target_modules"),
                     ({"lr_scheduler_type": "step"}, "lr_scheduler_type")]:
        with pytest.raises(ValueError, match=key):
            TrainSettings(**bad)


# --------------------------------------------------------------------------- LoRA targets
def _tiny(arch, tmp_path, request):
    if arch == "qwen2_vl":
        return request.getfixturevalue("tiny_qwen")
    if arch == "llava":
        return request.getfixturevalue("tiny_llava")
    from r3v_train.tiny import build_tiny_model

    return build_tiny_model(arch, tmp_path / arch)


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "gemma3", "llava"])
def test_lora_regex_hits_the_language_model_only(arch, tmp_path, request):
    from transformers import AutoModelForImageTextToText

    path = _tiny(arch, tmp_path, request)
    model = AutoModelForImageTextToText.from_pretrained(path)
    names = [n for n, _ in model.named_modules()]
    hit = [n for n in names if re.fullmatch(LM_LORA_TARGETS, n)]
    layers = model.config.get_text_config().num_hidden_layers
    assert len(hit) == 7 * layers
    assert all(n.startswith("model.language_model.layers.") for n in hit)
    assert not any(stage.is_vision_param(n) for n in hit)
    vision = [n for n in names if stage.is_vision_param(n)]
    assert vision, "the vision tower must be found by name"
    # why a regex: bare projection names also exist in these vision towers
    bare = re.compile(r".*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)")
    if arch in ("llava", "qwen2_5_vl", "gemma3"):
        assert any(bare.fullmatch(n) for n in vision)


# real-size configurations (transformers' default configuration of each class: the full module
# tree of a released checkpoint of the family, tens of layers), built on the meta device: the
# LoRA pattern must hit the 7 projections of every language layer and nothing else
REAL_CONFIGS = {"qwen2_vl": "Qwen2VLConfig", "qwen2_5_vl": "Qwen2_5_VLConfig",
                "qwen3_vl": "Qwen3VLConfig", "gemma3": "Gemma3Config", "llava": "LlavaConfig"}


@pytest.mark.parametrize("arch", sorted(REAL_CONFIGS))
def test_lora_regex_on_the_real_size_architectures(arch):
    import transformers
    from transformers import AutoModelForImageTextToText

    config = getattr(transformers, REAL_CONFIGS[arch])()
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    names = [n for n, _ in model.named_modules()]
    hit = [n for n in names if re.fullmatch(LM_LORA_TARGETS, n)]
    layers = config.get_text_config().num_hidden_layers
    assert layers >= 24 and len(hit) == 7 * layers, (arch, layers, len(hit))
    assert all(n.startswith("model.language_model.layers.") for n in hit)
    vision = [n for n in names if stage.is_vision_param(n)]
    assert vision and not set(hit) & set(vision)


# --------------------------------------------------------------------------- masking
END_OF_TURN = {"llava": "</s>", "gemma3": "<end_of_turn>"}


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen3_vl", "gemma3", "llava"])
def test_only_completion_tokens_carry_loss(arch, tmp_path, request):
    from r3v_eval.engines.chat import chat_text

    path = _tiny(arch, tmp_path, request)
    examples = _examples(tmp_path, 6)
    # Qwen: a max_pixels cap below the processor's own changes the image token count
    settings = _fast(max_pixels=56 * 56) if arch == "qwen2_vl" else _fast()
    trainer = T._prepare("sft", path, examples, tmp_path / "out", settings, init_adapter=None,
                         processor_path=None, progress=False, callbacks=None)[0]
    proc = trainer.processing_class
    tok = proc.tokenizer
    end_of_turn = END_OF_TURN.get(arch, "<|im_end|>")
    eot_id = tok.convert_tokens_to_ids(end_of_turn)
    # the token repeated per image patch (Gemma's processor.image_token is the start marker)
    image_id = tok.convert_tokens_to_ids(getattr(tok, "image_token", None) or proc.image_token)
    rows = normalize_records(examples, ("prompt", "completion"))
    lengths = sequence_lengths(proc, rows)

    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(examples))])
    assert batch["labels"].shape == batch["input_ids"].shape
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()  # padding: no loss
    for i, rec in enumerate(examples):
        image = rows[i]["image"]
        am = batch["attention_mask"][i].bool()
        ids, labels = batch["input_ids"][i][am], batch["labels"][i][am]
        assert len(ids) == lengths[i], "up-front lengths (used for bucketing) must be exact"
        # the training prompt is exactly what the sampling engine sends
        text = chat_text(proc, _field(rec, "prompt"), image is not None)
        if image is not None:
            img = Image.open(image).convert("RGB") if isinstance(image, str) else image
            want = proc(text=[text], images=[img], add_special_tokens=False)["input_ids"][0]
        else:
            want = proc(text=[text], add_special_tokens=False)["input_ids"][0]
        n = len(want)
        assert ids[:n].tolist() == list(want)
        assert (labels[:n] == -100).all(), "prompt and image tokens must not carry loss"
        assert (labels[n:] != -100).all(), "every completion token carries loss"
        assert (labels[n:] == ids[n:]).all()
        n_image = int((ids[:n] == image_id).sum())
        assert (n_image > 0) == (image is not None)
        if image is not None:  # Qwen2-VL: <= 56*56 pixels -> at most 4 tokens (16 uncapped)
            if arch == "qwen2_vl":
                assert n_image <= 4
            elif arch == "qwen3_vl":  # sizes snap to 32 px: at most the 128x128 budget
                assert 0 < n_image <= 16
            else:  # fixed-size towers
                assert n_image == 16
        assert eot_id in labels[n:].tolist(), "the end-of-turn token is trained"
        trained = tok.decode(ids[n:])
        assert _field(rec, "completion") in trained and end_of_turn in trained


# --------------------------------------------------------------------------- SFT (LoRA)
@pytest.fixture(scope="module")
def lora_run(tiny_qwen, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lora")
    examples = _examples(tmp)
    result = train_sft(tiny_qwen, examples, tmp / "out", _fast(), progress=False)
    return result, examples


def test_train_sft_lora_writes_adapter_and_metrics(lora_run):
    from safetensors import safe_open

    result, _ = lora_run
    out = result.out_dir
    assert not result.reused and result.kind == "sft" and result.adapter_dir == out
    for name in ("adapter_model.safetensors", "adapter_config.json", "train_metrics.json",
                 "train_config.json", "DONE", "tokenizer.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("checkpoint-*"))
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
        saved_params = sum(f.get_tensor(k).numel() for k in keys)
    assert keys and all("lora_" in k and ".language_model." in k for k in keys)
    assert not any(stage.is_vision_param(k) for k in keys)
    assert json.loads((out / "adapter_config.json").read_text())["target_modules"] == \
        LM_LORA_TARGETS
    m = json.loads((out / "train_metrics.json").read_text())
    for key in ("train_loss", "global_step", "tokens_seen", "train_runtime_s", "tokens_per_s",
                "padding_share", "peak_rss_gb", "peak_gpu_memory_gb", "loss_tokens",
                "num_dropped_too_long", "trainable_params"):
        assert key in m, key
    assert math.isfinite(m["train_loss"]) and m["global_step"] == 2
    assert m["micro_batches"] == 2 and m["tokens_seen"] > m["loss_tokens"] > 0
    assert 0 <= m["padding_share"] < 0.5
    assert m["padding_share"] == pytest.approx(1 - m["tokens_seen"] / m["padded_positions"])
    assert m["trainable_params"] == saved_params  # LoRA weights only, all of them saved


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl", "gemma3"])
def test_lora_step_on_each_family_changes_its_replies(arch, tmp_path, request):
    """A real TRL LoRA step on the newer families: adapter on the language model only, finite
    loss, and the trained adapter, merged for the sampling engine, changes what it generates."""
    from safetensors import safe_open

    from r3v_eval.engines.base import GenRequest, Sampling
    from r3v_eval.engines.hf import HFEngine

    path = _tiny(arch, tmp_path, request)
    result = train_sft(path, _examples(tmp_path), tmp_path / "out",
                       _fast(max_steps=2, learning_rate=0.05), progress=False)
    m = result.metrics
    assert math.isfinite(m["train_loss"]) and m["global_step"] == 2
    with safe_open(str(result.adapter_dir / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(".language_model." in k for k in keys)
    reqs = [GenRequest("How many red cubes are left?", Image.new("RGB", (112, 112), "red"))]

    def next_token_logits(engine):
        with torch.no_grad():
            return engine.model(**engine.encode(reqs)).logits[0, -1]

    base = HFEngine(str(path), device="cpu")
    tuned = HFEngine(str(path), device="cpu", adapter=str(result.adapter_dir))
    assert not torch.allclose(next_token_logits(base), next_token_logits(tuned))
    assert tuned.generate(reqs, Sampling(max_new_tokens=4), progress=False)[0][0] is not None


def test_finished_dir_is_returned_without_training(lora_run, monkeypatch):
    result, examples = lora_run

    def boom(*a, **k):
        raise AssertionError("a finished run must not be prepared or trained again")

    monkeypatch.setattr(T, "_prepare", boom)
    again = train_sft("/nonexistent/base", examples, result.out_dir, _fast(), progress=False)
    assert again.reused and again.metrics["global_step"] == result.metrics["global_step"]
    assert read_result(result.out_dir).method == "lora"
    with pytest.raises(ValueError, match="finished sft run"):
        train_dpo("/nonexistent/base", [], result.out_dir, _fast())


def test_the_engine_samples_with_the_trained_adapter_merged(lora_run, tiny_qwen):
    from transformers import AutoModelForImageTextToText

    from r3v_eval.engines.base import GenRequest, Sampling
    from r3v_eval.engines.hf import HFEngine

    result, _ = lora_run
    engine = HFEngine(tiny_qwen, adapter=str(result.adapter_dir), device="cpu")
    model = engine.model
    assert not hasattr(model, "peft_config"), "the adapter must be merged"
    base = AutoModelForImageTextToText.from_pretrained(tiny_qwen)
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(dict(model.named_parameters())[name],
                           dict(base.named_parameters())[name])
    out = engine.generate([GenRequest("How many cubes?", Image.new("RGB", (112, 112), "red")),
                           GenRequest("What is 2 + 3?")],
                          Sampling(max_new_tokens=4), progress=False)
    assert len(out) == 2 and all(len(r) == 1 and isinstance(r[0], str) for r in out)


# --------------------------------------------------------------------------- resumption
def test_interrupted_run_resumes_from_its_checkpoint(tiny_qwen, tmp_path):
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            raise RuntimeError("simulated crash after the first checkpoint")

    examples = _examples(tmp_path)
    out = tmp_path / "out"
    s = _fast(save_strategy="steps", save_steps=1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_sft(tiny_qwen, examples, out, s, progress=False, callbacks=[Crash()])
    assert (out / "checkpoint-1").is_dir() and not (out / "DONE").exists()
    with pytest.raises(ValueError, match="different run"):
        train_sft(tiny_qwen, examples[:-1], out, s, progress=False)
    result = train_sft(tiny_qwen, examples, out, s, progress=False)
    m = result.metrics
    assert m["resumed_from"].endswith("checkpoint-1")
    assert m["global_step"] == 2 and m["micro_batches"] == 2  # the whole stage's figures
    assert (out / "DONE").is_file() and not list(out.glob("checkpoint-*"))
    # an interrupted stage reports what an uninterrupted one does (timings aside)
    whole = train_sft(tiny_qwen, examples, tmp_path / "whole", s, progress=False).metrics
    timing = {"train_runtime_s", "tokens_per_s", "samples_per_s", "resumed_from",
              "peak_rss_gb", "peak_gpu_memory_gb", "log_history"}
    assert {k: v for k, v in m.items() if k not in timing} == pytest.approx(
        {k: v for k, v in whole.items() if k not in timing})
    assert [e.get("loss") for e in m["log_history"]] == pytest.approx(
        [e.get("loss") for e in whole["log_history"]])


def test_full_finetuning_resumes_with_the_checkpoints_weights(tiny_qwen, tmp_path):
    """transformers alone restores no weight of a full VLM checkpoint (its keys are saved in
    another layout); r3v_train.resume loads them, so a resumed run ends as an uninterrupted one."""
    from safetensors.torch import load_file

    examples = _examples(tmp_path)
    s = _fast(method="full", max_steps=4, per_device_train_batch_size=2, learning_rate=1e-3,
              lr_scheduler_type="constant", save_strategy="steps", save_steps=2, save_total_limit=3)
    whole = train_sft(tiny_qwen, examples, tmp_path / "whole", s, progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_sft(tiny_qwen, examples, tmp_path / "cut", s, progress=False, callbacks=[_crash_at_step(2)])
    resumed = train_sft(tiny_qwen, examples, tmp_path / "cut", s, progress=False)
    assert resumed.metrics["resumed_from"].endswith("checkpoint-2")
    a, b = (load_file(str(r.out_dir / "model.safetensors")) for r in (whole, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- full FT
def test_full_finetuning_leaves_the_vision_tower_unchanged(tiny_qwen, tmp_path):
    from transformers import AutoModelForImageTextToText

    from r3v_eval.engines.hf import HFEngine

    result = train_sft(tiny_qwen, _examples(tmp_path), tmp_path / "full",
                       _fast(method="full", max_steps=1, learning_rate=1e-3, warmup_ratio=0.0), progress=False)
    assert result.model_dir == tmp_path / "full" and (result.model_dir / "config.json").is_file()
    base = dict(AutoModelForImageTextToText.from_pretrained(tiny_qwen).named_parameters())
    tuned = dict(HFEngine(str(result.model_dir), device="cpu").model.named_parameters())
    vision = [n for n in base if stage.is_vision_param(n)]
    language = [n for n in base if ".language_model." in n]
    assert vision and language
    assert all(torch.equal(base[n], tuned[n]) for n in vision)
    assert any(not torch.equal(base[n], tuned[n]) for n in language)
    assert result.metrics["trainable_params"] == sum(base[n].numel() for n in base
                                                     if not stage.is_vision_param(n))


# --------------------------------------------------------------------------- LLaVA
def test_llava_lora_step_drops_over_budget_examples(tiny_llava, tmp_path):
    from r3v_eval.engines.hf import load_processor

    examples = _examples(tmp_path, 5)
    lengths = sequence_lengths(load_processor(str(tiny_llava)),
                               normalize_records(examples, ("prompt", "completion")))
    budget = sorted(lengths)[-2]  # the longest example does not fit
    with pytest.raises(ValueError, match="max_length"):
        train_sft(tiny_llava, examples, tmp_path / "none", _fast(max_length=min(lengths) - 1))
    result = train_sft(tiny_llava, examples, tmp_path / "out",
                       _fast(max_steps=1, max_length=budget), progress=False)
    m = result.metrics
    assert math.isfinite(m["train_loss"]) and m["max_example_tokens"] <= budget
    assert m["num_dropped_too_long"] == sum(n > budget for n in lengths) >= 1
    assert (result.out_dir / "adapter_model.safetensors").is_file()


# --------------------------------------------------------------------------- DPO
def test_train_dpo_with_images_from_an_sft_adapter(lora_run, tiny_qwen, tmp_path):
    sft, _ = lora_run
    img = Image.new("RGB", (112, 112), "blue")
    pairs = [{"prompt": f"How many blue balls? ({i})", "image": img if i != 1 else None,
              "chosen": f"Solution:\n1. Count.\n\nAnswer:\n{i}",
              "rejected": f"Solution:\n1. Guess wildly.\n\nAnswer:\n{i + 3}"} for i in range(4)]
    # no LR warm-up: the one step moves the adapter (a warm-up's first step has LR 0)
    result = train_dpo(tiny_qwen, pairs, tmp_path / "dpo",
                       _fast(max_steps=1, warmup_ratio=0.0, dpo_learning_rate=1e-3),
                       init_adapter=str(sft.adapter_dir), progress=False)
    m = result.metrics
    assert result.kind == "dpo" and m["global_step"] == 1
    assert m["train_loss"] == pytest.approx(math.log(2), abs=0.05)  # policy == reference at start
    assert (result.out_dir / "adapter_model.safetensors").is_file()
    assert not (result.out_dir / "ref").exists(), "TRL's reference copy is not part of the result"
    from r3v_eval.engines.hf import HFEngine

    dpo = HFEngine(tiny_qwen, adapter=str(result.adapter_dir), device="cpu").model
    before = HFEngine(tiny_qwen, adapter=str(sft.adapter_dir), device="cpu").model
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(dict(dpo.named_parameters())[name],
                           dict(before.named_parameters())[name]), "DPO moved the SFT adapter"


# --------------------------------------------------------------------------- grouping
def test_length_grouped_sampler_keeps_padding_low():
    g = torch.Generator().manual_seed(0)
    lengths = (torch.randint(40, 900, (640,), generator=g)).tolist()
    bs = 8

    def share(order):
        pad = total = 0
        for i in range(0, len(order), bs):
            b = [lengths[j] for j in order[i:i + bs]]
            pad += max(b) * len(b) - sum(b)
            total += max(b) * len(b)
        return pad / total

    sampler = LengthGroupedSampler(lengths, bs, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(len(lengths)))
    assert list(sampler) == first, "same epoch, same order (resumable, same on every process)"
    sampler.set_epoch(1)
    assert list(sampler) != first
    grouped, shuffled = share(first), share(torch.randperm(len(lengths), generator=g).tolist())
    assert grouped < 0.05 and shuffled > 0.2


# --------------------------------------------------------------------------- launch configs
def test_accelerate_and_deepspeed_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    single = load_config_from_file(str(ROOT / "recipes/accelerate/single_gpu.yaml"))
    assert single.num_processes == 1 and single.mixed_precision == "bf16"
    multi = load_config_from_file(str(ROOT / "recipes/accelerate/multi_gpu_zero2.yaml"))
    assert multi.distributed_type == "DEEPSPEED" and multi.num_processes == 8
    ds_file = ROOT / multi.deepspeed_config["deepspeed_config_file"]
    ds = json.loads(ds_file.read_text())
    assert ds["zero_optimization"]["stage"] == 2 and ds["bf16"]["enabled"] in ("auto", True)
    assert "scheduler" not in ds, "the LR schedule (constant with warm-up) comes from TrainSettings"


def test_trl_arguments_pass_through_under_their_own_names(tmp_path):
    """The train section's keys are TRL's names; anything else SFTConfig / DPOConfig takes goes
    through ``trl_args``; a name r3v sets itself, or one TRL does not know, is refused."""
    from r3v_train.config import ConfigError, load_recipe

    s = _fast(num_train_epochs=2.0, lr_scheduler_type="cosine", gradient_accumulation_steps=2,
              trl_args={"adam_beta2": 0.95, "label_smoothing": 0.1})
    sft = T._trl_config("sft", s, tmp_path / "sft", progress=False)
    assert (sft.per_device_train_batch_size, sft.num_train_epochs, sft.gradient_accumulation_steps,
            sft.adam_beta2) == (4, 2.0, 2, 0.95)
    assert getattr(sft.lr_scheduler_type, "value", sft.lr_scheduler_type) == "cosine"
    assert not hasattr(sft, "label_smoothing")  # a DPO-only argument reaches DPO only
    dpo = T._trl_config("dpo", s, tmp_path / "dpo", progress=False)
    assert dpo.label_smoothing == 0.1 and dpo.adam_beta2 == 0.95
    recipe = Path(__file__).parents[1] / "recipes" / "tiny" / "shapes.yaml"
    with pytest.raises(ConfigError, match="trl_args.learning_rate: set by r3v"):
        load_recipe(recipe, ["train.trl_args={learning_rate: 0.1}"])
    with pytest.raises(ConfigError, match="trl_args.adam_beta3: not an SFTConfig"):
        load_recipe(recipe, ["train.trl_args.adam_beta3=0.9"])
    assert load_recipe(recipe, ["train.trl_args.adam_beta2=0.9"]).train.trl_args == {"adam_beta2": 0.9}


def test_tail_weight_averaging_saves_the_mean_of_the_last_steps_and_resumes(tiny_qwen, tmp_path):
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    seen: list[dict] = []

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            seen.append({n: p.detach().clone() for n, p in model.named_parameters()
                         if p.requires_grad})

    examples = _examples(tmp_path)
    s = _fast(method="full", max_steps=4, per_device_train_batch_size=2, learning_rate=1e-3,
              lr_scheduler_type="constant", save_strategy="steps", save_steps=2,
              save_total_limit=3, average_weights_from=0.25)
    whole = train_sft(tiny_qwen, examples, tmp_path / "whole", s, progress=False, callbacks=[Record()])
    assert len(seen) == 4
    saved = load_file(str(whole.out_dir / "model.safetensors"))
    name = next(n for n in seen[0] if "language_model" in n and n.endswith("q_proj.weight"))
    key = next(k for k in saved if k.endswith(name.split("language_model.", 1)[1])
               and not k.startswith("visual"))   # saved in the checkpoint's own key layout
    mean = sum(step[name] for step in seen[1:]) / 3                # steps 2, 3 and 4 of 4
    assert torch.allclose(saved[key].float(), mean, atol=1e-6)
    assert not torch.allclose(saved[key].float(), seen[-1][name], atol=1e-6)
    # killed after step 2 and resumed: the same average as the run that was never stopped
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_sft(tiny_qwen, examples, tmp_path / "cut", s, progress=False, callbacks=[_crash_at_step(2)])
    resumed = train_sft(tiny_qwen, examples, tmp_path / "cut", s, progress=False)
    again = load_file(str(resumed.out_dir / "model.safetensors"))
    assert all(torch.allclose(saved[k], again[k], atol=1e-6) for k in saved)
