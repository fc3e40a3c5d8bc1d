"""The engine interface shared by evaluation and by training-time sampling.

An engine turns a list of :class:`GenRequest` (user-turn text + optional image) into, for
each request, ``n`` completions. Greedy decoding is ``temperature == 0``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence


@dataclass(frozen=True)
class Sampling:
    """Decoding settings. ``temperature == 0`` means greedy (then ``n`` must be 1)."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k filtering
    max_new_tokens: int = 384
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.temperature == 0 and self.n > 1:
            raise ValueError("greedy decoding (temperature=0) gives identical samples: use n=1 "
                             "or a temperature > 0")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


#: the paper's sampling: 3 samples at temperature 0.9, top-p 0.95, top-k 50, 384 new tokens
#: (training-time bootstrap and test-time majority / select alike)
PAPER_SAMPLING = Sampling(n=3, temperature=0.9, top_p=0.95, top_k=50, max_new_tokens=384)
#: model weight dtypes the engines load ("auto": float32 on CPU, bfloat16 on a GPU that has it)
DTYPES = ("auto", "float32", "bfloat16", "float16")


GREEDY = Sampling()


@dataclass
class GenRequest:
    prompt: str
    image: Any = None  # a PIL image or None
    meta: dict[str, Any] = field(default_factory=dict)


def request_seed(seed: int, request: GenRequest) -> int:
    """The sampling seed of one request: a hash of the run's ``seed`` and the request's content
    (prompt text and picture), so that a request's samples do not depend on which requests
    share its batch, its process or its run: the same figures at any batch size, under any
    number of ``accelerate`` processes, and on re-evaluation."""
    digest = hashlib.sha256(f"{int(seed)}\x00{request.prompt}".encode("utf-8"))
    image = request.image
    if image is not None:
        digest.update(f"\x00{getattr(image, 'mode', '')}{getattr(image, 'size', '')}".encode())
        digest.update(image.tobytes() if hasattr(image, "tobytes") else str(image).encode())
    return int.from_bytes(digest.digest()[:8], "little") >> 1  # 63 bits: a valid torch seed


def sample_seeds(seed: int, request: GenRequest, n: int) -> list[int]:
    """One seed per sample of ``request`` (sample ``j`` of ``n``)."""
    base = request_seed(seed, request)
    return [(base + j * 0x9E3779B97F4A7C15) % (1 << 63) for j in range(n)]


class Engine(Protocol):
    """What every backend provides."""

    def generate(self, requests: Sequence[GenRequest], sampling: Sampling,
                 progress: bool = True) -> list[list[str]]:
        """For each request, ``sampling.n`` completions (decoded text, stop strings cut)."""
        ...


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Truncate a completion at the first occurrence of any stop string."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]
