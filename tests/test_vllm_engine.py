"""The vLLM backend against a stand-in module with vLLM's interface (vLLM cannot be
installed on these CPU machines; see r3v_eval/engines/vllm.py)."""

import json
import sys
import types
from dataclasses import dataclass

import pytest
from PIL import Image

from r3v_eval.engines.base import GenRequest, Sampling


@dataclass
class _Completion:
    text: str


@dataclass
class _RequestOutput:
    outputs: list


class _FakeLLM:
    instances: list = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        _FakeLLM.instances.append(self)

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        self.calls.append((prompts, params, lora_request))
        self.use_tqdm = use_tqdm
        per_prompt = params if isinstance(params, list) else [params] * len(prompts)
        assert len(per_prompt) == len(prompts)
        return [_RequestOutput([_Completion(f" reply {i}.{j} STOP tail") for j in range(p.n)])
                for i, p in enumerate(per_prompt)]


@dataclass
class _FakeSamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 16
    seed: int | None = None
    stop: list | None = None
    prompt_logprobs: int | None = None


@dataclass
class _Logprob:
    logprob: float


@dataclass
class _ScoredOutput:
    prompt_token_ids: list
    prompt_logprobs: list
    outputs: list


class _HFBackedLLM:
    """Answers prompt_logprobs as vLLM documents them (None for the first prompt token, then a
    {token id: Logprob} per token, image placeholders expanded), computed with a real tiny
    checkpoint read by transformers, one prompt at a time."""

    def __init__(self, folder):
        from r3v_eval.engines.hf import HFEngine

        self.hf = HFEngine(str(folder), device="cpu", batch_size=1)
        self.calls = []

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        import torch

        self.calls.append((prompts, params))
        outs = []
        for p in prompts:
            req = GenRequest(p["prompt"], p.get("multi_modal_data", {}).get("image"))
            inputs = self.hf._encode_texts([req.prompt], [req])
            with torch.inference_mode():
                logp = self.hf.model(**inputs).logits[0].float().log_softmax(-1)
            ids = inputs["input_ids"][0].tolist()
            per_token = [None] + [{t: _Logprob(float(logp[i - 1, t]))} for i, t in
                                  enumerate(ids) if i > 0]
            outs.append(_ScoredOutput(ids, per_token, [_Completion("")]))
        return outs


@dataclass
class _FakeLoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


class _FakeProcessor:
    chat_template = "fake"

    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        parts = [c.get("text", "<IMG>") for c in messages[0]["content"]]
        return "USER: " + " ".join(parts) + " ASSISTANT:"


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM = _FakeLLM
    vllm.SamplingParams = _FakeSamplingParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = _FakeLoRARequest
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", request)
    _FakeLLM.instances.clear()
    return vllm


def test_builds_multimodal_requests_and_reads_n_outputs(fake_vllm):
    from r3v_eval.engines.vllm import VLLMEngine

    eng = VLLMEngine("Qwen/Qwen2-VL-2B-Instruct", processor=_FakeProcessor(), max_pixels=200704,
                     tensor_parallel_size=2)
    llm = _FakeLLM.instances[-1]
    assert llm.kwargs["limit_mm_per_prompt"] == {"image": 1}
    assert llm.kwargs["mm_processor_kwargs"] == {"max_pixels": 200704}
    assert llm.kwargs["tensor_parallel_size"] == 2
    assert "enable_lora" not in llm.kwargs

    img = Image.new("RGB", (32, 32))
    reqs = [GenRequest("How many?", img), GenRequest("Text only")]
    sampling = Sampling(n=3, temperature=0.9, top_p=0.95, top_k=50, max_new_tokens=384, seed=7,
                        stop=("STOP",))
    out = eng.generate(reqs, sampling, progress=False)
    assert out == [[f"reply {i}.{j}" for j in range(3)] for i in range(2)]
    prompts, per_prompt, lora = llm.calls[0]
    assert prompts[0] == {"prompt": "USER: <IMG> How many? ASSISTANT:",
                          "multi_modal_data": {"image": img}}
    assert prompts[1] == {"prompt": "USER: Text only ASSISTANT:"}
    for params in per_prompt:
        assert (params.n, params.temperature, params.top_p, params.top_k) == (3, 0.9, 0.95, 50)
        assert params.max_tokens == 384  # never vLLM's default of 16
        assert params.stop == ["STOP"]
    assert lora is None
    # each request its own seed, from the run's seed and the request's content only
    from r3v_eval.engines.base import request_seed

    assert [p.seed for p in per_prompt] == [request_seed(7, r) for r in reqs]
    assert per_prompt[0].seed != per_prompt[1].seed
    eng.generate(reqs[::-1], sampling, progress=False)
    assert [p.seed for p in llm.calls[1][1]] == [request_seed(7, r) for r in reqs[::-1]]


