"""Output folders of the commands (``--out``): made if missing, refused with one line naming the
flag and the reason when they cannot be written (or, where a command needs it, are not empty)."""

from __future__ import annotations

import os
from pathlib import Path


def writable_folder(path: Path, flag: str, *, empty: bool = False) -> None:
    """Create ``path`` (a folder an output goes to), or an R3VError naming it and why not.
    ``empty``: refuse a folder that already holds something (an export never mixes with old files)."""
    # lazy: imported when a command runs (`r3v --help` stays light)
    from r3v_eval.errors import R3VError

    if empty and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise R3VError(f"{flag} {path}: exists and is not an empty folder; choose a new folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise PermissionError(13, "not writable")
    except OSError as exc:
        raise R3VError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
