"""TRL glue: supervised fine-tuning (SFT) and DPO of a vision-language model, LoRA or full.

The one public way to train in r3v::

    result = train_sft(base_model_path, examples, out_dir, TrainSettings(...))
    engine = HFEngine(base_model_path, adapter=str(result.adapter_dir))   # LoRA
    engine = HFEngine(str(result.model_dir))                              # full fine-tuning

Input records are plain: ``prompt`` (the user-turn text), ``completion`` (the assistant text) and
``image`` (a PIL image, a path to an image file, an object with ``load_image()``, or ``None``),
as dicts or as objects with those attributes. :func:`train_dpo` takes ``prompt`` / ``chosen`` /
``rejected`` / ``image`` records.

Facts of TRL 1.16 / transformers 5.23 this module is built on (checked by tests/test_trainer.py):

* **Format.** Records become TRL's *conversational prompt-completion* rows with an ``images``
  column: ``prompt=[{"role": "user", "content": text}]``, ``completion=[{"role": "assistant",
  "content": text}]``, ``images=[img]`` (or ``[]``). TRL inserts the image placeholder before the
  text (as :func:`r3v_eval.engines.chat.user_message` does at sampling time, so train-time and
  test-time prompts are the same token sequence). Prompt and completion are tokenized separately
  and concatenated, so **only the completion tokens, end-of-turn included, carry loss**; the
  system prompt, the user turn, the image tokens and the assistant header are ``-100``.
  (The ``messages`` format would put the image tokens in the loss.) Rows with and rows without an
  image may share a batch (Qwen2-VL and LLaVA processors accept that).
* **No truncation.** TRL's ``max_length`` defaults to 1024 and cuts the *concatenated* sequence;
  a cut through image tokens raises "Image features and image tokens do not match", and a cut
  through the completion silently drops the answer. TRL gets ``max_length=None`` here;
  :attr:`TrainSettings.max_length` is a *budget*: longer examples are dropped (and counted in
  ``train_metrics.json``), never truncated. Image tokens are bounded by ``max_pixels`` (Qwen).
* **No packing / padding-free** for vision data (TRL rejects both). Padding waste is kept low by
  a length-grouped sampler instead (sequence lengths, image tokens included, are computed up
  front), and the padding share actually seen is measured batch by batch.
* **Vision frozen.** LoRA goes on the language model only, through a regex over module names
  (``LM_LORA_TARGETS`` in :mod:`r3v_train.train_settings`): bare names such as ``q_proj`` also
  hit CLIP's attention (LLaVA) and
  ``gate_proj``/``up_proj``/``down_proj`` hit the Qwen2.5-VL vision MLP. In transformers 5 the
  language model lives under ``model.language_model`` for Qwen2-VL, Qwen2.5-VL and LLaVA; the
  vision tower under ``model.visual`` / ``model.vision_tower`` (+ ``model.multi_modal_projector``).
  Full fine-tuning freezes the vision tower and the projector (``freeze_vision``).
* **DPO with images works** in TRL 1.16 (``DataCollatorForVisionPreference``; the reference model
  is the policy with its adapter disabled, or a frozen copy of the initial adapter when one is
  given). ``precompute_ref_log_probs`` is not supported for vision data and is not used.
* **CPU**: ``use_cpu=True`` and ``bf16=False``; models load in float32 on CPU.

Runs are resumable: ``out_dir/DONE`` (written last, atomically, by the main process only) marks a
finished run, which is then returned without training; otherwise the newest complete
``out_dir/checkpoint-*`` is resumed. Launch under ``accelerate launch`` (see
``recipes/accelerate/``) for several GPUs / DeepSpeed ZeRO-2: nothing here pins a device, and
only the main process writes files.
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

from r3v_eval.provenance import installed_versions, write_atomic
from r3v_train.train_data import LengthGroupedSampler, build_dataset, normalize_records, sequence_lengths
from r3v_train.train_settings import TrainSettings

# Module-name components of the vision encoder and the vision-to-language projector in HF VLMs.
VISION_MODULE_KEYS = ("visual", "vision_tower", "vision_model", "multi_modal_projector",
                      "mm_projector")

DONE_FILE = "DONE"
METRICS_FILE = "train_metrics.json"
CONFIG_FILE = "train_config.json"

@dataclass
class TrainResult:
    """What a finished run left in ``out_dir``."""

    out_dir: Path
    kind: str                 # "sft" | "dpo"
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


# ====================================================================== trainers
class _R3VTrainerMixin:
    """Length-grouped sampling and batch accounting on top of a TRL trainer."""

    def __init__(self, *args, r3v_lengths: list[int] | None = None, r3v_seed: int = 0,
                 r3v_loss_key: str = "labels", **kwargs) -> None:
        self._r3v_lengths = r3v_lengths
        self._r3v_seed = r3v_seed
        self._r3v_loss_key = r3v_loss_key
        # real tokens, padded positions (all cells), loss tokens, micro-batches
        self._r3v_counts = [0, 0, 0, 0]
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        if self._r3v_lengths is None:
            return super()._get_train_sampler(train_dataset)
        return LengthGroupedSampler(self._r3v_lengths, self.args.per_device_train_batch_size,
                                    seed=self._r3v_seed)

    def training_step(self, *args, **kwargs):
        inputs = args[1] if len(args) > 1 else kwargs.get("inputs")
        if inputs is not None and "attention_mask" in inputs:
            mask = inputs["attention_mask"]
            self._r3v_counts[0] += int(mask.sum())
            self._r3v_counts[1] += int(mask.numel())
            if self._r3v_loss_key == "labels" and "labels" in inputs:
                self._r3v_counts[2] += int((inputs["labels"] != -100).sum())
            elif self._r3v_loss_key in inputs:
                self._r3v_counts[2] += int(inputs[self._r3v_loss_key].sum())
            self._r3v_counts[3] += 1
        return super().training_step(*args, **kwargs)

    def r3v_counts(self) -> list[int]:
        """The batch counts summed over all processes."""
        import torch

        t = torch.tensor(self._r3v_counts, dtype=torch.long, device=self.accelerator.device)
        if self.accelerator.num_processes > 1:
            t = self.accelerator.reduce(t, reduction="sum")
        return [int(x) for x in t.tolist()]


def _trainer_classes():
    from trl import DPOTrainer, SFTTrainer

    from r3v_train.resume import FullCheckpointResume  # full-model resume that restores weights

    class R3VSFTTrainer(_R3VTrainerMixin, FullCheckpointResume, SFTTrainer):
        pass

    class R3VDPOTrainer(_R3VTrainerMixin, FullCheckpointResume, DPOTrainer):
        pass

    return R3VSFTTrainer, R3VDPOTrainer


# ====================================================================== helpers
def _latest_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint-N folder that was written completely (has trainer_state.json)."""
    if not out.is_dir():
        return None
    found = []
    for p in out.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if m and p.is_dir() and (p / "trainer_state.json").is_file():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def read_result(out_dir: str | Path) -> TrainResult | None:
    """The result of a finished run in ``out_dir`` (its ``DONE`` marker exists), else None."""
    out = Path(out_dir)
    done = out / DONE_FILE
    if not done.is_file():
        return None
    info = json.loads(done.read_text())
    metrics_path = out / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return TrainResult(out_dir=out, kind=info["kind"], method=info["method"], metrics=metrics,
                       reused=True)


