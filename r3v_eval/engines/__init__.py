"""Generation engines: ``hf`` (transformers generate) and ``vllm`` (GPU only, lazy)."""

from r3v_eval.engines.base import GREEDY, Engine, GenRequest, Sampling, cut_at_stop  # noqa: F401

BACKENDS = ("hf", "vllm")


def load_engine(backend: str, pretrained: str, **kwargs) -> Engine:
    """Create an engine by backend name; kwargs are the backend's own options."""
    if backend == "hf":
        from r3v_eval.engines.hf import HFEngine  # heavy (torch): only the backend asked for

        return HFEngine(pretrained, **kwargs)
    if backend == "vllm":
        from r3v_eval.engines.vllm import VLLMEngine  # optional (vllm): only when asked for

        return VLLMEngine(pretrained, **kwargs)
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
