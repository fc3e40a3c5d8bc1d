"""Build tiny random-weight vision-language models offline, with the real Hugging Face classes.

``build_tiny_model(arch, out_dir, size="tiny", seed=0)`` writes a directory that loads back with
``AutoProcessor.from_pretrained(dir)`` and ``AutoModelForImageTextToText.from_pretrained(dir)``
under ``HF_HUB_OFFLINE=1``. Nothing is downloaded: the tokenizer is a byte-level BPE trained here
with the ``tokenizers`` library on generated text (see :mod:`r3v_train._tokenizer_corpus`), the
weights are random (seeded), the processor and chat template are written by this module.

Architectures (``arch``):

``qwen2_vl``    ``Qwen2VLForConditionalGeneration`` + ``Qwen2VLProcessor``: ChatML template with
                ``<|vision_start|><|image_pad|><|vision_end|>`` and the default system prompt,
                M-RoPE (``rope_parameters.mrope_section`` sums to head_dim / 2), patch 14, 2x2
                merge; ``min_pixels`` 56*56 and ``max_pixels`` 112*112, so a 112x112 image gives
                8x8 patches -> 16 image tokens (and larger images are scaled down to that budget).
``qwen2_5_vl``  ``Qwen2_5_VLForConditionalGeneration`` + ``Qwen2_5_VLProcessor``: as ``qwen2_vl``
                with the Qwen2.5-VL vision tower (RMSNorm, SwiGLU, window attention).
``qwen3_vl``    ``Qwen3VLForConditionalGeneration`` + ``Qwen3VLProcessor``: the Qwen3-VL vision tower
                (patch 16, 2x2 merge, learned position embeddings, DeepStack features fed to the
                first language layer), interleaved M-RoPE, ChatML without a default system
                prompt (as Qwen3-VL's own template); ``min_pixels`` 64*64 and ``max_pixels``
                128*128, so a 112x112 image is resized to 128x128 -> 8x8 patches -> 16 tokens.
``gemma3``      ``Gemma3ForConditionalGeneration`` + ``Gemma3Processor``: a tiny SigLIP tower
                (112x112, patch 14 -> 64 patches pooled to 16 image tokens) and a Gemma 3 text
                model (one sliding-window and one global layer); Gemma's turn format
                ``<start_of_turn>user ... <end_of_turn>`` with ``<start_of_image>``; a fixed
                image-token count (``max_pixels`` does not apply).
``llava``       ``LlavaForConditionalGeneration`` + ``LlavaProcessor``: a tiny CLIP vision tower
                (112x112 input; patch 28 -> 16 image tokens for ``tiny``, patch 16 -> 49 for
                ``small``) and a tiny Llama text model; the LLaVA-1.5 conversation format
                ``USER: <image>\\n{prompt} ASSISTANT: {answer}</s>``.

Sizes: ``tiny`` is the smallest thing that works (text hidden 64, 2 layers; vision width 32,
depth 2; 0.3-0.5M parameters) for fast tests; ``small`` (text hidden 256, 4 layers, 4 heads;
vision width 128, depth 4; 5.4-5.8M parameters) is meant to learn the synthetic shapes task from
scratch on a few CPU cores; ``tiny-vllm`` is ``tiny`` with 2 text heads of 32 (1 KV head), a head
size vLLM's CPU attention kernel accepts (``tiny``'s 16 is rejected; see ``VLLM_CPU_HEAD_SIZES``),
for tests against the real vLLM on CPU, in every family. The tokenizer (the same for every size and seed) has ~2.65k entries:
the BPE target ``VOCAB_SIZE`` is an upper bound the generated corpus does not reach.

Facts of the installed transformers (5.23) that callers must respect:

* Qwen2-VL / Qwen2.5-VL ``forward`` and ``generate`` with images need ``mm_token_type_ids``
  (0 text, 1 image, 2 video) next to ``input_ids``; without it ``forward`` raises "Multimodal
  data was passed ... but `mm_token_type_ids` is missing". The processor returns it
  (``Qwen2VLProcessor.return_mm_token_type_ids = True``): pass the processor's whole output on.
* M-RoPE sections live in ``text_config.rope_parameters["mrope_section"]`` (the old
  ``rope_scaling`` key is still accepted and converted).
* ``AutoTokenizer`` would rebuild a ``Qwen2Tokenizer`` from vocab/merges for ``qwen2_vl`` configs;
  the tokenizer config therefore names ``TokenizersBackend``, which loads ``tokenizer.json`` as is.
* Qwen processors need torchvision (their video processor); LLaVA's does not.

Chat templates mark the assistant's turn with ``{% generation %}`` (so TRL's
``assistant_only_loss`` works) and end it with the end-of-turn token (``<|im_end|>`` / ``</s>``),
which ``generation_config.eos_token_id`` contains, so generation stops at the end of the turn.
The LLaVA template writes ``<s>`` itself and the tokenizer adds no special tokens on its own
(so text rendered by the template never gets a second ``<s>``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from r3v_train.tiny_tokenizer import (  # noqa: F401  (the families' tokens and templates)
    GEMMA_CHAT_TEMPLATE,
    GEMMA_SPECIAL_TOKENS,
    LLAVA_CHAT_TEMPLATE,
    LLAVA_SPECIAL_TOKENS,
    QWEN3_CHAT_TEMPLATE,
    QWEN_CHAT_TEMPLATE,
    QWEN_SPECIAL_TOKENS,
    VOCAB_SIZE,
    build_tokenizer,
)

ARCHS = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "gemma3", "llava")
QWEN_ARCHS = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
SIZES = ("tiny", "small", "tiny-vllm")
#: text attention head sizes vLLM's CPU attention kernel accepts (``tiny`` has 16, which it rejects:
#: "Unsupported CPU attention configuration: head_dim=16"); ``tiny-vllm`` and ``small`` fit
VLLM_CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256)
INFO_FILE = "r3v_tiny.json"


@dataclass(frozen=True)
class _Dims:
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    vision_hidden: int
    vision_depth: int
    vision_heads: int
    vision_intermediate: int
    llava_patch: int  # CLIP patch size (LLaVA only; Qwen uses patch 14 + 2x2 merge)


_DIMS = {
    "tiny": _Dims(text_hidden=64, text_layers=2, text_heads=4, text_kv_heads=2,
                  text_intermediate=128, vision_hidden=32, vision_depth=2, vision_heads=2,
                  vision_intermediate=64, llava_patch=28),
    "small": _Dims(text_hidden=256, text_layers=4, text_heads=4, text_kv_heads=4,
                   text_intermediate=768, vision_hidden=128, vision_depth=4, vision_heads=4,
                   vision_intermediate=512, llava_patch=16),
    # ``tiny`` with a text head size vLLM's CPU attention kernel accepts (2 heads of 32, 1 KV
    # head; M-RoPE sections [4, 6, 6]): the same tiny cost, for tests against the real vLLM
    "tiny-vllm": _Dims(text_hidden=64, text_layers=2, text_heads=2, text_kv_heads=1,
                       text_intermediate=128, vision_hidden=32, vision_depth=2, vision_heads=2,
                       vision_intermediate=64, llava_patch=28),
}


def text_head_size(size: str) -> int:
    """The text attention head size of a tiny-model size (hidden / heads)."""
    dims = _DIMS[size]
    return dims.text_hidden // dims.text_heads

IMAGE_SIZE = 112          # the reference image side: 16 image tokens for every arch at this size
QWEN_PATCH = 14
QWEN_MERGE = 2
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = IMAGE_SIZE * IMAGE_SIZE
QWEN3_PATCH = 16          # Qwen3-VL: patch 16, so images snap to multiples of 32 pixels
QWEN3_MIN_PIXELS = 64 * 64
QWEN3_MAX_PIXELS = 128 * 128
GEMMA_PATCH = 14          # SigLIP 112 / 14 = 8x8 patches, average-pooled to 4x4 image tokens
GEMMA_IMAGE_TOKENS = 16


def _check(arch: str, size: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown tiny-model arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if size not in SIZES:
        raise ValueError(f"unknown tiny-model size {size!r}; choose one of {', '.join(SIZES)}")


# ----------------------------------------------------------------------------- tokenizer
# ----------------------------------------------------------------------------- processor
def _build_processor(arch: str, size: str, tokenizer):
    dims = _DIMS[size]
    if arch == "llava":
        from transformers import CLIPImageProcessor, LlavaProcessor

        image_processor = CLIPImageProcessor(
            size={"shortest_edge": IMAGE_SIZE},
            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        )
        return LlavaProcessor(
            image_processor=image_processor, tokenizer=tokenizer, patch_size=dims.llava_patch,
            vision_feature_select_strategy="default", num_additional_image_tokens=1,
            chat_template=LLAVA_CHAT_TEMPLATE,
        )
    if arch == "gemma3":
        from transformers import Gemma3ImageProcessor, Gemma3Processor

        image_processor = Gemma3ImageProcessor(
            size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * 3,
            image_std=[0.5] * 3, do_pan_and_scan=False,
        )
        return Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer,
                               chat_template=GEMMA_CHAT_TEMPLATE,
                               image_seq_length=GEMMA_IMAGE_TOKENS)
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    if arch == "qwen3_vl":
        from transformers import Qwen3VLProcessor, Qwen3VLVideoProcessor

        bounds = {"min_pixels": QWEN3_MIN_PIXELS, "max_pixels": QWEN3_MAX_PIXELS,
                  "patch_size": QWEN3_PATCH, "merge_size": QWEN_MERGE, "temporal_patch_size": 2}
        return Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(**bounds),
                                video_processor=Qwen3VLVideoProcessor(**bounds),
                                tokenizer=tokenizer, chat_template=QWEN3_CHAT_TEMPLATE)
    image_processor = Qwen2VLImageProcessor(
        min_pixels=QWEN_MIN_PIXELS, max_pixels=QWEN_MAX_PIXELS,
        patch_size=QWEN_PATCH, merge_size=QWEN_MERGE, temporal_patch_size=2,
    )
    video_processor = Qwen2VLVideoProcessor(
        min_pixels=QWEN_MIN_PIXELS, max_pixels=QWEN_MAX_PIXELS,
        patch_size=QWEN_PATCH, merge_size=QWEN_MERGE, temporal_patch_size=2,
    )
    if arch == "qwen2_vl":
        from transformers import Qwen2VLProcessor as cls
    else:
        from transformers import Qwen2_5_VLProcessor as cls
    return cls(image_processor=image_processor, tokenizer=tokenizer,
               video_processor=video_processor, chat_template=QWEN_CHAT_TEMPLATE)


# ----------------------------------------------------------------------------- model config
def _mrope_section(head_dim: int) -> list[int]:
    """Split head_dim / 2 rotary frequencies into (temporal, height, width) like Qwen2-VL's
    [16, 24, 24] for head_dim 128: a quarter temporal, the rest halved between height and width."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def _build_config(arch: str, size: str, tokenizer, tie_embeddings: bool | None = None):
    dims = _DIMS[size]
    vocab = len(tokenizer)
    ids = tokenizer.convert_tokens_to_ids
    if arch == "llava":
        from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

        vision = CLIPVisionConfig(
            hidden_size=dims.vision_hidden, intermediate_size=dims.vision_intermediate,
            num_hidden_layers=dims.vision_depth, num_attention_heads=dims.vision_heads,
            image_size=IMAGE_SIZE, patch_size=dims.llava_patch, projection_dim=dims.vision_hidden,
            hidden_act="quick_gelu",
        )
        text = LlamaConfig(
            vocab_size=vocab, hidden_size=dims.text_hidden,
            intermediate_size=dims.text_intermediate, num_hidden_layers=dims.text_layers,
            num_attention_heads=dims.text_heads, num_key_value_heads=dims.text_kv_heads,
            max_position_embeddings=4096, rms_norm_eps=1e-5,
            tie_word_embeddings=bool(tie_embeddings),
            bos_token_id=ids("<s>"), eos_token_id=ids("</s>"), pad_token_id=ids("<pad>"),
        )
        n_image_tokens = (IMAGE_SIZE // dims.llava_patch) ** 2
        config = LlavaConfig(
            vision_config=vision, text_config=text, image_token_index=ids("<image>"),
            image_seq_length=n_image_tokens, projector_hidden_act="gelu",
            vision_feature_select_strategy="default",
            # the last layer: with a 2-4 layer tower, LLaVA's -2 would leave a layer unused
            vision_feature_layer=-1, tie_word_embeddings=bool(tie_embeddings),
        )
        return config, n_image_tokens
    if arch == "gemma3":
        return _gemma3_config(dims, tokenizer, tie_embeddings)

    head_dim = dims.text_hidden // dims.text_heads
    text = {
        "vocab_size": vocab,
        "hidden_size": dims.text_hidden,
        "intermediate_size": dims.text_intermediate,
        "num_hidden_layers": dims.text_layers,
        "num_attention_heads": dims.text_heads,
        "num_key_value_heads": dims.text_kv_heads,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "use_sliding_window": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                            "mrope_section": _mrope_section(head_dim)},
        "bos_token_id": ids("<|endoftext|>"),
        "eos_token_id": ids("<|im_end|>"),
        "pad_token_id": ids("<|endoftext|>"),
    }
    special = {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
    }
    vision = {
        "depth": dims.vision_depth,
        "num_heads": dims.vision_heads,
        "patch_size": QWEN_PATCH,
        "spatial_merge_size": QWEN_MERGE,
        "temporal_patch_size": 2,
    }
    if arch == "qwen3_vl":
        from transformers import Qwen3VLConfig as config_cls

        # Qwen3-VL: explicit head_dim, interleaved M-RoPE, a tower with learned position
        # embeddings (a square count) and DeepStack taps into the first language layer
        text.update(head_dim=head_dim, attention_bias=False)
        text.pop("use_sliding_window")
        text["rope_parameters"]["mrope_interleaved"] = True
        side = IMAGE_SIZE // QWEN3_PATCH + 1
        vision = {"depth": dims.vision_depth, "num_heads": dims.vision_heads,
                  "hidden_size": dims.vision_hidden, "intermediate_size": dims.vision_intermediate,
                  "out_hidden_size": dims.text_hidden, "patch_size": QWEN3_PATCH,
                  "spatial_merge_size": QWEN_MERGE, "temporal_patch_size": 2,
                  "num_position_embeddings": side * side, "deepstack_visual_indexes": [0]}
    elif arch == "qwen2_vl":
        from transformers import Qwen2VLConfig as config_cls

        # Qwen2-VL: embed_dim is the tower's width, hidden_size the merger's output (= text hidden)
        vision.update(embed_dim=dims.vision_hidden, hidden_size=dims.text_hidden,
                      mlp_ratio=dims.vision_intermediate // dims.vision_hidden)
    else:
        from transformers import Qwen2_5_VLConfig as config_cls

        # Qwen2.5-VL: hidden_size is the tower's width, out_hidden_size the merger's output;
        # one window (112 px) covers the reference image; the last block attends globally
        vision.update(hidden_size=dims.vision_hidden, out_hidden_size=dims.text_hidden,
                      intermediate_size=dims.vision_intermediate, window_size=IMAGE_SIZE,
                      fullatt_block_indexes=[dims.vision_depth - 1])
    tie = True if tie_embeddings is None else tie_embeddings
    text["tie_word_embeddings"] = tie
    config = config_cls(text_config=text, vision_config=vision, tie_word_embeddings=tie, **special)
    if arch == "qwen3_vl":  # 112 px snaps to 128 px: 8x8 patches of 16
        return config, (QWEN3_MAX_PIXELS // (QWEN3_PATCH * QWEN3_PATCH)) // (QWEN_MERGE * QWEN_MERGE)
    side = IMAGE_SIZE // QWEN_PATCH
    return config, side * side // (QWEN_MERGE * QWEN_MERGE)


def _gemma3_config(dims: _Dims, tokenizer, tie_embeddings: bool | None):
    from transformers import Gemma3Config, Gemma3TextConfig, SiglipVisionConfig

    ids = tokenizer.convert_tokens_to_ids
    head_dim = dims.text_hidden // dims.text_heads
    layer_types = ["sliding_attention"] * (dims.text_layers - 1) + ["full_attention"]
    tie = True if tie_embeddings is None else tie_embeddings
    text = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=dims.text_hidden,
        intermediate_size=dims.text_intermediate, num_hidden_layers=dims.text_layers,
        num_attention_heads=dims.text_heads, num_key_value_heads=dims.text_kv_heads,
        head_dim=head_dim, query_pre_attn_scalar=head_dim, sliding_window=512,
        layer_types=layer_types, max_position_embeddings=8192, rms_norm_eps=1e-6,
        pad_token_id=ids("<pad>"), eos_token_id=ids("<eos>"), bos_token_id=ids("<bos>"),
        tie_word_embeddings=tie,
    )
    vision = SiglipVisionConfig(
        hidden_size=dims.vision_hidden, intermediate_size=dims.vision_intermediate,
        num_hidden_layers=dims.vision_depth, num_attention_heads=dims.vision_heads,
        image_size=IMAGE_SIZE, patch_size=GEMMA_PATCH, vision_use_head=False,
    )
    config = Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=GEMMA_IMAGE_TOKENS,
        boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"), tie_word_embeddings=tie,
    )
    return config, GEMMA_IMAGE_TOKENS


