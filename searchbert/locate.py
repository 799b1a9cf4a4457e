"""Where an index is, found without loading anything heavy (the query path asks before it knows whether a running
server will answer)."""

from __future__ import annotations

import os
from pathlib import Path

MANIFEST = "manifest.json"
DEFAULT_INDEX = Path("indexes") / "default"


def locate_index(explicit: str | os.PathLike[str] | None = None, *, start: Path | None = None) -> Path:
    """Where the index is: the given path, else $SEARCHBERT_INDEX, else indexes/default in the nearest folder upward
    (from the current one) that has it, as git finds .git; if none has, ./indexes/default."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("SEARCHBERT_INDEX"):
        return Path(os.environ["SEARCHBERT_INDEX"]).expanduser()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / DEFAULT_INDEX / MANIFEST).exists():
            return folder / DEFAULT_INDEX
    return here / DEFAULT_INDEX
