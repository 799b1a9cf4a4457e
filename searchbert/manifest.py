"""manifest.json: what an index was built with, so it is never mixed with another model or chunking."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .chunking import ChunkSettings
from .errors import IncompatibleIndex, IndexCorrupt
from .vectors import atomic_write

FORMAT_VERSION = 1


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Manifest:
    """The settings an index was built with and when."""

    model: dict[str, Any]
    chunking: ChunkSettings
    vector_index: dict[str, Any] = field(default_factory=lambda: {"type": "flat-ip"})
    #: BM25's k1 and b: an index's own, since bm25s bakes them into its scores when it builds
    lexical: dict[str, float] = field(default_factory=dict)
    format: int = FORMAT_VERSION
    searchbert_version: str = ""
    created: str = ""
    updated: str = ""
    #: made anew with each index (a rebuild is another index): how a long-running reader notices one
    instance: str = ""
    #: how hybrid search fuses by default here (records.Fusion's fields); empty: searchbert's default
    fusion: dict[str, Any] = field(default_factory=dict)
    #: where the vectors live besides SQLite: empty for the FAISS file in the folder; {"kind": "milvus", "uri",
    #: "collection"} for Milvus
    vector_store: dict[str, Any] = field(default_factory=dict)
    #: relevance weights fitted on this index's own judged queries (relevance.Calibration); empty: the shipped ones
    relevance: dict[str, Any] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return str(self.model["id"])

    @property
    def dimension(self) -> int:
        return int(self.model["dimension"])

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["chunking"] = asdict(self.chunking)
        return data

    def text(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def save(self, path: Path) -> None:
        text = self.text()
        atomic_write(path, lambda tmp: tmp.write_text(text))

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            text = path.read_text()
        except OSError as exc:
            raise IndexCorrupt(f"cannot read {path}: {exc}") from exc
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: Path) -> Manifest:
        """A manifest from its JSON text (`path` says where it came from, in errors)."""
        try:
            data = json.loads(text)
            if int(data.get("format", 0)) > FORMAT_VERSION:
                raise IncompatibleIndex(
                    f"{path.parent} was written by a newer searchbert (format {data['format']}): upgrade searchbert"
                )
            # an index made before heading paths were embedded has none in its chunks
            data["chunking"] = ChunkSettings(**{"section_prefix": False, **data["chunking"]})
            from .bm25 import LEGACY_B, LEGACY_K1

            data.setdefault("lexical", {"k1": LEGACY_K1, "b": LEGACY_B})  # what it was built with before
            return cls(**data)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise IndexCorrupt(f"cannot read {path}: {exc}") from exc


_OPTIONAL = ("revision", "weights")


def check_compatible(manifest: Manifest, fingerprint: dict[str, Any], chunking: ChunkSettings | None) -> None:
    """Refuse to mix vectors of two models, or chunks cut two ways, in one index."""
    # revision and weights were recorded from version 0.1 of the format on: an index made before has neither
    optional = {k for k in _OPTIONAL if k not in manifest.model or k not in fingerprint}
    if {k: v for k, v in fingerprint.items() if k not in optional} != {
        k: v for k, v in manifest.model.items() if k not in optional
    }:
        theirs = ", ".join(f"{k}={v}" for k, v in manifest.model.items())
        ours = ", ".join(f"{k}={v}" for k, v in fingerprint.items())
        raise IncompatibleIndex(
            f"this index was built with another model ({theirs}); the model asked for is ({ours}). "
            "Use the index's model, or pass --rebuild to start the index over with the new one"
        )
    if chunking is not None and chunking != manifest.chunking:
        raise IncompatibleIndex(
            f"this index was built with chunk settings {asdict(manifest.chunking)}, not {asdict(chunking)}. "
            "Use the same settings, or pass --rebuild to start the index over"
        )
