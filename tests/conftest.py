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
