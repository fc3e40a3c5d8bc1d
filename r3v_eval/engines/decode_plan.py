"""What the ``hf`` engine's graph path decides before it decodes: whether it can serve a model
(:func:`model_reason`), and how each row's next token is picked so that the tokens are
``generate``'s (:func:`plan_picker`: the logits processors ``generate`` would run, then the
engine's per-row sampler of :mod:`~r3v_eval.engines.sampler`, its step counter a tensor)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from r3v_eval.engines.sampler import gumbel_pick

#: model types (``config.model_type``) the graph path serves; others use ``generate``
SERVED_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


@dataclass(frozen=True)
class Picker:
    """How a row's next token is chosen from its logits: the logits processors ``generate``
    would run (suppressed tokens, repetition penalty), then the engine's per-row Gumbel-max
    sampler (temperature, top-k, top-p) or, greedy, the best token. Frozen and hashable: it is
    part of a captured graph's key (its values are baked into the graph)."""

    greedy: bool
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    suppress: tuple[int, ...] = ()
    penalty: float | None = None

    def __call__(self, scores, seeds, step, seen=None, suppress_mask=None):
        import torch

        if suppress_mask is not None:
            scores = torch.where(suppress_mask, -float("inf"), scores)
        if self.penalty is not None:
            penalized = torch.where(scores < 0, scores * self.penalty, scores / self.penalty)
            scores = torch.where(seen, penalized, scores)
        if self.greedy:
            return scores.argmax(dim=-1)
        return gumbel_pick(scores, self.temperature, self.top_k, self.top_p, seeds, step)


class Unsupported(Exception):
    """The graph path cannot serve this model or these settings (the message says why)."""


def base_model(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def model_reason(model) -> str | None:
    """Why the graph path cannot serve ``model`` (None: it can)."""
    model = base_model(model)
    model_type = getattr(model.config, "model_type", None)
    if model_type not in SERVED_MODEL_TYPES:
        return (f"model type {model_type!r} is not served by the graph path (served: "
                f"{', '.join(SERVED_MODEL_TYPES)})")
    text = model.config.get_text_config(decoder=True)
    if any(t != "full_attention" for t in (getattr(text, "layer_types", None) or [])):
        return "the language model has sliding-window layers"
    if not hasattr(model, "_prepare_position_ids_for_generation"):
        return "this transformers version has no _prepare_position_ids_for_generation"
    return None


def plan_picker(model, gen_kwargs: dict[str, Any], sampling, input_ids,
                attention_mask) -> tuple[Picker, list[int]]:
    """The :class:`Picker` and the end-of-sequence ids that reproduce what ``generate`` would do
    with ``gen_kwargs`` (the engine's) over the model's generation config: the logits processors
    are the ones transformers builds for it (``_get_logits_processor``); a processor the step
    does not implement raises :class:`Unsupported`."""
    import copy

    from transformers.generation.logits_process import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        SuppressTokensLogitsProcessor,
    )

    model = base_model(model)
    config = copy.deepcopy(model.generation_config)
    config.update(**{k: v for k, v in gen_kwargs.items() if k not in ("tokenizer", "stop_strings")})
    try:
        processors = model._get_logits_processor(
            generation_config=config, input_ids_seq_length=input_ids.shape[1],
            encoder_input_ids=input_ids, prefix_allowed_tokens_fn=None,
            logits_processor=LogitsProcessorList(), device=input_ids.device,
            model_kwargs={"attention_mask": attention_mask})
    except Exception as exc:  # noqa: BLE001 -- an API change: generate still works
        raise Unsupported(f"could not list generate's logits processors ({exc})") from None
    suppress: tuple[int, ...] = ()
    penalty = None
    for p in processors:
        if isinstance(p, SuppressTokensLogitsProcessor):
            ids = {int(t) for t in p.suppress_tokens.tolist()}
            suppress = tuple(sorted(set(suppress) | ids))
        elif isinstance(p, RepetitionPenaltyLogitsProcessor):
            penalty = float(p.penalty)
        else:
            raise Unsupported(f"generate would apply {type(p).__name__}, which the graph step "
                              "does not implement")
    if config.max_time is not None:
        raise Unsupported("generation_config.max_time is set")
    eos = config.eos_token_id
    eos_ids = [] if eos is None else ([int(eos)] if isinstance(eos, int) else [int(e) for e in eos])
    picker = Picker(greedy=sampling.greedy, temperature=float(sampling.temperature or 1.0),
                    top_k=int(sampling.top_k), top_p=float(sampling.top_p), suppress=suppress,
                    penalty=penalty)
    if sampling.greedy:  # the sampler's settings do not apply
        picker = Picker(greedy=True, suppress=suppress, penalty=penalty)
    return picker, eos_ids
