"""Where ``model.pretrained`` points, checked before anything loads it: the checks of
:mod:`r3v_eval.model_source` (a local model folder, or a hub id that can be reached; offline:
one that is in the local Hugging Face cache), a wrong one reported as a
:class:`~r3v_train.recipe_files.ConfigError` naming it."""

from __future__ import annotations

from r3v_eval import model_source
from r3v_eval.model_source import hub_offline
from r3v_train.recipe_files import ConfigError

__all__ = ["check_pretrained", "hub_offline"]


def check_pretrained(spec: str) -> str:
    """``spec`` (a local folder or a hub id) when it can be loaded; else a one-line error."""
    try:
        return model_source.check_pretrained(spec, what="model.pretrained")
    except model_source.ModelSourceError as exc:
        raise ConfigError(str(exc)) from None
