"""Where a model spec points, checked before anything loads it, for recipes
(``model.pretrained``) and the lmms-eval wrappers (``--model_args pretrained=``) alike:

* ``shipped:<name>``: a model the project ships in ``r3v_train/demo/assets/<name>``, every
  file checked against the folder's ``SHA256SUMS`` (:func:`shipped_model`);
* a local model folder (it must hold a ``config.json``);
* a hub id ``owner/name`` (offline: one that is in the local Hugging Face cache).

A wrong one is a :class:`ModelSourceError` (one line naming it and what to do) instead of
transformers' "Repo id must be in the form ..." from deep inside a load. The shipped models'
folder is found from where the ``r3v_train`` package is installed, without importing it
(r3v_eval never imports r3v_train)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from pathlib import Path

from r3v_eval.errors import R3VError

CHECKSUMS = "SHA256SUMS"
SHIPPED_PREFIX = "shipped:"
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")


class ModelSourceError(R3VError):
    """A model spec that names no loadable model (no such folder, an unknown shipped model, a
    changed shipped file, a hub id that offline mode cannot reach)."""


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids reaching the hub."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shipped_assets() -> Path:
    """The folder of the shipped models (``<r3v_train>/demo/assets``), located from the
    installed ``r3v_train`` package without importing it."""
    spec = importlib.util.find_spec("r3v_train")
    if spec is None or not spec.origin:
        raise ModelSourceError("shipped models: the r3v_train package is not installed "
                               "(pip install the r3v project)")
    return Path(spec.origin).resolve().parent / "demo" / "assets"


def shipped_model(spec: str, assets: Path | None = None, *, what: str = "model.pretrained") -> Path:
    """The folder of ``shipped:<name>`` after checking every file against its ``SHA256SUMS``
    (a missing, changed or unlisted file is an error naming it)."""
    assets = shipped_assets() if assets is None else assets
    name = spec.removeprefix(SHIPPED_PREFIX)
    folder = assets / name
    sums = folder / CHECKSUMS
    if not name or not sums.is_file():
        known = sorted(p.parent.name for p in assets.glob(f"*/{CHECKSUMS}"))
        raise ModelSourceError(f"{what}: {spec!r} is not a shipped model (known: "
                               f"{', '.join(SHIPPED_PREFIX + k for k in known) or 'none'}); "
                               "`r3v pretrain` builds shipped:demo_base")
    listed = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, file = line.partition("  ")
        listed[file] = digest
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != CHECKSUMS}
    for file in sorted(present | set(listed)):
        if file not in present:
            raise ModelSourceError(f"{spec}: {folder / file} is missing (listed in {sums})")
        if file not in listed:
            raise ModelSourceError(f"{spec}: {folder / file} is not listed in {sums}")
        if sha256(folder / file) != listed[file]:
            raise ModelSourceError(f"{spec}: {folder / file} does not match its SHA-256 in "
                                   f"{sums}; restore it from git or rebuild it with `r3v pretrain`")
    return folder


def check_pretrained(spec: str, *, what: str = "model.pretrained") -> str:
    """``spec`` (a local folder or a hub id) when it can be loaded; else a one-line error
    whose message starts with ``what``."""
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelSourceError(f"{what}: {spec} has no config.json; give a model folder "
                                   "(as save_pretrained writes it) or a hub id")
        return spec
    if spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or not _HUB_ID.fullmatch(spec):
        raise ModelSourceError(f"{what}: no such model folder: {spec} (nor a hub id "
                               "owner/name); give a local model folder (as save_pretrained "
                               "writes it), a hub id or shipped:<name>")
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache  # light, and only for a hub id

        if not isinstance(try_to_load_from_cache(spec, "config.json"), str):
            raise ModelSourceError(f"{what}: {spec} is neither a local folder nor in the "
                                   "Hugging Face cache, and HF_HUB_OFFLINE is set; download "
                                   f"it first (hf download {spec}) or give a local folder")
    return spec


def resolve_model(spec: str, *, what: str = "model.pretrained") -> str:
    """The loadable form of ``spec``: a shipped model's checked folder, or the folder / hub id
    itself once :func:`check_pretrained` accepts it."""
    if spec.startswith(SHIPPED_PREFIX):
        return str(shipped_model(spec, what=what))
    return check_pretrained(spec, what=what)
