"""The ``hf`` engine's ``decode: graph`` path: a static-cache decode loop, one prefill per
question shared by its ``n`` samples, replayed as a CUDA graph on a GPU.

What it does for one batch of ``B`` prompts and ``n`` samples each (``R = B x n`` rows):

1. **Prefill once per question**, at ``B`` rows, with the positions ``generate`` computes
   (``_prepare_position_ids_for_generation``: M-RoPE positions from the model's own
   ``get_rope_index``, padding left out) and a ``DynamicCache``. The image goes through the
   vision tower once.
2. **Expand** the prefill's key/value rows ``n`` times (row ``b x n + j`` is sample ``j`` of prompt
   ``b``, as ``num_return_sequences`` orders them) into a **persistent ``StaticCache``** of ``R``
   rows whose length is the need (prompt + new tokens) rounded up to a bucket
   (:func:`length_bucket`); the last prompt position of each row, ``+ 1`` per step, gives the
   decode positions (M-RoPE: the same for its three sections after a text token, i.e.
   ``rope_deltas`` applied).
3. **One step function** (:meth:`_Slot.step`) whose state lives only in device tensors: the input
   token, the three M-RoPE positions, the attention mask (a boolean row per sample; the step sets
   its own slot), the cache slot, the sampler's step counter, the finished rows, the generated
   tokens, the tokens seen (repetition penalty). It runs the language model on one token per row
   with :mod:`~r3v_eval.engines.gqa_attention`'s packed-GQA attention, applies the logits
   processors that ``generate`` would (suppressed tokens, repetition penalty: anything else falls
   back), then picks the next token as the engine's :class:`~r3v_eval.engines.hf.RowSampler`
   does, bit for bit, its counter a tensor (:func:`~r3v_eval.engines.sampler.uniform_noise` with a tensor step), or greedily; finished rows
   get the pad token, as in ``generate``.
4. On **CUDA** the step is warmed up and captured once per (rows, length bucket, sampling
   settings) as a ``torch.cuda.CUDAGraph`` and replayed; the host reads "all finished" (and checks
   stop strings with transformers' ``StopStringCriteria``, which ``generate`` uses) every
   ``check_every`` steps only, not every step. On **CPU** the same step runs eagerly.
   ``compile=True`` also runs the step through ``torch.compile(fullgraph=True)`` (for kernel
   fusion; on a GPU, inside the capture).

The tokens are those of ``generate`` with the engine's sampler: same prompts, seeds and
settings give the same completions (the tests check it on CPU for Qwen2-VL, Qwen2.5-VL and
Qwen3-VL, with and without images, n = 1 and 3, EOS and stop strings). Other model families,
and generation settings the step does not implement, are served by ``generate``: the engine
falls back, and says why once (:func:`log_fallback_once`).

**What only a GPU can show, and has not been shown (no GPU was available while this was
written):** that the capture succeeds with the model's kernels (sdpa's memory-efficient kernel
under a graph), the time per step and its share of the memory roofline, the capture and compile
times, the memory, and token agreement in bfloat16. ``benchmarks/gpu.py --decode-paths generate
graph`` measures them side by side; the figures in ``docs/engines-cost.md`` for this path are
estimates until it has run.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass
from typing import Any, Sequence

from r3v_eval.engines.decode_plan import (  # noqa: F401  (re-exported: the path's public surface)
    SERVED_MODEL_TYPES,
    Picker,
    Unsupported,
    base_model,
    model_reason,
    plan_picker,
)
from r3v_eval.engines.gqa_attention import PACKED_GQA, attention_implementation

logger = logging.getLogger(__name__)

#: the decode paths of the ``hf`` engine
DECODES = ("generate", "graph")
#: cache lengths are rounded up to a multiple of this (one capture per bucket)
LENGTH_BUCKET = 128

_LOGGED: set[str] = set()


def log_fallback_once(reason: str) -> None:
    """Log (a warning, once per distinct reason and process) that ``generate`` serves a batch
    that ``decode: graph`` was asked for."""
    if reason not in _LOGGED:
        _LOGGED.add(reason)
        logger.warning("decode=graph: %s; using transformers generate instead", reason)


def length_bucket(needed: int, granularity: int = LENGTH_BUCKET) -> int:
    """The cache length for ``needed`` positions: rounded up to a multiple of ``granularity``."""
    if needed < 1 or granularity < 1:
        raise ValueError(f"length_bucket({needed}, {granularity}): both must be >= 1")
    return -(-needed // granularity) * granularity


# ---------------------------------------------------------------- one persistent decode slot
@dataclass(frozen=True)
class SlotKey:
    """What a captured step is specific to."""

    rows: int
    length: int
    picker: Picker
    eos: tuple[int, ...]
    pad: int


class _Slot:
    """A static KV cache of ``rows x length`` and the decode state, all device tensors at fixed
    addresses, and the step over them (eager, compiled, or a captured CUDA graph)."""

    def __init__(self, model, key: SlotKey, kv_heads: int, head_dim: int, value_dim: int,
                 dtype, device, vocab: int, compile: bool | str = False) -> None:
        import torch
        from transformers import StaticCache

        self.model, self.key = model, key
        rows, length = key.rows, key.length
        self.cache = StaticCache(config=model.config, max_cache_len=length)
        self.cache.early_initialization(rows, kv_heads, head_dim, dtype, device)
        if value_dim != head_dim:
            raise Unsupported("keys and values of different head sizes")
        long = dict(dtype=torch.long, device=device)
        self.tokens = torch.zeros(rows, 1, **long)
        self.positions = torch.zeros(3, rows, 1, **long)
        self.valid = torch.zeros(rows, length, dtype=torch.bool, device=device)
        self.slot = torch.zeros(1, **long)  # the cache column of ``tokens``
        self.counter = torch.zeros((), **long)  # the sampler's step counter
        self.finished = torch.zeros(rows, dtype=torch.bool, device=device)
        self.out = torch.full((rows, length), key.pad, **long)  # generated tokens
        self.seeds = torch.zeros(rows, **long)
        self.eos = torch.tensor(key.eos or [-1], **long)
        self.pad = torch.tensor(key.pad, **long)
        self.seen = (torch.zeros(rows, vocab, dtype=torch.bool, device=device)
                     if key.picker.penalty is not None else None)
        self.suppress = None
        if key.picker.suppress:
            self.suppress = torch.zeros(vocab, dtype=torch.bool, device=device)
            self.suppress[list(key.picker.suppress)] = True
        self.graph = None
        self.capture_s: float | None = None
        self.compile_s: float | None = None
        self.run_step = self.step
        if compile:  # True: inductor (kernel fusion); a string: that backend ("eager" in tests)
            backend = "inductor" if compile is True else compile
            self.run_step = torch.compile(self.step, backend=backend, fullgraph=True)

    # ------------------------------------------------------------ the step (device work only)
    def record(self, token) -> None:
        """Store the token drawn at ``counter`` and advance the per-row bookkeeping."""
        import torch

        token = torch.where(self.finished, self.pad, token)  # generate pads finished rows
        self.out.scatter_(1, self.counter.view(1, 1).expand(token.shape[0], 1), token[:, None])
        self.finished |= torch.isin(token, self.eos)
        if self.seen is not None:
            self.seen.scatter_(1, token[:, None], True)
        self.tokens.copy_(token[:, None])
        self.counter.add_(1)

    def pick(self, logits):
        return self.key.picker(logits, self.seeds, self.counter, self.seen, self.suppress)

    def step(self) -> None:
        """One decode step: the forward on ``tokens``, then the next token of every row."""
        self.valid.index_fill_(1, self.slot, True)
        out = self.model(input_ids=self.tokens, position_ids=self.positions,
                         attention_mask=self.valid[:, None, None, :], cache=self.cache,
                         use_cache=True, logits_to_keep=1)
        self.record(self.pick(out.logits[:, -1, :].float()))
        self.positions.add_(1)
        self.slot.add_(1)

    # ------------------------------------------------------------ host side
    def load(self, prefill_cache, prompt_mask, last_positions, seeds, prompt_ids, n: int) -> None:
        """Copy one batch's prefill into the slot: its key/value rows ``n`` times each, the
        mask of the prompt (padding left out), the next positions, the seeds."""
        rows, length = self.key.rows, self.key.length
        batch, prompt_len = prompt_mask.shape
        for layer, src in zip(self.cache.layers, prefill_cache.layers):
            for dst, kv in ((layer.keys, src.keys), (layer.values, src.values)):
                heads, dim = kv.shape[1], kv.shape[3]
                dst.view(batch, n, heads, length, dim)[:, :, :, :prompt_len].copy_(
                    kv[:, None].expand(batch, n, heads, prompt_len, dim))
            layer.cumulative_length.fill_(prompt_len)
        self.valid.zero_()
        self.valid.view(batch, n, length)[:, :, :prompt_len].copy_(
            prompt_mask.bool()[:, None].expand(batch, n, prompt_len))
        self.slot.fill_(prompt_len)
        self.positions.copy_(last_positions.repeat_interleave(n, dim=1)[..., None] + 1)
        self.counter.zero_()
        self.finished.zero_()
        self.out.fill_(self.key.pad)
        self.seeds.copy_(seeds)
        if self.seen is not None:
            self.seen.zero_()
            ids = prompt_ids.repeat_interleave(n, dim=0)
            keep = prompt_mask.bool().repeat_interleave(n, dim=0)
            vocab = self.seen.shape[1]
            # padding (and ids beyond the head's vocabulary) go to a dropped extra column
            marks = self.seen.new_zeros(rows, vocab + 1)
            marks.scatter_(1, ids.masked_fill(~keep, vocab).clamp(max=vocab), True)
            self.seen.copy_(marks[:, :vocab])

    def capture(self, pool=None, warmup: int = 3) -> None:
        """Warm the step up on a side stream and capture it as a CUDA graph (CUDA only). The
        state is whatever the slot holds; :meth:`load` overwrites it before every use."""
        import torch

        self.valid[:, 0] = True  # a dummy state whose attention is defined
        t0 = time.perf_counter()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(warmup):
                self.run_step()
        torch.cuda.current_stream().wait_stream(stream)
        torch.cuda.synchronize()
        warm = time.perf_counter()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            self.run_step()
        torch.cuda.synchronize()
        self.graph = graph
        self.compile_s = warm - t0  # warm-up, which includes the compile when compiling
        self.capture_s = time.perf_counter() - warm

    def run(self, steps: int) -> None:
        for _ in range(steps):
            if self.graph is not None:
                self.graph.replay()
            else:
                self.run_step()


@dataclass
class CallStats:
    """Timings of one batch through the graph path (``GraphDecoder(timing=True)``: the device
    is synchronised around each phase, which costs a little)."""

    rows: int
    prompt_tokens: int
    length: int
    steps: int
    prefill_s: float
    decode_s: float
    captured: bool
    new_slot: bool = False
    capture_s: float | None = None
    warmup_s: float | None = None


class GraphDecoder:
    """The graph decode path of one model (see the module's docstring). ``decode`` returns the
    new tokens of a batch, or None where the path cannot serve it (then the caller uses
    ``generate``; the reason is logged once)."""

    def __init__(self, model, processor, *, bucket: int = LENGTH_BUCKET,
                 check_every: int | None = None, cuda_graph: bool | None = None,
                 compile: bool | str = False, max_slots: int = 2, timing: bool = False) -> None:
        self.model, self.processor = model, processor
        self.bucket, self.max_slots, self.compile, self.timing = bucket, max_slots, compile, timing
        device = next(model.parameters()).device
        self.device = device
        on_cuda = device.type == "cuda"
        self.cuda_graph = on_cuda if cuda_graph is None else bool(cuda_graph)
        if self.cuda_graph and not on_cuda:
            raise ValueError("cuda_graph=True needs the model on a CUDA device")
        self.check_every = check_every or (16 if self.cuda_graph else 4)
        self.slots: collections.OrderedDict[SlotKey, _Slot] = collections.OrderedDict()
        self.stats: list[CallStats] = []
        self._pool = None
        self._stop_criteria: dict[tuple[str, ...], Any] = {}

    # ------------------------------------------------------------ slots
    def slot_for(self, key: SlotKey, prefill_cache) -> tuple[_Slot, bool]:
        """The persistent slot of ``key`` (made, and on CUDA captured, the first time; the
        least recently used one is dropped beyond ``max_slots``); True when it is new."""
        slot = self.slots.get(key)
        if slot is not None:
            self.slots.move_to_end(key)
            return slot, False
        while len(self.slots) >= self.max_slots:
            self.slots.popitem(last=False)
        layer = prefill_cache.layers[0]
        text = base_model(self.model).config.get_text_config(decoder=True)
        slot = _Slot(base_model(self.model), key, kv_heads=layer.keys.shape[1],
                     head_dim=layer.keys.shape[3], value_dim=layer.values.shape[3],
                     dtype=layer.keys.dtype, device=self.device, vocab=text.vocab_size,
                     compile=self.compile)
        if self.cuda_graph:
            import torch

            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            with attention_implementation(self.model, PACKED_GQA):
                slot.capture(self._pool)
        self.slots[key] = slot
        return slot, True

    def _stop_strings(self, stop: tuple[str, ...]):
        from transformers.generation.stopping_criteria import StopStringCriteria

        if stop not in self._stop_criteria:
            self._stop_criteria[stop] = StopStringCriteria(self.processor.tokenizer, list(stop))
        return self._stop_criteria[stop]

    # ------------------------------------------------------------ one batch
    def decode(self, inputs: dict, sampling, seeds: Sequence[int] | None,
               gen_kwargs: dict[str, Any]):
        """New tokens ``[B x n, steps]`` (on CPU) for one encoded batch, or None (fallback)."""
        reason = model_reason(self.model)
        if reason is None:
            try:
                picker, eos = plan_picker(self.model, gen_kwargs, sampling, inputs["input_ids"],
                                          inputs["attention_mask"])
            except Unsupported as exc:
                reason = str(exc)
        if reason is None:
            try:
                return self._decode(inputs, sampling, seeds, picker, eos,
                                    gen_kwargs["pad_token_id"])
            except Unsupported as exc:
                reason = str(exc)
        log_fallback_once(reason)
        return None

    def _sync(self) -> float:
        import torch

        if self.timing and self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def _decode(self, inputs, sampling, seeds, picker: Picker, eos: list[int], pad: int):
        import torch
        from transformers import DynamicCache

        model = base_model(self.model)
        n, new_tokens = sampling.n, sampling.max_new_tokens
        input_ids, mask = inputs["input_ids"], inputs["attention_mask"]
        batch, prompt_len = input_ids.shape
        rows = batch * n
        extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
        t0 = self._sync()
        with torch.inference_mode():
            # 1. the prefill, once per question, positions as generate makes them
            positions = model._prepare_position_ids_for_generation(
                input_ids, {"input_ids": input_ids, "attention_mask": mask, **extra})
            prefill_cache = DynamicCache(config=model.config)
            out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                        cache=prefill_cache, use_cache=True, logits_to_keep=1, **extra)
            logits = out.logits[:, -1, :].float().repeat_interleave(n, dim=0)
            del out
            # 2. the persistent slot of this shape, the prefill expanded into it
            length = length_bucket(prompt_len + new_tokens, self.bucket)
            key = SlotKey(rows=rows, length=length, picker=picker, eos=tuple(eos), pad=int(pad))
            slot, new = self.slot_for(key, prefill_cache)
            seed_tensor = torch.tensor([int(s) for s in seeds] if seeds is not None else [0] * rows,
                                       dtype=torch.long, device=self.device)
            slot.load(prefill_cache, mask, positions[-3:, :, -1], seed_tensor, input_ids, n)
            del prefill_cache
            slot.record(slot.pick(logits))  # the first token, from the prefill's logits
            t1 = self._sync()
            # 3. the decode steps, "all finished" read every check_every steps
            stop = tuple(s for s in sampling.stop if s)
            criteria = self._stop_strings(stop) if stop else None
            tail = input_ids.repeat_interleave(n, dim=0).cpu()
            stopped_at: dict[int, int] = {}
            done, checked = 1, 0
            with attention_implementation(self.model, PACKED_GQA):
                while True:
                    if self._check(slot, criteria, tail, checked, done, stopped_at):
                        break
                    checked = done
                    if done >= new_tokens:
                        break
                    steps = min(self.check_every, new_tokens - done)
                    slot.run(steps)
                    done += steps
            tokens = slot.out[:, :done].cpu().clone()
            t2 = self._sync()
            for row, j in stopped_at.items():  # generate pads a row after its stop string
                tokens[row, j + 1:] = pad
        if self.timing:
            self.stats.append(CallStats(rows=rows, prompt_tokens=prompt_len, length=length,
                                        steps=done - 1, prefill_s=t1 - t0, decode_s=t2 - t1,
                                        captured=slot.graph is not None, new_slot=new,
                                        capture_s=slot.capture_s if new else None,
                                        warmup_s=slot.compile_s if new else None))
        return tokens

    def _check(self, slot: _Slot, criteria, prompt_ids, start: int, done: int,
               stopped_at: dict[int, int]) -> bool:
        """Read the finished rows (one host sync); mark rows whose stop string appeared in the
        tokens ``[start, done)``, at the step ``generate``'s ``StopStringCriteria`` would have
        stopped them; True when every row is finished."""
        import torch

        finished = slot.finished.cpu()
        if criteria is not None and start < done:
            generated = slot.out[:, :done].cpu()
            # the step of each row's first end-of-sequence token (done: none yet)
            is_eos = torch.isin(generated, slot.eos.cpu())
            first_eos = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.tensor(done))
            window = criteria.maximum_token_len
            for j in range(start, done):
                seq = torch.cat([prompt_ids[:, -window:], generated[:, :j + 1]], dim=1)
                hits = criteria(seq[:, -window:], None).cpu() & (first_eos >= j)
                for row in torch.nonzero(hits).flatten().tolist():
                    if row not in stopped_at:
                        stopped_at[row] = j
                        finished[row] = True
            if stopped_at:
                rows = torch.tensor(sorted(stopped_at), dtype=torch.long,
                                    device=slot.finished.device)
                slot.finished.index_fill_(0, rows, True)
        return bool(finished.all())
