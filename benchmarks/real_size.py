"""Real-size check: the recipes' image budgets, R3V's longest example and a LoRA step at the real
models' shapes (random weights, nothing downloaded). Not part of the test suite.

For Qwen2-VL-2B and Qwen2.5-VL-3B the model is built from the hub checkpoints' config.json
values (:data:`REAL_CONFIGS`) with random weights; the tokenizer, processor and chat template are
r3v's offline stand-ins (:func:`r3v_train.tiny.build_tiny_model`: byte-level BPE, the Qwen
chat-template format, the real image processor class with the recipe's ``max_pixels``). A
byte-level tokenizer with a small vocabulary spends *more* tokens on English than Qwen's
151k-token one, so text lengths here are upper bounds; image tokens are exact (they depend
only on the image processor: one token per 28x28 pixels after resizing).

What it does, per backbone:

1. image tokens per picture for real-size pictures (an 800x600 chart, a 480x320 CLEVR scene, a
   table, a 1,280x960 photo), with the recipe's ``max_pixels`` (401,408);
2. R3V's longest example kind, a self-select prompt over three full-length candidates
   (``max_new_tokens`` = 384 tokens each) plus its answer, measured in tokens against the
   paper's ``max_length`` 2,048;
3. LoRA with the trainer's target regex (``LM_LORA_TARGETS``): the number of modules it
   matches, none of them in the vision tower;
4. one sampling batch (the product's :class:`HFEngine`, 2 problems, a few new tokens) and one
   LoRA training step (forward + backward + AdamW) on the longest example, with peak memory
   (``ru_maxrss`` on CPU, ``max_memory_allocated`` on CUDA) and wall time.

LLaVA-1.5-7B is built on the meta device (no memory) to list its module names and check the
LoRA regex and the image-token count (576 per picture).

It fails (exit 1) when a picture's image tokens do not reach the model intact (the forward
raises "Image features and image tokens do not match"), when the longest example is over
``--max-length``, or when the LoRA regex matches nothing or touches the vision tower.

    python benchmarks/real_size.py                          # full depth; a GPU, or patience
    OMP_NUM_THREADS=2 python benchmarks/real_size.py --layers 2 --vision-depth 2 \\
        --json benchmarks/results/real_size_cpu.json        # shapes at full width, 2 layers
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: config.json values of the hub checkpoints (Qwen/Qwen2-VL-2B-Instruct, Qwen/Qwen2.5-VL-3B-Instruct)
REAL_CONFIGS = {
    "qwen2_vl_2b": {
        "arch": "qwen2_vl", "recipe": "recipes/backbones/qwen2_vl_2b.yaml",
        "text": {"vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960,
                 "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
                 "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "hidden_act": "silu",
                 "use_sliding_window": False,
                 "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                                     "mrope_section": [16, 24, 24]}},
        "vision": {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "mlp_ratio": 4,
                   "num_heads": 16, "patch_size": 14, "spatial_merge_size": 2,
                   "temporal_patch_size": 2},
    },
    "qwen2_5_vl_3b": {
        "arch": "qwen2_5_vl", "recipe": "recipes/backbones/qwen2_5_vl_3b.yaml",
        "text": {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008,
                 "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2,
                 "max_position_embeddings": 128000, "rms_norm_eps": 1e-6, "hidden_act": "silu",
                 "use_sliding_window": False,
                 "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                                     "mrope_section": [16, 24, 24]}},
        "vision": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420,
                   "num_heads": 16, "out_hidden_size": 2048, "patch_size": 14,
                   "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
                   "fullatt_block_indexes": [7, 15, 23, 31], "hidden_act": "silu"},
    },
}
#: llava-hf/llava-1.5-7b-hf: CLIP ViT-L/14 at 336 px + Llama-2-7B (vocabulary with <image>)
LLAVA_1_5_7B = {
    "vision": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
               "num_attention_heads": 16, "image_size": 336, "patch_size": 14,
               "projection_dim": 768},
    "text": {"vocab_size": 32064, "hidden_size": 4096, "intermediate_size": 11008,
             "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
             "max_position_embeddings": 4096, "rms_norm_eps": 1e-5},
    "image_token_index": 32000,
}
PICTURES = {"chart 800x600": (800, 600), "CLEVR scene 480x320": (480, 320),
            "table 330x220": (330, 220), "photo 1280x960": (1280, 960)}
PAPER_MAX_LENGTH = 2048
CANDIDATE_TOKENS = 384  # the recipes' sampling.max_new_tokens


def peak_memory_mib(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def chart_picture(size: tuple[int, int]):
    """A bar chart-like picture with text, at ``size``."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    w, h = size
    for i in range(8):
        top = int(h * (0.2 + 0.08 * i))
        d.rectangle([int(w * (0.1 + 0.1 * i)), top, int(w * (0.16 + 0.1 * i)), int(h * 0.9)],
                    fill=(40 + 25 * i, 90, 200 - 20 * i))
        d.text((int(w * (0.1 + 0.1 * i)), int(h * 0.92)), f"Y{2010 + i}", fill="black")
    return im


