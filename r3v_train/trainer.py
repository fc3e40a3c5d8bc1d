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
import json
from pathlib import Path
from typing import Any

from r3v_train import stage
from r3v_train.resume import FullCheckpointResume  # full-model resume that restores weights
from r3v_train.stage import TrainResult, read_result  # noqa: F401  (the results of train_sft / train_dpo)
from r3v_train.train_data import LengthGroupedSampler, build_dataset, normalize_records, sequence_lengths
from r3v_train.train_settings import TrainSettings


# ====================================================================== trainers
#: a checkpoint's record of the stage's figures so far (read when the stage resumes)
COUNTS_FILE = "r3v_counts.json"


class _R3VTrainerMixin:
    """Length-grouped sampling and batch accounting on top of a TRL trainer."""

    def __init__(self, *args, r3v_lengths: list[int] | None = None, r3v_seed: int = 0,
                 r3v_loss_key: str = "labels", **kwargs) -> None:
        self._r3v_lengths = r3v_lengths
        self._r3v_seed = r3v_seed
        self._r3v_loss_key = r3v_loss_key
        # real tokens, padded positions (all cells), loss tokens, micro-batches
        self._r3v_counts = [0, 0, 0, 0]
        self._r3v_loss = 0.0  # the sum of training_step's losses (a tensor once training)
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
        loss = super().training_step(*args, **kwargs)
        self._r3v_loss = self._r3v_loss + loss.detach()  # summed as TRL sums its train_loss
        return loss

    def r3v_loss_sum(self) -> float:
        """The summed step losses, averaged over processes (as transformers' train_loss)."""
        import torch

        t = torch.as_tensor(self._r3v_loss, dtype=torch.float64, device=self.accelerator.device)
        if self.accelerator.num_processes > 1:
            t = self.accelerator.reduce(t, reduction="mean")
        return float(t)

    def _save_checkpoint(self, model, trial):
        """The checkpoint, plus the figures so far (counts, summed loss): a resumed stage then
        reports the whole stage, not the steps after the restart."""
        super()._save_checkpoint(model, trial)
        counts, loss = self.r3v_counts(), self.r3v_loss_sum()
        if self.accelerator.is_main_process:
            folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            (folder / COUNTS_FILE).write_text(json.dumps({"counts": counts, "loss_sum": loss}))

    def r3v_restore(self, checkpoint: Path | None) -> None:
        """Start from the figures saved with ``checkpoint`` (main process: the summed figures;
        the others: zero), when there are any."""
        saved = checkpoint / COUNTS_FILE if checkpoint is not None else None
        if saved is None or not saved.is_file() or not self.accelerator.is_main_process:
            return
        info = json.loads(saved.read_text())
        self._r3v_counts = [int(x) for x in info["counts"]]
        self._r3v_loss = float(info["loss_sum"]) * self.accelerator.num_processes

    def r3v_counts(self) -> list[int]:
        """The batch counts summed over all processes."""
        import torch

        t = torch.tensor(self._r3v_counts, dtype=torch.long, device=self.accelerator.device)
        if self.accelerator.num_processes > 1:
            t = self.accelerator.reduce(t, reduction="sum")
        return [int(x) for x in t.tolist()]


def _trainer_classes():
    from trl import DPOTrainer, SFTTrainer

    class R3VSFTTrainer(_R3VTrainerMixin, FullCheckpointResume, SFTTrainer):
        pass

    class R3VDPOTrainer(_R3VTrainerMixin, FullCheckpointResume, DPOTrainer):
        pass

    return R3VSFTTrainer, R3VDPOTrainer


# ====================================================================== TRL's config
#: what r3v sets in SFTConfig / DPOConfig beyond :func:`r3v_train.stage.trl_kwargs`, from the
#: ``train`` section (:func:`supervised_kwargs`) or by design (:func:`_trl_config`)
_DESIGN_KEYS = {"sft": ("learning_rate", "packing", "padding_free", "completion_only_loss"),
                "dpo": ("learning_rate", "beta", "precompute_ref_log_probs")}


def supervised_kwargs(settings: TrainSettings) -> dict[str, Any]:
    """The ``train`` keys SFT and DPO pass to TRL (GRPO takes these from its own section)."""
    return {
        "per_device_train_batch_size": settings.per_device_train_batch_size,
        "lr_scheduler_type": settings.lr_scheduler_type,
        # a float in [0, 1) is a ratio of the total steps in transformers 5
        "warmup_steps": float(settings.warmup_ratio),
        "num_train_epochs": settings.num_train_epochs,
        "max_steps": settings.max_steps,
        "max_length": None,  # never truncate: over-budget examples are dropped up front
    }


def set_by_r3v() -> set[str]:
    """The SFTConfig / DPOConfig arguments r3v sets itself: refused in ``trl_args``."""
    return (stage.shared_trl_keys() | set(supervised_kwargs(TrainSettings()))
            | {"warmup_ratio", "gradient_accumulation_steps"}
            | {k for keys in _DESIGN_KEYS.values() for k in keys})


def check_trl_args(trl_args: dict[str, Any]) -> None:
    """Every ``trl_args`` key must be an SFTConfig or DPOConfig argument r3v does not set."""
    from trl import DPOConfig, SFTConfig

    known = {f.name for cls in (SFTConfig, DPOConfig) for f in dataclasses.fields(cls) if f.init}
    own = set_by_r3v()
    for key in trl_args:
        if key in own:
            raise ValueError(f"trl_args.{key}: set by r3v from the train section (or fixed by "
                             "design); use the train key of that name instead")
        if key not in known:
            raise ValueError(f"trl_args.{key}: not an SFTConfig / DPOConfig argument of the "
                             "installed TRL")


