"""What a training run is told: :class:`TrainSettings`, the ``train`` section of a recipe.

The keys that TRL's ``SFTConfig`` / ``DPOConfig`` have carry TRL's names and are handed to them
by :mod:`r3v_train.stage` and :mod:`r3v_train.trainer`; the LoRA keys feed peft's ``LoraConfig``; ``trl_args`` passes any
other TRL argument through as it is (checked against TRL by
:func:`r3v_train.trainer.check_trl_args` when a recipe loads and when a stage starts).
Validated on construction: a wrong value is a ``ValueError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from r3v_eval.engines.base import DTYPES

# LoRA targets: the attention and MLP projections of the language model, never the vision tower.
LM_LORA_TARGETS = (
    r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
)

_METHODS = ("lora", "full")
SCHEDULERS = ("constant_with_warmup", "constant", "linear", "cosine")
_SAVE_STRATEGIES = ("steps", "epoch", "no")
#: training loads no float16 weights (no fp16 training); the rest as the engines
MODEL_DTYPES = tuple(d for d in DTYPES if d != "float16")


def _f(default: Any, help: str, group: str, fingerprint: bool = True) -> Any:
    """A settings field with its help text and group (TRL-style ``metadata``)."""
    return field(default=default,
                 metadata={"help": help, "group": group, "fingerprint": fingerprint})


@dataclass
class TrainSettings:
    """How to train: one SFT or DPO run of a VLM (the ``train`` section of a recipe).

    Defaults follow the official R3V code for Qwen-VL (LoRA r=64, alpha=16, dropout 0.05 on the
    language model; lr 3e-5 constant with 10% warm-up; 3 epochs; global batch 64; bf16) and the
    paper's STaR+DPO baseline (beta 0.1, lr 1e-5). LLaVA-1.5 in the official code: r=128,
    alpha=256, warm-up 0.03.
    """

    # > Parameters that control the method
    method: str = _f("lora", "lora: train a LoRA adapter on the language model; full: train all "
                     "language-model weights (vision tower and projector stay frozen)", "method")
    lora_r: int = _f(64, "LoRA rank", "method")
    lora_alpha: int = _f(16, "LoRA alpha (scaling = alpha / r)", "method")
    lora_dropout: float = _f(0.05, "dropout on the LoRA input", "method")
    lora_target_modules: str = _f(
        LM_LORA_TARGETS, "regex (full match) over module names selecting the Linear layers that "
        "get LoRA; the default hits the language model only, never the vision tower", "method")
    freeze_vision: bool = _f(True, "full fine-tuning: keep the vision tower and the "
                             "vision-language projector frozen", "method")

    # > Parameters that control the optimization
    learning_rate: float = _f(3e-5, "peak learning rate of SFT (AdamW)", "optimization")
    lr_scheduler_type: str = _f("constant_with_warmup",
                           "constant_with_warmup | constant | linear | cosine", "optimization")
    warmup_ratio: float = _f(0.1, "share of the training steps used for a linear warm-up "
                             "(0.1 Qwen-VL, 0.03 LLaVA in the official code)", "optimization")
    weight_decay: float = _f(0.0, "AdamW weight decay", "optimization")
    max_grad_norm: float = _f(1.0, "gradient clipping norm", "optimization")
    num_train_epochs: float = _f(3.0, "passes over the training examples", "optimization")
    max_steps: int = _f(-1, "stop after this many optimizer steps; -1 = train by epochs",
                        "optimization")
    per_device_train_batch_size: int = _f(8, "examples per device per forward pass", "optimization")
    gradient_accumulation_steps: int = _f(1, "micro-batches per optimizer step (ignored when "
                                    "global_batch_size is set)", "optimization")
    global_batch_size: int | None = _f(
        None, "examples per optimizer step over all devices (the paper: 64); when set, gradient "
        "accumulation = global / (per_device_train_batch_size x processes), which must divide evenly",
        "optimization")
    seed: int = _f(0, "seed of LoRA init, data order and dropout", "optimization")
    average_weights_from: float | None = _f(
        None, "tail weight averaging: the saved weights are the uniform average of the trainable "
        "weights after every optimizer step from this share of the run on (0.5: the second "
        "half); None = the last step's weights", "optimization")

    # > Parameters that control DPO (the STaR+DPO baseline)
    dpo_beta: float = _f(0.1, "DPO beta (strength of the reference-model KL)", "dpo")
    dpo_learning_rate: float = _f(1e-5, "peak learning rate of DPO", "dpo")

    # > Parameters that control the data
    max_length: int | None = _f(
        None, "token budget per example (image tokens included). Longer examples are DROPPED and "
        "counted, never truncated: truncation can cut through image tokens (TRL then fails with "
        "'Image features and image tokens do not match') or cut off the answer. None = no "
        "limit; bound image tokens with max_pixels instead", "data")
    max_pixels: int | None = _f(None, "Qwen2-VL family: cap on image pixels (bounds image "
                                "tokens: one per 28x28 pixels)", "data")
    min_pixels: int | None = _f(None, "Qwen2-VL family: floor on image pixels", "data")
    group_by_length: bool = _f(True, "batch examples of similar length together (sorted within "
                               "shuffled mega-batches) to keep the padding share low", "data")

    # > Parameters that control precision and memory
    bf16: bool | None = _f(None, "bf16 mixed precision; None = on when a CUDA GPU supports it",
                           "precision")
    model_dtype: str = _f(
        "auto", "dtype the base model is loaded in: auto = float32 on CPU; bfloat16 on GPU for "
        "LoRA and for DeepSpeed; float32 (master weights, bf16 autocast) for full fine-tuning "
        "without DeepSpeed", "precision")
    gradient_checkpointing: bool = _f(True, "recompute activations in the backward pass "
                                      "(less memory, ~30% slower)", "precision")
    attn_implementation: str | None = _f(None, "attention kernel, e.g. sdpa | flash_attention_2; "
                                         "None = the transformers default", "precision")

    # > Parameters that control logging and saving (not part of the run's fingerprint)
    logging_steps: int = _f(10, "log loss every N optimizer steps", "logging", False)
    save_strategy: str = _f("steps", "steps | epoch | no: when to write resumable checkpoints",
                            "logging", False)
    save_steps: int = _f(100, "checkpoint every N optimizer steps (save_strategy=steps)",
                         "logging", False)
    save_total_limit: int = _f(1, "checkpoints kept on disk while training", "logging", False)
    keep_checkpoints: bool = _f(False, "keep checkpoint-* folders after a finished run",
                                "logging", False)
    report_to: str = _f("none", "none | tensorboard | wandb | ... (transformers report_to)",
                        "logging", False)
    dataloader_num_workers: int = _f(0, "data-loader worker processes", "logging", False)

    # > Anything else TRL's SFTConfig / DPOConfig take, under their own names
    trl_args: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "more SFTConfig / DPOConfig arguments passed through as they are (e.g. "
                "{adam_beta2: 0.95, torch_compile: true}); one only DPOConfig takes (e.g. "
                "label_smoothing) applies to DPO only; a name r3v sets itself from the keys above is refused",
        "group": "trl", "fingerprint": True})

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"{key}: {why}")

        a = self.average_weights_from
        if a is not None and (isinstance(a, bool) or not isinstance(a, (int, float))
                              or not 0 <= a < 1):
            raise bad("average_weights_from", f"must be a number in [0, 1) or null, got {a!r}")
        if self.method not in _METHODS:
            raise bad("method", f"{self.method!r} is not one of {', '.join(_METHODS)}")
        if self.lr_scheduler_type not in SCHEDULERS:
            raise bad("lr_scheduler_type", f"{self.lr_scheduler_type!r} is not one of {', '.join(SCHEDULERS)}")
        if self.save_strategy not in _SAVE_STRATEGIES:
            raise bad("save_strategy",
                      f"{self.save_strategy!r} is not one of {', '.join(_SAVE_STRATEGIES)}")
        if self.model_dtype not in MODEL_DTYPES:
            raise bad("model_dtype", f"{self.model_dtype!r} is not one of {', '.join(MODEL_DTYPES)}")
        for key in ("lora_r", "lora_alpha", "per_device_train_batch_size", "gradient_accumulation_steps",
                    "logging_steps", "save_steps", "save_total_limit"):
            if getattr(self, key) < 1:
                raise bad(key, f"must be >= 1, got {getattr(self, key)}")
        for key in ("learning_rate", "dpo_learning_rate", "dpo_beta"):
            if not getattr(self, key) > 0:
                raise bad(key, f"must be > 0, got {getattr(self, key)}")
        if not 0 <= self.lora_dropout < 1:
            raise bad("lora_dropout", f"must be in [0, 1), got {self.lora_dropout}")
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise bad("weight_decay" if self.weight_decay < 0 else "max_grad_norm",
                      "must be positive")
        if self.max_steps == 0 or self.max_steps < -1:
            raise bad("max_steps", f"must be -1 (train by epochs) or >= 1, got {self.max_steps}")
        if self.max_steps == -1 and not self.num_train_epochs > 0:
            raise bad("num_train_epochs", f"must be > 0, got {self.num_train_epochs}")
        for key in ("global_batch_size", "max_length", "max_pixels", "min_pixels"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise bad(key, f"must be >= 1 or null, got {v}")
        if self.dataloader_num_workers < 0:
            raise bad("dataloader_num_workers", "must be >= 0")
        try:
            re.compile(self.lora_target_modules)
        except re.error as exc:
            raise bad("lora_target_modules", f"not a valid regex ({exc})") from None

    # ----------------------------------------------------------- derived values
    def use_bf16(self) -> bool:
        """bf16 mixed precision for this machine (``bf16=None``: on iff CUDA supports it)."""
        import torch

        cuda = torch.cuda.is_available()
        if self.bf16 is None:
            return bool(cuda and torch.cuda.is_bf16_supported())
        if self.bf16 and not cuda:
            raise ValueError("bf16: true needs a CUDA GPU; on CPU leave it null or set false")
        return self.bf16

    def accumulation_steps(self, world_size: int) -> int:
        """Gradient accumulation for ``world_size`` processes."""
        if self.global_batch_size is None:
            return self.gradient_accumulation_steps
        per_step = self.per_device_train_batch_size * max(1, world_size)
        if self.global_batch_size % per_step:
            raise ValueError(
                f"global_batch_size: {self.global_batch_size} is not a multiple of "
                f"per_device_train_batch_size x processes = {self.per_device_train_batch_size} x "
                f"{max(1, world_size)}")
        return self.global_batch_size // per_step

    def fingerprint_dict(self) -> dict[str, Any]:
        """The settings that change what is trained (logging/saving fields left out)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.metadata.get("fingerprint", True)}
