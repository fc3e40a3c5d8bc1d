"""Tiny random-weight VLMs built offline with the real Hugging Face classes (r3v_train.tiny)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from PIL import Image

from r3v_train.tiny import (
    ARCHS,
    INFO_FILE,
    build_tiny_model,
    tiny_model_info,
)

REPO = Path(__file__).resolve().parents[1]
PROMPT = ("How many red squares are there?\nFirst generate a step-by-step solution, then answer "
          "the question using a single numerical value (0-10).")
SOLUTION = "Solution:\n1. There are 3 red squares.\n2. Remove 1: 3 - 1 = 2.\n\nAnswer:\n2"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        import huggingface_hub.constants as hub_constants

        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True, raising=False)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_tiny_model(arch, root / arch, size="tiny", seed=0) for arch in ARCHS}


@pytest.fixture(scope="module")
def loaded(tiny_dirs):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = {}
    for arch, path in tiny_dirs.items():
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
        out[arch] = (processor, model)
    return out


def _image(colour="white"):
    img = Image.new("RGB", (112, 112), colour)
    img.paste((255, 0, 0), (10, 10, 40, 40))
    return img


def _user(text=PROMPT, image=None):
    item = {"type": "image"} if image is None else {"type": "image", "image": image}
    return {"role": "user", "content": [item, {"type": "text", "text": text}]}


def _assistant(text=SOLUTION):
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def _end_of_turn(arch):
    return {"llava": "</s>", "gemma3": "<end_of_turn>"}.get(arch, "<|im_end|>")


# ------------------------------------------------------------------ build, reload, run
@pytest.mark.parametrize("arch", ARCHS)
def test_reload_forward_backward_generate(arch, loaded):
    processor, model = loaded[arch]
    prompt = processor.apply_chat_template([_user()], add_generation_prompt=True, tokenize=False)
    full = processor.apply_chat_template([_user(), _assistant()], tokenize=False)
    assert full.startswith(prompt)
    enc = processor(text=[full], images=[_image()], return_tensors="pt")
    if arch in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        # transformers 5: Qwen2-VL family needs mm_token_type_ids; the processor returns it
        assert "mm_token_type_ids" in enc
        assert int((enc["mm_token_type_ids"] == 1).sum()) == 16
    if arch == "gemma3":  # Gemma 3 attends bidirectionally within an image: token_type_ids
        assert int((enc["token_type_ids"] == 1).sum()) == 16
    image_id = model.config.image_token_id
    assert int((enc["input_ids"] == image_id).sum()) == tiny_model_info(
        Path(model.name_or_path))["image_tokens_per_image"]

    n_prompt = len(processor(text=[prompt], images=[_image()])["input_ids"][0])
    labels = enc["input_ids"].clone()
    labels[:, :n_prompt] = -100
    model.train()
    model.zero_grad()
    out = model(**enc, labels=labels)
    assert math.isfinite(out.loss.item())
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.zero_grad()
    model.eval()

    penc = processor(text=[prompt], images=[_image()], return_tensors="pt")
    with torch.no_grad():
        gen = model.generate(**penc, max_new_tokens=5, do_sample=False)
    new = gen[:, penc["input_ids"].shape[1]:]
    assert new.dtype == torch.long and 1 <= new.shape[1] <= 5
    assert processor.batch_decode(new, skip_special_tokens=True)[0] is not None


@pytest.mark.parametrize("arch", ARCHS)
def test_batched_generation_with_padding(arch, loaded):
    processor, model = loaded[arch]
    texts = [processor.apply_chat_template([_user(q)], add_generation_prompt=True, tokenize=False)
             for q in ("How many?", PROMPT)]
    enc = processor(text=texts, images=[[_image()], [_image("blue")]], return_tensors="pt",
                    padding=True)
    assert processor.tokenizer.padding_side == "left"
    with torch.no_grad():
        gen = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert gen.shape[0] == 2


@pytest.mark.parametrize("arch", ARCHS)
def test_generation_stops_at_end_of_turn(arch, loaded):
    processor, model = loaded[arch]
    eot = processor.tokenizer.convert_tokens_to_ids(_end_of_turn(arch))
    eos = model.generation_config.eos_token_id
    assert eot in (eos if isinstance(eos, list) else [eos])
    assert model.generation_config.pad_token_id == processor.tokenizer.pad_token_id is not None
    prompt = processor.apply_chat_template([_user()], add_generation_prompt=True, tokenize=False)
    enc = processor(text=[prompt], images=[_image()], return_tensors="pt")
    with torch.no_grad():  # push the end-of-turn token to the top: generation must stop there
        gen = model.generate(**enc, max_new_tokens=5, do_sample=False,
                             sequence_bias={(eot,): 1000.0})
    assert gen[0, enc["input_ids"].shape[1]:].tolist() == [eot]


# ------------------------------------------------------------------ chat templates
def test_qwen_chat_template_is_chatml(loaded):
    processor, _ = loaded["qwen2_vl"]
    text = processor.apply_chat_template([_user("Q?"), _assistant("A")], tokenize=False)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Q?<|im_end|>\n"
                    "<|im_start|>assistant\nA<|im_end|>\n")
    gen = processor.apply_chat_template([_user("Q?")], add_generation_prompt=True, tokenize=False)
    assert gen.endswith("Q?<|im_end|>\n<|im_start|>assistant\n")
    sys_text = processor.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "plain"}], tokenize=False)
    assert sys_text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nplain<|im_end|>\n"
    two = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text",
                                                                           "text": "Q"}]}],
        tokenize=False, add_vision_id=True)
    assert "Picture 1: <|vision_start|><|image_pad|><|vision_end|>Picture 2: " in two


def test_qwen3_chat_template_has_no_default_system_prompt(loaded):
    processor, _ = loaded["qwen3_vl"]
    text = processor.apply_chat_template([_user("Q?"), _assistant("A")], tokenize=False)
    assert text == ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Q?<|im_end|>\n"
                    "<|im_start|>assistant\nA<|im_end|>\n")


def test_gemma3_chat_template_is_gemma(loaded):
    processor, _ = loaded["gemma3"]
    text = processor.apply_chat_template([_user("Q?"), _assistant("A")], tokenize=False)
    assert text == ("<bos><start_of_turn>user\n<start_of_image>Q?<end_of_turn>\n"
                    "<start_of_turn>model\nA<end_of_turn>\n")
    gen = processor.apply_chat_template([_user("Q?")], add_generation_prompt=True, tokenize=False)
    assert gen.endswith("Q?<end_of_turn>\n<start_of_turn>model\n")
    ids = processor(text=[gen], images=[_image()])["input_ids"][0]
    assert ids.count(processor.tokenizer.bos_token_id) == 1  # the template's <bos> only


def test_llava_chat_template_is_llava15(loaded):
    processor, _ = loaded["llava"]
    text = processor.apply_chat_template([_user("Q?"), _assistant("A")], tokenize=False)
    assert text == "<s>USER: <image>\nQ? ASSISTANT: A</s>"
    gen = processor.apply_chat_template([_user("Q?")], add_generation_prompt=True, tokenize=False)
    assert gen == "<s>USER: <image>\nQ? ASSISTANT:"
    ids = processor(text=[gen], images=[_image()])["input_ids"][0]
    assert ids.count(processor.tokenizer.bos_token_id) == 1  # the template's <s>, not a second one


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen3_vl", "gemma3", "llava"])
def test_assistant_mask_covers_answer_and_end_of_turn(arch, loaded):
    processor, _ = loaded[arch]
    out = processor.apply_chat_template(
        [_user("Q?", image=_image()), _assistant("Answer:\n3")], tokenize=True, return_dict=True,
        return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"][0], out["assistant_masks"][0]
    answer = processor.tokenizer.decode([i for i, m in zip(ids, mask) if m])
    assert answer.strip() == "Answer:\n3" + _end_of_turn(arch)


# ------------------------------------------------------------------ tokenizer
@pytest.mark.parametrize("arch", ["qwen2_vl", "gemma3", "llava"])
def test_tokenizer_round_trip_and_compact(arch, loaded):
    tok = loaded[arch][0].tokenizer
    texts = ["Answer:\n12", "9 - 2 = 7", SOLUTION, PROMPT, "3.75 + $1,200 = 45%",
             "Model's prediction 1:\n(A) 12\nOptions:\n(B) ∠ABC = 30°",
             "naïve 日本 emoji 🙂"]
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
    # numbers are split into single digits
    assert tok.convert_ids_to_tokens(tok.encode("12", add_special_tokens=False)) == ["1", "2"]
    # the shapes vocabulary is compact
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "cyan", "gray", "brown"]
    shapes = ["square", "circle", "triangle", "star", "diamond", "hexagon", "cube", "sphere",
              "cylinder"]
    for c in colours:
        for s in shapes:
            assert len(tok.encode(f"{c} {s}", add_special_tokens=False)) <= 4, (c, s)
    assert len(tok.encode("red square", add_special_tokens=False)) <= 2
    # the paper's prompt wording is compact (about one token per word)
    for lit in ("Judge the correctness of the model's prediction and refine it.",
                ("Which prediction is correct? Give the final answer with a numerical value, "
                "Yes/No, or a word or phrase."),
                "Let's think step by step.", "Answer the question with Chain-of-Thought.",
                "How many objects are left? Remove all the total row column grid."):
        assert len(tok.encode(lit, add_special_tokens=False)) <= 1.6 * len(lit.split()), lit
    assert 2000 <= len(tok) <= 8000


def test_special_tokens_are_single_tokens(loaded):
    tok = loaded["qwen2_vl"][0].tokenizer
    for t in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
              "<|image_pad|>", "<|endoftext|>", "<|video_pad|>"):
        assert len(tok.encode(t, add_special_tokens=False)) == 1, t
    assert tok.pad_token == "<|endoftext|>" and tok.eos_token == "<|im_end|>"
    ltok = loaded["llava"][0].tokenizer
    for t in ("<image>", "<s>", "</s>", "<pad>"):
        assert len(ltok.encode(t, add_special_tokens=False)) == 1, t
    assert ltok.encode("x", add_special_tokens=True) == ltok.encode("x", add_special_tokens=False)
    gtok = loaded["gemma3"][0].tokenizer
    for t in ("<bos>", "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
              "<end_of_image>", "<image_soft_token>"):
        assert len(gtok.encode(t, add_special_tokens=False)) == 1, t
    assert (gtok.boi_token, gtok.eoi_token, gtok.image_token) == \
        ("<start_of_image>", "<end_of_image>", "<image_soft_token>")


# ------------------------------------------------------------------ config facts
def test_qwen_image_budget_and_mrope(loaded, tiny_dirs):
    processor, model = loaded["qwen2_vl"]
    text_cfg = model.config.text_config
    head_dim = text_cfg.hidden_size // text_cfg.num_attention_heads
    assert sum(text_cfg.rope_parameters["mrope_section"]) == head_dim // 2
    big = processor.image_processor(images=[Image.new("RGB", (640, 480))], return_tensors="pt")
    t, h, w = big["image_grid_thw"][0].tolist()
    assert t * h * w // 4 <= 16  # larger images are scaled down to the 112x112 budget
    info = json.loads((tiny_dirs["qwen2_vl"] / INFO_FILE).read_text())
    assert info["arch"] == "qwen2_vl" and info["size"] == "tiny"
    assert info["image_tokens_per_image"] == 16


def test_qwen3_patch_16_budget_and_interleaved_mrope(loaded):
    processor, model = loaded["qwen3_vl"]
    text_cfg = model.config.text_config
    assert sum(text_cfg.rope_parameters["mrope_section"]) == text_cfg.head_dim // 2
    assert text_cfg.rope_parameters["mrope_interleaved"] is True
    assert processor.image_processor.patch_size == 16
    grid = processor.image_processor(images=[_image()], return_tensors="pt")["image_grid_thw"][0]
    assert grid.tolist() == [1, 8, 8]  # 112 px snaps to 128 = 8 patches of 16 a side
    big = processor.image_processor(images=[Image.new("RGB", (640, 480))], return_tensors="pt")
    t, h, w = big["image_grid_thw"][0].tolist()
    assert t * h * w // 4 <= 16


# ------------------------------------------------------------------ determinism, errors
def test_same_seed_same_weights(tmp_path):
    from safetensors.torch import load_file

    a = load_file(build_tiny_model("qwen2_vl", tmp_path / "a", seed=3) / "model.safetensors")
    b = load_file(build_tiny_model("qwen2_vl", tmp_path / "b", seed=3) / "model.safetensors")
    c = load_file(build_tiny_model("qwen2_vl", tmp_path / "c", seed=4) / "model.safetensors")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == \
        (tmp_path / "c" / "tokenizer.json").read_bytes()


@pytest.mark.parametrize("arch,default_tied", [("qwen2_vl", True), ("qwen2_5_vl", True),
                                               ("qwen3_vl", True), ("gemma3", True),
                                               ("llava", False)])
def test_tie_embeddings_defaults_to_the_real_model_and_can_be_changed(arch, default_tied, tmp_path):
    for tie, name in ((None, "default"), (not default_tied, "flipped")):
        path = build_tiny_model(arch, tmp_path / name, tie_embeddings=tie)
        from transformers import AutoModelForImageTextToText

        model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
        head, emb = model.get_output_embeddings().weight, model.get_input_embeddings().weight
        want = default_tied if tie is None else tie
        assert (head.data_ptr() == emb.data_ptr()) is want, (arch, tie)
        assert tiny_model_info(path)["tie_embeddings"] is want
        if not want:  # an untied head is trained on its own: a step must not move the embeddings
            before = emb.detach().clone()
            with torch.no_grad():
                head.add_(1.0)
            assert torch.equal(model.get_input_embeddings().weight, before)


def test_build_does_not_touch_global_rng(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_model("llava", tmp_path / "m", seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_tokenizer_training_is_deterministic():
    from r3v_train.tiny_tokenizer import QWEN_SPECIAL_TOKENS, VOCAB_SIZE, tokenizer_json

    assert tokenizer_json.__wrapped__(QWEN_SPECIAL_TOKENS, VOCAB_SIZE) == \
        tokenizer_json.__wrapped__(QWEN_SPECIAL_TOKENS, VOCAB_SIZE)


@pytest.mark.parametrize("arch,size,word", [("gpt2", "tiny", "arch"), ("qwen2-vl", "tiny", "arch"),
                                            ("llava", "huge", "size"), ("llava", "", "size")])
def test_bad_arch_or_size(tmp_path, arch, size, word):
    with pytest.raises(ValueError, match=f"unknown tiny-model {word}"):
        build_tiny_model(arch, tmp_path / "x", size=size)
    assert not (tmp_path / "x").exists()


def test_info_missing_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="build_tiny_model"):
        tiny_model_info(tmp_path)


# ------------------------------------------------------------------ small
@pytest.mark.parametrize("arch", ARCHS)
def test_small_builds_with_sane_size(arch, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = build_tiny_model(arch, tmp_path / arch, size="small", seed=0)
    info = tiny_model_info(path)
    assert info["size"] == "small" and info["arch"] == arch
    assert 3_000_000 <= info["num_parameters"] <= 10_000_000
    assert 0 < info["num_parameters_vision"] < info["num_parameters"]
    model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
    assert sum(p.numel() for p in model.parameters()) == info["num_parameters"]
    assert model.config.text_config.hidden_size == 256
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    text = processor.apply_chat_template([_user(), _assistant()], tokenize=False)
    enc = processor(text=[text], images=[_image()], return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, labels=enc["input_ids"])
    assert math.isfinite(out.loss.item())


# ------------------------------------------------------------------ a fresh offline process
@pytest.mark.slow
def test_reload_in_fresh_offline_process_without_network(tiny_dirs):
    script = textwrap.dedent(f"""
        import socket
        def _no_network(*a, **k):
            raise OSError("network access attempted")
        socket.socket.connect = _no_network
        socket.create_connection = _no_network
        from PIL import Image
        from transformers import AutoModelForImageTextToText, AutoProcessor
        path = {str(tiny_dirs["qwen2_vl"])!r}
        processor = AutoProcessor.from_pretrained(path)
        from transformers import AutoModelForImageTextToText

        model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
        content = [{{"type": "image"}}, {{"type": "text", "text": "How many?"}}]
        msgs = [{{"role": "user", "content": content}}]
        prompt = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        enc = processor(text=[prompt], images=[Image.new("RGB", (112, 112))], return_tensors="pt")
        out = model.generate(**enc, max_new_tokens=3, do_sample=False)
        print("OK", out.shape[1] - enc["input_ids"].shape[1])
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OK" in proc.stdout


def test_tiny_vllm_size_has_a_head_size_vllms_cpu_kernel_accepts(tmp_path):
    from transformers import AutoConfig

    from r3v_train.tiny import VLLM_CPU_HEAD_SIZES, text_head_size

    assert text_head_size("tiny") not in VLLM_CPU_HEAD_SIZES  # why tiny-vllm exists
    assert text_head_size("tiny-vllm") in VLLM_CPU_HEAD_SIZES
    assert text_head_size("small") in VLLM_CPU_HEAD_SIZES
    for arch in ("qwen3_vl", "gemma3"):  # explicit head_dim in the config
        cfg = AutoConfig.from_pretrained(
            build_tiny_model(arch, tmp_path / arch, size="tiny-vllm", seed=0)).get_text_config()
        assert cfg.head_dim == 32 and cfg.num_key_value_heads == 1
