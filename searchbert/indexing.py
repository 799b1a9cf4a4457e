"""The write path: files or documents -> chunks -> vectors -> one SQLite transaction per batch.

A batch is committed whole (documents, chunks and vectors together), so a crash loses at most the batch in flight
and the next run picks up from there: committed files are unchanged on disk and are skipped by the size/mtime/hash
check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .chunking import chunk_document, document_prefix
from .embedding import EMBED_SLICE, Embedder, LocalEmbedder  # noqa: F401 (EMBED_SLICE: imported from here too)
from .errors import DocumentError, EmbeddingFailed
from .loaders import Discovery, read_bytes, read_document
from .manifest import now_iso
from .records import Chunk, Document, IndexReport, check_metadata

if TYPE_CHECKING:
    import numpy as np

    from .index import Index

log = logging.getLogger("searchbert")

#: chunks embedded and committed together: large enough to batch well, small enough to lose little on a crash
COMMIT_CHUNKS = 512


@dataclass
class _Pending:
    doc: Document
    sha256: str
    chunks: list[Chunk]
    prefix: str
    replaces: int | None  # id of the stored version this one replaces
    #: each chunk's key of the exact text embedded for it (see embedded_key)
    keys: list[str | None]
    #: vectors copied from a stored document with the same content and title (a moved file): nothing to embed
    vectors: np.ndarray | None = None


@dataclass
class _Embedding:
    """A batch handed to the embedder: its documents, the vectors already stored for some of its texts (`known`,
    by key), and the vectors to come for the others (`todo`, each text once)."""

    batch: list[_Pending]
    known: dict[str, np.ndarray]
    todo: list[str]
    vectors: Future[np.ndarray]


def embedded_key(text: str) -> str:
    """The key of a text as embedded (title prefix and all): an index has one model, so a text with a stored vector
    is never embedded again (a licence header in every file, a paragraph not edited in a long document)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


