"""benchmarks/gpu.py (issue 15) on CPU with tiny models: the same code path a GPU run takes,
and the real-size arithmetic its roofline rests on."""

from __future__ import annotations

import json

import pytest

from helpers import load_benchmark

gpu = load_benchmark("gpu")

PROMPTS, NEW_TOKENS, BATCH_SIZES, STEPS, TRAIN_BATCH = 2, 64, (1, 2), 2, 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_bench")
    figures = gpu.main([
        "--device", "cpu", "--tiny", "tiny", "--prompts", str(PROMPTS),
        "--batch-sizes", *map(str, BATCH_SIZES), "--new-tokens", str(NEW_TOKENS),
        "--train-steps", str(STEPS), "--train-batch-size", str(TRAIN_BATCH),
        "--candidate-tokens", "96", "--max-pixels", str(224 * 224), "--copy-mib", "64",
        "--out-dir", str(out)])
    return figures, out


def test_cpu_run_writes_every_figure(run):
    figures, out = run
    written = json.loads((out / "gpu_cpu_tiny.json").read_text())
    assert written["failures"] == [] and written["skipped"] == []
    assert written["device"] == "cpu" and written["device_name"]
    for package in ("torch", "transformers", "peft", "trl"):
        assert written["versions"][package] != "not installed"
    assert written["settings"]["new_tokens"] == NEW_TOKENS
    assert written["bandwidth"]["bytes_per_s"] > 1e8  # any machine copies > 0.1 GB/s
    assert "not measured" in written["vllm"]
    assert set(written["backbones"]) == {"qwen2_vl_2b", "qwen2_5_vl_3b"}
    assert written["backbones"] == json.loads(json.dumps(figures["backbones"]))


