"""What every adapter shares, with no framework imported: opening the index it is given, turning a framework's
metadata filter into Filters, and one lock so that a framework's thread pool never runs two calls on one Index."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import InvalidArgument
from ..records import Filters, SearchOptions

if TYPE_CHECKING:
    from ..encoders import Encoder
    from ..index import Index
    from ..records import Hit

T = TypeVar("T")


class Shared:
    """One Index for an adapter: opened on first use from a path (or given open), and used by one thread at a time
    (async methods run the library in worker threads; the Index is not meant for two at once)."""

    def __init__(
        self, index: Index | str | os.PathLike[str], encoder: Encoder | None = None, *, create: bool = False
    ) -> None:
        self._given, self._encoder, self._create = index, encoder, create
        self._index: Index | None = None
        self._lock = threading.RLock()

    def run(self, work: Callable[[Index], T]) -> T:
        with self._lock:
            return work(self.index)

    def search(self, query: str, *, mode: str | None = None, **fields: Any) -> list[Hit]:
        """Index.search with SearchOptions made of `fields`; mode None leaves the index's default."""
        options = SearchOptions(**fields, **({} if mode is None else {"mode": mode}))
        return self.run(lambda index: index.search(query, options=options))

    @property
    def index(self) -> Index:
        from ..index import Index

        if self._index is None:
            given = self._given
            if isinstance(given, Index):
                self._index = given
            elif self._create:
                self._index = open_or_create(given, self._encoder)
            else:  # a retriever only reads: a mistyped folder is an error, not a new empty index
                self._index = Index.open(given, encoder=self._encoder)
        return self._index

    @property
    def path(self) -> str:
        return str(self._given.path if hasattr(self._given, "path") else self._given)


def open_or_create(path: str | os.PathLike[str], encoder: Encoder | None = None) -> Index:
    """The index at `path`, made there (empty) if there is none yet."""
    from ..index import MANIFEST, Index

    if os.path.exists(os.path.join(path, MANIFEST)):
        return Index.open(path, encoder=encoder)
    return Index.create(path, encoder=encoder)


def metadata_filters(spec: Mapping[str, Any] | Filters | None) -> Filters | None:
    """A framework-style metadata filter as Filters. Accepted: {key: value} (equal), {key: [values]} (any of),
    {key: {"$eq": value}}, {key: {"$in": [values]}}, and {"$and": [filters]}; keys are ANDed. Any other operator is
    an error that names it: searchbert never drops a condition it cannot apply."""
    if spec is None or isinstance(spec, Filters):
        return spec
    if not isinstance(spec, Mapping):
        raise InvalidArgument(f"a filter is a dict of metadata key -> value, not {type(spec).__name__}")
    wanted: dict[str, Any] = {}
    for key, value in _conditions(spec):
        if key in wanted and wanted[key] != value:
            raise InvalidArgument(f"filter: two conditions on {key!r} ({wanted[key]!r}, {value!r}) cannot be combined")
        wanted[key] = value
    return Filters(metadata=wanted) if wanted else None


def _conditions(spec: Mapping[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in spec.items():
        if key == "$and":
            if not isinstance(value, list):
                raise InvalidArgument("filter: $and takes a list of filters")
            for part in value:
                out += _conditions(part)
        elif key.startswith("$"):
            raise InvalidArgument(f"filter: the operator {key!r} is not supported (supported: $and, $eq, $in)")
        elif isinstance(value, Mapping):
            if len(value) != 1 or next(iter(value)) not in ("$eq", "$in"):
                ops = ", ".join(map(repr, value)) or "none"
                raise InvalidArgument(f"filter on {key!r}: operator {ops} is not supported (supported: $eq, $in)")
            op, operand = next(iter(value.items()))
            if op == "$in" and not isinstance(operand, list):
                raise InvalidArgument(f"filter on {key!r}: $in takes a list")
            out.append((key, operand))
        else:
            out.append((key, value))
    return out


def record_id(value: object) -> str:
    """A record id as searchbert stores it: a non-empty string."""
    if value is None or str(value) == "":
        raise InvalidArgument("a record id must be a non-empty string")
    return str(value)


def passage(hit: Hit, score: bool = True) -> tuple[str, dict[str, Any]]:
    """What an adapter hands on for a hit: its text (the passage around it, when the search asked for context) and
    metadata: the record's, plus source, title, the lines the text spans and (unless the framework has its own
    place for it) the score."""
    wide = hit.context is not None
    meta: dict[str, Any] = {
        **hit.metadata,
        "source": hit.path,
        "title": hit.title,
        "section": hit.section,
        "start_line": hit.context_start_line if wide else hit.start_line,
        "end_line": hit.context_end_line if wide else hit.end_line,
    }
    if score:
        meta["score"] = hit.score
    meta["relevance"] = hit.relevance  # the estimated chance it is relevant, comparable across queries
    return (hit.context if wide else hit.text) or "", meta
