"""What a filter lets through, planned by how much that is: a narrow filter becomes a bitmap of its chunks (and, in
steady use, an exact index of their vectors); a wide one is checked on the retrievers' results. An open index keeps
recent filters' bitmaps until the next commit."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from .expression import Expression, compile_filters
from .vectors import Selection

if TYPE_CHECKING:
    from .records import Filters
    from .store import Store
    from .vectors import FaissFlatIndex

#: a filter allowing at most this share of the documents is known narrow from a count that stops there (a few
#: thousand index entries at most): its chunks become a bitmap the retrievers search within
NARROW_FILTER = 0.02
#: a wider filter is first checked on what the retrievers return, fetched deeper by the share that passes (an SQL
#: lookup of a few hundred chunks, where a bitmap of half a million costs more than the search); when fetching
#: deep enough would take more than this many times the results wanted, the bitmap is built after all
POST_FILTER_DEPTH = 40


@dataclass(frozen=True)
class Allowed:
    """What a filter lets through: `selection`, a bitmap of its chunks (exactly `count`) that the retrievers search
    within, or, for a filter known only to allow more than NARROW_FILTER of the documents, None (and count None):
    its expression is then checked on each retriever's results."""

    count: int | None
    expression: Expression
    selection: Selection | None
    #: the allowed chunks' own vectors, searched exactly (a narrow filter in steady use: see FilterCache)
    exact: FaissFlatIndex | None = None


#: a filter allowing at most this many chunks, used this many times since the last commit, gets its vectors copied
#: into an exact index of their own (30 MB at 384-d): as vector databases do below a cardinality threshold, its
#: queries then scan only what they may return (exact, and faster than an approximate index probing for them)
EXACT_FILTER_MAX, EXACT_FILTER_USES = 20_000, 3


class FilterCache:
    """The bitmaps of the last few filters, and the document count, for the store generation they were read at
    (Lucene keeps filters' bitsets per segment the same way): a filter repeated by a long-lived index (a server, a
    RAG pipeline) costs a dictionary lookup; any commit starts the cache over. A narrow filter in steady use also
    keeps its vectors (EXACT_FILTER_MAX)."""

    SIZE = 8

    def __init__(self) -> None:
        from collections import Counter, OrderedDict

        self.generation = -1
        self.documents: int | None = None
        self.bitmaps: OrderedDict[Expression, Allowed] = OrderedDict()
        self.uses: Counter[Expression] = Counter()

    def at(self, generation: int) -> FilterCache:
        if generation != self.generation:
            self.generation, self.documents = generation, None
            self.bitmaps.clear()
            self.uses.clear()
        return self

    def with_vectors(self, allowed: Allowed, store: Store, dimension: int) -> Allowed:
        """`allowed`, with its vectors in an exact index of their own once it is narrow and used often enough."""
        key = allowed.expression
        self.uses[key] += 1
        if allowed.exact is not None or not allowed.count or allowed.selection is None or key not in self.bitmaps:
            return allowed
        if allowed.selection.count > EXACT_FILTER_MAX or self.uses[key] < EXACT_FILTER_USES:
            return allowed
        from .vectors import FaissFlatIndex

        exact = FaissFlatIndex(dimension)
        exact.add(*store.vectors_of(np.flatnonzero(allowed.selection.bits).tolist(), dimension))
        self.bitmaps[key] = allowed = replace(allowed, exact=exact)
        return allowed

    def document_count(self, store: Store) -> int:
        if self.documents is None:
            self.documents = store.document_count()
        return self.documents

    def get(self, key: Expression) -> Allowed | None:
        found = self.bitmaps.get(key)
        if found is not None:
            self.bitmaps.move_to_end(key)
        return found

    def put(self, key: Expression, allowed: Allowed) -> None:
        self.bitmaps[key] = allowed
        while len(self.bitmaps) > self.SIZE:
            self.bitmaps.popitem(last=False)


def allowed_chunks(
    store: Store,
    filters: Filters | Expression,
    narrow: float | None = None,
    cache: FilterCache | None = None,
    dimension: int | None = None,
) -> Allowed:
    """The chunks of the documents that pass the filters, found in SQL (the filter columns are indexed). With
    `narrow`, a filter matching more than that share of the documents is only counted that far, and left wide
    (unless `cache`, current for the store's generation, holds its bitmap). With `cache` and the `dimension` of
    the vectors a dense search wants, a narrow filter in steady use comes with its own exact index."""
    allowed = _allowed(store, filters, narrow, cache)
    return cache.with_vectors(allowed, store, dimension) if cache is not None and dimension else allowed


def _allowed(store: Store, filters: Filters | Expression, narrow: float | None, cache: FilterCache | None) -> Allowed:
    key = compile_filters(filters)
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return cached
    if narrow is not None:
        documents = cache.document_count(store) if cache is not None else store.document_count()
        if store.count_matching(key, math.ceil(narrow * documents) + 1) > narrow * documents:
            return Allowed(None, key, None)
    selection = Selection.from_ranges(*store.allowed_ranges(key))
    allowed = Allowed(selection.count, key, selection)
    if cache is not None:
        cache.put(key, allowed)
    return allowed