def _fingerprint(kind: str, base: str, init_adapter: str | None, settings: TrainSettings,
                 rows: list[dict[str, Any]], text_fields: Sequence[str]) -> str:
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


def _is_vision_param(name: str) -> bool:
    parts = name.split(".")
    return any(key in parts for key in VISION_MODULE_KEYS)


def _load_model(base: str, settings: TrainSettings, init_adapter: str | None, *, cuda: bool,
                deepspeed: bool):
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
            if _is_vision_param(name):
                param.requires_grad_(False)
    return model


def _peft_config(settings: TrainSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha,
                      lora_dropout=settings.lora_dropout,
                      target_modules=settings.lora_target_modules,
                      bias="none", task_type="CAUSAL_LM")


def _trl_config(kind: str, settings: TrainSettings, out: Path, progress: bool):
    import torch
    from trl import DPOConfig, SFTConfig

    cuda = torch.cuda.is_available()
    config_cls = SFTConfig if kind == "sft" else DPOConfig
    names = {f.name for f in dataclasses.fields(config_cls) if f.init}
    extra = {k: v for k, v in settings.trl_args.items() if k in names}
    common: dict[str, Any] = {**extra,
        "output_dir": str(out),
        "per_device_train_batch_size": settings.per_device_train_batch_size,
        "lr_scheduler_type": settings.lr_scheduler_type,
        # a float in [0, 1) is a ratio of the total steps in transformers 5
        "warmup_steps": float(settings.warmup_ratio),
        "weight_decay": settings.weight_decay,
        "max_grad_norm": settings.max_grad_norm,
        "num_train_epochs": settings.num_train_epochs,
        "max_steps": settings.max_steps,
        "seed": settings.seed,
        "bf16": settings.use_bf16(),
        "fp16": False,
        "use_cpu": not cuda,
        "logging_steps": settings.logging_steps,
        "save_strategy": settings.save_strategy,
        "save_steps": settings.save_steps,
        "save_total_limit": settings.save_total_limit,
        "report_to": [] if settings.report_to == "none" else [settings.report_to],
        "dataloader_num_workers": settings.dataloader_num_workers,
        "disable_tqdm": not progress,
        "max_length": None,  # never truncate: over-budget examples are dropped up front
    }
    # transformers >= 5.2x renamed gradient_checkpointing (a deprecated alias now)
    ckpt_key = ("activation_checkpointing" if "activation_checkpointing" in names
                else "gradient_checkpointing")
    common[ckpt_key] = settings.gradient_checkpointing
    if kind == "sft":
        args = SFTConfig(learning_rate=settings.learning_rate, packing=False,
                         padding_free=False, completion_only_loss=True, **common)
    else:
        args = DPOConfig(learning_rate=settings.dpo_learning_rate, beta=settings.dpo_beta,
                         precompute_ref_log_probs=False, **common)
    args.gradient_accumulation_steps = settings.accumulation_steps(args.world_size)
    return args


