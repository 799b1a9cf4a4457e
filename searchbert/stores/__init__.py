"""Where an index's vectors live: one VectorStore protocol that search, the writer and `status` call, and one
registry of stores by name. SQLite (store.py) is the source of truth for every store: it keeps each chunk's vector,
so a store can always be filled again from it without embedding anything.

Stores here: "faiss" (a file in the index folder, caught up with SQLite's commits by each reader: the default),
"milvus" (a Milvus Lite file or server: the milvus extra) and "numpy" (exact search over SQLite's own vectors, filters
run in Python: the oracle the others are tested against). `register_store` adds one from outside the package.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from ..expression import Expression
    from ..store import Store
    from ..vectors import Selection

#: the store a new index gets unless told otherwise
DEFAULT_STORE = "faiss"


@dataclass(frozen=True)
class StoreContext:
    """What a store is opened with: the index it belongs to and the settings recorded for it."""

    folder: Path
    store: Store
    dimension: int
    #: the vector index type the index was made with (--index-type; "auto" decides by size)
    index_type: str
    #: the store's own settings, as its kind's `settings` made them and the manifest records them
    spec: Mapping[str, Any]
    #: the index instance (a rebuild makes a new one): a store's files and collections name it, and a file that
    #: names another is never trusted
    instance: str


class VectorStore(Protocol):
    """An index's vectors as search, the writer and `status` use them; chunk ids are SQLite's."""

    #: the search costs about the same at any depth (an approximate index), so a wide filter is better checked on
    #: its results than turned into a bitmap
    approximate: bool
    #: nearest() applies `expression` itself: whatever it returns passes it
    filters_inside: bool

    def __len__(self) -> int:
        """How many vectors a search can return."""
        ...

    def nearest(
        self, queries: np.ndarray, k: int, allowed: Selection | None = None, expression: Expression | None = None
    ) -> list[list[tuple[int, float]]]:
        """The k nearest chunks per query as (id, inner product), best first; only ids in `allowed` when given;
        `expression` is the search's filters, for a store that runs them (filters_inside)."""
        ...

    def refresh(self) -> None:
        """Catch up with what SQLite committed since the last look (other processes' writes included)."""
        ...

    def written(self, chunk_ids: Sequence[int]) -> None:
        """These chunks were inserted, or their document's fields changed, in the SQLite transaction under way
        (called before it commits)."""
        ...

    def save(self, final: bool = True, rebuild: bool = False) -> None:
        """Bring what the store keeps up to SQLite's last commit: final at the end of a write (before, a store may
        wait for a better moment); rebuild: from SQLite's vectors, whatever state the store is in."""
        ...

    def ids(self) -> np.ndarray:
        """Every chunk id the store holds a vector for."""
        ...

    def vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) the store holds for these ids (those it has), to check them against SQLite's."""
        ...

    def describe(self) -> str:
        """Where the vectors are and in what state, in a person's words (`status` shows it)."""
        ...

    def create(self) -> None:
        """Make the (empty) store of a new index."""
        ...

    def drop(self) -> None:
        """Delete what the store keeps outside the index folder (a rebuild drops the old index's)."""
        ...

    def close(self) -> None: ...


class StoreKind(Protocol):
    """A kind of store: made from a context, and checking the user's options before anything is written."""

    #: whether an existing index can be given another --index-type (the store rebuilds itself from SQLite)
    retypes: bool

    def __call__(self, context: StoreContext) -> VectorStore: ...

    def settings(self, options: Mapping[str, Any], index_type: str, instance: str) -> dict[str, Any]:
        """The spec a new index records for this store (the manifest's vector_store, "kind" added), checked."""
        ...


_REGISTRY: dict[str, str | StoreKind] = {
    "faiss": "searchbert.stores.faiss:FaissStore",
    "milvus": "searchbert.stores.milvus:MilvusStore",
    "numpy": "searchbert.stores.oracle:NumpyStore",
}


def register_store(name: str, kind: StoreKind) -> None:
    """Make `kind` a store an index can be created with (`Index.create(vector_store=name)`); replaces one of that
    name."""
    _REGISTRY[name] = kind


def store_names() -> list[str]:
    return sorted(_REGISTRY)


def store_kind(name: str) -> StoreKind:
    """The store registered as `name` (its module imported on first use)."""
    found = _REGISTRY.get(name)
    if found is None:
        from ..errors import InvalidArgument

        raise InvalidArgument(f"unknown vector store {name!r}: use one of {', '.join(store_names())}")
    if isinstance(found, str):
        module, attribute = found.split(":")
        found = _REGISTRY[name] = getattr(importlib.import_module(module), attribute)
    return found


def kind_of(spec: Mapping[str, Any]) -> str:
    """The store a manifest's vector_store names (an index made before stores had names keeps a FAISS file)."""
    return str(spec.get("kind") or DEFAULT_STORE)


def open_store(context: StoreContext) -> VectorStore:
    """The store of an index, as its manifest records it."""
    return store_kind(kind_of(context.spec))(context)
