"""What the project ships for the demo: its recipes (``recipes/demo/``, found by name through
:mod:`r3v_train.recipe_library`, in a checkout or an installed wheel) and its models
(``model.pretrained: shipped:<name>``) in ``assets/``, each model folder sealed with the
SHA-256 of every file (:func:`seal`) and checked on every use (:func:`shipped_model`, whose
lookup lives in :mod:`r3v_eval.model_source` so ``--model_args pretrained=shipped:<name>``
resolves the same way)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from r3v_eval import model_source, run_files
from r3v_eval.model_source import CHECKSUMS, SHIPPED_PREFIX, sha256
from r3v_train.config import ConfigError

__all__ = ["ASSETS", "CHECKSUMS", "DEMO_BASE", "DEMO_RECIPES", "PRETRAIN_RECIPE", "SHIPPED_PREFIX",
           "export_base", "seal", "sha256", "shipped_model"]

#: the folder of the models the project ships (``shipped:<name>``)
ASSETS = Path(__file__).resolve().parent / "assets"
#: the demo's base model (``shipped:demo_base``), written by ``r3v pretrain``
DEMO_BASE = ASSETS / "demo_base"
#: the folder of the demo's shipped recipes (their names are ``demo/<stage>``)
DEMO_RECIPES = "demo"
#: the recipe of ``r3v pretrain``, by name (the shipped base, rebuilt by ``r3v demo --pretrain``)
PRETRAIN_RECIPE = "demo/pretrain"


def export_base(model_dir: str | Path, dest: str | Path, *, dtype: str = "bfloat16",
                info: dict[str, Any] | None = None) -> Path:
    """Write the model of ``model_dir`` to ``dest`` as the project ships it: weights in
    ``dtype`` (safetensors), config, processor and tokenizer files, ``info`` as
    ``pretrain.json``, and a ``SHA256SUMS`` of every file (checked by :func:`shipped_model`).
    ``dest`` is replaced."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32)
    model.to(getattr(torch, dtype)).save_pretrained(tmp, safe_serialization=True)
    AutoProcessor.from_pretrained(str(model_dir)).save_pretrained(tmp)
    seal(tmp, info)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def seal(folder: Path, info: dict[str, Any] | None = None) -> None:
    """Write ``info`` as ``pretrain.json`` (when given) and the ``SHA256SUMS`` of every file."""
    if info is not None:
        (folder / run_files.PRETRAIN_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != CHECKSUMS)
    (folder / CHECKSUMS).write_text("".join(f"{sha256(p)}  {p.name}\n" for p in files),
                                    encoding="utf-8")


def shipped_model(spec: str, assets: Path = ASSETS) -> Path:
    """The folder of ``shipped:<name>`` after checking every file against its ``SHA256SUMS``
    (:func:`r3v_eval.model_source.shipped_model`; a missing, changed or unlisted file is an
    error naming it)."""
    try:
        return model_source.shipped_model(spec, assets)
    except model_source.ModelSourceError as exc:
        raise ConfigError(str(exc)) from None
