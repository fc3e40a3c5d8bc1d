"""The ``hf`` engine: batched ``transformers`` generate with left padding.

* ``n`` samples per prompt in one call (``num_return_sequences``): the prompt and the image
  are processed once per request, not once per sample;
* requests are sorted by length (and grouped by whether they carry an image) to cut
  padding, then returned in the caller's order;
* sampling is reproducible and independent of batching: every sample has its own seed, from
  ``Sampling.seed`` and the request's content (:func:`~r3v_eval.engines.base.sample_seeds`),
  and :class:`RowSampler` draws its next token with the Gumbel-max trick, the noise a
  counter-based hash of (sample seed, step, token id): an exact draw from the softmax after
  temperature, top-k and top-p, as transformers' sampler makes, that no other row can shift.
  The same request and seed give the same samples at any batch size and under any number of
  processes (up to floating-point differences between padded and unpadded forward passes,
  which the tests check do not show). With top-k set (the paper's 50) it never sorts the
  vocabulary: top-p runs over the k best tokens only;
* ``decode="graph"`` decodes Qwen2-VL / Qwen2.5-VL / Qwen3-VL with
  :mod:`r3v_eval.engines.graph_decode` instead (one prefill per question, a static cache, a CUDA
  graph on a GPU): the same tokens, ``generate`` wherever it cannot serve;
* works with any ``AutoModelForImageTextToText`` whose processor has a chat template
  (tested: Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Gemma 3, LLaVA-1.5), with an optional PEFT LoRA
  adapter.
"""

from __future__ import annotations

from typing import Any, Sequence

from tqdm.auto import tqdm

