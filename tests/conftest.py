import os
import sys
from pathlib import Path

# no test may reach a model or data set hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

import pytest


def _tiny_checkpoint(arch):
    """A session fixture: a tiny random-weight checkpoint of ``arch``, built once."""
    @pytest.fixture(scope="session")
    def fixture(tmp_path_factory):
        from r3v_train.tiny import build_tiny_model

        return build_tiny_model(arch, tmp_path_factory.mktemp(f"tiny_{arch}"), size="tiny", seed=0)

    return fixture


tiny_qwen = _tiny_checkpoint("qwen2_vl")
tiny_qwen25 = _tiny_checkpoint("qwen2_5_vl")
tiny_qwen3 = _tiny_checkpoint("qwen3_vl")
tiny_gemma3 = _tiny_checkpoint("gemma3")
tiny_llava = _tiny_checkpoint("llava")


# ------------------------------------------------------------------ tests against the real vLLM
ROOT = Path(__file__).resolve().parents[1]


def vllm_venv() -> Path:
    """The vLLM environment (``bash scripts/setup-vllm.sh`` builds it)."""
    return Path(os.environ.get("R3V_VLLM_VENV", ROOT / ".venv-vllm")).resolve()


def _vllm_skip_reason() -> str | None:
    """Why the ``vllm_real`` tests cannot run in this interpreter (None: they can)."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        return None
    venv = vllm_venv()
    failed = venv.parent / (venv.name + ".failed")  # written by .ci/run when set-up failed
    if failed.is_file():
        return ("vLLM tests SKIPPED: the vLLM environment could not be set up: "
                + failed.read_text().strip()[-400:])
    if not (venv / "bin" / "python").is_file():
        return (f"vLLM tests: {venv} is absent (build it with bash scripts/setup-vllm.sh; "
                ".ci/run does)")
    return (f"vLLM tests run inside the vLLM environment: {venv}/bin/python -m pytest -m "
            "vllm_real (.ci/run does)")


def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if item.get_closest_marker("vllm_real")]
    if not marked:
        return
    reason = _vllm_skip_reason()
    if reason is None:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # vLLM's default takes most RAM
        return
    for item in marked:
        item.add_marker(pytest.mark.skip(reason=reason))