def _generation_config(arch: str, tokenizer):
    from transformers import GenerationConfig

    ids = tokenizer.convert_tokens_to_ids
    if arch == "llava":
        return GenerationConfig(bos_token_id=ids("<s>"), eos_token_id=ids("</s>"),
                                pad_token_id=ids("<pad>"))
    if arch == "gemma3":
        return GenerationConfig(bos_token_id=ids("<bos>"),
                                eos_token_id=[ids("<eos>"), ids("<end_of_turn>")],
                                pad_token_id=ids("<pad>"))
    return GenerationConfig(bos_token_id=ids("<|endoftext|>"),
                            eos_token_id=[ids("<|im_end|>"), ids("<|endoftext|>")],
                            pad_token_id=ids("<|endoftext|>"))


# ----------------------------------------------------------------------------- public
def build_tiny_model(arch: str, out_dir, size: str = "tiny", seed: int = 0,
                     tie_embeddings: bool | None = None) -> Path:
    """Build, save and describe a random-weight VLM; return its directory.

    Args:
        arch: ``qwen2_vl``, ``qwen2_5_vl``, ``qwen3_vl``, ``gemma3`` or ``llava``.
        out_dir: directory to write (created; existing files of the same names are replaced).
        size: ``tiny`` (tests) or ``small`` (learns the shapes task on CPU).
        seed: weights are a pure function of (arch, size, seed, tie_embeddings); the tokenizer
            does not depend on the seed.
        tie_embeddings: share the input embeddings with the output head. ``None`` keeps the
            real model's choice (tied for Qwen2-VL / Qwen2.5-VL / Qwen3-VL as in the 2B-4B
            checkpoints and for Gemma 3, untied for LLaVA-1.5).

    The directory holds ``config.json``, ``generation_config.json``, ``model.safetensors``, the
    processor / tokenizer files with the chat template, and ``r3v_tiny.json`` (arch, size, seed,
    parameter counts, vocabulary size, image tokens per 112x112 image).
    """
    _check(arch, size)
    import torch
    import transformers
    from transformers import AutoModelForImageTextToText

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tokenizer(arch)
    processor = _build_processor(arch, size, tokenizer)
    config, n_image_tokens = _build_config(arch, size, tokenizer, tie_embeddings)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    model.generation_config = _generation_config(arch, tokenizer)
    model.eval()

    model.save_pretrained(out)
    processor.save_pretrained(out)

    total = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for n, p in model.named_parameters()
                 if any(k in n for k in ("visual", "vision_tower", "multi_modal_projector")))
    info = {
        "arch": arch,
        "size": size,
        "seed": seed,
        "model_class": type(model).__name__,
        "processor_class": type(processor).__name__,
        "tie_embeddings": bool(config.tie_word_embeddings),
        "num_parameters": total,
        "num_parameters_vision": vision,
        "num_parameters_language": total - vision,
        "vocab_size": len(tokenizer),
        "image_size": IMAGE_SIZE,
        "image_tokens_per_image": n_image_tokens,
        "dims": asdict(_DIMS[size]),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }
    (out / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return out


def tiny_model_info(model_dir) -> dict:
    """Read the ``r3v_tiny.json`` written by :func:`build_tiny_model`."""
    path = Path(model_dir) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {model_dir} was not built by build_tiny_model")
    return json.loads(path.read_text())