from r3v_eval.engines.base import DTYPES, GenRequest, Sampling, cut_at_stop, sample_seeds
from r3v_eval.engines.chat import chat_text, scored_replies
from r3v_eval.engines.sampler import gumbel_pick


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but no CUDA device is available")
    return device


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
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
                 model: Any = None, processor: Any = None, decode: str = "generate") -> None:
        import torch
        from transformers import AutoModelForImageTextToText

        from r3v_eval.engines.graph_decode import DECODES  # lazy: loads transformers

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if decode not in DECODES:
            raise ValueError(f"unknown decode {decode!r}; choose one of {', '.join(DECODES)}")
        self.batch_size = int(batch_size)
        self.decode = decode  # "graph": r3v_eval.engines.graph_decode, generate where it cannot
        self._graph_decoder = None
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
    def batches(self, requests: Sequence[GenRequest]) -> list[list[int]]:
        """The requests' indices in generation batches: at most ``batch_size`` each, shortest
        prompts first, requests with and without a picture never mixed."""
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

    def encode(self, reqs: list[GenRequest]):
        """One batch of requests as model inputs (chat template applied) on the engine's device."""
        return self._encode_texts([chat_text(self.processor, r.prompt, r.image is not None)
                                   for r in reqs], reqs)

    def _encode_texts(self, texts: list[str], reqs: list[GenRequest]):
        """Chat texts (with their requests' images) as model inputs on the engine's device."""
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if reqs[0].image is not None:
            kwargs["images"] = [[r.image] for r in reqs]  # one list per sample (Gemma 3 needs it)
        inputs = self.processor(**kwargs)
        dtype = next(self.model.parameters()).dtype
        return {k: (v.to(self.device, dtype=dtype) if v.is_floating_point() else v.to(self.device))
                for k, v in inputs.items()}

    def _gen_kwargs(self, sampling: Sampling) -> dict[str, Any]:
        tok = self.processor.tokenizer
        kw: dict[str, Any] = {
            "max_new_tokens": sampling.max_new_tokens,
            "num_return_sequences": sampling.n,
            "pad_token_id": tok.pad_token_id,
        }
        if sampling.greedy:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            # RowSampler picks every token and leaves one-hot scores; transformers' own
            # sampler then has one choice, and its warpers are switched off (neutral values)
            kw.update(do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
        if sampling.stop:
            kw.update(stop_strings=list(sampling.stop), tokenizer=tok)
        return kw

    def generate(self, requests: Sequence[GenRequest], sampling: Sampling,
                 progress: bool = True) -> list[list[str]]:
        import torch

        results: list[list[str] | None] = [None] * len(requests)
        gen_kwargs = self._gen_kwargs(sampling)
        batches = self.batches(requests)
        bar = tqdm(total=len(requests), desc=f"generate (n={sampling.n})", disable=not progress,
                   unit="prompt")
        seed = sampling.seed if sampling.seed is not None else int(torch.seed() >> 1)
        for idxs in batches:
            reqs = [requests[i] for i in idxs]
            inputs = self.encode(reqs)
            extra: dict[str, Any] = {}
            seeds = None
            if not sampling.greedy:  # rows come out request by request, sample by sample
                seeds = [s for r in reqs for s in sample_seeds(seed, r, sampling.n)]
                extra["logits_processor"] = [RowSampler(sampling, seeds, self.device)]
            new_tokens = None
            if self.decode == "graph":  # None where the graph path cannot serve the batch
                new_tokens = self.graph_decoder().decode(inputs, sampling, seeds, gen_kwargs)
            if new_tokens is None:
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

    def graph_decoder(self):
        """The :class:`~r3v_eval.engines.graph_decode.GraphDecoder` of ``decode="graph"``."""
        if self._graph_decoder is None:
            from r3v_eval.engines.graph_decode import GraphDecoder  # lazy: loads transformers

            self._graph_decoder = GraphDecoder(self.model, self.processor)
        return self._graph_decoder

    def loglikelihood(self, requests: Sequence[GenRequest], replies: Sequence[str],
                      progress: bool = True) -> list[float]:
        """For each request, the log-probability (natural log, summed over tokens) that the
        model answers it with exactly that reply, its end-of-turn marker included: one
        forward pass per batch, the reply scored where it stands in the chat template."""
        import torch

        texts, reply_tokens = scored_replies(self.processor, requests, replies)
        wholes = [GenRequest(t, r.image) for t, r in zip(texts, requests)]
        scores: list[float] = [0.0] * len(requests)
        bar = tqdm(total=len(requests), desc="score replies", disable=not progress, unit="reply")
        for idxs in self.batches(wholes):
            reqs = [wholes[i] for i in idxs]
            inputs = self._encode_texts([r.prompt for r in reqs], reqs)
            with torch.inference_mode():
                logits = self.model(**inputs).logits.float()
            ids = inputs["input_ids"]
            logp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
            for j, i in enumerate(idxs):  # left padding: every reply ends its row
                scores[i] = float(logp[j, logp.shape[1] - reply_tokens[i]:].sum())
            bar.update(len(idxs))
        bar.close()
        return scores



class RowSampler:
    """A transformers logits processor that samples every row's next token itself
    (:func:`~r3v_eval.engines.sampler.gumbel_pick` with each row's own seed) and returns scores
    that allow only the chosen token."""

    def __init__(self, sampling: Sampling, seeds: Sequence[int], device) -> None:
        import torch

        self.temperature, self.top_k, self.top_p = sampling.temperature, sampling.top_k, sampling.top_p
        self.seeds = torch.tensor([int(s) for s in seeds], dtype=torch.int64, device=device)
        self.step = 0

    def __call__(self, input_ids, scores):
        import torch

        if scores.shape[0] != self.seeds.shape[0]:
            raise RuntimeError(f"row sampler: {scores.shape[0]} rows, {self.seeds.shape[0]} seeds")
        token = gumbel_pick(scores, self.temperature, self.top_k, self.top_p,
                            self.seeds.to(scores.device), self.step)
        self.step += 1
        chosen = torch.full_like(scores, float("-inf"))
        return chosen.scatter_(-1, token[:, None], 0.0)
