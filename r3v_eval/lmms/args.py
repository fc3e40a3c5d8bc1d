"""``--model_args`` of the lmms-eval wrappers: the known keys, their types, their checks.

lmms-eval parses ``key=value,...`` with ``simple_parse_args_string``, so values arrive as
``bool`` / ``int`` / ``float`` / ``str`` (``"2"`` -> 2, ``"0.9"`` -> 0.9, ``"true"`` -> True),
and adds ``batch_size`` (a string when given on the command line, the int 1 otherwise),
``device`` and ``max_batch_size`` from its own flags. :func:`parse_model_args` converts and
validates all of them *before* any model loads; a wrong key or value is a ``ValueError`` that
names the model and the key. Last, ``pretrained`` is resolved as recipes resolve
``model.pretrained`` (:func:`r3v_eval.model_source.resolve_model`): ``shipped:<name>`` becomes
the shipped folder (checksums verified), and a missing folder is one line naming it.

This module imports nothing heavy, so the checks are cheap to test.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from r3v_eval.engines import BACKENDS
from r3v_eval.engines.base import DTYPES, PAPER_SAMPLING
from r3v_eval.model_source import resolve_model
from r3v_eval.prompts import PROMPT_STYLES, SELECT_CHOICES, SELECT_TARGETS

#: Keys that only the vLLM backend understands.
VLLM_ONLY = ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len")
#: Keys of test-time selection (``r3v_select`` only).
SELECT_KEYS = ("select_max_new_tokens", "select_choice", "select_target")
#: Keys that configure sampling (unused by the greedy ``r3v_cot``).
SAMPLING_KEYS = ("n", "temperature", "top_p", "top_k", "seed")


@dataclass
class ModelArgs:
    """Validated settings of one wrapper (defaults: the paper's test-time settings)."""

    pretrained: str
    backend: str = "hf"
    decode: str = "generate"  # hf only: generate | graph (r3v_eval.engines.graph_decode)
    prompt_style: str = "qwen"
    max_new_tokens: int = PAPER_SAMPLING.max_new_tokens
    n: int = PAPER_SAMPLING.n
    temperature: float = PAPER_SAMPLING.temperature
    top_p: float = PAPER_SAMPLING.top_p
    top_k: int = PAPER_SAMPLING.top_k
    seed: int = 0
    select_max_new_tokens: int = 64
    select_choice: str = "generate"
    select_target: str = "answer"
    adapter: str | None = None
    dtype: str = "auto"
    device: str | None = None  # None: the backend's default ("auto" for hf)
    max_pixels: int | None = None
    min_pixels: int | None = None
    batch_size: int = 1
    tensor_parallel_size: int | None = None
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    #: the keys the user actually passed (for warnings about unused ones)
    given: tuple[str, ...] = ()

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`r3v_eval.engines.load_engine` (minus ``pretrained``)."""
        kw: dict[str, Any] = {"dtype": self.dtype, "batch_size": self.batch_size}
        for key in ("adapter", "device", "max_pixels", "min_pixels"):
            value = getattr(self, key)
            if value is not None:
                kw[key] = value
        if self.decode != "generate":
            kw["decode"] = self.decode
        if self.backend == "vllm":
            kw["seed"] = self.seed
            for key in VLLM_ONLY:
                value = getattr(self, key)
                if value is not None:
                    kw[key] = value
        return kw


# ---------------------------------------------------------------- converters
def _none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null"))


def _as_int(value: Any, minimum: int) -> int:
    if isinstance(value, bool):
        raise TypeError("expected an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("expected an integer")
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError("expected an integer") from None
    if not isinstance(value, int):
        raise TypeError("expected an integer")
    if value < minimum:
        raise ValueError(f"must be >= {minimum}")
    return value


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("expected a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number") from None


def _int(minimum: int) -> Callable[[Any], int]:
    return lambda v: _as_int(v, minimum)


def _optional(conv: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if _none(v) else conv(v)


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def conv(value: Any) -> str:
        text = str(value).strip()
        if text not in options:
            raise ValueError(f"choose one of {', '.join(options)}")
        return text
    return conv


def _text(value: Any) -> str:
    if isinstance(value, bool):
        raise TypeError("expected a string")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _temperature(value: Any) -> float:
    t = _as_float(value)
    if t <= 0:
        raise ValueError("must be > 0 (candidates are sampled; use r3v_cot for greedy decoding)")
    return t


def _top_p(value: Any) -> float:
    p = _as_float(value)
    if not 0 < p <= 1:
        raise ValueError("must be in (0, 1]")
    return p


def _fraction(value: Any) -> float:
    f = _as_float(value)
    if not 0 < f <= 1:
        raise ValueError("must be in (0, 1]")
    return f


def _batch_size(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower().startswith("auto"):
        raise ValueError("'auto' is not supported; give a number, e.g. --batch_size 8")
    return _as_int(value, 1)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "pretrained": _text,
    "backend": _choice(BACKENDS),
    "decode": _choice(("generate", "graph")),
    "prompt_style": _choice(PROMPT_STYLES),
    "max_new_tokens": _int(1),
    "n": _int(1),
    "temperature": _temperature,
    "top_p": _top_p,
    "top_k": _int(0),
    "seed": _int(0),
    "select_max_new_tokens": _int(1),
    "select_choice": _choice(SELECT_CHOICES),
    "select_target": _choice(SELECT_TARGETS),
    "adapter": _optional(_text),
    "dtype": _choice(DTYPES),
    "device": _optional(_text),
    "max_pixels": _optional(_int(1)),
    "min_pixels": _optional(_int(1)),
    "batch_size": _batch_size,
    "tensor_parallel_size": _optional(_int(1)),
    "gpu_memory_utilization": _optional(_fraction),
    "max_model_len": _optional(_int(1)),
}
#: Passed by lmms-eval from ``--max_batch_size``; accepted and ignored.
_IGNORED = ("max_batch_size",)


def known_keys(model_name: str) -> list[str]:
    keys = [f.name for f in fields(ModelArgs) if f.name != "given"]
    if model_name != "r3v_select":
        for key in SELECT_KEYS:
            keys.remove(key)
    return keys


def parse_model_args(model_name: str, raw: dict[str, Any]) -> ModelArgs:
    """Convert and validate ``raw`` (what lmms-eval passes to the constructor)."""
    known = known_keys(model_name)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _IGNORED:
            continue
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"{model_name}: unknown model_args key {key!r}{did_you_mean}; "
                             f"known: {', '.join(known)}")
        if key == "batch_size" and value is None:
            continue
        try:
            values[key] = _CONVERTERS[key](value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{model_name}: model_args {key}={value!r}: {exc}") from None
    if "pretrained" not in values:
        raise ValueError(f"{model_name}: model_args needs pretrained=<hub id or local folder>, "
                         f"e.g. --model_args pretrained=Qwen/Qwen2-VL-2B-Instruct")
    backend = values.get("backend", "hf")
    if backend != "vllm":
        for key in VLLM_ONLY:
            if values.get(key) is not None:
                raise ValueError(f"{model_name}: model_args {key} applies to backend=vllm only "
                                 f"(got backend={backend})")
    if backend != "hf" and values.get("decode", "generate") != "generate":
        raise ValueError(f"{model_name}: model_args decode={values['decode']} applies to "
                         f"backend=hf only (got backend={backend})")
    args = ModelArgs(**values, given=tuple(raw))
    if args.min_pixels is not None and args.max_pixels is not None and args.min_pixels > args.max_pixels:
        raise ValueError(f"{model_name}: model_args min_pixels={args.min_pixels} is larger than "
                         f"max_pixels={args.max_pixels}")
    # a ModelSourceError (a ValueError): no such folder, an unknown or changed shipped model
    args.pretrained = resolve_model(args.pretrained, what=f"{model_name}: model_args pretrained")
    return args
