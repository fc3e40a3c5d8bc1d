"""Attention for single-token decode that packs grouped-query heads instead of repeating K/V.

With grouped-query attention (GQA: ``H`` query heads sharing ``H_kv`` key/value heads), stock
``sdpa`` in transformers expands the keys and values to ``H`` heads (``repeat_kv``) whenever a
mask is present and it runs under ``torch.compile``: every masked decode step copies the whole
KV cache ``H / H_kv`` times (6x for Qwen2-VL-2B). transformers 5.24 packs the heads in eager
decode only (``pack_gqa`` in ``integrations/sdpa_attention.py``), not when dynamo traces it.

:func:`packed_gqa_attention` does the packing always, for one query token: the query
``[rows, H, 1, D]`` is viewed as ``[rows, H_kv, G, D]`` (``G = H / H_kv`` query heads per key/value
head, query head ``h`` belonging to key/value head ``h // G``, as ``repeat_kv`` orders them), and
the ``G`` heads of a group play the part of ``G`` query positions against that group's keys and
values: one ``scaled_dot_product_attention`` call over the cache as it is, with the decode mask
(one per row, shared by all heads: ``[rows, 1, 1, kv_len]``) broadcast over the groups. No copy
of K/V is made. Any other call (a prefill, a sliding window, a per-head mask, dropout, attention
sinks) goes to stock ``sdpa`` unchanged.

The function is registered with transformers' ``AttentionInterface`` (and ``sdpa``'s mask
builder with ``AttentionMaskInterface``) under :data:`PACKED_GQA` by :func:`register`, so a model
selects it the way it selects any attention implementation; :func:`attention_implementation`
switches a loaded model's language model to it for the duration of a ``with`` block (the decode
loop) and back.

Only a GPU can show what it saves in time (the copies it avoids are device-memory traffic);
on CPU the tests check it against ``sdpa`` for equal outputs.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

#: the name under which :func:`packed_gqa_attention` is registered
PACKED_GQA = "r3v_packed_gqa"


def packed_gqa_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                         scaling: float | None = None, **kwargs):
    """transformers' attention-function signature: ``(module, query [b, H, q, D], key and
    value [b, H_kv, kv, D], mask, ...) -> (output [b, q, H, D], None)``."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    rows, heads, q_len, _ = query.shape
    kv_heads = key.shape[1]
    if (q_len != 1 or heads == kv_heads or heads % kv_heads or dropout
            or kwargs.get("sliding_window") or kwargs.get("s_aux") is not None
            or kwargs.get("softcap") is not None or kwargs.get("position_bias") is not None
            or (attention_mask is not None and attention_mask.shape[1] != 1)):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    groups = heads // kv_heads
    packed = query.reshape(rows, kv_heads, groups, query.shape[-1])
    out = torch.nn.functional.scaled_dot_product_attention(
        packed, key, value, attn_mask=attention_mask, dropout_p=0.0, scale=scaling,
        is_causal=False)  # one query token sees every unmasked position
    # [rows, H_kv, G, Dv] -> [rows, H, 1, Dv] -> [rows, 1, H, Dv], as sdpa_attention_forward returns
    out = out.reshape(rows, heads, 1, value.shape[-1]).transpose(1, 2).contiguous()
    return out, None


def register() -> str:
    """Register :func:`packed_gqa_attention` (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(PACKED_GQA, packed_gqa_attention)
    AttentionMaskInterface.register(PACKED_GQA, sdpa_mask)  # masks built as sdpa builds them
    return PACKED_GQA


def _attention_configs(model) -> list:
    """The configs that the model's attention modules read ``_attn_implementation`` from (the
    language model's; the vision tower's are left alone)."""
    seen: dict[int, object] = {}
    for m in model.modules():
        if hasattr(m, "num_key_value_groups") and hasattr(m, "layer_idx") and hasattr(m, "config"):
            seen.setdefault(id(m.config), m.config)
    return list(seen.values())


@contextlib.contextmanager
def attention_implementation(model, name: str = PACKED_GQA) -> Iterator[None]:
    """Inside the block the model's decoder attention uses ``name`` (registered first when it is
    :data:`PACKED_GQA`); the previous implementation comes back on exit."""
    if name == PACKED_GQA:
        register()
    configs = _attention_configs(model)
    before = [c._attn_implementation for c in configs]
    try:
        for c in configs:
            c._attn_implementation = name
        yield
    finally:
        for c, b in zip(configs, before):
            c._attn_implementation = b