def _peak_memory() -> dict[str, float | None]:
    import resource

    import torch

    gpu = None
    if torch.cuda.is_available():
        gpu = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {"peak_gpu_memory_gb": gpu, "peak_rss_gb": round(rss, 3)}


# ====================================================================== runs
_SFT_FIELDS = ("prompt", "completion")
_DPO_FIELDS = ("prompt", "chosen", "rejected")


def _prepare(kind: str, base_model_path, records, out_dir, settings: TrainSettings | None, *,
             init_adapter, processor_path, progress: bool, callbacks):
    """Everything up to a ready trainer; returns (trainer, context dict)."""
    import torch
    from accelerate import PartialState

    from r3v_eval.engines.hf import load_processor

    settings = settings or TrainSettings()
    fields = _SFT_FIELDS if kind == "sft" else _DPO_FIELDS
    out = Path(out_dir)
    base = str(base_model_path)
    rows = normalize_records(records, fields)

    args = _trl_config(kind, settings, out, progress)
    state = PartialState()
    fp = _fingerprint(kind, base, init_adapter, settings, rows, fields)
    checkpoint = _latest_checkpoint(out)
    if checkpoint is not None and (out / CONFIG_FILE).is_file():
        old = json.loads((out / CONFIG_FILE).read_text()).get("fingerprint")
        if old != fp:
            raise ValueError(
                f"{out} holds checkpoints of a different run (other examples, base model or "
                f"settings); use a fresh out_dir or delete {out}")
    state.wait_for_everyone()
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        config = {"kind": kind, "base_model_path": base, "init_adapter": init_adapter and
                  str(init_adapter), "processor_path": str(processor_path or base),
                  "num_examples": len(rows), "fingerprint": fp,
                  "settings": dataclasses.asdict(settings), "versions": installed_versions(),
                  "world_size": args.world_size}
        write_atomic(out / CONFIG_FILE, json.dumps(config, indent=2, default=str) + "\n")

    processor = load_processor(str(processor_path or base), settings.max_pixels,
                               settings.min_pixels)
    lengths = sequence_lengths(processor, rows, fields)
    keep = [i for i, n in enumerate(lengths)
            if settings.max_length is None or n <= settings.max_length]
    if not keep:
        raise ValueError(f"max_length: all {len(rows)} examples are longer than "
                         f"{settings.max_length} tokens (shortest: {min(lengths)})")
    dataset = build_dataset([rows[i] for i in keep], fields)
    lengths = [lengths[i] for i in keep]

    model = _load_model(base, settings, init_adapter, cuda=torch.cuda.is_available(),
                        deepspeed=args.deepspeed_plugin is not None)
    peft_config = None
    if settings.method == "lora" and init_adapter is None:
        peft_config = _peft_config(settings)
    sft_cls, dpo_cls = _trainer_classes()
    cls = sft_cls if kind == "sft" else dpo_cls

    callbacks = list(callbacks or [])
    if settings.average_weights_from is not None:
        from r3v_train.averaging import TailWeightAveraging

        # first, so that its state is beside a checkpoint before any other callback runs
        callbacks.insert(0, TailWeightAveraging(float(settings.average_weights_from)))
    trainer = cls(model=model, args=args, train_dataset=dataset, processing_class=processor,
                  peft_config=peft_config, callbacks=callbacks,
                  r3v_lengths=lengths if settings.group_by_length else None,
                  r3v_seed=settings.seed,
                  r3v_loss_key="labels" if kind == "sft" else "completion_mask")
    vision_trainable = [n for n, p in trainer.model.named_parameters()
                        if p.requires_grad and _is_vision_param(n)]
    # freeze_vision=False is an explicit request (pre-training a tiny model from scratch)
    if vision_trainable and (settings.method == "lora" or settings.freeze_vision):
        raise ValueError(
            f"lora_target_modules / freeze_vision leave vision parameters trainable "
            f"(e.g. {vision_trainable[0]}); R3V trains the language model only")
    ctx = {"kind": kind, "settings": settings, "out": out, "state": state, "rows": len(rows),
           "kept": len(keep), "lengths": lengths, "checkpoint": checkpoint, "fields": fields}
    return trainer, ctx