def candidate_text(tokenizer, n_tokens: int, answer: str) -> str:
    """A rationale of about ``n_tokens`` tokens in the paper's format, ending in its answer."""
    steps, i = [], 1
    while True:
        steps.append(f"{i}. The bar for year {2009 + i} reaches {37 + 3 * i} units, so the "
                     f"running total is {sum(37 + 3 * k for k in range(1, i + 1))}.")
        text = "Solution:\n" + "\n".join(steps) + f"\n\nAnswer:\n{answer}"
        if len(tokenizer(text)["input_ids"]) >= n_tokens:
            return text
        i += 1


def chart_problem(picture: tuple[int, int], index: int = 0):
    """A ChartQA-style problem on a chart of size ``picture``; ``index`` varies the question and
    its answer, so problems are distinct prompts. Returns (benchmark, problem)."""
    from r3v_eval.benchmarks import Problem, get_benchmark

    last = 2017 + index
    problem = Problem(id=f"chart-{index}", question=f"What is the total of the bars from 2010 to "
                      f"{last}, and in which year is the difference to the previous year "
                      "largest?", answer=str(412 + index), benchmark="chartqa",
                      image=chart_picture(picture))
    return get_benchmark("chartqa"), problem


def longest_example(tokenizer, picture: tuple[int, int], index: int = 0,
                    candidate_tokens: int = CANDIDATE_TOKENS, style: str = "qwen2") -> dict:
    """R3V's longest example kind: a self-select prompt (:func:`r3v_eval.prompts.select_prompt`)
    over three candidates of about ``candidate_tokens`` tokens each (two right, one wrong) on
    :func:`chart_problem`, with the bare answer as its completion. Returns the benchmark, the
    problem, the picture, the prompt and the completion."""
    from r3v_eval import prompts

    bench, problem = chart_problem(picture, index)
    wrong = str(int(problem.answer) - 14)
    candidates = [candidate_text(tokenizer, candidate_tokens, a)
                  for a in (problem.answer, wrong, problem.answer)]
    return {"bench": bench, "problem": problem, "image": problem.image,
            "completion": problem.answer,
            "prompt": prompts.select_prompt(bench, problem, candidates, style)}


def recipe_max_pixels(name: str) -> int:
    """The image budget (``model.max_pixels``) of the backbone recipe of ``name``."""
    import yaml

    recipe = yaml.safe_load((ROOT / REAL_CONFIGS[name]["recipe"]).read_text())
    return int(recipe["model"]["max_pixels"])


def real_size_config(name: str, folder: Path, layers: int = 0, vision_depth: int = 0):
    """The config of ``name`` (:data:`REAL_CONFIGS`) around the stand-in tokenizer of ``folder``
    (built by :func:`r3v_train.tiny.build_tiny_model` for the same architecture, whose special
    token ids it keeps); ``layers`` / ``vision_depth`` > 0 shorten the model."""
    from transformers import AutoConfig

    spec = REAL_CONFIGS[name]
    config = AutoConfig.from_pretrained(str(folder))
    text_cfg = {**spec["text"]}
    vision_cfg = {**spec["vision"]}
    if layers:
        text_cfg["num_hidden_layers"] = layers
    if vision_depth:
        vision_cfg["depth"] = vision_depth
        if "fullatt_block_indexes" in vision_cfg:
            vision_cfg["fullatt_block_indexes"] = [vision_depth - 1]
    for key, value in text_cfg.items():
        setattr(config.text_config, key, value)
    # one entry per layer (derived when a config is made, so it still has the stand-in's
    # count); the checkpoints use no sliding window
    config.text_config.layer_types = ["full_attention"] * text_cfg["num_hidden_layers"]
    for key, value in vision_cfg.items():
        setattr(config.vision_config, key, value)
    config.tie_word_embeddings = True
    return config


