"""The training stage: what SFT, DPO (:mod:`r3v_train.trainer`) and GRPO (:mod:`r3v_train.grpo`)
share, public so that each builds on it rather than on another's private parts.

A stage trains one model into one folder (names: :mod:`r3v_eval.run_files`) and is resumable:

1. :func:`reuse_finished`: a folder whose ``DONE`` marker exists is returned as it is;
2. :func:`fingerprint` + :func:`open_stage`: the resume guard (checkpoints of another run are
   an error) and ``train_config.json``;
3. :func:`load_model` (+ :func:`peft_config` for a new LoRA adapter), then
   :func:`check_vision_frozen` once the TRL trainer wrapped it;
4. :func:`trl_kwargs`: the keyword arguments every TRL config takes from the ``train`` section;
5. :func:`train`: resumes from :func:`latest_checkpoint`, timed;
6. :func:`finish`: saves the model, writes ``train_metrics.json`` (with :func:`run_metrics` and
   :func:`peak_memory`) and, last, ``DONE``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r3v_eval import run_files
from r3v_eval.provenance import installed_versions, write_atomic
from r3v_train.train_settings import TrainSettings

#: module-name components of the vision encoder and the vision-to-language projector in HF VLMs
VISION_MODULE_KEYS = ("visual", "vision_tower", "vision_model", "multi_modal_projector",
                      "mm_projector")


@dataclass
class TrainResult:
    """What a finished stage left in ``out_dir``."""

    out_dir: Path
    kind: str                 # "sft" | "dpo" | "grpo"
    method: str               # "lora" | "full"
    metrics: dict[str, Any]
    reused: bool = False      # True: out_dir was already finished, nothing was trained

    @property
    def adapter_dir(self) -> Path | None:
        """The LoRA adapter folder (``method == "lora"``), for ``HFEngine(adapter=...)``."""
        return self.out_dir if self.method == "lora" else None

    @property
    def model_dir(self) -> Path | None:
        """The full model folder (``method == "full"``), for ``HFEngine(pretrained=...)``."""
        return self.out_dir if self.method == "full" else None


# ====================================================================== resuming
def read_result(out_dir: str | Path) -> TrainResult | None:
    """The result of a finished stage in ``out_dir`` (its ``DONE`` marker exists), else None."""
    out = Path(out_dir)
    done = out / run_files.DONE
    if not done.is_file():
        return None
    info = json.loads(done.read_text())
    metrics_path = out / run_files.TRAIN_METRICS
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return TrainResult(out_dir=out, kind=info["kind"], method=info["method"], metrics=metrics,
                       reused=True)


def reuse_finished(out_dir: str | Path, kind: str) -> TrainResult | None:
    """A finished stage of this ``kind`` in ``out_dir`` (None: not finished; another kind is an
    error)."""
    done = read_result(out_dir)
    if done is not None and done.kind != kind:
        raise ValueError(f"{out_dir} holds a finished {done.kind} run, not {kind}; "
                         "use another out_dir")
    return done


def latest_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint-N folder that was written completely (has trainer_state.json)."""
    if not out.is_dir():
        return None
    found = []
    for p in out.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if m and p.is_dir() and (p / "trainer_state.json").is_file():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def fingerprint(kind: str, base: str, init_adapter: str | None, settings: TrainSettings,
                rows: list[dict[str, Any]], text_fields: Sequence[str]) -> str:
    """What identifies a stage's training: its kind, base, initial adapter, settings and data."""
    h = hashlib.sha256()
    h.update(json.dumps({"kind": kind, "base": str(base), "init_adapter": str(init_adapter),
                         "settings": settings.fingerprint_dict()}, sort_keys=True).encode())
    for row in rows:
        for name in text_fields:
            h.update(row[name].encode())
            h.update(b"\0")
        image = row["image"]
        if image is None:
            h.update(b"-")
        elif isinstance(image, str):
            h.update(image.encode())
        else:  # in-memory pictures are identified by size only (hashing pixels costs too much)
            h.update(f"{image.size}{image.mode}".encode())
        h.update(b"\1")
    return h.hexdigest()