@dataclass
class Writer:
    """Accumulates changed documents and commits them a batch at a time.

    Embedding runs beside the writer (a thread of its own, or actors on a Ray cluster: see embedding.py), so the
    next batch is read, parsed and chunked, and the one before is committed, while this one is embedded. Batches are
    still committed one at a time and in order; at most `embedder.depth` are in flight besides the one being filled.
    """

    index: Index
    progress: object = None
    commit_chunks: int = COMMIT_CHUNKS
    pending: list[_Pending] = field(default_factory=list)
    deferred: list[_Pending] = field(default_factory=list)
    #: extracted text larger than this (UTF-8 bytes) is skipped; 0: no limit
    max_doc_bytes: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)
    in_flight: deque[_Embedding] = field(default_factory=deque)
    #: where batches are embedded; the local thread unless given (made on first use)
    embedder: Embedder | None = None

    def offer(self, doc: Document, sha256: str, replaces: int | None) -> None:
        """Chunk a new or changed document and queue it; hands the batch on to be embedded when it is full."""
        if any(p.doc.path == doc.path for p in self.pending + self.deferred):  # the same id twice: the last wins
            self.pending = [p for p in self.pending if p.doc.path != doc.path]
            self.deferred = [p for p in self.deferred if p.doc.path != doc.path]
        store = self.index.store
        donor = store.same_content(sha256, doc.title, doc.format)
        if donor is not None:  # a moved or copied file: its chunks and vectors are already stored
            chunks, vectors, keys = store.chunks_of(donor, self.index.manifest.dimension)
            self.pending.append(_Pending(doc, sha256, chunks, "", replaces, keys, vectors))
            return
        enc, settings = self.index.encoder, self.index.manifest.chunking
        prefix = document_prefix(doc.title, enc.token_spans, settings)
        chunks = chunk_document(doc.text, enc.token_spans, settings, prefix)
        if not chunks:
            self.skipped["empty"] += 1
            if replaces is not None:  # the file was emptied: its old chunks must go
                self.remove([replaces])
            return
        item = _Pending(doc, sha256, chunks, prefix, replaces, [embedded_key(prefix + c.text) for c in chunks])
        if len(chunks) >= self.commit_chunks:
            # a document is committed whole: one this large waits for the end, so it never holds back the
            # commit of the small ones around it (after a kill they are searchable)
            self.deferred.append(item)
            return
        self.pending.append(item)
        if sum(len(p.chunks) for p in self.pending) >= self.commit_chunks:
            self.flush()

    def flush(self, drain: bool = False) -> None:
        """Start embedding the queued documents, then commit the oldest batches in flight: all of them with
        `drain`, else those beyond the embedder's depth."""
        if self.pending:
            batch, self.pending = self.pending, []
            if self.embedder is None:
                self.embedder = LocalEmbedder(
                    self.index.encoder, self.index.manifest.dimension, self.index.manifest.model_id
                )
            # each text once, and none whose vector is stored already
            texts = {k: p.prefix + c.text for p in batch if p.vectors is None for c, k in zip(p.chunks, p.keys)}
            known = self.index.store.vectors_by_key(list(texts), self.index.manifest.dimension)
            todo = [k for k in texts if k not in known]  # type: ignore[misc]
            submitted = self.embedder.submit([texts[k] for k in todo])
            self.in_flight.append(_Embedding(batch, known, todo, submitted))  # type: ignore[arg-type]
        while self.in_flight and (drain or len(self.in_flight) > self.embedder.depth):  # type: ignore[union-attr]
            oldest = self.in_flight.popleft()
            try:
                vectors = oldest.vectors.result()
            except EmbeddingFailed as exc:
                names = [p.doc.path for p in oldest.batch]
                shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                raise EmbeddingFailed(
                    f"{exc}. Not stored: the batch of {shown} (and any after it); every batch before it is, and "
                    "the next run embeds the rest"
                ) from None
            found = {**oldest.known, **dict(zip(oldest.todo, vectors))}
            self._commit(oldest.batch, _merge(oldest.batch, found), len(oldest.todo))

    def finish(self) -> None:
        """Embed and commit everything queued, large documents last, each alone; on return all of it is stored."""
        self.flush()
        while self.deferred:
            self.pending = [self.deferred.pop(0)]
            self.flush()
        self.flush(drain=True)

    def close(self) -> None:
        """Stop embedding; batches not committed yet are dropped (the next run embeds them again)."""
        if self.embedder is not None:
            self.embedder.close()
        self.in_flight.clear()

    def _commit(self, batch: list[_Pending], vectors: np.ndarray, embedded: int) -> None:
        """Store one embedded batch (documents, chunks and vectors) in one transaction."""
        store, now = self.index.store, now_iso()
        replaced = [p.replaces for p in batch if p.replaces is not None]
        vector_store = self.index.vector_store
        with self.index.committing():
            store.delete_documents(replaced)
            offset, inserted = 0, []
            for p in batch:
                n = len(p.chunks)
                inserted += store.insert_document(p.doc, p.sha256, p.chunks, vectors[offset : offset + n], now, p.keys)
                offset += n
            store.bump_generation()
            vector_store.written(inserted)  # before the commit that makes them visible (a store outside SQLite)
        for p in batch:
            self.counts["updated" if p.replaces is not None else "added"] += 1
        self.counts["chunks"] += embedded
        if self.progress is not None:
            self.progress.update(len(batch))  # type: ignore[attr-defined]
        vector_store.save(final=False)  # readers catch up from what the store saved: it keeps that short

    def fields_changed(self, doc_id: int) -> None:
        """A stored document's mtime or metadata changed in place: a store that filters keeps them, so its chunks
        are written there again (inside the caller's transaction, where there is one)."""
        self.index.vector_store.written(self.index.store.chunk_ids(doc_id).tolist())

    def remove(self, doc_ids: list[int]) -> None:
        """Delete documents, their chunks and their vectors."""
        if not doc_ids:
            return
        store = self.index.store
        with self.index.committing():
            store.delete_documents(doc_ids)
            store.bump_generation()
        self.counts["removed"] += len(doc_ids)

    def report(self, started: float) -> IndexReport:
        return IndexReport(
            added=self.counts["added"],
            updated=self.counts["updated"],
            unchanged=self.counts["unchanged"],
            removed=self.counts["removed"],
            chunks_embedded=self.counts["chunks"],
            skipped=dict(self.skipped),
            errors=tuple(self.errors),
            seconds=time.monotonic() - started,
        )


def too_large(limit: int) -> str:
    """The summary's reason for documents over the size limit, saying how to let them in."""
    return f"text over {limit / 1e6:g} MB (raise --max-doc-size, 0 for no limit)"