def build_real_size_model(name: str, folder: Path, *, device: str, dtype, layers: int = 0,
                          vision_depth: int = 0, seed: int = 0, save: bool = False):
    """A random-weight model of ``name`` at real width (:func:`real_size_config`), built on
    ``device`` in ``dtype``. With ``save`` its weights replace the stand-in's in ``folder``, so
    the folder loads with ``from_pretrained`` (the real model with r3v's offline processor)."""
    import torch
    from transformers import AutoModelForImageTextToText

    config = real_size_config(name, folder, layers, vision_depth)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    if save:
        from r3v_train.tiny import INFO_FILE

        for f in list(folder.glob("model*.safetensors")) + list(folder.glob("model*.index.json")):
            f.unlink()
        model.save_pretrained(folder)
        info = json.loads((folder / INFO_FILE).read_text())
        info.update(size=f"real-{name}", num_parameters=sum(p.numel() for p in model.parameters()))
        (folder / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return model


def lora_matches(module_names, regex: str) -> tuple[list[str], list[str]]:
    """(LoRA targets, those of them inside a vision tower) for a full-match regex."""
    pattern = re.compile(regex)
    hits = [n for n in module_names if pattern.fullmatch(n)]
    vision = [n for n in hits if any(k in n for k in ("visual", "vision_tower", "vision_model"))]
    return hits, vision


def check_backbone(name: str, args, failures: list[str]) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    from r3v_eval import prompts
    from r3v_eval.engines.base import GenRequest, Sampling
    from r3v_eval.engines.chat import chat_text
    from r3v_eval.engines.hf import HFEngine, load_processor
    from r3v_train.tiny import build_tiny_model
    from r3v_train.train_settings import LM_LORA_TARGETS

    spec = REAL_CONFIGS[name]
    max_pixels = recipe_max_pixels(name)
    out: dict = {"backbone": name, "max_pixels": max_pixels}
    work = Path(tempfile.mkdtemp(prefix=f"r3v-real-{name}-"))
    folder = build_tiny_model(spec["arch"], work / "model")
    processor = load_processor(str(folder), max_pixels=max_pixels)
    tokenizer = processor.tokenizer
    merge = spec["vision"]["spatial_merge_size"]

    # 1. image tokens per picture
    tokens = {}
    for label, size in PICTURES.items():
        grid = processor.image_processor(images=[chart_picture(size)],
                                         return_tensors="pt")["image_grid_thw"][0]
        tokens[label] = int(grid.prod()) // merge**2
    out["image_tokens"] = tokens
    print(f"[{name}] image tokens per picture (max_pixels {max_pixels:,}): "
          + ", ".join(f"{k}: {v}" for k, v in tokens.items()))

    # 2. the longest example: select over three full-length candidates, on an 800x600 chart
    example = longest_example(tokenizer, PICTURES["chart 800x600"])
    bench, problem, image = example["bench"], example["problem"], example["image"]
    text = (chat_text(processor, example["prompt"], has_image=True) + example["completion"]
            + "<|im_end|>")
    batch = processor(text=[text], images=[[image]], return_tensors="pt")
    n_tokens = int(batch["input_ids"].shape[1])
    n_image = int((batch["input_ids"] == processor.image_token_id).sum()) if hasattr(
        processor, "image_token_id") else tokens["chart 800x600"]
    out["longest_example"] = {"kind": "select, 3 candidates x 384 tokens, 800x600 chart",
                              "tokens": n_tokens, "image_tokens": n_image,
                              "max_length": args.max_length}
    print(f"[{name}] longest example: {n_tokens} tokens ({n_image} image tokens) "
          f"against max_length {args.max_length}")
    if n_tokens > args.max_length:
        failures.append(f"{name}: the longest example has {n_tokens} tokens > max_length "
                        f"{args.max_length}")

    # 3. the model at real width (depth as asked), random weights
    device = args.device
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    t0 = time.perf_counter()
    model = build_real_size_model(name, folder, device=device, dtype=dtype, layers=args.layers,
                                  vision_depth=args.vision_depth)
    config = model.config
    n_params = sum(p.numel() for p in model.parameters())
    out["model"] = {"layers": config.text_config.num_hidden_layers,
                    "vision_depth": config.vision_config.depth, "parameters": n_params,
                    "build_s": round(time.perf_counter() - t0, 1), "device": device,
                    "dtype": str(dtype).removeprefix("torch.")}
    print(f"[{name}] model: {n_params / 1e6:.0f}M parameters "
          f"({config.text_config.num_hidden_layers} LM layers, vision depth "
          f"{config.vision_config.depth}), built in {out['model']['build_s']} s")

    # 4a. one sampling batch through the product's engine
    engine = HFEngine(model=model.eval(), processor=processor, batch_size=2)
    reqs = [GenRequest(prompts.cot_prompt(bench, problem, "qwen2"), image),
            GenRequest(prompts.cot_prompt(bench, problem, "qwen2"),
                       chart_picture(PICTURES["CLEVR scene 480x320"]))]
    t0 = time.perf_counter()
    engine.generate(reqs, Sampling(n=1, temperature=0.0, max_new_tokens=args.new_tokens),
                    progress=False)
    out["sampling"] = {"problems": 2, "new_tokens": args.new_tokens,
                       "seconds": round(time.perf_counter() - t0, 1)}
    print(f"[{name}] sampling: 2 problems x {args.new_tokens} new tokens in "
          f"{out['sampling']['seconds']} s")

    # 4b. LoRA on the language model only, one training step on the longest example
    names = [n for n, _ in model.named_modules()]
    hits, vision_hits = lora_matches(names, LM_LORA_TARGETS)
    out["lora"] = {"regex": LM_LORA_TARGETS, "targets": len(hits),
                   "vision_targets": len(vision_hits)}
    print(f"[{name}] LoRA targets: {len(hits)} modules, {len(vision_hits)} in the vision tower")
    if not hits or vision_hits:
        failures.append(f"{name}: LoRA regex matches {len(hits)} modules, "
                        f"{len(vision_hits)} in the vision tower")
        return out
    model = get_peft_model(model.train(), LoraConfig(r=64, lora_alpha=16, lora_dropout=0.05,
                                                     target_modules=LM_LORA_TARGETS))
    batch = {k: v.to(device) for k, v in batch.items()}
    labels = batch["input_ids"].clone()
    labels[:, :-2] = -100  # the answer tokens only, as the select target is the bare answer
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-5)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
    except ValueError as exc:  # "Image features and image tokens do not match"
        failures.append(f"{name}: training step failed: {exc}")
        return out
    out["train_step"] = {"seconds": round(time.perf_counter() - t0, 1),
                         "loss": round(float(loss.detach()), 3),
                         "peak_memory_mib": round(peak_memory_mib(device))}
    print(f"[{name}] LoRA step on the longest example: {out['train_step']['seconds']} s, "
          f"peak memory {out['train_step']['peak_memory_mib']:,} MiB, loss {float(loss.detach()):.2f}")
    del model, engine, optimizer
    return out


