"""`r3v export RUN [--iteration T] --out DIR`: one iteration's model as a standalone Hugging Face
model folder, loadable by plain transformers, lmms-eval's own models and r3v's.

The folder holds:

* the weights, as safetensors only: the LoRA adapter merged into the base (peft's
  ``merge_and_unload``), or the fully fine-tuned model as trained;
* the processor the run's evaluation used (the recipe's ``model.max_pixels`` / ``min_pixels``
  applied), with its tokenizer and chat template, and the generation config;
* ``README.md``, a model card (YAML front matter + text): the base, the method, the data, the
  per-iteration metrics table, the compute counts and the whole resolved recipe.

``--push-to-hub REPO`` then uploads the folder with ``huggingface_hub`` (untested here: no
network).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from r3v_eval import run_files
from r3v_eval.errors import R3VError
from r3v_train.output_folder import writable_folder
from r3v_train.run_info import RunInfo, compute_lines, iteration_table, read_run

#: weight files other than safetensors, removed if a library writes them
_NOT_SAFETENSORS = ("*.bin", "*.pt", "*.pth", "*.ckpt")
METHOD_NAMES = {"r3v": "R³V (SFT on positives + self-refine + self-select)",
                "star": "STaR (SFT on the model's own positive rationales)",
                "star_dpo": "STaR, then DPO on positive / negative pairs",
                "distill": "SFT on teacher rationales only",
                "r3v_no_refine": "R³V without self-refine (ablation)",
                "r3v_no_select": "R³V without self-select (ablation)",
                "control": "the matched-compute control (every label, no own rationale)",
                "grpo": "GRPO with the benchmark's answer check as the reward"}


def stage_source(info: RunInfo, stage_dir: Path) -> dict[str, Any]:
    """What a training stage was trained from (its ``train_config.json`` and ``DONE``)."""
    done = json.loads((stage_dir / run_files.DONE).read_text())
    cfg_file = stage_dir / run_files.TRAIN_CONFIG
    train_cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
    base = train_cfg.get("base_model_path")
    if not base:
        raise R3VError(f"{stage_dir}: no {run_files.TRAIN_CONFIG} naming the base model")
    return {"method": done.get("method", "lora"), "base": base}


def merged_model(stage_dir: Path, source: dict[str, Any]):
    """The model of a training stage in the base's dtype: the adapter merged into the base
    (LoRA), or the saved model (full fine-tuning)."""
    from transformers import AutoModelForImageTextToText

    if source["method"] == "full":
        return AutoModelForImageTextToText.from_pretrained(str(stage_dir), dtype="auto")
    from peft import PeftModel

    base = AutoModelForImageTextToText.from_pretrained(source["base"], dtype="auto")
    return PeftModel.from_pretrained(base, str(stage_dir)).merge_and_unload()


def export_model(run: str | Path, out: str | Path, iteration: int | None = None,
                 push_to_hub: str | None = None) -> Path:
    """Write iteration ``iteration`` (default: the last trained) of the run folder ``run`` to the
    new folder ``out``; upload it to ``push_to_hub`` (a repo id) when given. Returns ``out``."""
    from r3v_eval.engines.hf import load_processor  # heavy (transformers): only when exporting

    info = read_run(run)
    t, stage_dir = info.stage(iteration)
    source = stage_source(info, stage_dir)
    out = Path(out)
    writable_folder(out, "--out", empty=True)
    model = merged_model(stage_dir, source)
    model_cfg = info.config.get("model") or {}
    # the processor the run's evaluation used: the saved model's (full) or the base's (LoRA)
    processor = load_processor(str(stage_dir) if source["method"] == "full" else source["base"],
                               model_cfg.get("max_pixels"), model_cfg.get("min_pixels"))
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    if model.can_generate() and not (out / "generation_config.json").is_file():
        model.generation_config.save_pretrained(str(out))
    for pattern in _NOT_SAFETENSORS:
        for path in out.glob(pattern):
            path.unlink()
    write_model_card(info, t, source, out)
    if push_to_hub:
        push_folder(out, push_to_hub, "model", f"r3v export of {info.path.name}, iteration {t}")
    return out


def push_folder(folder: Path, repo_id: str, repo_type: str, message: str) -> str:
    """Create ``repo_id`` (if needed) and upload ``folder`` to it; returns the commit URL."""
    import huggingface_hub

    huggingface_hub.create_repo(repo_id, repo_type=repo_type, exist_ok=True)
    info = huggingface_hub.upload_folder(repo_id=repo_id, folder_path=str(folder),
                                         repo_type=repo_type, commit_message=message)
    return str(getattr(info, "commit_url", info))


# ------------------------------------------------------------------ the model card
def hub_id(name: str) -> str | None:
    """``name`` when it reads as a hub repo id (``owner/name``, not a local path), else None."""
    if not name or name.startswith(("tiny:", "shipped:", "/", ".", "~")) or Path(name).exists():
        return None
    return name if name.count("/") == 1 else None


def _card_data(info: RunInfo, t: int, base_id: str | None, metrics: dict[str, float]):
    from huggingface_hub import EvalResult, ModelCardData

    name = f"{info.path.name}-iter{t}"
    results = [EvalResult(task_type="image-text-to-text", dataset_type=f"r3v_{info.benchmark}",
                          dataset_name=info.benchmark, metric_type="accuracy",
                          metric_name=metric, metric_value=value)
               for metric, value in metrics.items() if isinstance(value, (int, float))]
    return ModelCardData(
        base_model=base_id, library_name="transformers", pipeline_tag="image-text-to-text",
        tags=["r3v", "self-training", "vision-language", info.method, info.benchmark],
        model_name=name if results else None, eval_results=results or None)


def model_card_text(info: RunInfo, t: int, source: dict[str, Any]) -> str:
    """The card: YAML front matter (base, tags, this iteration's evaluation) and the text."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        r3v_version = version("r3v")
    except PackageNotFoundError:
        r3v_version = "unknown"
    pretrained = str((info.config.get("model") or {}).get("pretrained") or source["base"])
    base_id = hub_id(pretrained)
    history = info.history()
    metrics = next((h.get("metrics") or {} for h in history if h.get("iteration") == t), {})
    data = info.config.get("data") or {}
    weights = ("the LoRA adapter merged into the base (peft `merge_and_unload`)"
               if source["method"] == "lora" else "the fully fine-tuned weights")
    recipe = yaml.safe_dump(info.config, sort_keys=False).rstrip()
    body = f"""
# {info.path.name}, iteration {t}

A vision-language model self-trained with r3v (R³V: "Vision-Language
Models Can Self-Improve Reasoning via Reflection", NAACL 2025), exported by `r3v export`
(r3v {r3v_version}) from the run folder `{info.path.name}`, iteration {t}: {weights}.

## Base model

`{pretrained}`{"" if source["base"] in (pretrained, base_id) else f" (`{source['base']}`)"}

## Method

`{info.method}`: {METHOD_NAMES.get(info.method, info.method)}.

## Data

Benchmark `{info.benchmark}`; train split `{data.get("train_split") or "default"}`
(limit {data.get("train_limit")}), test split `{data.get("test_split") or "default"}`
(limit {data.get("test_limit")}); source `{data.get("source") or "the benchmark's default"}`.
The self-generated training data: `r3v export-data` on the run folder.

## Metrics per iteration

Accuracy in % on the test split; pool and example counts of each iteration's training set.

{iteration_table(history) if history else "No evaluation recorded."}

## Compute

{compute_lines(info.compute())}

## Use

```python
from transformers import AutoModelForImageTextToText, AutoProcessor
model = AutoModelForImageTextToText.from_pretrained("THIS_FOLDER_OR_REPO")
processor = AutoProcessor.from_pretrained("THIS_FOLDER_OR_REPO")
```

With lmms-eval: `--model r3v_select --model_args pretrained=THIS_FOLDER_OR_REPO,n=3` (or
lmms-eval's own models) on the `r3v_*` tasks (`--include_path "$(r3v tasks-dir)"`).

## Recipe

The resolved recipe the run was trained with (`config.yaml`):

```yaml
{recipe}
```
"""
    data_block = _card_data(info, t, base_id, metrics)
    return f"---\n{data_block.to_yaml()}\n---\n{body}"


def write_model_card(info: RunInfo, t: int, source: dict[str, Any], out: Path) -> None:
    from huggingface_hub import ModelCard

    ModelCard(model_card_text(info, t, source)).save(out / "README.md")
