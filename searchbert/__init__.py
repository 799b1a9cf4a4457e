"""searchbert: local semantic search over your documents with BERT bi-encoders, FAISS and SQLite."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .errors import SearchbertError
from .records import Chunk, Document, Filters, Fusion, Hit, IndexReport, SearchOptions

if TYPE_CHECKING:
    from .index import Index

__all__ = [
    "Chunk",
    "Document",
    "Filters",
    "FunctionEncoder",
    "Fusion",
    "Hit",
    "Index",
    "IndexReport",
    "SearchOptions",
    "SearchbertError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # Index pulls in sqlite-utils and friends: load it only when asked for
    if name == "Index":
        from .index import Index

        return Index
    if name == "FunctionEncoder":
        from .encoders import FunctionEncoder

        return FunctionEncoder
    raise AttributeError(f"module 'searchbert' has no attribute {name!r}")
