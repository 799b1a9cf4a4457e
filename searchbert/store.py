"""SQLite through sqlite-utils: documents, chunks (with their vectors) and a small key/value table; every write.

SQLite is the index's source of truth. Vectors are kept here as float32 blobs so the FAISS file is only a cache that
can always be rebuilt without embedding anything again; each committed write bumps `generation`, and the FAISS file
records the generation it was saved at. What readers ask is in store_reads.py, the schema in store_schema.py: SQL is
written in these three files only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import storage_error
from .records import Chunk, Document, extension, relpath
from .store_reads import Reads
from .store_schema import SCHEMA_VERSION, create, migrate

if TYPE_CHECKING:
    import numpy as np
    import sqlite_utils


class Store(Reads):
    """The SQLite file of one index."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # plain sqlite3 for reads: importing sqlite-utils costs half a second a query does not need to pay
            self.conn = sqlite3.connect(str(path), timeout=60, isolation_level=None, check_same_thread=False)
            # WAL: readers keep reading the last committed state while a writer works
            self.execute("PRAGMA journal_mode=WAL")
            self.execute("PRAGMA synchronous=NORMAL")
            self.execute("PRAGMA foreign_keys=ON")
            if self.has_schema() and int(self.get_meta("schema_version", "1")) < SCHEMA_VERSION:
                migrate(self)
        except sqlite3.Error as exc:
            raise storage_error(exc, path) from exc

    def has_schema(self) -> bool:
        return self.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is not None

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """The same connection through sqlite-utils, for writes and schema work."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def rows_in(self, sql: str, values: Iterable[Any], params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows of `sql` whose `{marks}` is an IN list of `values`, queried 500 at a time (SQLite limits the number
        of parameters); `params` follow each batch's values."""
        for part in _batches(list(values), 500):
            yield from self.execute(sql.replace("{marks}", ",".join("?" * len(part))), [*part, *params]).fetchall()

    def create_schema(self) -> None:
        create(self)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write: everything inside lands together or not at all."""
        try:
            self.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self.conn.in_transaction:  # SQLite may already have rolled back (a full disk does)
                    self.execute("ROLLBACK")
                raise
            self.execute("COMMIT")
        except sqlite3.Error as exc:
            raise storage_error(exc, self.path) from exc

    def get_meta(self, key: str, default: str = "") -> str:
        row = self.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, value])

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation", "0"))

    def state(self) -> tuple[str, int]:
        """(instance, generation) in one read: which index this file holds now, and its last commit."""
        rows = dict(self.execute("SELECT key, value FROM meta WHERE key IN ('instance', 'generation')").fetchall())
        return rows.get("instance", ""), int(rows.get("generation", 0))

    @property
    def instance(self) -> str:
        """The index this file holds (made anew by each rebuild); "" for an index made before it was recorded."""
        return self.get_meta("instance")

    def reset(self, instance: str, manifest: str) -> None:
        """Make this file hold a new, empty index, in one transaction: readers with the file open see the old index
        or the new one, never a deleted file or half of either. Chunk ids keep growing (AUTOINCREMENT), so no id of
        the old index ever names a chunk of the new one; the generation keeps growing too."""
        with self.transaction():
            generation = self.generation + 1
            self.execute("DELETE FROM chunks")
            self.execute("DELETE FROM documents")
            self.execute("DELETE FROM removed_chunks")
            for key, value in (
                ("generation", str(generation)),
                ("removed_since", str(generation)),  # the log is complete from here on
                ("instance", instance),
                ("manifest", manifest),
            ):
                self.set_meta(key, value)

    def bump_generation(self) -> int:
        """Call inside a transaction that changed chunks."""
        gen = self.generation + 1
        self.set_meta("generation", str(gen))
        return gen

    def standing(self, saved: Mapping[str, Any] | None) -> str:
        """The one rule for a file saved beside the store (vectors, BM25), by the state saved with it (None: no
        readable file): "foreign" when it names another index instance (a rebuild's, a copy's) or a generation this
        store has not reached; "current" when it holds the store's generation; "behind" when it is older but the
        removal log still reaches back to it, so a reader can catch up from it (the vectors can; BM25 cannot, and is
        rebuilt); else "stale". A file from before instances were recorded belongs to an index that records none."""
        if saved is None:
            return "stale"
        instance, generation = self.state()
        if str(saved.get("instance", "")) != instance or int(saved["generation"]) > generation:
            return "foreign"
        if int(saved["generation"]) == generation:
            return "current"
        return "behind" if int(saved["generation"]) >= int(self.get_meta("removed_since", "0")) else "stale"

    def save_manifest(self, manifest: str) -> None:
        """Keep the manifest where it commits with the data (manifest.json mirrors it, for people and tools)."""
        with self.transaction():
            self.set_meta("manifest", manifest)

    def set_metadata(self, doc_id: int, metadata: dict[str, Any]) -> None:
        self.execute(
            "UPDATE documents SET metadata = ? WHERE id = ?",
            [json.dumps(metadata, ensure_ascii=False, sort_keys=True), doc_id],
        )

    def touch(self, doc_id: int, size: int, mtime: float) -> None:
        self.execute("UPDATE documents SET size = ?, mtime = ? WHERE id = ?", [size, mtime, doc_id])

    def delete_documents(self, doc_ids: Sequence[int]) -> None:
        """Delete documents and their chunks, logging the chunk ids under the generation this transaction commits
        (call inside a transaction that then bumps the generation once)."""
        generation = self.generation + 1
        for part in _batches(doc_ids, 500):
            marks = ",".join("?" * len(part))
            self.execute(
                "INSERT INTO removed_chunks(chunk_id, generation)"
                f" SELECT id, ? FROM chunks WHERE document_id IN ({marks})",
                [generation, *part],
            )
            self.execute(f"DELETE FROM chunks WHERE document_id IN ({marks})", part)
            self.execute(f"DELETE FROM documents WHERE id IN ({marks})", part)

    def removed_since(self, generation: int) -> np.ndarray | None:
        """Ids of the chunks removed by commits after `generation`; None if the log no longer reaches back so far."""
        import numpy as np

        if generation < int(self.get_meta("removed_since", "0")):
            return None
        rows = self.execute("SELECT chunk_id FROM removed_chunks WHERE generation > ?", [generation]).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def forget_removed(self, up_to: int) -> None:
        """Drop log entries no reader needs: those at or before a generation saved vector files have caught up with."""
        with self.transaction():
            if up_to > int(self.get_meta("removed_since", "0")):
                self.execute("DELETE FROM removed_chunks WHERE generation <= ?", [up_to])
                self.set_meta("removed_since", str(up_to))

    def insert_document(
        self,
        doc: Document,
        sha256: str,
        chunks: Sequence[Chunk],
        vectors: np.ndarray | Sequence[bytes],
        now: str,
        keys: Sequence[str | None] | None = None,
    ) -> list[int]:
        """Insert one document with its chunks, their vectors (float32 rows, or blobs: NO_VECTOR for a chunk not
        embedded yet) and the keys of the texts they were embedded from; returns the new chunk ids."""
        cur = self.execute(
            "INSERT INTO documents(path, root, title, format, size, mtime, sha256, chunk_count, indexed_at, relpath,"
            " ext, metadata, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                doc.path,
                doc.root,
                doc.title,
                doc.format,
                doc.size,
                doc.mtime,
                sha256,
                len(chunks),
                now,
                relpath(doc.path, doc.root),
                extension(doc.path),
                json.dumps(doc.metadata, ensure_ascii=False, sort_keys=True),
                doc.text,
            ],
        )
        doc_id = cur.lastrowid
        ids = self._insert_chunks(doc_id, chunks, vectors, keys or [None] * len(chunks))
        if ids:
            self.execute("UPDATE documents SET first_chunk = ? WHERE id = ?", [ids[0], doc_id])
        return ids

    def _insert_chunks(
        self, doc_id: int, chunks: Sequence[Chunk], vectors: np.ndarray | Sequence[bytes], keys: Sequence[str | None]
    ) -> list[int]:
        ids = []
        for chunk, vector, key in zip(chunks, vectors, keys, strict=True):
            blob = vector if isinstance(vector, bytes) else vector.tobytes()
            cur = self.execute(
                "INSERT INTO chunks(document_id, ordinal, text, start_char, end_char, start_line, end_line, vector,"
                " embedded, section) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    doc_id,
                    chunk.ordinal,
                    chunk.text,
                    chunk.start_char,
                    chunk.end_char,
                    chunk.start_line,
                    chunk.end_line,
                    blob,
                    key if blob else None,  # a key names a stored vector: none yet
                    chunk.section,
                ],
            )
            ids.append(cur.lastrowid)
        return ids

    def embed_document(
        self, doc_id: int, chunks: Sequence[Chunk], vectors: Sequence[bytes], keys: Sequence[str | None]
    ) -> list[int]:
        """Give a document's chunks (as document_chunks read them) their vectors: they are written again under new
        ids, their old ids logged as removed, so that vector stores catch up as with any other write (ids only grow)
        and a document's chunk ids stay consecutive (filters count on it). Inside a transaction that bumps the
        generation; returns the new ids ([] if the document no longer has those chunks)."""
        held = self.execute("SELECT count(*) FROM chunks WHERE document_id = ?", [doc_id]).fetchone()[0]
        if held != len(chunks):
            return []
        self.execute(
            "INSERT INTO removed_chunks(chunk_id, generation) SELECT id, ? FROM chunks WHERE document_id = ?",
            [self.generation + 1, doc_id],
        )
        self.execute("DELETE FROM chunks WHERE document_id = ?", [doc_id])
        ids = self._insert_chunks(doc_id, chunks, vectors, keys)
        self.execute("UPDATE documents SET first_chunk = ? WHERE id = ?", [ids[0] if ids else 0, doc_id])
        return ids

    def drop_broken(self) -> None:
        """Delete half-stored documents and orphan chunks (inside a transaction that bumps the generation)."""
        self.delete_documents(self.half_stored())  # the next `index` run embeds them again
        self.execute("DELETE FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)")


def _batches(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]
