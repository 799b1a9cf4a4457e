"""Where searchbert keeps what it makes once per machine (ONNX exports, hashes of model weights): a module of its
own at the bottom, so the hub client and the ONNX runner share it without importing each other."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$SEARCHBERT_CACHE, else ~/.cache/searchbert."""
    return Path(os.environ.get("SEARCHBERT_CACHE", "~/.cache/searchbert")).expanduser()
