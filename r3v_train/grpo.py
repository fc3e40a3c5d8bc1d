"""GRPO: on-policy reinforcement learning with the benchmark's own answer check as the reward
(TRL ``GRPOTrainer``), the RL baseline beside STaR and R3V (``run.method: grpo``).

For every training question the policy samples a group of ``num_generations`` chain-of-thought
replies to the same CoT prompt the other methods use; each reply earns 1.0 when the
benchmark's ``score()`` says its answer is right and 0.0 otherwise (an unparseable answer is
wrong, as everywhere in r3v); advantages are the rewards relative to the group. An optional
format reward (``format_reward: true``) adds 1.0 for a reply whose answer the benchmark can
read after an explicit marker (``Answer:``, ``The answer is``, ``\\boxed{}``).

The ``grpo`` section of a recipe is :class:`GRPOSettings`: TRL's own ``GRPOConfig`` names,
passed through as they are. Everything GRPO shares with supervised training comes from the
``train`` section (:class:`~r3v_train.train_settings.TrainSettings`): LoRA or full fine-tuning and the
LoRA targets (language model only, vision frozen), precision, gradient checkpointing, seed,
gradient clipping, weight decay, logging and checkpointing.

Facts of TRL 1.16 this module is built on (checked by tests/test_grpo.py):

* Rows are ``prompt=[{"role": "user", "content": text}]`` with an ``images`` column; TRL puts the
  image before the text, as r3v's samplers do. Other columns (``problem_id``) reach the reward
  function as keyword lists, already repeated ``num_generations`` times.
* ``per_device_train_batch_size`` counts **completions**, not prompts; one optimizer step
  trains ``per_device x processes x gradient_accumulation_steps / num_generations`` prompts.
* TRL's defaults that would silently hurt here are set deliberately: ``bf16`` follows
  ``train.bf16`` (TRL turns it on even on CPU), ``gradient_checkpointing`` follows
  ``train.gradient_checkpointing``, and the final model is saved explicitly (TRL writes only
  ``checkpoint-*``).
* Continuing a LoRA adapter (the warm-up's) with ``beta > 0``: TRL keeps a frozen copy of it as
  the reference ("ref" adapter), so the KL is to the warm-up policy, not the bare base model.

Resumable as every stage (:mod:`r3v_train.stage`): ``DONE`` marks a finished run; otherwise the
newest complete ``checkpoint-*`` is resumed (full fine-tuning through
:class:`r3v_train.resume.FullCheckpointResume`: transformers alone restores no weight), and the
generated-sample counts saved with it (``rank<r>_r3v_generated.json``) continue from there.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from r3v_eval import answers, prompts, run_files
from r3v_eval.benchmarks import Benchmark, Problem
from r3v_train import stage
from r3v_train.compute import count_tokens
from r3v_train.resume import FullCheckpointResume
from r3v_train.stage import TrainResult
from r3v_train.train_data import build_dataset, normalize_records
from r3v_train.train_settings import SCHEDULERS, TrainSettings

#: TRL 1.16 ``GRPOConfig.loss_type`` / ``scale_rewards`` values
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")
GENERATED_FILE = "r3v_generated.json"


def _f(default: Any, help: str, trl: bool = True) -> Any:
    """A field with its help text; ``trl``: passed to ``GRPOConfig`` under its own name."""
    return field(default=default, metadata={"help": help, "trl": trl})


@dataclass
class GRPOSettings:
    """The ``grpo`` section of a recipe: read only when ``run.method: grpo``.

    Defaults are TRL 1.16's ``GRPOConfig`` defaults unless the help says otherwise; where a
    published VLM GRPO recipe differs, the help names it. The backbone recipes override
    ``learning_rate`` for LoRA (TRL's own VLM example trains LoRA at 1e-5).
    """

    # > the group and the reward
    num_generations: int = _f(8, "group size G: replies sampled per question (TRL default; R1-V "
                              "and VLM-R1 use 8 too)")
    format_reward: bool = _f(False, "add a second reward, 1.0 when the benchmark reads the answer "
                             "after an explicit marker (Answer: / The answer is / \\boxed{}); "
                             "weighted equally with the answer reward, as TRL's VLM example "
                             "sums its format and accuracy rewards", trl=False)
    beta: float = _f(0.0, "KL coefficient to the reference policy; 0 = no reference model (TRL "
                     "default, after DAPO / Dr. GRPO; R1-V and VLM-R1 used 0.04, EasyR1 0.01)")
    loss_type: str = _f("dapo", "TRL loss aggregation: " + " | ".join(LOSS_TYPES) + " (TRL default dapo)")
    scale_rewards: str = _f("group", "advantage scaling: group | batch | none (TRL default group; "
                            "Dr. GRPO recommends none)")
    mask_truncated_completions: bool = _f(False, "leave replies cut by max_completion_length out "
                                          "of the loss (TRL default false; DAPO recommends true)")
    # > generation
    max_completion_length: int | None = _f(
        None, "new tokens per sampled reply; null = sampling.max_new_tokens, the budget the other "
        "methods sample with (TRL's default is 512)")
    temperature: float = _f(1.0, "sampling temperature (TRL default; R1-V and EasyR1 use 1.0)")
    top_p: float = _f(1.0, "nucleus sampling (TRL default: off)")
    top_k: int = _f(0, "top-k sampling, 0 = off (TRL default)")
    use_vllm: bool = _f(False, "generate the groups with vLLM instead of transformers generate "
                        "(TRL default false; needs vLLM installed, a GPU: vLLM's CPU build cannot "
                        "take TRL's weight updates, see docs/engines.md)")
    vllm_mode: str = _f("colocate", "colocate (vLLM in the training process, TRL's default) | "
                        "server (a separate `trl vllm-serve`)")
    # > optimization
    learning_rate: float = _f(1e-6, "peak AdamW learning rate (TRL default; R1-V, EasyR1 and "
                              "ms-swift's multimodal GRPO use 1e-6 for full fine-tuning)")
    lr_scheduler_type: str = _f("linear", "linear (decay to 0 at the last step; the "
                                "transformers / TRL default) | constant | constant_with_warmup | cosine")
    per_device_train_batch_size: int = _f(8, "COMPLETIONS per device per forward pass (TRL counts "
                                          "completions, not prompts; transformers default 8)")
    gradient_accumulation_steps: int = _f(1, "micro-batches per optimizer step; one generation "
                                          "feeds them all (TRL's steps_per_generation)")
    num_train_epochs: float = _f(1.0, "passes over the training questions (ms-swift's multimodal "
                                 "GRPO example: 1; R1-V: 2; transformers default 3)")
    max_steps: int = _f(-1, "stop after this many optimizer steps; -1 = train by epochs")

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"{key}: {why}")

        if self.num_generations < 2:
            raise bad("num_generations", f"GRPO needs a group of >= 2 replies, got {self.num_generations}")
        for key in ("per_device_train_batch_size", "gradient_accumulation_steps"):
            if getattr(self, key) < 1:
                raise bad(key, f"must be >= 1, got {getattr(self, key)}")
        per_step = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if per_step % self.num_generations:
            raise bad("per_device_train_batch_size",
                      f"per_device_train_batch_size x gradient_accumulation_steps = {per_step} "
                      f"completions per step must be a multiple of num_generations = "
                      f"{self.num_generations} (whole groups)")
        if not self.learning_rate > 0:
            raise bad("learning_rate", f"must be > 0, got {self.learning_rate}")
        if self.beta < 0:
            raise bad("beta", f"must be >= 0, got {self.beta}")
        for key, allowed in (("loss_type", LOSS_TYPES), ("scale_rewards", SCALE_REWARDS),
                             ("lr_scheduler_type", SCHEDULERS)):
            if getattr(self, key) not in allowed:
                raise bad(key, f"{getattr(self, key)!r} is not one of {', '.join(allowed)}")
        if self.max_completion_length is not None and self.max_completion_length < 1:
            raise bad("max_completion_length", f"must be >= 1 or null, got {self.max_completion_length}")
        if not self.temperature > 0:
            raise bad("temperature", f"must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise bad("top_p", f"must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise bad("top_k", f"must be >= 0, got {self.top_k}")
        if self.vllm_mode not in ("colocate", "server"):
            raise bad("vllm_mode", f"{self.vllm_mode!r} is not one of colocate, server")
        if self.max_steps == 0 or self.max_steps < -1:
            raise bad("max_steps", f"must be -1 (train by epochs) or >= 1, got {self.max_steps}")
        if self.max_steps == -1 and not self.num_train_epochs > 0:
            raise bad("num_train_epochs", f"must be > 0, got {self.num_train_epochs}")

    def trl_kwargs(self) -> dict[str, Any]:
        """The fields TRL's ``GRPOConfig`` takes under the same names."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.metadata.get("trl", True)}


# ====================================================================== rewards
def completion_text(completion: Any) -> str:
    """The reply text of one TRL completion (conversational ``[{"role", "content"}]`` or a str)."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"]
    if isinstance(content, list):  # content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content


class GeneratedCount:
    """Replies generated so far and their tokens (counted where the rewards see them):
    ``tokens`` by the rule every method shares (:func:`r3v_train.compute.count_tokens` on the
    reply text), ``decoded`` as TRL decoded them (end of turn included)."""

    FIELDS = ("generated_samples", "generated_tokens", "decoded_tokens")

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.samples = self.tokens = self.decoded = 0

    def add(self, texts: Sequence[str], completion_ids: Sequence[Sequence[int]] | None) -> None:
        self.samples += len(texts)
        self.tokens += count_tokens(self.tokenizer, texts)
        self.decoded += sum(len(ids) for ids in completion_ids or ())

    def to_dict(self) -> dict[str, int]:
        return dict(zip(self.FIELDS, (self.samples, self.tokens, self.decoded)))

    def load(self, path: Path) -> None:
        saved = json.loads(path.read_text())
        self.samples, self.tokens, self.decoded = (int(saved[k]) for k in self.FIELDS)


def answer_reward(bench: Benchmark, problems: dict[str, Problem], count: GeneratedCount | None = None):
    """TRL reward function: 1.0 when the benchmark scores the reply correct, else 0.0."""

    def answer_correct(prompts, completions, problem_id, completion_ids=None, **kwargs) -> list[float]:
        texts = [completion_text(c) for c in completions]
        if count is not None:
            count.add(texts, completion_ids)
        return [1.0 if bench.score(text, problems[pid]).correct else 0.0
                for text, pid in zip(texts, problem_id)]

    return answer_correct


def format_reward(bench: Benchmark, problems: dict[str, Problem]):
    """TRL reward function: 1.0 when the reply states its answer after an explicit marker and
    the benchmark can read it (right or wrong), else 0.0."""

    def answer_format(prompts, completions, problem_id, **kwargs) -> list[float]:
        out = []
        for c, pid in zip(completions, problem_id):
            text = completion_text(c)
            readable = answers.has_answer_marker(text) and \
                bench.score(text, problems[pid]).extracted is not None
            out.append(1.0 if readable else 0.0)
        return out

    return answer_format


# ====================================================================== training
def _counts_file(checkpoint: Path) -> Path:
    return Path(checkpoint) / f"rank{int(os.environ.get('RANK', 0))}_{GENERATED_FILE}"


def _trainer_class():
    """TRL's GRPOTrainer that resumes full fine-tuning with its weights and saves the
    generated-sample counts into every checkpoint, before the trainer state that marks the
    checkpoint complete (a kill between the two then leaves an incomplete checkpoint)."""
    from trl import GRPOTrainer

    class R3VGRPOTrainer(FullCheckpointResume, GRPOTrainer):
        r3v_count: GeneratedCount | None = None

        def _save_checkpoint(self, model, trial):
            if self.r3v_count is not None:
                ckpt = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
                ckpt.mkdir(parents=True, exist_ok=True)
                _counts_file(ckpt).write_text(json.dumps(self.r3v_count.to_dict()))
            return super()._save_checkpoint(model, trial)

    return R3VGRPOTrainer


def grpo_config(grpo: GRPOSettings, train: TrainSettings, out: Path, max_new_tokens: int,
                progress: bool = True):
    """TRL's ``GRPOConfig``: the ``grpo`` section under TRL's names plus what every stage takes
    from the ``train`` section (:func:`r3v_train.stage.trl_kwargs`)."""
    from trl import GRPOConfig

    kwargs = grpo.trl_kwargs()
    if kwargs["max_completion_length"] is None:
        kwargs["max_completion_length"] = max_new_tokens
    names = {f.name for f in dataclasses.fields(GRPOConfig)}
    return GRPOConfig(**kwargs, **stage.trl_kwargs(train, out, progress, names))


def train_grpo(base_model_path, bench: Benchmark, problems: Sequence[Problem], out_dir,
               grpo: GRPOSettings, train: TrainSettings, *, prompt_style: str,
               max_new_tokens: int, init_adapter=None, progress: bool = True) -> TrainResult:
    """GRPO on ``problems`` with ``bench``'s answer check as the reward; returns a
    :class:`~r3v_train.stage.TrainResult` (``kind="grpo"``).

    ``train.method`` picks a new LoRA adapter on the language model (``init_adapter`` continues
    an existing one, e.g. the warm-up's) or full fine-tuning of ``base_model_path`` (vision
    frozen). Writes to ``out_dir`` the adapter or model with the processor,
    ``train_config.json``, ``train_metrics.json`` (with ``generated_samples`` /
    ``generated_tokens``) and, last, ``DONE``.
    """
    import torch

    from r3v_eval.engines.hf import load_processor  # heavy (transformers): only when training

    out = Path(out_dir)
    done = stage.reuse_finished(out, "grpo")
    if done is not None:
        return done
    by_id = {p.id: p for p in problems}
    records = [{"prompt": prompts.cot_prompt(bench, p, prompt_style), "image": p} for p in problems]
    rows = normalize_records(records, ("prompt",))
    args = grpo_config(grpo, train, out, max_new_tokens, progress)
    kind = "grpo " + json.dumps(dataclasses.asdict(grpo), sort_keys=True)
    fp = stage.fingerprint(kind, str(base_model_path), init_adapter, train, rows, ("prompt",))
    checkpoint = stage.open_stage(out, fp, {
        "kind": "grpo", "base_model_path": str(base_model_path),
        "init_adapter": init_adapter and str(init_adapter), "num_questions": len(rows),
        "grpo": dataclasses.asdict(grpo), "settings": stage.settings_record(train),
        "world_size": args.world_size}, "questions")

    dataset = build_dataset(rows, ("prompt",)).add_column(
        "problem_id", [p.id for p in problems])
    processor = load_processor(str(base_model_path), train.max_pixels, train.min_pixels)
    model = stage.load_model(str(base_model_path), train, init_adapter,
                             cuda=torch.cuda.is_available(),
                             deepspeed=args.deepspeed_plugin is not None)
    count = GeneratedCount(processor.tokenizer)
    if checkpoint is not None:
        saved = _counts_file(checkpoint)
        if not saved.is_file():
            raise ValueError(f"{checkpoint} has no {saved.name}: the generated-sample count of the "
                             f"steps before it is unknown; delete {out} to start the stage afresh")
        count.load(saved)
    reward_funcs = [answer_reward(bench, by_id, count)]
    if grpo.format_reward:
        reward_funcs.append(format_reward(bench, by_id))

    trainer = _trainer_class()(model=model, reward_funcs=reward_funcs, args=args,
                               train_dataset=dataset, processing_class=processor,
                               peft_config=stage.peft_config(train, init_adapter))
    trainer.r3v_count = count
    stage.check_vision_frozen(trainer.model, train, "GRPO")
    output, runtime = stage.train(trainer, checkpoint)
    return stage.finish(trainer, out, "grpo", train,
                        _metrics(trainer, train.method, count, output, runtime, checkpoint,
                                 len(rows)))


def _metrics(trainer, method: str, count: GeneratedCount, output, runtime: float,
             checkpoint: Path | None, n_questions: int) -> dict[str, Any]:
    """GRPO's figures: the stage's own, the generated samples (summed over processes) and the
    logged rewards."""
    import torch

    counts = torch.tensor(list(count.to_dict().values()), dtype=torch.long,
                          device=trainer.accelerator.device)
    if trainer.accelerator.num_processes > 1:
        counts = trainer.accelerator.reduce(counts, reduction="sum")
    generated = dict(zip(count.FIELDS, (int(x) for x in counts.tolist())))
    logs = trainer.state.log_history
    reward_key = "rewards/answer_correct/mean"
    rewards = [e[reward_key] for e in logs if reward_key in e]
    return {
        "kind": "grpo",
        "method": method,
        **stage.run_metrics(trainer, output, runtime, checkpoint),
        "num_questions": n_questions,
        **generated,
        "first_logged_reward": rewards[0] if rewards else None,
        "last_logged_reward": rewards[-1] if rewards else None,
        "mean_logged_reward": sum(rewards) / len(rewards) if rewards else None,
        "num_generations": trainer.args.num_generations,
        "completions_per_step": (trainer.args.per_device_train_batch_size
                                 * trainer.args.gradient_accumulation_steps
                                 * trainer.args.world_size),
        "log_history": logs,
    }


def grpo_stage(run, t: int, bench: Benchmark, problems: Sequence[Problem], init: str | None):
    """The loop's GRPO stage (iteration ``t``) from ``init``: an earlier iteration's checkpoint
    (the warm-up's adapter, or its model folder for full fine-tuning) or None for the base."""
    cfg = run.cfg
    d = run.iter_dir(t)
    g = cfg.grpo
    run.log(f"iteration {t}: GRPO on {len(problems)} questions, {g.num_generations} replies each, "
            f"reward = the {bench.name} answer check"
            + (" + answer format" if g.format_reward else ""))
    full = cfg.train.method == "full"
    result = train_grpo(init if (full and init) else cfg.model.pretrained, bench, problems,
                        d / run_files.MODEL, g, cfg.train, prompt_style=cfg.model.prompt_style,
                        max_new_tokens=cfg.sampling.max_new_tokens,
                        init_adapter=None if full else init)
    return str(d / run_files.MODEL), result
