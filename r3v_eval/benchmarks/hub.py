"""Reading a benchmark's public Hugging Face data set, or a local copy laid out like it.

Every hub load goes through :func:`load_split`, one ``datasets.load_dataset`` call. When
``R3V_HUB_MIRROR`` names a folder, the repository id ``owner/name`` is read from
``$R3V_HUB_MIRROR/owner/name`` instead (a snapshot as ``hf download --repo-type dataset
owner/name --local-dir $R3V_HUB_MIRROR/owner/name`` writes it), through the very same call:
the way to run offline, and the way the tests prove each loader on files laid out as the hub
lays them out.

Picture columns come back undecoded (``{"bytes", "path"}`` cells): each loader opens them
through :func:`r3v_eval.benchmarks.images.open_image`, so one unreadable picture is a counted,
named skip instead of an exception from inside ``datasets`` that ends the whole load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from r3v_eval.benchmarks.errors import DataError

MIRROR_ENV = "R3V_HUB_MIRROR"


def repo_path(repo_id: str) -> str:
    """What ``load_dataset`` is given for ``repo_id``: the id itself, or its mirror folder."""
    root = os.environ.get(MIRROR_ENV)
    if not root:
        return repo_id
    folder = Path(root) / repo_id
    if not folder.is_dir():
        raise DataError(
            f"{MIRROR_ENV}={root}: no local copy of {repo_id} at {folder} (write one with "
            f"`hf download --repo-type dataset {repo_id} --local-dir {folder}`, or unset "
            f"{MIRROR_ENV} to read the hub)")
    return str(folder)


def load_split(repo_id: str, config: str | None, split: str, **kwargs: Any):
    """``datasets.load_dataset(repo, config, split=split, **kwargs)`` with picture columns left
    undecoded."""
    import datasets  # heavy import, only when really loading

    try:
        ds = datasets.load_dataset(repo_path(repo_id), config, split=split, **kwargs)
    except ConnectionError as exc:  # no network, or HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"cannot read the hub data set {repo_id} ({reason}); without network, set "
            f"data.source to a local copy in the canonical schema, or {MIRROR_ENV} to a "
            "folder of hub snapshots") from None
    return undecoded_images(ds)


def undecoded_images(ds):
    """``ds`` with every top-level ``datasets.Image`` column switched to ``decode=False``."""
    import datasets

    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image) and feature.decode:
            ds = ds.cast_column(name, datasets.Image(decode=False))
    return ds