def _finish(trainer, ctx, output, runtime: float) -> TrainResult:
    from accelerate import PartialState

    out: Path = ctx["out"]
    settings: TrainSettings = ctx["settings"]
    state = PartialState()
    trainer.save_model(str(out))  # adapter (LoRA) or full model, plus the processor
    real, positions, loss_tokens, batches = trainer.r3v_counts()
    model = trainer.model
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    last_log = next((e for e in reversed(trainer.state.log_history) if "loss" in e), {})
    metrics: dict[str, Any] = {
        "kind": ctx["kind"],
        "method": settings.method,
        "train_loss": output.training_loss,
        "last_logged_loss": last_log.get("loss"),
        "global_step": trainer.state.global_step,
        "epoch": trainer.state.epoch,
        "num_examples": ctx["rows"],
        "num_trained_examples": ctx["kept"],
        "num_dropped_too_long": ctx["rows"] - ctx["kept"],
        "max_example_tokens": max(ctx["lengths"]),
        "mean_example_tokens": sum(ctx["lengths"]) / len(ctx["lengths"]),
        "tokens_seen": real,
        "loss_tokens": loss_tokens,
        "padded_positions": positions,
        "padding_share": (positions - real) / positions if positions else 0.0,
        "micro_batches": batches,
        "train_runtime_s": runtime,
        "tokens_per_s": real / runtime if runtime > 0 else None,
        "samples_per_s": output.metrics.get("train_samples_per_second"),
        "world_size": trainer.args.world_size,
        "per_device_train_batch_size": trainer.args.per_device_train_batch_size,
        "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps,
        "global_batch_size": (trainer.args.per_device_train_batch_size
                              * trainer.args.gradient_accumulation_steps
                              * trainer.args.world_size),
        "bf16": bool(trainer.args.bf16),
        "trainable_params": n_train,
        "total_params": n_params,
        "resumed_from": str(ctx["checkpoint"]) if ctx["checkpoint"] else None,
        **_peak_memory(),
        "log_history": trainer.state.log_history,
    }
    if state.is_main_process:
        ref = out / "ref"  # DPO from an initial adapter: TRL's frozen reference copy
        if ctx["kind"] == "dpo" and (ref / "adapter_config.json").is_file():
            shutil.rmtree(ref)
        if not settings.keep_checkpoints:
            for p in out.glob("checkpoint-*"):
                shutil.rmtree(p, ignore_errors=True)
        write_atomic(out / METRICS_FILE, json.dumps(metrics, indent=2, default=str) + "\n")
        write_atomic(out / DONE_FILE, json.dumps({"kind": ctx["kind"],
                                                   "method": settings.method}) + "\n")
    state.wait_for_everyone()
    return TrainResult(out_dir=out, kind=ctx["kind"], method=settings.method, metrics=metrics)


