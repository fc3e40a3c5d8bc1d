"""Requests and sampling settings shared by the tests against the real vLLM and the script they
run in a second process (tests/vllm_sample.py): both sides must build byte-identical requests."""

from __future__ import annotations

import numpy as np
from PIL import Image

from r3v_eval.engines.base import GenRequest, Sampling

#: the families the tests run on the real vLLM (every Qwen family vLLM 0.32 runs at tiny size)
FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
#: sampling of the seeding tests: the paper's filters, a short reply
SEEDED = Sampling(n=3, temperature=1.0, top_p=0.95, top_k=50, max_new_tokens=12, seed=1234)


def picture(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def requests() -> list[GenRequest]:
    """Pictures of two sizes (two image-token counts), the same question on two pictures, and
    a text-only question."""
    return [
        GenRequest("How many red squares are there?", picture(0, (112, 112))),
        GenRequest("What is 5 - 2? Think step by step.", None),
        GenRequest("How many red squares are there?", picture(1, (84, 140))),
        GenRequest("Which shape is left of the blue circle?", picture(2, (112, 112))),
    ]
