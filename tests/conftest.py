import os
import sys
from pathlib import Path

# no test may reach a model or data set hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

import pytest


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory):
    """A tiny random-weight Qwen2-VL checkpoint, built once per test session."""
    from r3v_train.tiny import build_tiny_model

    return build_tiny_model("qwen2_vl", tmp_path_factory.mktemp("tiny_qwen"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory):
    from r3v_train.tiny import build_tiny_model

    return build_tiny_model("llava", tmp_path_factory.mktemp("tiny_llava"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen25(tmp_path_factory):
    from r3v_train.tiny import build_tiny_model

    return build_tiny_model("qwen2_5_vl", tmp_path_factory.mktemp("tiny_qwen25"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory):
    from r3v_train.tiny import build_tiny_model

    return build_tiny_model("qwen3_vl", tmp_path_factory.mktemp("tiny_qwen3"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_gemma3(tmp_path_factory):
    from r3v_train.tiny import build_tiny_model

    return build_tiny_model("gemma3", tmp_path_factory.mktemp("tiny_gemma3"), size="tiny", seed=0)
