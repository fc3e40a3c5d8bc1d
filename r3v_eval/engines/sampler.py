"""The engines' per-row sampler: each sample's noise comes from its own seed by a counter-based
hash (splitmix64 over seed, step and token id), so a sample is the same whatever batch it is drawn
in. Shared by the ``hf`` engine's ``generate`` path (:class:`~r3v_eval.engines.hf.RowSampler`)
and its graph path (:mod:`~r3v_eval.engines.graph_decode`), which must pick the same tokens bit
for bit; there the step counter is a device tensor."""

from __future__ import annotations

# splitmix64's constants as signed 64-bit integers (torch has no uint64 arithmetic)
MIX_1, MIX_2 = -4658895280553007687, -7723592293110705685
GOLDEN = -7046029254386353131


def shift_right(x, bits: int):
    """Logical right shift of int64 tensors (torch's >> is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def mix(x):
    """splitmix64's finalizer on int64 tensors (multiplication wraps around)."""
    x = x ^ shift_right(x, 30)
    x = x * MIX_1
    x = x ^ shift_right(x, 27)
    x = x * MIX_2
    return x ^ shift_right(x, 31)


def uniform_noise(seeds, step, token_ids):
    """Uniform numbers in (0, 1), one per (row seed, step, token id): a row's noise depends on
    nothing but its own seed, the step and the token. ``step`` is an int, or a 0-d int64 tensor
    (no host value in the computation, so it can be captured in a graph): the same numbers bit
    for bit, since int64 arithmetic wraps around as the int version is wrapped."""
    import torch

    if isinstance(step, int):
        offset = ((step + 1) * GOLDEN + (1 << 63)) % (1 << 64) - (1 << 63)  # wrapped to int64
    else:
        offset = (step + 1) * GOLDEN
    key = mix(token_ids.to(torch.int64) + offset)
    key = mix(key ^ seeds[:, None])
    mantissa = shift_right(key, 11).to(torch.float64)  # 53 random bits
    return (mantissa + 0.5) / float(1 << 53)


def gumbel_pick(scores, temperature: float, top_k: int, top_p: float, seeds, step):
    """Each row's next token id: temperature, then top-k, then top-p (the smallest set of best
    tokens whose probability reaches ``top_p``), as transformers' warpers apply them; then the
    Gumbel-max trick over what is left, with each row's noise from its own seed."""
    import torch

    logits = scores.float() / temperature
    vocab = logits.shape[-1]
    if top_k and top_k < vocab:
        values, ids = logits.topk(top_k, dim=-1)  # sorted, best first
    elif top_p < 1.0:
        values, ids = logits.sort(dim=-1, descending=True)
    else:
        values = logits
        ids = torch.arange(vocab, device=logits.device).expand_as(logits)
    if top_p < 1.0:
        probs = values.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass of the better tokens
        values = values.masked_fill(before >= top_p, float("-inf"))  # keeps the best
    noise = uniform_noise(seeds, step, ids)
    gumbel = -torch.log(-torch.log(noise))
    pick = (values.double() + gumbel).argmax(dim=-1, keepdim=True)
    return ids.gather(-1, pick)[:, 0]