def _trl_config(kind: str, settings: TrainSettings, out: Path, progress: bool):
    from trl import DPOConfig, SFTConfig

    config_cls = SFTConfig if kind == "sft" else DPOConfig
    names = {f.name for f in dataclasses.fields(config_cls) if f.init}
    check_trl_args(settings.trl_args)
    extra = {k: v for k, v in settings.trl_args.items() if k in names}
    common = {**extra, **stage.trl_kwargs(settings, out, progress, names),
              **supervised_kwargs(settings)}
    if kind == "sft":
        args = SFTConfig(learning_rate=settings.learning_rate, packing=False,
                         padding_free=False, completion_only_loss=True, **common)
    else:
        args = DPOConfig(learning_rate=settings.dpo_learning_rate, beta=settings.dpo_beta,
                         precompute_ref_log_probs=False, **common)
    args.gradient_accumulation_steps = settings.accumulation_steps(args.world_size)
    return args


# ====================================================================== runs
_SFT_FIELDS = ("prompt", "completion")
_DPO_FIELDS = ("prompt", "chosen", "rejected")


def _prepare(kind: str, base_model_path, records, out_dir, settings: TrainSettings | None, *,
             init_adapter, processor_path, progress: bool, callbacks):
    """Everything up to a ready trainer; returns (trainer, context dict)."""
    import torch

    from r3v_eval.engines.hf import load_processor  # heavy (transformers): only when training

    settings = settings or TrainSettings()
    fields = _SFT_FIELDS if kind == "sft" else _DPO_FIELDS
    out = Path(out_dir)
    base = str(base_model_path)
    rows = normalize_records(records, fields)

    args = _trl_config(kind, settings, out, progress)
    fp = stage.fingerprint(kind, base, init_adapter, settings, rows, fields)
    checkpoint = stage.open_stage(out, fp, {
        "kind": kind, "base_model_path": base, "init_adapter": init_adapter and str(init_adapter),
        "processor_path": str(processor_path or base), "num_examples": len(rows),
        "settings": stage.settings_record(settings), "world_size": args.world_size}, "examples")

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

    model = stage.load_model(base, settings, init_adapter, cuda=torch.cuda.is_available(),
                             deepspeed=args.deepspeed_plugin is not None)
    sft_cls, dpo_cls = _trainer_classes()
    cls = sft_cls if kind == "sft" else dpo_cls

    callbacks = list(callbacks or [])
    if settings.average_weights_from is not None:
        from r3v_train.averaging import TailWeightAveraging  # needs transformers: only when asked

        # first, so that its state is beside a checkpoint before any other callback runs
        callbacks.insert(0, TailWeightAveraging(float(settings.average_weights_from)))
    trainer = cls(model=model, args=args, train_dataset=dataset, processing_class=processor,
                  peft_config=stage.peft_config(settings, init_adapter), callbacks=callbacks,
                  r3v_lengths=lengths if settings.group_by_length else None,
                  r3v_seed=settings.seed,
                  r3v_loss_key="labels" if kind == "sft" else "completion_mask")
    stage.check_vision_frozen(trainer.model, settings)
    trainer.r3v_restore(checkpoint)
    ctx = {"kind": kind, "settings": settings, "out": out, "rows": len(rows),
           "kept": len(keep), "lengths": lengths, "checkpoint": checkpoint, "fields": fields}
    return trainer, ctx


def _finish(trainer, ctx, output, runtime: float) -> TrainResult:
    settings: TrainSettings = ctx["settings"]
    real, positions, loss_tokens, batches = trainer.r3v_counts()
    loss_sum = trainer.r3v_loss_sum()
    last_log = next((e for e in reversed(trainer.state.log_history) if "loss" in e), {})
    metrics: dict[str, Any] = {
        "kind": ctx["kind"],
        "method": settings.method,
        **stage.run_metrics(trainer, output, runtime, ctx["checkpoint"]),
        # over the whole stage, restarts included (transformers' counts the last start only)
        "train_loss": loss_sum / max(trainer.state.global_step, 1),
        "last_logged_loss": last_log.get("loss"),
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
        "tokens_per_s": real / runtime if runtime > 0 else None,
        "samples_per_s": output.metrics.get("train_samples_per_second"),
        "per_device_train_batch_size": trainer.args.per_device_train_batch_size,
        "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps,
        "global_batch_size": (trainer.args.per_device_train_batch_size
                              * trainer.args.gradient_accumulation_steps
                              * trainer.args.world_size),
        "log_history": trainer.state.log_history,
    }
    return stage.finish(trainer, ctx["out"], ctx["kind"], settings, metrics)


def _run(kind: str, base_model_path, records, out_dir, settings, *, init_adapter,
         processor_path, progress, callbacks) -> TrainResult:
    done = stage.reuse_finished(out_dir, kind)
    if done is not None:
        return done
    trainer, ctx = _prepare(kind, base_model_path, records, out_dir, settings,
                            init_adapter=init_adapter, processor_path=processor_path,
                            progress=progress, callbacks=callbacks)
    output, runtime = stage.train(trainer, ctx["checkpoint"])
    return _finish(trainer, ctx, output, runtime)


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