def test_greedy_maps_to_temperature_zero_without_top_k(fake_vllm):
    from r3v_eval.engines.vllm import VLLMEngine

    eng = VLLMEngine("m", processor=_FakeProcessor())
    params = eng.sampling_params(Sampling(max_new_tokens=64))
    assert (params.n, params.temperature, params.top_k, params.top_p, params.max_tokens) == \
        (1, 0.0, -1, 1.0, 64)


def test_lora_adapter_enables_lora_with_an_accepted_rank(fake_vllm, tmp_path):
    from r3v_eval.engines.vllm import VLLMEngine

    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 48}))
    eng = VLLMEngine("m", processor=_FakeProcessor(), adapter=str(tmp_path))
    llm = _FakeLLM.instances[-1]
    assert llm.kwargs["enable_lora"] is True and llm.kwargs["max_lora_rank"] == 64
    eng.generate([GenRequest("q")], Sampling(max_new_tokens=8), progress=False)
    assert llm.calls[0][2] == _FakeLoRARequest("r3v_adapter", 1, str(tmp_path))


def test_adapter_without_config_is_a_clear_error(fake_vllm, tmp_path):
    from r3v_eval.engines.vllm import VLLMEngine

    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        VLLMEngine("m", processor=_FakeProcessor(), adapter=str(tmp_path))


def test_missing_vllm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    from r3v_eval.engines import load_engine

    with pytest.raises(ImportError, match="backend=hf"):
        load_engine("vllm", "m")


def test_unknown_backend():
    from r3v_eval.engines import load_engine

    with pytest.raises(ValueError, match="unknown backend"):
        load_engine("tgi", "m")


def test_loglikelihood_reads_the_replys_prompt_logprobs_as_the_hf_engine_scores(fake_vllm,
                                                                               tiny_qwen):
    from r3v_eval.engines.hf import HFEngine
    from r3v_eval.engines.vllm import VLLMEngine

    hf = HFEngine(str(tiny_qwen), device="cpu", batch_size=2)
    eng = VLLMEngine(str(tiny_qwen), processor=hf.processor)
    eng.llm = _HFBackedLLM(tiny_qwen)
    img = Image.new("RGB", (56, 56), "red")
    reqs = [GenRequest("How many red squares are there?", img), GenRequest("What is 5 - 2?"),
            GenRequest("How many red squares are there?", img)]
    replies = ["Answer:\n7", "5 - 2 = 3.", "Answer:\n2"]
    scores = eng.loglikelihood(reqs, replies, progress=False)
    assert scores == pytest.approx(hf.loglikelihood(reqs, replies, progress=False), abs=1e-4)
    assert scores[0] != pytest.approx(scores[2])  # the reply is what is scored
    (prompts, params), = eng.llm.calls
    assert params.prompt_logprobs == 0 and params.max_tokens == 1 and params.temperature == 0.0
    assert prompts[0]["multi_modal_data"] == {"image": img} and "multi_modal_data" not in prompts[1]
    assert prompts[1]["prompt"].endswith("5 - 2 = 3.<|im_end|>")


def test_loglikelihood_refuses_outputs_without_prompt_logprobs(fake_vllm):
    from r3v_eval.engines.vllm import _reply_logprob

    with pytest.raises(RuntimeError, match="no per-token prompt log-probs"):
        _reply_logprob(_ScoredOutput([1, 2, 3], None, []), 1)
    with pytest.raises(RuntimeError, match="cannot be the end"):
        _reply_logprob(_ScoredOutput([1, 2], [None, {2: _Logprob(-1.0)}], []), 2)
    with pytest.raises(RuntimeError, match="lack prompt token 2"):
        _reply_logprob(_ScoredOutput([1, 2, 3], [None, {2: _Logprob(-1.0)}, {9: _Logprob(-2.0)}],
                                     []), 2)
    assert _reply_logprob(_ScoredOutput([1, 2, 3], [None, {2: _Logprob(-1.0)},
                                                    {3: _Logprob(-2.5)}], []), 2) == -3.5


def test_progress_bar_off_under_tqdm_disable_and_close_is_idempotent(fake_vllm, monkeypatch):
    """vLLM 0.32's bar divides by its elapsed time, 0 under TQDM_DISABLE=1 (ZeroDivisionError)."""
    from r3v_eval.engines.vllm import VLLMEngine

    eng = VLLMEngine("m", processor=_FakeProcessor())
    llm = _FakeLLM.instances[-1]
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    eng.generate([GenRequest("q")], Sampling(max_new_tokens=8))
    assert llm.use_tqdm is True
    monkeypatch.setenv("TQDM_DISABLE", "1")
    eng.generate([GenRequest("q")], Sampling(max_new_tokens=8))
    assert llm.use_tqdm is False
    eng.close()
    eng.close()
    assert not hasattr(eng, "llm")
