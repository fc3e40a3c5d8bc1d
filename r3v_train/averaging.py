"""Tail weight averaging (``train.average_weights_from``): a transformers ``TrainerCallback``.

With a constant learning rate the last optimizer steps move the weights around the minimum
they reached, and a model's greedy accuracy depends on which batches came last: on the demo's
tiny model, one set of training examples gave STaR 41.9, 45.8 and 51.1% with three training
seeds. Averaging the weights of every step from a point of the run on (Polyak averaging of
the tail, or SWA at a constant rate) keeps what the run learned and drops that wander.

The average covers the trainable parameters only (the language model in full fine-tuning,
the adapter under LoRA: its A and B matrices are averaged apart). It is saved beside each
checkpoint, so a resumed run continues it; at the end of training the model's parameters
are replaced by it, before the trainer saves the model. Not for DeepSpeed ZeRO-3, whose
parameters are sharded (refused)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

#: the running average, beside a checkpoint's own files
STATE_FILE = "r3v_weight_average.pt"


class TailWeightAveraging(TrainerCallback):
    """Uniform average of the trainable weights after each optimizer step from
    ``start_fraction`` of the run's steps on (0: every step; 0.5: the second half)."""

    def __init__(self, start_fraction: float) -> None:
        if not 0.0 <= start_fraction < 1.0:
            raise ValueError(f"average_weights_from must be in [0, 1), got {start_fraction}")
        self.start_fraction = start_fraction
        self.first_step = 1
        self.average: dict[str, object] = {}
        self.count = 0

    @staticmethod
    def _trainable(model):
        return [(n, p) for n, p in model.named_parameters() if p.requires_grad]

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        import torch

        plugin = getattr(args, "deepspeed_plugin", None)
        if plugin is not None and getattr(plugin, "zero_stage", 0) == 3:
            raise ValueError("train.average_weights_from: not supported under DeepSpeed ZeRO-3 "
                             "(sharded parameters)")
        self.first_step = max(1, math.ceil(state.max_steps * self.start_fraction) + 1)
        self.average, self.count = {}, 0
        resumed = Path(args.output_dir) / f"checkpoint-{state.global_step}" / STATE_FILE
        if state.global_step > 0 and resumed.is_file():
            saved = torch.load(resumed, map_location="cpu")
            self.count = int(saved["count"])
            self.average = {n: saved["average"][n].to(p.device)
                            for n, p in self._trainable(model)}
        elif state.global_step >= self.first_step:
            logger.warning("weight averaging: checkpoint-%d has no %s (the run stopped before it "
                           "was written); the average restarts at step %d and covers steps %d-%d "
                           "only", state.global_step, STATE_FILE, state.global_step + 1,
                           state.global_step + 1, state.max_steps)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        import torch

        if state.global_step < self.first_step:
            return
        self.count += 1
        with torch.no_grad():
            for name, p in self._trainable(model):
                value = p.detach().float()
                if name not in self.average:
                    self.average[name] = value.clone()
                else:
                    self.average[name].add_(value - self.average[name], alpha=1.0 / self.count)

    def on_save(self, args, state, control, **kwargs):
        import torch

        if not self.average or not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            torch.save({"count": self.count,
                        "average": {n: t.cpu() for n, t in self.average.items()}},
                       folder / STATE_FILE)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        import torch

        if not self.count:
            return
        with torch.no_grad():
            for name, p in self._trainable(model):
                p.copy_(self.average[name].to(p.dtype))