def _merge(batch: list[_Pending], found: dict[str, np.ndarray]) -> np.ndarray:
    """The batch's vectors in order: those of its texts (embedded now or stored before), and those copied from a
    stored document with the same content."""
    import numpy as np

    parts = [p.vectors if p.vectors is not None else np.stack([found[k] for k in p.keys]) for p in batch]
    return np.concatenate(parts)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _add_files(writer: Writer, found: Discovery) -> set[str]:
    """Offer every new or changed file to the writer; returns the paths seen."""
    store = writer.index.store
    seen: set[str] = set()
    for path, root in found.files:
        key = str(path)
        if key in seen:  # the same file reached from two roots
            continue
        seen.add(key)
        stored = store.document(key)
        limit = writer.max_doc_bytes
        try:
            stat = path.stat()
            # a file no larger than the limit has text no larger either (text is never longer than its file's
            # bytes, PDF aside): only larger ones need reading to know, whether they changed or not
            may_be_too_large = bool(limit) and stat.st_size > limit
            if stored and stored.size == stat.st_size and stored.mtime == stat.st_mtime and not may_be_too_large:
                writer.counts["unchanged"] += 1
                continue
            raw = read_bytes(path)
            digest = sha256_bytes(raw[0])
            same = stored is not None and stored.sha256 == digest
            doc = read_document(path, root, raw) if may_be_too_large or not same else None
        except (DocumentError, OSError) as exc:
            writer.errors.append((key, str(exc)))
            writer.skipped["unreadable"] += 1
            log.info("skipped %s: %s", key, exc)  # the report carries it: said once, by the caller
            continue
        if doc is not None and limit and len(doc.text.encode("utf-8")) > limit:
            writer.skipped[too_large(limit)] += 1
            seen.discard(key)  # indexed before it grew (or before the limit): it leaves the index
            continue
        if same:
            store.touch(stored.id, raw[1].st_size, raw[1].st_mtime)  # type: ignore[union-attr]  # same bytes
            writer.fields_changed(stored.id)  # type: ignore[union-attr]
            writer.counts["unchanged"] += 1
            continue
        writer.offer(doc, digest, stored.id if stored else None)  # type: ignore[arg-type]
    writer.finish()
    return seen


def add_files(writer: Writer, found: Discovery, roots: Iterable[Path]) -> None:
    """Index discovered files: skip unchanged ones, (re)embed new and changed ones, drop deleted ones."""
    try:
        seen = _add_files(writer, found)
    finally:
        writer.close()
    store = writer.index.store
    for k, v in found.skipped.items():
        writer.skipped[k] += v
    for path, why in found.errors:
        writer.errors.append((path, why))
        log.info("skipped %s: %s", path, why)  # the report carries it: said once, by the caller
    # what this run did not select under its roots (deleted, excluded, now too large...) leaves the index, and so
    # does every document of a folder that no longer exists (a moved folder must not answer twice)
    gone = {d.id for root in roots for d in store.documents_under(str(root.resolve())) if d.path not in seen}
    gone.update(d.id for root in store.roots() if not os.path.exists(root) for d in store.documents_in_root(root))
    writer.remove(sorted(gone))


def add_documents(writer: Writer, documents: Iterable[Document]) -> None:
    """Index documents given as data (no files): keyed by `path`, changed when their text's hash changes."""
    store = writer.index.store
    offered: set[str] = set()
    try:
        for doc in documents:
            check_metadata(doc)
            digest = sha256_bytes(doc.text.encode("utf-8"))
            if doc.path in offered and not any(p.doc.path == doc.path for p in writer.pending):
                writer.finish()  # its earlier version is on its way to the store: let it land, then replace it
            offered.add(doc.path)
            stored = store.document(doc.path)
            if stored and stored.sha256 == digest and stored.title == doc.title:
                # the embedded texts are the same: a change of metadata alone is written in place
                if json.loads(stored.metadata) != doc.metadata:
                    with writer.index.committing():
                        store.set_metadata(stored.id, doc.metadata)
                        writer.fields_changed(stored.id)
                        store.bump_generation()
                    writer.counts["updated"] += 1
                else:
                    writer.counts["unchanged"] += 1
                continue
            writer.offer(doc, digest, stored.id if stored else None)
        writer.finish()
    finally:
        writer.close()
