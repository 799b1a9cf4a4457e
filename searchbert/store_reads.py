"""What readers ask of an index's SQLite file: documents, chunks and their vectors, filters, health.

Search, `get`, the vector stores catching up and `check` all read through these; a Store inherits them, and gives
them its connection (`execute`, and `rows_in` for long IN lists).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .expression import Expression, ExtIn, MetadataIs, ModifiedSince, PathGlob, compile_filters, json_type
from .records import Chunk, Document
from .store_schema import HAS_VECTOR

if TYPE_CHECKING:
    import numpy as np

    from .records import Filters


#: bits for a document's chunk count when it travels packed with its first chunk id (a 2 MB document has ~5,000)
COUNT_BITS = 24
DOC_COLUMNS = "id, path, root, title, size, mtime, sha256, chunk_count, metadata"


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


class Reads:
    """The store's questions that change nothing."""

    execute: Callable[..., sqlite3.Cursor]
    rows_in: Callable[..., Iterator[tuple[Any, ...]]]

    def document(self, path: str) -> StoredDocument | None:
        row = self.execute(f"SELECT {DOC_COLUMNS} FROM documents WHERE path = ?", [path]).fetchone()
        return StoredDocument(*row) if row else None

    def documents_under(self, root: str) -> list[StoredDocument]:
        """Files whose path is `root` or lies below it. Records added as data (root '') are never among them: their
        ids share the namespace of paths, and a record named /etc/passwd is not a file under /etc."""
        prefix = root.rstrip("/") + "/"
        rows = self.execute(
            f"SELECT {DOC_COLUMNS} FROM documents WHERE root != '' AND (path = ? OR substr(path, 1, ?) = ?)",
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

    def roots(self) -> list[str]:
        """The folders files were indexed from (records added as data have none)."""
        return [r[0] for r in self.execute("SELECT DISTINCT root FROM documents WHERE root != ''")]

    def documents_in_root(self, root: str) -> list[StoredDocument]:
        rows = self.execute(f"SELECT {DOC_COLUMNS} FROM documents WHERE root = ?", [root]).fetchall()
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

    def vectors_after(self, chunk_id: int, dimension: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every embedded chunk with a larger id (ids only grow: these were committed later; a chunk
        embedded after its words were committed gets a new id then, see embed_document)."""
        sql = f"SELECT id, vector FROM chunks WHERE id > ? AND {HAS_VECTOR} ORDER BY id"
        rows = self.execute(sql, [chunk_id]).fetchall()
        return decode(rows, dimension)

    def allowed_ranges(self, filters: Filters | Expression) -> tuple[np.ndarray, np.ndarray]:
        """(first chunk id, chunk count) of the documents passing the filters: a document's chunks are inserted
        together, so their ids are consecutive."""
        import numpy as np

        where, params = condition(filters)
        # the filter columns' indexes cover both numbers, and one string of one packed number a document crosses
        # into Python far faster than a tuple a row (a fifth of the time at 50,000 documents)
        sql = f"SELECT group_concat((first_chunk << {COUNT_BITS}) | chunk_count) FROM documents WHERE {where}"
        text = self.execute(sql, params).fetchone()[0]
        packed = np.fromstring(text or "", dtype=np.int64, sep=",")
        return packed >> COUNT_BITS, packed & ((1 << COUNT_BITS) - 1)

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
        sql = f"SELECT id, vector FROM chunks WHERE id IN ({{marks}}) AND {HAS_VECTOR}"
        return decode(list(self.rows_in(sql, chunk_ids)), dimension)

    def all_vectors(self, dimension: int, batch: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (ids, vectors) in the store, a batch at a time, to rebuild the vector index."""
        last = -1
        while True:
            sql = f"SELECT id, vector FROM chunks WHERE id > ? AND {HAS_VECTOR} ORDER BY id LIMIT ?"
            rows = self.execute(sql, [last, batch]).fetchall()
            if not rows:
                return
            ids, vectors = decode(rows, dimension)
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

    def count_matching(self, filters: Filters | Expression, limit: int) -> int:
        """How many documents pass the filters, counted no further than `limit`."""
        where, params = condition(filters)
        sql = f"SELECT count(*) FROM (SELECT 1 FROM documents WHERE {where} LIMIT ?)"
        return int(self.execute(sql, [*params, limit]).fetchone()[0])

    def chunk_ids(self, document_id: int | None = None) -> np.ndarray:
        """Every embedded chunk's id in order (or one document's): the ids a vector store holds."""
        import numpy as np

        if document_id is None:
            rows = self.execute(f"SELECT id FROM chunks WHERE {HAS_VECTOR} ORDER BY id")
        else:
            sql = f"SELECT id FROM chunks WHERE document_id = ? AND {HAS_VECTOR} ORDER BY id"
            rows = self.execute(sql, [document_id])
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def sample_chunks(self, n: int) -> list[int]:
        """Up to n embedded chunks' ids spread over the index (random, so repeated checks see different ones)."""
        rows = self.execute(f"SELECT id FROM chunks WHERE {HAS_VECTOR} ORDER BY random() LIMIT ?", [n]).fetchall()
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
        return [r[0] for r in self.execute(HALF_STORED)]


HALF_STORED = (
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


def decode(rows: list[tuple[int, bytes]], dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """(id, float32 blob) rows -> (ids, vectors)."""
    import numpy as np

    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dimension)
