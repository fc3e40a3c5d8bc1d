"""Tail weight averaging (train.average_weights_from): the callback's arithmetic, its resume
and its wiring into the trainer."""

import pytest
import torch
from transformers import TrainerControl, TrainerState, TrainingArguments

from r3v_train.averaging import STATE_FILE, TailWeightAveraging
from r3v_train.train_settings import TrainSettings


class Two(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.trained = torch.nn.Parameter(torch.zeros(3))
        self.frozen = torch.nn.Parameter(torch.full((2,), 7.0), requires_grad=False)


def _steps(cb, model, args, state, values, first=1):
    """Set the trained weights to each value in turn, as optimizer steps first, first + 1, ..."""
    for step, v in enumerate(values, first):
        with torch.no_grad():
            model.trained.fill_(v)
        state.global_step = step
        cb.on_step_end(args, state, TrainerControl(), model=model)


def _run(cb, model, args, state, values, first=1):
    cb.on_train_begin(args, state, TrainerControl(), model=model)
    _steps(cb, model, args, state, values, first)
    cb.on_train_end(args, state, TrainerControl(), model=model)


def test_the_saved_weights_are_the_mean_of_the_tail_steps(tmp_path):
    model, args = Two(), TrainingArguments(output_dir=str(tmp_path), report_to=[])
    _run(TailWeightAveraging(0.5), model, args, TrainerState(max_steps=4), [1.0, 2.0, 3.0, 5.0])
    assert model.trained.tolist() == [4.0, 4.0, 4.0]          # steps 3 and 4 of 4
    assert model.frozen.tolist() == [7.0, 7.0]                # never touched
    model = Two()
    _run(TailWeightAveraging(0.0), model, args, TrainerState(max_steps=4), [1.0, 2.0, 3.0, 6.0])
    assert model.trained.tolist() == [3.0, 3.0, 3.0]          # every step


def test_a_resumed_run_continues_the_average(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    first, cb, state = Two(), TailWeightAveraging(0.0), TrainerState(max_steps=6)
    cb.on_train_begin(args, state, TrainerControl(), model=first)
    _steps(cb, first, args, state, [1.0, 2.0, 6.0])
    (tmp_path / "checkpoint-3").mkdir()
    cb.on_save(args, state, TrainerControl())
    assert (tmp_path / "checkpoint-3" / STATE_FILE).is_file()
    # a new process resumes at step 3 and runs steps 4-6
    again = Two()
    _run(TailWeightAveraging(0.0), again, args, TrainerState(max_steps=6, global_step=3),
         [3.0, 3.0, 3.0], first=4)
    assert again.trained.tolist() == [3.0, 3.0, 3.0]          # (1 + 2 + 6 + 3 + 3 + 3) / 6


def test_average_weights_from_is_checked():
    with pytest.raises(ValueError, match="average_weights_from: must be a number in"):
        TrainSettings(average_weights_from=1.0)
    with pytest.raises(ValueError, match="average_weights_from: must be a number in"):
        TrainSettings(average_weights_from=True)
    with pytest.raises(ValueError, match="must be in \\[0, 1\\)"):
        TailWeightAveraging(-0.1)