def _run(kind: str, base_model_path, records, out_dir, settings, *, init_adapter,
         processor_path, progress, callbacks) -> TrainResult:
    import torch

    done = read_result(out_dir)
    if done is not None:
        if done.kind != kind:
            raise ValueError(f"{out_dir} holds a finished {done.kind} run, not {kind}; "
                             "use another out_dir")
        return done
    trainer, ctx = _prepare(kind, base_model_path, records, out_dir, settings,
                            init_adapter=init_adapter, processor_path=processor_path,
                            progress=progress, callbacks=callbacks)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    checkpoint = ctx["checkpoint"]
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return _finish(trainer, ctx, output, time.perf_counter() - start)


def train_sft(base_model_path, examples, out_dir, settings: TrainSettings | None = None, *,
              init_adapter=None, processor_path=None, progress: bool = True,
              callbacks=None) -> TrainResult:
    """Supervised fine-tuning on ``examples`` (records with ``prompt``, ``completion``, ``image``).

    Loss on the completion tokens only (end-of-turn included). ``settings.method`` picks a new
    LoRA adapter on the language model or full fine-tuning (vision frozen). ``init_adapter``
    continues training an existing LoRA adapter (``method="lora"``) or is merged into the base
    first (``method="full"``). ``processor_path`` defaults to ``base_model_path``. Writes to
    ``out_dir`` the adapter (LoRA) or the model, the processor, ``train_config.json``,
    ``train_metrics.json`` and, last, ``DONE``. A finished ``out_dir`` is returned as is
    (``reused=True``); an interrupted one resumes from its newest checkpoint.
    """
    return _run("sft", base_model_path, examples, out_dir, settings, init_adapter=init_adapter,
                processor_path=processor_path, progress=progress, callbacks=callbacks)


def train_dpo(base_model_path, pairs, out_dir, settings: TrainSettings | None = None, *,
              init_adapter=None, processor_path=None, progress: bool = True,
              callbacks=None) -> TrainResult:
    """DPO (TRL ``DPOTrainer``, sigmoid loss, ``settings.dpo_beta``, ``dpo_learning_rate``) on
    records with ``prompt``, ``chosen``, ``rejected``, ``image``.

    The reference model is the starting policy: the base model with adapters disabled, or, with
    ``init_adapter`` (e.g. the STaR SFT adapter, continued here), a frozen copy of that adapter.
    Same outputs, markers and resumption as :func:`train_sft`.
    """
    return _run("dpo", base_model_path, pairs, out_dir, settings, init_adapter=init_adapter,
                processor_path=processor_path, progress=progress, callbacks=callbacks)


__all__ = ["TrainResult", "read_result", "train_dpo", "train_sft"]
