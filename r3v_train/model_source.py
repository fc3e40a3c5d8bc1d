"""Where ``model.pretrained`` points, checked before anything loads it: a local model folder,
or a hub id that can be reached (offline: one that is in the local Hugging Face cache). A wrong
one is a :class:`~r3v_train.recipe_files.ConfigError` naming it, instead of transformers'
"Repo id must be in the form ..." from deep inside a load."""

from __future__ import annotations

import os
import re
from pathlib import Path

from r3v_train.recipe_files import ConfigError

_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids reaching the hub."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_pretrained(spec: str) -> str:
    """``spec`` (a local folder or a hub id) when it can be loaded; else a one-line error."""
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.pretrained: {spec} has no config.json; give a model "
                              "folder (as save_pretrained writes it) or a hub id")
        return spec
    if spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or not _HUB_ID.fullmatch(spec):
        raise ConfigError(f"model.pretrained: no such model folder: {spec} (nor a hub id "
                          "owner/name)")
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache  # light, and only for a hub id

        if not isinstance(try_to_load_from_cache(spec, "config.json"), str):
            raise ConfigError(f"model.pretrained: {spec} is neither a local folder nor in the "
                              "Hugging Face cache, and HF_HUB_OFFLINE is set; download it "
                              f"first (hf download {spec}) or give a local folder")
    return spec
