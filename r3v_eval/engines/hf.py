"""The ``hf`` engine: batched ``transformers`` generate with left padding.

* ``n`` samples per prompt in one call (``num_return_sequences``): the prompt and the image
  are processed once per request, not once per sample;
* requests are sorted by length (and grouped by whether they carry an image) to cut
  padding, then returned in the caller's order;
* sampling is reproducible and independent of batching: every sample has its own random
  stream, seeded from ``Sampling.seed`` and the request's content
  (:func:`~r3v_eval.engines.base.sample_seeds`), and draws its token at each step as the
  argmax of the warped logits plus Gumbel noise from that stream -- an exact draw from the
  softmax after temperature / top-k / top-p, as transformers' sampler makes, but one that
  no other row's draws can shift. The same request and seed give the same samples at any
  batch size and under any number of processes (up to floating-point differences between
  padded and unpadded forward passes, which the tests check do not show);
* works with any ``AutoModelForImageTextToText`` whose processor has a chat template
  (Qwen2-VL, Qwen2.5-VL, LLaVA-1.5), with an optional PEFT LoRA adapter.
"""

from __future__ import annotations

from typing import Any, Sequence

from tqdm.auto import tqdm

from r3v_eval.engines.base import GenRequest, Sampling, cut_at_stop, sample_seeds
from r3v_eval.engines.chat import chat_text

_DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but no CUDA device is available")
    return device


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(_DTYPES)}")
    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, dtype)


def load_processor(pretrained: str, max_pixels: int | None = None, min_pixels: int | None = None):
    """AutoProcessor with left padding; pixel bounds only for Qwen2-VL-family processors.

    The bounds are set the way transformers 5 supports them, as the image processor's
    ``size`` (``longest_edge`` = max pixels, ``shortest_edge`` = min pixels; the other bound
    stays the checkpoint's own), not as ``max_pixels=`` / ``min_pixels=`` keywords, which
    transformers deprecates and warns about on every processor call."""
    import dataclasses

    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(pretrained)
    if max_pixels is not None or min_pixels is not None:
        image_processor = getattr(processor, "image_processor", None)
        if image_processor is None or not hasattr(image_processor, "merge_size"):
            raise ValueError(
                f"max_pixels/min_pixels apply to Qwen2-VL-family processors only, not "
                f"{type(processor).__name__}"
            )
        bounds = {}
        if max_pixels is not None:
            bounds["longest_edge"] = int(max_pixels)
        if min_pixels is not None:
            bounds["shortest_edge"] = int(min_pixels)
        size = image_processor.size
        image_processor.size = (dataclasses.replace(size, **bounds) if dataclasses.is_dataclass(size)
                                else {**dict(size), **bounds})
    processor.tokenizer.padding_side = "left"
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