@pytest.mark.parametrize("backbone", ["qwen2_vl_2b", "qwen2_5_vl_3b"])
def test_decode_figures(run, backbone):
    decode = run[0]["backbones"][backbone]["decode"]
    assert [b["batch_size"] for b in decode["batches"]] == list(BATCH_SIZES)
    for b in decode["batches"]:
        # EOS disabled: every row decodes exactly NEW_TOKENS tokens, at every batch size
        assert b["decoded_tokens"] == PROMPTS * 3 * NEW_TOKENS
        assert b["rows_per_call"] == 3 * b["batch_size"]
        assert b["generate_calls"] == PROMPTS // b["batch_size"]
        assert b["decode_steps"] == b["generate_calls"] * (NEW_TOKENS - 1)
        assert b["tokens_per_s"] > 0 and b["decode_tokens_per_s"] > b["tokens_per_s"]
        assert 0 < b["decode_s"] < b["wall_s"]
        assert 0 < b["roofline_share"] <= 1.5
        cold = b["cold_pass"]  # the first full pass, timed apart from the reported one
        assert cold["wall_s"] > 0  # its decode time may be noise on a shared CPU
        if cold["decode_s"] > 0:
            assert cold["ms_per_decode_step"] == pytest.approx(1000 * cold["decode_s"]
                                                               / b["decode_steps"])
        else:
            assert cold["ms_per_decode_step"] is None and cold["roofline_share"] is None
        assert b["peak_gpu_memory_gib"] == "n/a (CPU)"
        # bytes read: the weights at every step, plus the cache growing from the prompt
        prompt = b["prompt_tokens_per_call"]
        rows = b["rows_per_call"]
        steps = NEW_TOKENS - 1
        expected = sum(steps * decode["weight_bytes_per_step"] + decode["kv_cache_bytes_per_token"]
                       * rows * (steps * p + steps * (steps + 1) // 2) for p in prompt)
        assert b["bytes_read_by_decode_steps"] == expected
    assert decode["best"]["roofline_share"] == max(b["roofline_share"] for b in decode["batches"])


@pytest.mark.parametrize("backbone", ["qwen2_vl_2b", "qwen2_5_vl_3b"])
def test_graph_decode_figures(run, backbone):
    """The graph decode path (issue 29) timed beside generate on the same prompts and seeds:
    on CPU the step runs eagerly (no capture), and in float32 it gives generate's samples."""
    figures = run[0]["backbones"][backbone]
    graph = figures["decode_graph"]
    assert graph["path"] == "graph" and graph["cuda_graph"] is False
    assert [b["batch_size"] for b in graph["batches"]] == list(BATCH_SIZES)
    for b, ref in zip(graph["batches"], figures["decode"]["batches"]):
        assert b["decoded_tokens"] == PROMPTS * 3 * NEW_TOKENS == ref["decoded_tokens"]
        assert b["decode_steps"] == ref["decode_steps"] == b["calls"] * (NEW_TOKENS - 1)
        assert b["bytes_read_by_decode_steps"] == ref["bytes_read_by_decode_steps"]
        assert b["ms_per_decode_step"] > 0 and 0 < b["roofline_share"] <= 1.5
        assert b["padded_roofline_share"] >= b["roofline_share"]
        assert all(length % graph["length_bucket"] == 0 for length in b["cache_length_per_call"])
        assert b["captured"] is False and b["cold_pass"]["capture_s"] == 0
        assert b["cold_pass"]["slots_made"] >= 1
        agreement = b["agreement_with_generate"]
        assert agreement["samples"] == PROMPTS * 3
        assert agreement["identical_share"] == 1.0 == agreement["mean_common_prefix_share"]
        assert b["peak_gpu_memory_gib"] == "n/a (CPU)"


@pytest.mark.parametrize("backbone", ["qwen2_vl_2b", "qwen2_5_vl_3b"])
def test_training_figures(run, backbone):
    train = run[0]["backbones"][backbone]["training"]
    assert train["steps"] == STEPS and train["examples"] == STEPS * TRAIN_BATCH
    assert train["tokens_per_s"] > 0 and train["tokens_per_s_after_first_step"] > 0
    assert 0 <= train["padding_share"] < 1
    assert train["tokens_seen"] <= train["padded_positions"]
    assert train["peak_gpu_memory_gib"] == "n/a (CPU)"
    assert train["bf16"] is False and train["gradient_checkpointing"] is True
    assert 0 < train["trainable_params"] < train["total_params"]
    # the select prompt over three candidates is long: far more tokens than 3 candidates
    assert train["mean_example_tokens"] > 3 * 96


@pytest.mark.parametrize("name, params, weight_bytes, kv_bytes", [
    # Qwen2-VL-2B: 2.21B parameters; 28 layers x 2 x 2 KV heads x 128 x 2 bytes per token
    ("qwen2_vl_2b", 2_208_985_600, 3_087_428_608, 28 * 2 * 2 * 128 * 2),
    # Qwen2.5-VL-3B: 3.75B parameters; 36 layers x 2 x 2 KV heads x 128 x 2 bytes per token
    ("qwen2_5_vl_3b", 3_754_622_976, 6_171_877_376, 36 * 2 * 2 * 128 * 2),
])
def test_real_size_roofline_arithmetic(tmp_path, name, params, weight_bytes, kv_bytes):
    """The real configurations at full depth (on the meta device: no memory): the parameter
    counts of the hub checkpoints, the decode weight bytes (language model with the tied head
    counted once, vision tower out) and the KV-cache bytes per token."""
    import torch

    from r3v_train.tiny import build_tiny_model

    real_size = load_benchmark("real_size")
    folder = build_tiny_model(real_size.REAL_CONFIGS[name]["arch"], tmp_path / "m")
    model = real_size.build_real_size_model(name, folder, device="meta", dtype=torch.bfloat16)
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.config.text_config.layer_types) == model.config.text_config.num_hidden_layers
    assert gpu.decode_weight_bytes(model) == weight_bytes
    assert gpu.kv_bytes_per_token(model.config, 2) == kv_bytes


def test_real_size_on_cpu_is_refused():
    with pytest.raises(SystemExit, match="--tiny"):
        gpu.main(["--device", "cpu"])