def open_stage(out: Path, fp: str, config: dict[str, Any], what: str) -> Path | None:
    """The resume guard and the config write of a stage: the newest complete checkpoint to
    resume from (None: start afresh), after checking that it belongs to the run fingerprinted
    ``fp``; the main process then writes ``config`` (with ``fingerprint`` and ``versions``
    added) as ``train_config.json``. ``what`` names the data in the error (e.g. "examples")."""
    from accelerate import PartialState  # heavy (torch): only when a stage runs

    state = PartialState()
    checkpoint = latest_checkpoint(out)
    saved = out / run_files.TRAIN_CONFIG
    if checkpoint is not None and saved.is_file():
        if json.loads(saved.read_text()).get("fingerprint") != fp:
            raise ValueError(
                f"{out} holds checkpoints of a different run (other {what}, base model or "
                f"settings); use a fresh out_dir or delete {out}")
    state.wait_for_everyone()
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        record = {**config, "fingerprint": fp, "versions": installed_versions()}
        write_atomic(saved, json.dumps(record, indent=2, default=str) + "\n")
    return checkpoint


# ====================================================================== the model
def is_vision_param(name: str) -> bool:
    """Whether a parameter name belongs to the vision tower or the projector."""
    parts = name.split(".")
    return any(key in parts for key in VISION_MODULE_KEYS)


def load_model(base: str, settings: TrainSettings, init_adapter: str | None, *, cuda: bool,
               deepspeed: bool):
    """The model to train: ``base`` in the settings' dtype, ``init_adapter`` continued (LoRA)
    or merged (full), the vision tower frozen for full fine-tuning (``freeze_vision``)."""
    import torch
    from transformers import AutoModelForImageTextToText

    if settings.model_dtype != "auto":
        dtype = getattr(torch, settings.model_dtype)
    elif not cuda:
        dtype = torch.float32
    elif settings.method == "lora" or deepspeed:
        dtype = torch.bfloat16 if settings.use_bf16() else torch.float32
    else:
        dtype = torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    if settings.attn_implementation:
        kwargs["attn_implementation"] = settings.attn_implementation
    model = AutoModelForImageTextToText.from_pretrained(base, **kwargs)
    if init_adapter is not None:
        from peft import PeftModel

        if settings.method == "lora":
            # continue training this adapter (its own rank / targets)
            model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
        else:
            model = PeftModel.from_pretrained(model, str(init_adapter)).merge_and_unload()
    if settings.method == "full" and settings.freeze_vision:
        for name, param in model.named_parameters():
            if is_vision_param(name):
                param.requires_grad_(False)
    return model


def peft_config(settings: TrainSettings, init_adapter: str | None = None):
    """peft's ``LoraConfig`` of a new adapter; None for full fine-tuning or when an existing
    adapter (``init_adapter``) is continued."""
    if settings.method != "lora" or init_adapter is not None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha,
                      lora_dropout=settings.lora_dropout,
                      target_modules=settings.lora_target_modules,
                      bias="none", task_type="CAUSAL_LM")


def check_vision_frozen(model, settings: TrainSettings, what: str = "R3V") -> None:
    """An error when LoRA or ``freeze_vision`` leave a vision parameter trainable
    (``freeze_vision=False`` is an explicit request: pre-training a tiny model from scratch)."""
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and is_vision_param(n)]
    if trainable and (settings.method == "lora" or settings.freeze_vision):
        raise ValueError(f"lora_target_modules / freeze_vision leave vision parameters trainable "
                         f"(e.g. {trainable[0]}); {what} trains the language model only")


