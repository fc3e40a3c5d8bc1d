"""Resuming full fine-tuning from a TRL / transformers checkpoint, weights included.

transformers 5.24's ``Trainer._load_from_checkpoint`` reloads a full-model checkpoint with a
plain ``model.load_state_dict(state_dict, strict=False)``. A VLM saves its weights under the
checkpoint layout (``model.layers.0...`` for Qwen2-VL), while the live model names them
``model.language_model.layers.0...``; from_pretrained maps one to the other, load_state_dict does
not. So *no* weight is restored, only a logged warning says so, and the resumed run silently
continues from the initial weights with the checkpoint's optimizer state (measured:
tests/test_grpo.py and tests/test_trainer.py resume a full run and compare it with an
uninterrupted one). LoRA checkpoints are not affected (adapters are loaded by peft).

:class:`FullCheckpointResume` loads such checkpoints through ``from_pretrained`` of the model's
own class (which applies the key mapping) and copies every tensor with a strict check.
"""

from __future__ import annotations

from pathlib import Path

_FULL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


class FullCheckpointResume:
    """Mixin for a transformers ``Trainer`` subclass (put it before the trainer class)."""

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        from accelerate.utils import is_peft_model

        model = self.model if model is None else model
        ckpt = Path(resume_from_checkpoint)
        if (is_peft_model(model) or self.is_deepspeed_enabled or self.is_fsdp_enabled
                or not any((ckpt / name).is_file() for name in _FULL_WEIGHTS)):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        dtype = next(model.parameters()).dtype
        saved = type(model).from_pretrained(str(ckpt), dtype=dtype)
        model.load_state_dict(saved.state_dict(), strict=True)  # every key, or a clear error
        del saved
        return None
