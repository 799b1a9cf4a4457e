"""The write path: files or documents -> chunks -> words first, vectors behind.

Words are cheap and vectors are not, so a write runs in two passes. First every new or changed document is read,
chunked and committed without vectors (a transaction per group of documents): in seconds the whole folder answers
BM25, and hybrid search ranks what is not embedded yet by its words alone. Then the chunks still without a vector
are embedded, a batch at a time, each batch committed in one transaction. A kill loses at most a group or a batch
in flight, and the next run embeds only what is missing: committed files are unchanged on disk and are skipped by
the size/mtime/hash check, and their chunks without vectors are found in the store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .chunking import chunk_many
from .embedding import EMBED_SLICE, Embedder, LocalEmbedder  # noqa: F401 (EMBED_SLICE: imported from here too)
from .encoders import BatchTokenizer
from .errors import DocumentError, EmbeddingFailed
from .loaders import Discovery, read_bytes, read_document, size_text
from .manifest import now_iso
from .records import Chunk, Document, IndexReport, check_metadata
from .sections import Lines, markup_of, outline, section_at
from .store_schema import NO_VECTOR

if TYPE_CHECKING:
    import numpy as np

    from .index import Index

log = logging.getLogger("searchbert")

#: chunks embedded and committed together: large enough to batch well, small enough to lose little on a crash
COMMIT_CHUNKS = 512
#: documents chunked and committed by their words together: the tokenizer takes them in one call on every core
WORDS_DOCUMENTS = 64
#: ... or fewer, when their text reaches this many characters (a group is held in memory until committed)
WORDS_CHARS = 4_000_000

#: how a write shows its progress: called with a phase's name, its total and its unit, it gives a bar to update
Progress = Callable[[str, "int | None", str], Any]


@dataclass
class _Words:
    """A document chunked, to be committed by its words: vectors already known are stored with it."""

    doc: Document
    sha256: str
    chunks: list[Chunk]
    replaces: int | None  # id of the stored version this one replaces
    vectors: list[bytes]  # each chunk's vector blob, NO_VECTOR where it must be embedded
    keys: list[str | None]  # each chunk's key of the exact text embedded for it (see embedded_key)


@dataclass
class _Embedding:
    """A batch handed to the embedder: its documents (id, chunks, vector blobs, keys), the vectors stored for some
    of its texts (`known`, by key), and the vectors to come for the others (`todo`, each text once)."""

    documents: list[tuple[int, list[Chunk], list[bytes], list[str | None]]]
    known: dict[str, np.ndarray]
    todo: list[str]
    vectors: Future[np.ndarray]
    chunks: int  # chunks it gives vectors to
    paths: list[str]  # its documents', to name them if it fails


def embedded_key(text: str) -> str:
    """The key of a text as embedded (title prefix and all): an index has one model, so a text with a stored vector
    is never embedded again (a licence header in every file, a paragraph not edited in a long document)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