# ====================================================================== TRL's arguments
def trl_kwargs(settings: TrainSettings, out: Path, progress: bool,
               names: Sequence[str]) -> dict[str, Any]:
    """The keyword arguments every TRL config (``SFTConfig``, ``DPOConfig``, ``GRPOConfig``)
    takes from r3v's ``train`` section; ``names``: the config class's fields (transformers
    >= 5.2x renamed ``gradient_checkpointing`` to ``activation_checkpointing``)."""
    import torch

    ckpt_key = ("activation_checkpointing" if "activation_checkpointing" in names
                else "gradient_checkpointing")
    return {
        "output_dir": str(out),
        "seed": settings.seed,
        "weight_decay": settings.weight_decay,
        "max_grad_norm": settings.max_grad_norm,
        "bf16": settings.use_bf16(),
        "fp16": False,
        "use_cpu": not torch.cuda.is_available(),
        ckpt_key: settings.gradient_checkpointing,
        "logging_steps": settings.logging_steps,
        "save_strategy": settings.save_strategy,
        "save_steps": settings.save_steps,
        "save_total_limit": settings.save_total_limit,
        "report_to": [] if settings.report_to == "none" else [settings.report_to],
        "dataloader_num_workers": settings.dataloader_num_workers,
        "disable_tqdm": not progress,
    }


def shared_trl_keys() -> set[str]:
    """The TRL argument names :func:`trl_kwargs` sets (both spellings of checkpointing)."""
    keys = set(trl_kwargs(TrainSettings(bf16=False), Path("."), False, ()))
    return keys | {"gradient_checkpointing", "activation_checkpointing"}


# ====================================================================== running
def train(trainer, checkpoint: Path | None) -> tuple[Any, float]:
    """``trainer.train()``, resumed from ``checkpoint``; (its output, seconds)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return output, time.perf_counter() - start


def peak_memory() -> dict[str, float | None]:
    """Peak GPU memory allocated and peak resident memory of this process, in GiB."""
    import resource

    import torch

    gpu = None
    if torch.cuda.is_available():
        gpu = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {"peak_gpu_memory_gb": gpu, "peak_rss_gb": round(rss, 3)}


def run_metrics(trainer, output, runtime: float, checkpoint: Path | None) -> dict[str, Any]:
    """The figures every stage reports, from the finished TRL trainer."""
    model = trainer.model
    return {
        "train_loss": output.training_loss,
        "global_step": trainer.state.global_step,
        "epoch": trainer.state.epoch,
        "train_runtime_s": runtime,
        "world_size": trainer.args.world_size,
        "bf16": bool(trainer.args.bf16),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in model.parameters()),
        "resumed_from": str(checkpoint) if checkpoint else None,
        **peak_memory(),
    }


def finish(trainer, out: Path, kind: str, settings: TrainSettings,
           metrics: dict[str, Any]) -> TrainResult:
    """Save the model (adapter or full, with the processor), drop TRL's frozen reference copy
    and (unless ``keep_checkpoints``) the checkpoints, write ``train_metrics.json`` and, last,
    ``DONE`` (main process only); every process then returns the result."""
    from accelerate import PartialState  # heavy (torch): only when a stage runs

    state = PartialState()
    trainer.save_model(str(out))
    if state.is_main_process:
        ref = out / "ref"  # continuing an adapter with a reference model: TRL's frozen copy
        if (ref / "adapter_config.json").is_file():
            shutil.rmtree(ref)
        if not settings.keep_checkpoints:
            for p in out.glob("checkpoint-*"):
                shutil.rmtree(p, ignore_errors=True)
        write_atomic(out / run_files.TRAIN_METRICS,
                     json.dumps(metrics, indent=2, default=str) + "\n")
        write_atomic(out / run_files.DONE,
                     json.dumps({"kind": kind, "method": settings.method}) + "\n")
    state.wait_for_everyone()
    return TrainResult(out_dir=out, kind=kind, method=settings.method, metrics=metrics)


def settings_record(settings: TrainSettings) -> dict[str, Any]:
    """The settings as ``train_config.json`` records them."""
    return dataclasses.asdict(settings)