def check_llava(failures: list[str]) -> dict:
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    from r3v_train.train_settings import LM_LORA_TARGETS

    config = LlavaConfig(vision_config=CLIPVisionConfig(**LLAVA_1_5_7B["vision"]),
                         text_config=LlamaConfig(**LLAVA_1_5_7B["text"]),
                         image_token_index=LLAVA_1_5_7B["image_token_index"],
                         vision_feature_layer=-2, vision_feature_select_strategy="default")
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    names = [n for n, _ in model.named_modules()]
    hits, vision_hits = lora_matches(names, LM_LORA_TARGETS)
    n_params = sum(p.numel() for p in model.parameters())
    side = LLAVA_1_5_7B["vision"]["image_size"] // LLAVA_1_5_7B["vision"]["patch_size"]
    out = {"parameters": n_params, "lora_targets": len(hits), "vision_targets": len(vision_hits),
           "image_tokens": side * side, "example_targets": hits[:2]}
    print(f"[llava_1_5_7b] meta device: {n_params / 1e9:.2f}B parameters; LoRA targets "
          f"{len(hits)} ({len(vision_hits)} in the vision tower), e.g. {hits[0] if hits else '-'}; "
          f"{side * side} image tokens per picture")
    if not hits or vision_hits:
        failures.append(f"llava_1_5_7b: LoRA regex matches {len(hits)} modules, "
                        f"{len(vision_hits)} in the vision tower")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=list(REAL_CONFIGS),
                        choices=list(REAL_CONFIGS))
    parser.add_argument("--layers", type=int, default=0,
                        help="language-model layers (0 = the real count)")
    parser.add_argument("--vision-depth", type=int, default=0,
                        help="vision-tower blocks (0 = the real count)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--new-tokens", type=int, default=4, help="sampling: new tokens per problem")
    parser.add_argument("--max-length", type=int, default=PAPER_MAX_LENGTH)
    parser.add_argument("--skip-llava", action="store_true")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    import torch

    failures: list[str] = []
    results = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "torch": torch.__version__, "threads": torch.get_num_threads(), "backbones": []}
    for name in args.backbones:
        results["backbones"].append(check_backbone(name, args, failures))
    if not args.skip_llava:
        results["llava_1_5_7b"] = check_llava(failures)
    results["failures"] = failures
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    for f in failures:
        print(f"FAIL: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