@dataclass
class Writer:
    """Commits changed documents by their words a group at a time (`offer`), then embeds what has no vector yet a
    batch at a time (`finish`).

    Embedding runs beside the writer (a thread of its own, or actors on a Ray cluster: see embedding.py), so one
    batch is committed while the next is embedded. Batches are committed one at a time and in order; at most
    `embedder.depth` are in flight besides the one being filled.
    """

    index: Index
    progress: Progress | None = None
    commit_chunks: int = COMMIT_CHUNKS
    #: documents offered and not chunked yet: (document, its hash, the id of the version it replaces)
    pending: list[tuple[Document, str, int | None]] = field(default_factory=list)
    #: extracted text larger than this (UTF-8 bytes) is skipped; 0: no limit
    max_doc_bytes: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)
    in_flight: deque[_Embedding] = field(default_factory=deque)
    #: where batches are embedded; the local thread unless given (made on first use)
    embedder: Embedder | None = None

    def offer(self, doc: Document, sha256: str, replaces: int | None) -> None:
        """Queue a new or changed document; commits the group by its words when it is full."""
        self.pending = [p for p in self.pending if p[0].path != doc.path]  # the same id twice: the last wins
        self.pending.append((doc, sha256, replaces))
        if len(self.pending) >= WORDS_DOCUMENTS or sum(len(p[0].text) for p in self.pending) >= WORDS_CHARS:
            self.commit_words()

    def commit_words(self) -> None:
        """Chunk the queued documents and commit them, with whatever vectors are already stored for their texts, in
        one transaction: from then on BM25 finds them."""
        if not self.pending:
            return
        group, self.pending = self.pending, []
        store, enc, settings = self.index.store, self.index.encoder, self.index.manifest.chunking
        dimension = self.index.manifest.dimension
        words, fresh = [], []
        for doc, sha256, replaces in group:
            donor = store.same_content(sha256, doc.title, doc.format)
            if donor is not None:  # a moved or copied file: its chunks and vectors are already stored
                _, _, chunks, vectors, keys = store.document_chunks(donor)
                words.append(_Words(doc, sha256, chunks, replaces, vectors, keys))
            else:
                fresh.append((doc, sha256, replaces))
        lines = Lines(enc.token_spans, settings)
        outlines = [outline(d.text, markup_of(d.format, d.path)) for d, _, _ in fresh]
        # each chunk gets the line of its own section: the budget leaves room for the longest its document has
        prefixes = [lines.longest(d.title, found) for (d, _, _), found in zip(fresh, outlines, strict=True)]
        batch = isinstance(enc, BatchTokenizer)
        many, whole = (enc.token_spans_many, enc.whole_words) if batch else (None, False)  # type: ignore[union-attr]
        cut = chunk_many([d.text for d, _, _ in fresh], prefixes, enc.token_spans, settings, many, whole)
        emptied = []
        for (doc, sha256, replaces), found, chunks in zip(fresh, outlines, cut, strict=True):
            if not chunks:
                self.skipped["empty"] += 1
                if replaces is not None:  # the file was emptied: its old chunks must go
                    emptied.append(replaces)
                continue
            chunks = [replace(c, section=section_at(found, c.start_char)) for c in chunks]
            keys: list[str | None] = [embedded_key(lines(doc.title, c.section) + c.text) for c in chunks]
            words.append(_Words(doc, sha256, chunks, replaces, [NO_VECTOR] * len(chunks), keys))
        known = store.vectors_by_key([k for w in words for k in w.keys if k is not None], dimension)
        for w in words:
            w.vectors = [v or (known[k].tobytes() if k in known else NO_VECTOR) for v, k in zip(w.vectors, w.keys)]
        self.remove(emptied)
        if words:
            self._store_words(words)

    def _store_words(self, words: list[_Words]) -> None:
        store, now, vector_store = self.index.store, now_iso(), self.index.vector_store
        with self.index.committing():
            store.delete_documents([w.replaces for w in words if w.replaces is not None])
            inserted = []
            for w in words:
                ids = store.insert_document(w.doc, w.sha256, w.chunks, w.vectors, now, w.keys)
                inserted += [i for i, v in zip(ids, w.vectors) if v]
            store.bump_generation()
            vector_store.written(inserted)  # before the commit that makes them visible (a store outside SQLite)
        for w in words:
            self.counts["updated" if w.replaces is not None else "added"] += 1
        vector_store.save(final=False)

    def finish(self) -> None:
        """Commit what is queued by its words, then embed every chunk the index holds without a vector (this run's
        and any a stopped run left), a batch at a time; on return all of it is stored."""
        self.commit_words()
        store = self.index.store
        missing = store.unembedded_count()
        if not missing:
            return
        bar = self.progress("embedding", missing, "chunk") if self.progress is not None else None
        try:
            batch: list[tuple[int, str, str, list[Chunk], list[bytes], list[str | None]]] = []
            size, after = 0, 0
            while found := store.unembedded_documents(after, 256):
                for doc_id in found:
                    path, title, chunks, vectors, keys = store.document_chunks(doc_id)
                    if batch and size + len(chunks) > self.commit_chunks:
                        self._submit(batch, bar)
                        batch, size = [], 0
                    batch.append((doc_id, path, title, chunks, vectors, keys))
                    size += len(chunks)
                after = found[-1]
            self._submit(batch, bar)
            self._drain(bar, everything=True)
        finally:
            if bar is not None:
                bar.close()

    def _submit(self, batch: list[tuple[int, str, str, list[Chunk], list[bytes], list[str | None]]], bar: Any) -> None:
        """Start embedding a batch's chunks that have no vector (each text once, none whose vector is stored), then
        commit the batches in flight beyond the embedder's depth."""
        if not batch:
            return
        if self.embedder is None:
            self.embedder = LocalEmbedder(
                self.index.encoder, self.index.manifest.dimension, self.index.manifest.model_id
            )
        enc, settings = self.index.encoder, self.index.manifest.chunking
        texts: dict[str, str] = {}
        documents, chunks = [], 0
        lines = Lines(enc.token_spans, settings)
        for doc_id, _, title, cut, vectors, keys in batch:
            keys = [
                k if v else embedded_key(lines(title, c.section) + c.text)
                for c, v, k in zip(cut, vectors, keys, strict=True)
            ]
            for c, v, k in zip(cut, vectors, keys):
                if not v:
                    texts[k] = lines(title, c.section) + c.text  # type: ignore[index]
                    chunks += 1
            documents.append((doc_id, cut, vectors, keys))
        known = self.index.store.vectors_by_key(list(texts), self.index.manifest.dimension)
        todo = [k for k in texts if k not in known]
        submitted = self.embedder.submit([texts[k] for k in todo])
        self.in_flight.append(_Embedding(documents, known, todo, submitted, chunks, [b[1] for b in batch]))
        self._drain(bar)

    def _drain(self, bar: Any, everything: bool = False) -> None:
        while self.in_flight and (everything or len(self.in_flight) > self.embedder.depth):  # type: ignore[union-attr]
            oldest = self.in_flight.popleft()
            try:
                vectors = oldest.vectors.result()
            except EmbeddingFailed as exc:
                names = oldest.paths
                shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                raise EmbeddingFailed(
                    f"{exc}. Not stored: the vectors of {shown} (and of any after them); their words are, and every "
                    "batch before them, and the next run embeds the rest"
                ) from None
            self._commit(oldest, {**oldest.known, **dict(zip(oldest.todo, vectors))})
            if bar is not None:
                bar.update(oldest.chunks)

    def _commit(self, embedding: _Embedding, found: dict[str, np.ndarray]) -> None:
        """Store one embedded batch's vectors in one transaction."""
        store, vector_store = self.index.store, self.index.vector_store
        with self.index.committing():
            inserted = []
            for doc_id, chunks, vectors, keys in embedding.documents:
                blobs = [v or found[k].tobytes() for v, k in zip(vectors, keys)]  # type: ignore[index]
                inserted += store.embed_document(doc_id, chunks, blobs, keys)
            store.bump_generation()
            vector_store.written(inserted)  # before the commit that makes them visible (a store outside SQLite)
        self.counts["chunks"] += len(embedding.todo)
        vector_store.save(final=False)  # readers catch up from what the store saved: it keeps that short

    def close(self) -> None:
        """Stop embedding; batches not committed yet are dropped (the next run embeds them again)."""
        if self.embedder is not None:
            self.embedder.close()
        self.in_flight.clear()

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
    return f"text over {size_text(limit)} (raise --max-doc-size, 0 for no limit)"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _add_files(writer: Writer, found: Discovery) -> set[str]:
    """Offer every new or changed file to the writer; returns the paths seen."""
    store = writer.index.store
    seen: set[str] = set()
    bar = writer.progress("reading", len(found.files), "file") if writer.progress is not None else None
    for path, root in found.files:
        if bar is not None:
            bar.update(1)
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
    writer.commit_words()
    if bar is not None:
        bar.close()
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


def add_documents(writer: Writer, documents: Iterable[Document], total: int | None = None) -> None:
    """Index documents given as data (no files): keyed by `path`, changed when their text's hash changes. `total`:
    how many there are, if known (for the progress bar)."""
    store = writer.index.store
    bar = writer.progress("reading", total, "doc") if writer.progress is not None else None
    try:
        for doc in documents:
            if bar is not None:
                bar.update(1)
            check_metadata(doc)
            digest = sha256_bytes(doc.text.encode("utf-8"))
            if any(p[0].path == doc.path for p in writer.pending):
                writer.commit_words()  # its earlier version is queued: let it land, then compare with it
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
        writer.commit_words()
        if bar is not None:
            bar.close()
        writer.finish()
    finally:
        writer.close()
