"""The SQLite schema of an index, and how a file written by an older searchbert is brought up to it.

The version is recorded in the file (meta.schema_version); opening an older one migrates it in one transaction, so
an index is never left half migrated, and a process that waited for another's migration finds nothing left to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import extension, relpath

if TYPE_CHECKING:
    from .store import Store

SCHEMA_VERSION = 6

#: the vector of a chunk stored before it is embedded: searchable by its words at once, by meaning once the writer
#: has embedded it (an empty blob rather than NULL: the column has been NOT NULL since version 1, and SQLite cannot
#: change that without copying the table)
NO_VECTOR = b""
#: the SQL test for a chunk that has its vector
HAS_VECTOR = "length(vector) > 0"

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

SCHEMA = (
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


def statements(script: str) -> list[str]:
    """A script's statements, to run one by one (executescript would commit a transaction half way)."""
    return [q.strip() for q in script.split(";") if q.strip()]


def create(store: Store) -> None:
    """Make the tables of a new index (a file reset for a rebuild keeps its meta rows)."""
    for statement in statements(SCHEMA):
        store.execute(statement)
    with store.transaction():  # a file reset for a rebuild keeps its generation: it only grows
        for key, value in (("schema_version", SCHEMA_VERSION), ("generation", 0), ("removed_since", 0)):
            store.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", [key, str(value)])


def migrate(store: Store) -> None:
    """Bring an index written by an older searchbert up to this schema, in one transaction."""
    with store.transaction():
        version = int(store.get_meta("schema_version", "1"))
        if version >= SCHEMA_VERSION:
            return  # another process migrated it while this one waited
        if version < 2:
            _to_v2(store)
        if version < 3:
            # a record's metadata, and the whole text (for `get`); older documents' text is pieced from chunks
            store.execute("ALTER TABLE documents ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}'")
            store.execute("ALTER TABLE documents ADD COLUMN text TEXT")
        if version < 4:  # chunks stored before have no key: they are simply never reused
            store.execute("ALTER TABLE chunks ADD COLUMN embedded TEXT")
            for statement in statements(_V4):
                store.execute(statement)
        if version < 5:  # every chunk stored before has its vector: the index starts empty
            for statement in statements(_V5):
                store.execute(statement)
        if version < 6:  # the heading path of each chunk: none known for those stored before
            store.execute("ALTER TABLE chunks ADD COLUMN section TEXT NOT NULL DEFAULT ''")
        store.set_meta("schema_version", str(SCHEMA_VERSION))


def _to_v2(store: Store) -> None:
    for column, kind in (("relpath", "TEXT NOT NULL DEFAULT ''"), ("ext", "TEXT NOT NULL DEFAULT ''")):
        store.execute(f"ALTER TABLE documents ADD COLUMN {column} {kind}")
    store.execute("ALTER TABLE documents ADD COLUMN first_chunk INTEGER NOT NULL DEFAULT 0")
    rows = store.execute("SELECT id, path, root FROM documents").fetchall()
    store.conn.executemany(
        "UPDATE documents SET relpath = ?, ext = ? WHERE id = ?",
        [(relpath(path, root), extension(path), doc_id) for doc_id, path, root in rows],
    )
    store.execute(
        "UPDATE documents SET first_chunk = coalesce((SELECT min(id) FROM chunks WHERE document_id = documents.id), 0)"
    )
    for statement in statements(_V2):  # executescript would commit the transaction half way
        store.execute(statement)
    store.set_meta("removed_since", str(store.generation))  # the log is complete from here on
