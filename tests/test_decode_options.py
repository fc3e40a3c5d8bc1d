"""``decode: graph`` as an option (issue 29): in recipes beside ``sampling.backend``, in the
lmms-eval wrappers' ``--model_args``, and what reaches the engine. Cheap: nothing loads."""

import pytest

from r3v_eval.lmms.args import parse_model_args
from r3v_train.config import ConfigError, SamplingConfig, config_from_dict


def _config(sampling):
    return config_from_dict({"model": {"pretrained": "m"}, "data": {"benchmark": "shapes"},
                             "sampling": sampling})


def test_recipe_sampling_decode():
    assert SamplingConfig().decode == "generate"
    assert _config({"decode": "graph"}).sampling.decode == "graph"
    with pytest.raises(ConfigError, match="sampling.decode"):
        _config({"decode": "cuda"})
    with pytest.raises(ConfigError, match="backend hf only"):
        _config({"backend": "vllm", "decode": "graph"})


def test_model_args_decode(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # "m": a hub id, passed through when online
    assert parse_model_args("r3v_majority", {"pretrained": "m"}).engine_kwargs().get("decode") is None
    args = parse_model_args("r3v_majority", {"pretrained": "m", "decode": "graph"})
    assert args.decode == "graph" and args.engine_kwargs()["decode"] == "graph"
    with pytest.raises(ValueError, match="decode='fast'"):
        parse_model_args("r3v_cot", {"pretrained": "m", "decode": "fast"})
    with pytest.raises(ValueError, match="backend=hf only"):
        parse_model_args("r3v_cot", {"pretrained": "m", "backend": "vllm", "decode": "graph"})