class HFEngine:
    """transformers generate over a VLM checkpoint (a hub id or a local folder)."""

    def __init__(self, pretrained: str | None = None, *, adapter: str | None = None,
                 dtype: str = "auto", device: str = "auto", max_pixels: int | None = None,
                 min_pixels: int | None = None, batch_size: int = 8, merge_adapter: bool = True,
                 model: Any = None, processor: Any = None) -> None:
        import torch
        from transformers import AutoModelForImageTextToText

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        if model is not None:  # an in-memory model (training-time sampling)
            if processor is None:
                raise ValueError("HFEngine(model=...) also needs processor=...")
            self.model, self.processor = model, processor
            self.processor.tokenizer.padding_side = "left"
            self.device = next(model.parameters()).device
            return
        if pretrained is None:
            raise ValueError("HFEngine needs pretrained= (a hub id or a local folder)")
        self.device = torch.device(resolve_device(device))
        torch_dtype = resolve_dtype(dtype, self.device.type)
        self.processor = load_processor(pretrained, max_pixels, min_pixels)
        model = AutoModelForImageTextToText.from_pretrained(pretrained, dtype=torch_dtype)
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
            if merge_adapter:
                model = model.merge_and_unload()
        self.model = model.to(self.device).eval()

    # ----------------------------------------------------------- batching
    def _batches(self, requests: Sequence[GenRequest]) -> list[list[int]]:
        order = sorted(range(len(requests)),
                       key=lambda i: (requests[i].image is None, len(requests[i].prompt)))
        batches: list[list[int]] = []
        for i in order:
            if (batches and len(batches[-1]) < self.batch_size
                    and (requests[batches[-1][0]].image is None) == (requests[i].image is None)):
                batches[-1].append(i)
            else:
                batches.append([i])
        return batches

    def _encode(self, reqs: list[GenRequest], copies: int = 1):
        """Processor inputs of ``reqs``, each request repeated ``copies`` times in a row."""
        reqs = [r for r in reqs for _ in range(copies)]
        texts = [chat_text(self.processor, r.prompt, r.image is not None) for r in reqs]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if reqs[0].image is not None:
            kwargs["images"] = [r.image for r in reqs]
        inputs = self.processor(**kwargs)
        dtype = next(self.model.parameters()).dtype
        return {k: (v.to(self.device, dtype=dtype) if v.is_floating_point() else v.to(self.device))
                for k, v in inputs.items()}

    def _gen_kwargs(self, sampling: Sampling) -> dict[str, Any]:
        tok = self.processor.tokenizer
        # sampled rows draw their own tokens (_RowSampler); transformers decodes "greedily"
        # over the one-hot scores it leaves, so its own sampler and warpers stay off
        kw: dict[str, Any] = {
            "max_new_tokens": sampling.max_new_tokens,
            "pad_token_id": tok.pad_token_id,
            "do_sample": False, "temperature": None, "top_p": None, "top_k": None,
        }
        if sampling.stop:
            kw.update(stop_strings=list(sampling.stop), tokenizer=tok)
        return kw

    def generate(self, requests: Sequence[GenRequest], sampling: Sampling,
                 progress: bool = True) -> list[list[str]]:
        import torch

        results: list[list[str] | None] = [None] * len(requests)
        gen_kwargs = self._gen_kwargs(sampling)
        batches = self._batches(requests)
        bar = tqdm(total=len(requests), desc=f"generate (n={sampling.n})", disable=not progress,
                   unit="prompt")
        seed = sampling.seed if sampling.seed is not None else int(torch.seed() >> 1)
        for idxs in batches:
            reqs = [requests[i] for i in idxs]
            copies = 1 if sampling.greedy else sampling.n
            inputs = self._encode(reqs, copies)
            extra: dict[str, Any] = {}
            if not sampling.greedy:
                seeds = [s for r in reqs for s in sample_seeds(seed, r, sampling.n)]
                extra["logits_processor"] = row_sampler(sampling, seeds, self.device)
            with torch.inference_mode():
                out = self.model.generate(**inputs, **gen_kwargs, **extra)
            new_tokens = out[:, inputs["input_ids"].shape[1]:]
            texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
            for j, i in enumerate(idxs):
                chunk = texts[j * sampling.n:(j + 1) * sampling.n]
                results[i] = [cut_at_stop(t, sampling.stop).strip() for t in chunk]
            bar.update(len(idxs))
        bar.close()
        return results  # type: ignore[return-value]


def row_sampler(sampling: Sampling, seeds: Sequence[int], device):
    """transformers logits processors that sample each row from its own seeded stream:
    temperature, top-k and top-p warping as transformers applies them, then
    :class:`_RowSampler`."""
    from transformers import (LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper,
                              TopPLogitsWarper)

    procs = [TemperatureLogitsWarper(sampling.temperature)]
    if sampling.top_k:
        procs.append(TopKLogitsWarper(sampling.top_k))
    if sampling.top_p < 1.0:
        procs.append(TopPLogitsWarper(sampling.top_p))
    procs.append(_RowSampler(seeds, device))
    return LogitsProcessorList(procs)


class _RowSampler:
    """Picks each row's next token as argmax(scores + Gumbel noise) with the noise drawn from
    that row's own generator (the Gumbel-max trick: an exact sample from softmax(scores)), and
    returns scores that make that token the only choice."""

    def __init__(self, seeds: Sequence[int], device) -> None:
        import torch

        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids, scores):
        import torch

        if scores.shape[0] != len(self.generators):
            raise RuntimeError(f"row sampler: {scores.shape[0]} rows, {len(self.generators)} seeds")
        uniform = torch.stack([torch.rand(scores.shape[-1], generator=g, device=scores.device)
                               for g in self.generators])
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
        choice = (scores.float() + gumbel).argmax(dim=-1)
        picked = torch.full_like(scores, float("-inf"))
        picked[torch.arange(scores.shape[0], device=scores.device), choice] = 0.0
        return picked
