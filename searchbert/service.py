"""One index served to many callers at once: what `searchbert serve` runs, with no web framework in it.

Searches and writes go through different Index objects over the same folder: the reader answers searches (one at a
time, under a lock: an Index is not meant for two threads, and the model already uses every core), the writer
takes updates under its own lock and the index's write lock. A write never blocks a search; the reader sees it when
it commits, because every search catches up with what SQLite committed (see stores/faiss.py). An index rebuilt by
another process (`index --rebuild`) is reopened by each Index on its next call; a file that cannot be read meanwhile
is IndexBusy (try again).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import (
    IndexCorrupt,
    IndexNotFound,
    IndexReplaced,
    InvalidArgument,
    MissingExtra,
    ModelNotAvailable,
    SearchbertError,
    StorageError,
)

if TYPE_CHECKING:
    from .encoders import Encoder
    from .index import Index
    from .records import Document, Hit, SearchOptions


class IndexBusy(SearchbertError):
    """The index is being rebuilt or replaced by another process: try again in a moment."""


class DocumentNotFound(SearchbertError):
    """No document has the id asked for."""


class Service:
    """Searches, reads and writes on the index at `path`, safe to call from many threads."""

    def __init__(
        self, path: str | os.PathLike[str], *, encoder: Encoder | None = None, rerank_model: str | None = None
    ) -> None:
        from .index import Index

        self.path = Path(path)
        self.rerank_model = rerank_model
        self._reader: Index = Index.open(self.path, encoder=encoder)
        self._writer: Index | None = None
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._reranker: Any = None
        self.started = time.time()

    # -- reading -------------------------------------------------------------------------------------------------

    def search(self, query: str, options: SearchOptions) -> list[Hit]:
        """Index.search, with `options.rerank` True meaning the service's own reranker (a request names none)."""
        from dataclasses import replace

        if not query.strip():
            raise InvalidArgument("the query is empty")
        if options.rerank is True:
            options = replace(options, rerank=self.reranker())
        elif options.rerank not in (None, False):
            raise InvalidArgument("rerank is true or false: the service chooses its cross-encoder")
        return self._read(lambda index: index.search(query, options=options))

    def documents(self, ids: Iterable[str], start_line: int | None = None, end_line: int | None = None) -> list:
        """Stored documents by id (looked up in the index, never opened as files)."""
        return self._read(lambda index: index.get(list(ids), start_line=start_line, end_line=end_line))

    def document(self, doc_id: str, start_line: int | None = None, end_line: int | None = None) -> Document:
        found = self.documents([doc_id], start_line, end_line)
        if not found:
            raise DocumentNotFound(f"no document with id {doc_id!r} in the index")
        return found[0]

    def status(self) -> dict[str, Any]:
        """What a client may want to know: counts, the model, the default mode, the reranker, uptime."""

        from .records import SearchOptions

        def read(index: Index) -> dict[str, Any]:
            counts = index.count()  # SQLite's, so what has committed
            return {
                "index": str(self.path),
                "model": index.manifest.model_id,
                "documents": counts["documents"],
                "chunks": counts["chunks"],
                "updated": index.manifest.updated,
                "mode": SearchOptions().mode,
                "fusion": index.fusion.to_dict(),
                # the relevance a hit needs to count as a good match here (the page hides weaker ones)
                "min_relevance": index.calibration.threshold,
                "rerank_model": self.rerank_model,
                "uptime_s": round(time.time() - self.started, 1),
            }

        return self._read(read)

    def reranker(self) -> Any:
        """The cross-encoder `rerank: true` uses, loaded once (the service's --rerank-model, else the default)."""
        with self._read_lock:
            if self._reranker is None:
                from .rerank import CrossEncoderReranker

                try:
                    self._reranker = CrossEncoderReranker(self.rerank_model)
                except (ModelNotAvailable, MissingExtra) as exc:  # what was asked for is missing: the caller's to fix
                    raise type(exc)(
                        f"this service cannot rerank: {exc}. Start it with a cross-encoder it can load "
                        "(serve --rerank-model DIR), or ask without rerank"
                    ) from exc
            return self._reranker

    def _read(self, work: Any) -> Any:
        with self._read_lock:
            try:
                return work(self._reader)
            except (IndexNotFound, IndexCorrupt, IndexReplaced, StorageError) as exc:
                raise IndexBusy(f"the index is being rebuilt or replaced: try again in a moment ({exc})") from exc

    # -- writing -------------------------------------------------------------------------------------------------

    def upsert(self, documents: list[Document]) -> dict[str, Any]:
        """Add or replace records (by id); what was added, updated, unchanged."""
        report = self._write(lambda index: index.add_documents(documents)).to_dict()
        return {k: report[k] for k in ("added", "updated", "unchanged", "chunks_embedded", "errors")}

    def delete(self, doc_id: str) -> int:
        removed = self._write(lambda index: index.delete([doc_id]))
        if not removed:
            raise DocumentNotFound(f"no document with id {doc_id!r} in the index")
        return removed

    def reindex(self, roots: list[Path], include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> Any:
        """The incremental `index` run over these folders (what --watch calls after a change)."""
        return self._write(lambda index: index.add(roots, include=include, exclude=exclude))

    def _write(self, work: Any) -> Any:
        from .index import Index

        with self._write_lock:
            if self._writer is None:
                # the reader's model, so a service holds one copy of it
                self._writer = Index.open(self.path, encoder=self._reader.encoder)
            try:
                return work(self._writer)
            except IndexReplaced as exc:
                raise IndexBusy(f"the index was rebuilt during this write: send it again ({exc})") from exc

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._reader.close()
            if self._writer is not None:
                self._writer.close()
