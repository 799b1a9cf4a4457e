"""SQLite through sqlite-utils: documents, chunks (with their vectors) and a small key/value table.

SQLite is the index's source of truth. Vectors are kept here as float32 blobs so the FAISS file is only a cache that
can always be rebuilt without embedding anything again; each committed write bumps `generation`, and the FAISS file
records the generation it was saved at.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import storage_error
from .expression import Expression, ExtIn, MetadataIs, ModifiedSince, PathGlob, compile_filters, json_type
from .records import Chunk, Document, extension, relpath

if TYPE_CHECKING:
    import numpy as np
    import sqlite_utils

    from .records import Filters

SCHEMA_VERSION = 6

#: the vector of a chunk stored before it is embedded: searchable by its words at once, by meaning once the writer
#: has embedded it (an empty blob rather than NULL: the column has been NOT NULL since version 1, and SQLite cannot
#: change that without copying the table)
NO_VECTOR = b""
#: the SQL test for a chunk that has its vector
_HAS_VECTOR = "length(vector) > 0"

# version 2: filter columns (searched in SQL) and the log of removed chunks (readers catch up from a saved file)
_V2 = """
CREATE INDEX IF NOT EXISTS documents_ext ON documents(ext, first_chunk, chunk_count);
CREATE INDEX IF NOT EXISTS documents_relpath ON documents(relpath, first_chunk, chunk_count);
CREATE INDEX IF NOT EXISTS documents_mtime ON documents(mtime, first_chunk, chunk_count);
CREATE TABLE IF NOT EXISTS removed_chunks (chunk_id INTEGER NOT NULL, generation INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS removed_generation ON removed_chunks(generation);
"""

# version 4: each chunk's key of the exact text its vector was embedded from, so the same text is never embedded twice
_V4 = """
CREATE INDEX IF NOT EXISTS chunks_embedded ON chunks(embedded);
"""

# version 5: chunks committed before their vectors (words first), found through this small index until embedded
_V5 = """
CREATE INDEX IF NOT EXISTS chunks_unembedded ON chunks(document_id) WHERE length(vector) = 0;
"""

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    root TEXT NOT NULL,
    title TEXT NOT NULL,
    format TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    sha256 TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    indexed_at TEXT NOT NULL,
    relpath TEXT NOT NULL DEFAULT '',
    ext TEXT NOT NULL DEFAULT '',
    first_chunk INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    text TEXT
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    start_char INTEGER NOT NULL,
    end_char INTEGER NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    vector BLOB NOT NULL,
    embedded TEXT,
    section TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
    + _V2
    + _V4
    + _V5
)


#: bits for a document's chunk count when it travels packed with its first chunk id (a 2 MB document has ~5,000)
_COUNT_BITS = 24
_DOC_COLUMNS = "id, path, root, title, size, mtime, sha256, chunk_count, metadata"


@dataclass(frozen=True)
class StoredDocument:
    """A document row as the store keeps it (no text: that lives in its chunks)."""

    id: int
    path: str
    root: str
    title: str
    size: int
    mtime: float
    sha256: str
    chunk_count: int
    metadata: str = "{}"  # as stored: JSON


@dataclass(frozen=True)
class ChunkRow:
    """A chunk joined with its document's path and title, as search needs it."""

    id: int
    path: str
    title: str
    ordinal: int
    text: str
    start_char: int
    end_char: int
    start_line: int
    end_line: int
    metadata: dict[str, Any]
    #: False until the writer has embedded it: found by its words only
    embedded: bool = True
    section: str = ""


class Store:
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
                self._migrate()
        except sqlite3.Error as exc:
            raise storage_error(exc, path) from exc

    def has_schema(self) -> bool:
        return self.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is not None

    def _migrate(self) -> None:
        """Bring an index written by an older searchbert up to this schema, in one transaction."""
        with self.transaction():
            version = int(self.get_meta("schema_version", "1"))
            if version >= SCHEMA_VERSION:
                return  # another process migrated it while this one waited
            if version < 2:
                self._to_v2()
            if version < 3:
                # a record's metadata, and the whole text (for `get`); older documents' text is pieced from chunks
                self.execute("ALTER TABLE documents ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}'")
                self.execute("ALTER TABLE documents ADD COLUMN text TEXT")
            if version < 4:  # chunks stored before have no key: they are simply never reused
                self.execute("ALTER TABLE chunks ADD COLUMN embedded TEXT")
                for statement in _statements(_V4):
                    self.execute(statement)
            if version < 5:  # every chunk stored before has its vector: the index starts empty
                for statement in _statements(_V5):
                    self.execute(statement)
            if version < 6:  # the heading path of each chunk: none known for those stored before
                self.execute("ALTER TABLE chunks ADD COLUMN section TEXT NOT NULL DEFAULT ''")
            self.set_meta("schema_version", str(SCHEMA_VERSION))

    def _to_v2(self) -> None:
        for column, kind in (("relpath", "TEXT NOT NULL DEFAULT ''"), ("ext", "TEXT NOT NULL DEFAULT ''")):
            self.execute(f"ALTER TABLE documents ADD COLUMN {column} {kind}")
        self.execute("ALTER TABLE documents ADD COLUMN first_chunk INTEGER NOT NULL DEFAULT 0")
        rows = self.execute("SELECT id, path, root FROM documents").fetchall()
        self.conn.executemany(
            "UPDATE documents SET relpath = ?, ext = ? WHERE id = ?",
            [(relpath(path, root), extension(path), doc_id) for doc_id, path, root in rows],
        )
        self.execute(
            "UPDATE documents SET first_chunk ="
            " coalesce((SELECT min(id) FROM chunks WHERE document_id = documents.id), 0)"
        )
        for statement in _statements(_V2):  # executescript would commit the transaction half way
            self.execute(statement)
        self.set_meta("removed_since", str(self.generation))  # the log is complete from here on

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
        for statement in _statements(_SCHEMA):
            self.execute(statement)
        with self.transaction():  # a file reset for a rebuild keeps its generation: it only grows
            for key, value in (("schema_version", SCHEMA_VERSION), ("generation", 0), ("removed_since", 0)):
                self.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", [key, str(value)])

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

    def document(self, path: str) -> StoredDocument | None:
        row = self.execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE path = ?", [path]).fetchone()
        return StoredDocument(*row) if row else None

    def documents_under(self, root: str) -> list[StoredDocument]:
        """Files whose path is `root` or lies below it. Records added as data (root '') are never among them: their
        ids share the namespace of paths, and a record named /etc/passwd is not a file under /etc."""
        prefix = root.rstrip("/") + "/"
        rows = self.execute(
            f"SELECT {_DOC_COLUMNS} FROM documents WHERE root != '' AND (path = ? OR substr(path, 1, ?) = ?)",
            [root, len(prefix), prefix],
        ).fetchall()
        return [StoredDocument(*row) for row in rows]

    def records(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents with these ids (paths), in the order asked, unknown ids left out; the whole text
        (pieced together from the chunks for a document stored before the text was kept)."""
        found: dict[str, Document] = {}
        sql = "SELECT id, path, root, title, size, mtime, format, metadata, text FROM documents WHERE path IN ({marks})"
        for row in self.rows_in(sql, ids):
            text = row[8] if row[8] is not None else self._pieced(row[0])
            found[row[1]] = Document(row[1], text, row[3], row[2], row[4], row[5], row[6], json.loads(row[7]))
        return [found[i] for i in ids if i in found]

    def around(self, chunk_id: int, n: int) -> tuple[str, int, int] | None:
        """The text from n chunks before a chunk to n after it (overlaps once), with its first and last line."""
        row = self.execute(
            "SELECT min(c.start_char), max(c.end_char), min(c.start_line), max(c.end_line), c.document_id"
            " FROM chunks c JOIN chunks me ON me.id = ? AND c.document_id = me.document_id"
            " AND c.ordinal BETWEEN me.ordinal - ? AND me.ordinal + ?",
            [chunk_id, n, n],
        ).fetchone()
        if row is None or row[0] is None:
            return None
        stored = self.execute("SELECT text FROM documents WHERE id = ?", [row[4]]).fetchone()
        text = stored[0] if stored and stored[0] is not None else self._pieced(row[4])
        return text[row[0] : row[1]], row[2], row[3]

    def _pieced(self, doc_id: int) -> str:
        """A document's text from its chunks, which cover every character (overlapping) and record their spans."""
        spans = self.execute(
            "SELECT start_char, end_char, text FROM chunks WHERE document_id = ? ORDER BY start_char", [doc_id]
        ).fetchall()
        text, end = "", 0
        for start, stop, chunk in spans:
            if stop > end:
                text += chunk[end - start :] if start < end else chunk
                end = stop
        return text

    def set_metadata(self, doc_id: int, metadata: dict[str, Any]) -> None:
        self.execute(
            "UPDATE documents SET metadata = ? WHERE id = ?",
            [json.dumps(metadata, ensure_ascii=False, sort_keys=True), doc_id],
        )

    def roots(self) -> list[str]:
        """The folders files were indexed from (records added as data have none)."""
        return [r[0] for r in self.execute("SELECT DISTINCT root FROM documents WHERE root != ''")]

    def documents_in_root(self, root: str) -> list[StoredDocument]:
        rows = self.execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE root = ?", [root]).fetchall()
        return [StoredDocument(*row) for row in rows]

    def same_content(self, sha256: str, title: str, format: str) -> int | None:
        """A stored document, every chunk embedded, whose chunks and vectors would be the same as a new one's."""
        row = self.execute(
            "SELECT id FROM documents d WHERE sha256 = ? AND title = ? AND format = ? AND chunk_count > 0"
            " AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.id AND length(c.vector) = 0) LIMIT 1",
            [sha256, title, format],
        ).fetchone()
        return row[0] if row else None

    def vectors_by_key(self, keys: Iterable[str], dimension: int) -> dict[str, np.ndarray]:
        """Stored vectors by the key of the text they were embedded from (see indexing.embedded_key), for the keys
        that have one."""
        import numpy as np

        sql = "SELECT embedded, vector FROM chunks WHERE embedded IN ({marks})"
        return {key: np.frombuffer(blob, dtype=np.float32, count=dimension) for key, blob in self.rows_in(sql, keys)}

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

    def vectors_after(self, chunk_id: int, dimension: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every embedded chunk with a larger id (ids only grow: these were committed later; a chunk
        embedded after its words were committed gets a new id then, see embed_document)."""
        sql = f"SELECT id, vector FROM chunks WHERE id > ? AND {_HAS_VECTOR} ORDER BY id"
        rows = self.execute(sql, [chunk_id]).fetchall()
        return _decode(rows, dimension)

    def allowed_ranges(self, filters: Filters | Expression) -> tuple[np.ndarray, np.ndarray]:
        """(first chunk id, chunk count) of the documents passing the filters: a document's chunks are inserted
        together, so their ids are consecutive."""
        import numpy as np

        where, params = condition(filters)
        # the filter columns' indexes cover both numbers, and one string of one packed number a document crosses
        # into Python far faster than a tuple a row (a fifth of the time at 50,000 documents)
        sql = f"SELECT group_concat((first_chunk << {_COUNT_BITS}) | chunk_count) FROM documents WHERE {where}"
        text = self.execute(sql, params).fetchone()[0]
        packed = np.fromstring(text or "", dtype=np.int64, sep=",")
        return packed >> _COUNT_BITS, packed & ((1 << _COUNT_BITS) - 1)

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

    def document_ids(self, chunk_ids: Iterable[int], filters: Filters | Expression | None = None) -> dict[int, int]:
        """chunk id -> document id; with `filters`, only for the chunks whose document passes them."""
        where, params = condition(filters) if filters is not None else ("1", [])
        # CROSS JOIN keeps SQLite's loop on the given chunks: left to choose, it may drive the join from the
        # filter's index instead, visiting every document the filter allows (300 ms at 10,000 of them)
        sql = (
            "SELECT c.id, c.document_id FROM chunks c CROSS JOIN documents d ON d.id = c.document_id"
            f" WHERE c.id IN ({{marks}}) AND ({where})"
        )
        return dict(self.rows_in(sql, chunk_ids, params))

    def chunks(self, ids: Iterable[int]) -> dict[int, ChunkRow]:
        """Chunk rows by id, with their document's path and title."""
        sql = (
            "SELECT c.id, d.path, d.title, c.ordinal, c.text, c.start_char, c.end_char, c.start_line, c.end_line,"
            " d.metadata, length(c.vector) > 0, c.section FROM chunks c JOIN documents d ON d.id = c.document_id"
            " WHERE c.id IN ({marks})"
        )
        return {
            row[0]: ChunkRow(*row[:-3], json.loads(row[-3]), bool(row[-2]), row[-1]) for row in self.rows_in(sql, ids)
        }

    def vectors_of(self, chunk_ids: Sequence[int], dimension: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of those of the given chunks that are embedded, as stored."""
        sql = f"SELECT id, vector FROM chunks WHERE id IN ({{marks}}) AND {_HAS_VECTOR}"
        return _decode(list(self.rows_in(sql, chunk_ids)), dimension)

    def all_vectors(self, dimension: int, batch: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (ids, vectors) in the store, a batch at a time, to rebuild the vector index."""
        last = -1
        while True:
            sql = f"SELECT id, vector FROM chunks WHERE id > ? AND {_HAS_VECTOR} ORDER BY id LIMIT ?"
            rows = self.execute(sql, [last, batch]).fetchall()
            if not rows:
                return
            ids, vectors = _decode(rows, dimension)
            yield ids, vectors
            last = int(ids[-1])

    def metadata_keys(self, limit: int = 50) -> list[str]:
        """The metadata keys documents have, most used first (at most `limit`)."""
        sql = (
            "SELECT j.key FROM documents d, json_each(d.metadata) j GROUP BY j.key ORDER BY count(*) DESC, j.key"
            " LIMIT ?"
        )
        return [r[0] for r in self.execute(sql, [limit])]

    def document_count(self) -> int:
        return int(self.execute("SELECT count(*) FROM documents").fetchone()[0])

    def counts(self) -> dict[str, int]:
        """Documents, chunks, and chunks embedded (those with vectors: what a vector store holds)."""
        chunks = self.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return {"documents": self.document_count(), "chunks": chunks, "embedded": chunks - self.unembedded_count()}

    # -- words first: chunks committed before their vectors (see indexing.Writer) -----------------------------------

    def unembedded_count(self) -> int:
        """Chunks committed without their vector yet (counted on their own small index)."""
        return int(self.execute("SELECT count(*) FROM chunks WHERE length(vector) = 0").fetchone()[0])

    def unembedded_documents(self, after: int, limit: int) -> list[int]:
        """Ids of documents with a chunk not embedded yet, above `after`, in order, at most `limit`."""
        sql = "SELECT DISTINCT document_id FROM chunks WHERE length(vector) = 0 AND document_id > ? ORDER BY 1 LIMIT ?"
        return [r[0] for r in self.execute(sql, [after, limit])]

    def words_only(self, chunk_ids: Iterable[int]) -> set[int]:
        """Those of the chunks that are not embedded yet (searchable by their words only)."""
        sql = "SELECT id FROM chunks WHERE id IN ({marks}) AND length(vector) = 0"
        return {r[0] for r in self.rows_in(sql, chunk_ids)}

    def document_chunks(self, doc_id: int) -> tuple[str, str, list[Chunk], list[bytes], list[str | None]]:
        """A document's path and title, and its chunks in order with their vector blobs (NO_VECTOR: not embedded
        yet) and keys: what embedding it needs."""
        row = self.execute("SELECT path, title FROM documents WHERE id = ?", [doc_id]).fetchone()
        rows = self.execute(
            "SELECT ordinal, text, start_char, end_char, start_line, end_line, section, vector, embedded FROM chunks"
            " WHERE document_id = ? ORDER BY ordinal",
            [doc_id],
        ).fetchall()
        path, title = row if row else ("", "")
        return path, title, [Chunk(*r[:7]) for r in rows], [r[7] for r in rows], [r[8] for r in rows]

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

    # -- filters, health and other readers' questions (SQL lives here only) --------------------------------------

    def count_matching(self, filters: Filters | Expression, limit: int) -> int:
        """How many documents pass the filters, counted no further than `limit`."""
        where, params = condition(filters)
        sql = f"SELECT count(*) FROM (SELECT 1 FROM documents WHERE {where} LIMIT ?)"
        return int(self.execute(sql, [*params, limit]).fetchone()[0])

    def chunk_ids(self, document_id: int | None = None) -> np.ndarray:
        """Every embedded chunk's id in order (or one document's): the ids a vector store holds."""
        import numpy as np

        if document_id is None:
            rows = self.execute(f"SELECT id FROM chunks WHERE {_HAS_VECTOR} ORDER BY id")
        else:
            sql = f"SELECT id FROM chunks WHERE document_id = ? AND {_HAS_VECTOR} ORDER BY id"
            rows = self.execute(sql, [document_id])
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def sample_chunks(self, n: int) -> list[int]:
        """Up to n embedded chunks' ids spread over the index (random, so repeated checks see different ones)."""
        rows = self.execute(f"SELECT id FROM chunks WHERE {_HAS_VECTOR} ORDER BY random() LIMIT ?", [n]).fetchall()
        return sorted(r[0] for r in rows)

    def indexed_texts(self, chunk_ids: Iterable[int]) -> dict[int, tuple[str, str, str]]:
        """chunk id -> (its document's title, its section, its text): what the writer embedded, with the prefix."""
        sql = (
            "SELECT c.id, d.title, c.section, c.text FROM chunks c JOIN documents d ON d.id = c.document_id"
            " WHERE c.id IN ({marks})"
        )
        return {row[0]: (row[1], row[2], row[3]) for row in self.rows_in(sql, chunk_ids)}

    def lexical_rows(self) -> Iterator[tuple[int, str, str, str]]:
        """(chunk id, title, section, text) of every chunk, streamed in id order (never all held at once)."""
        return iter(
            self.execute(
                "SELECT c.id, d.title, c.section, c.text FROM chunks c JOIN documents d ON d.id = c.document_id"
                " ORDER BY c.id"
            )
        )

    def filter_fields(
        self, chunk_ids: Iterable[int] | None = None
    ) -> Iterator[tuple[int, bytes, str, str, float, str]]:
        """(id, vector blob, relpath, ext, mtime, metadata JSON) per embedded chunk, of these chunks or (None) of
        every one, streamed: what a store that filters needs."""
        sql = (
            "SELECT c.id, c.vector, d.relpath, d.ext, d.mtime, d.metadata FROM chunks c "
            "JOIN documents d ON d.id = c.document_id WHERE length(c.vector) > 0"
        )
        if chunk_ids is None:
            return iter(self.execute(sql + " ORDER BY c.id"))
        return self.rows_in(sql + " AND c.id IN ({marks})", chunk_ids)

    def orphan_chunks(self) -> int:
        """Chunks whose document is gone (a foreign key that did not hold)."""
        sql = "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)"
        return int(self.execute(sql).fetchone()[0])

    def half_stored(self) -> list[int]:
        """Documents whose stored chunks are not the ones they were committed with."""
        return [r[0] for r in self.execute(_HALF_STORED)]

    def drop_broken(self) -> None:
        """Delete half-stored documents and orphan chunks (inside a transaction that bumps the generation)."""
        self.delete_documents(self.half_stored())  # the next `index` run embeds them again
        self.execute("DELETE FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)")


_HALF_STORED = (
    "SELECT id FROM documents d WHERE chunk_count != (SELECT count(*) FROM chunks c WHERE c.document_id = d.id)"
)


def condition(filters: Filters | Expression) -> tuple[str, list[Any]]:
    """The SQL translation of a filter expression: a condition on the documents table, and its parameters."""
    where, params = ["1"], []
    for c in compile_filters(filters).conditions:
        if isinstance(c, ExtIn):
            where.append(f"ext IN ({','.join('?' * len(c.exts))})")
            params += list(c.exts)
        elif isinstance(c, ModifiedSince):
            where.append("mtime >= ?")
            params.append(c.time)
        elif isinstance(c, PathGlob):
            where.append("(" + " OR ".join("relpath GLOB ?" for _ in c.patterns) + ")")
            # fnmatch's negated class [!a] is [^a] in SQLite's GLOB; the rest is the same
            params += [p.replace("[!", "[^") for p in c.patterns]
        elif isinstance(c, MetadataIs):
            path = "$." + json.dumps(c.key)  # a quoted JSON path: any key, dots and spaces included
            tests = []
            for v in c.values:
                plain = v is None or isinstance(v, bool)  # json_type alone tells null, true and false apart
                tests.append("json_type(metadata, ?) = ?" + ("" if plain else " AND json_extract(metadata, ?) = ?"))
                params += [path, json_type(v)] + ([] if plain else [path, v])
            where.append("(" + " OR ".join(tests or ["0"]) + ")")
    return " AND ".join(where), params


def _statements(script: str) -> list[str]:
    return [q.strip() for q in script.split(";") if q.strip()]


def _decode(rows: list[tuple[int, bytes]], dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """(id, float32 blob) rows -> (ids, vectors)."""
    import numpy as np

    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dimension)


def _batches(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]
