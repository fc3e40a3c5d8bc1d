"""Perception pre-training of a tiny random-weight base VLM.

Pre-training is not part of R3V: the paper starts from Qwen-VL, which comes able to see. A tiny
model built offline (:mod:`r3v_train.tiny`) starts blind, so before a self-training run on it
means anything it is taught what a real base model already knows: one-step questions about
fresh pictures, answered in a sentence in the rationales' own phrasing. It never sees a
multi-step question here. A recipe reaches this through ``model.perception_examples``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from r3v_eval.benchmarks import Benchmark
from r3v_train.config import ConfigError
from r3v_train.train_settings import TrainSettings
from r3v_train.trainer import train_sft


def pretrain_perception(init_model: str | Path, out_dir: str | Path, bench: Benchmark,
                        n_examples: int, settings: TrainSettings, *, seed: int,
                        learning_rate: float, epochs: float, progress: bool = True) -> Path:
    """Full fine-tuning of ``init_model`` (vision tower included) on ``n_examples`` perception
    examples of ``bench``; returns the trained model folder (resumable: a finished one is
    reused). ``settings`` gives the batch size, schedule and precision."""
    make = getattr(bench, "perception_examples", None)
    if make is None:
        raise ConfigError(f"model.perception_examples: benchmark {bench.name!r} has no perception "
                          "questions to pre-train on (the synthetic shapes benchmark has)")
    rows = make(n_examples, seed)
    settings = dataclasses.replace(settings, method="full", freeze_vision=False,
                                   learning_rate=learning_rate, num_train_epochs=epochs,
                                   max_steps=-1)
    train_sft(str(init_model), rows, out_dir, settings, progress=progress)
    return Path(out_dir)
