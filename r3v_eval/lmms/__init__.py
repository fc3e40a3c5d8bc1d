"""lmms-eval integration: the ``r3v_cot`` / ``r3v_majority`` / ``r3v_select`` models and the
task class behind the ``r3v_*`` task YAMLs (shipped in the top-level ``tasks`` folder).

lmms-eval finds the models through the entry point declared in ``pyproject.toml``::

    [project.entry-points."lmms_eval.models"]
    r3v = "r3v_eval.lmms:manifests"

This module stays import-light: lmms-eval loads every entry point each time it starts.
"""

from __future__ import annotations

from pathlib import Path

MODEL_CLASSES = {
    "r3v_cot": "r3v_eval.lmms.models.R3VCoT",
    "r3v_majority": "r3v_eval.lmms.models.R3VMajority",
    "r3v_select": "r3v_eval.lmms.models.R3VSelect",
}


def manifests():
    """The ``ModelManifest``s of the three wrappers (lmms-eval's ``lmms_eval.models`` group)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=name, simple_class_path=path)
            for name, path in MODEL_CLASSES.items()]


def tasks_dir() -> Path:
    """The folder of the ``r3v_*`` task YAMLs (pass it to lmms-eval's ``--include_path``).

    ``tasks`` is installed next to ``r3v_eval`` (same wheel, or the same source checkout),
    so it is found by location, not by importing a module as generic as ``tasks``."""
    here = Path(__file__).resolve().parents[2] / "tasks"
    if (here / "r3v_shapes.yaml").is_file():
        return here
    raise FileNotFoundError(f"the r3v task YAMLs are missing: expected {here}/r3v_shapes.yaml "
                            "(is the r3v package installed completely?)")
