"""What a run spent on training, so methods are compared at known cost: replies generated for
training (R3V / STaR: the offline pool; GRPO: its on-policy groups), the tokens of those replies,
and optimizer steps (every training stage the run trained itself: its own warm-up included, a
warm-up shared through ``run.warmup_from`` not, as that run's own row counts it). The samples
of a shared iteration-0 pool are counted in every run that trains on them. Evaluation is not
counted: every method is evaluated the same way.

Reply tokens are counted one way for every method: the tokenizer's tokens of the reply text,
special tokens (end of turn) left out.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence


def count_tokens(tokenizer: Any, texts: Sequence[str]) -> int:
    """Tokens of ``texts`` (no special tokens added)."""
    if not texts:
        return 0
    return sum(len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"])


def _stage_figures(train_info: Any) -> Iterable[dict[str, Any]]:
    """The training figures of one history entry (STaR+DPO nests ``sft`` and ``dpo``)."""
    if not isinstance(train_info, dict):
        return
    if "global_step" in train_info:
        yield train_info
    for value in train_info.values():
        if isinstance(value, dict):
            yield from _stage_figures(value)


def run_compute(history: Sequence[dict[str, Any]], pool_replies: Sequence[str],
                tokenizer: Any) -> dict[str, int]:
    """The run's totals: ``generated_samples``, ``generated_tokens``, ``optimizer_steps``.

    ``pool_replies`` are the replies sampled offline for training (the sample pool);
    stages that generate on-policy (GRPO) report their own ``generated_samples`` and
    ``generated_tokens`` in their training figures."""
    samples, tokens, steps = len(pool_replies), count_tokens(tokenizer, pool_replies), 0
    for entry in history:
        for stage in _stage_figures(entry.get("train")):
            steps += int(stage.get("global_step") or 0)
            samples += int(stage.get("generated_samples") or 0)
            tokens += int(stage.get("generated_tokens") or 0)
    return {"generated_samples": samples, "generated_tokens": tokens, "optimizer_steps": steps}
