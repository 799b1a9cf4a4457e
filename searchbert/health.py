"""`searchbert status` and `--repair`: is every stored chunk backed by exactly one vector, and the reverse?"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .errors import VectorStoreError
from .index import Index, locate_index

#: documents whose stored chunks are not the ones they were committed with
_HALF_STORED = (
    "SELECT id FROM documents d WHERE chunk_count != (SELECT count(*) FROM chunks c WHERE c.document_id = d.id)"
)


@dataclass(frozen=True)
class IndexStatus:
    """What an index holds, how big it is, and whether its parts agree."""

    path: str
    model: str
    dimension: int
    chunking: dict[str, Any]
    lexical: dict[str, float]
    documents: int
    chunks: int
    vectors: int
    bytes_on_disk: int
    created: str
    updated: str
    consistent: bool
    problems: tuple[str, ...]
    vector_file: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(index: Index) -> tuple[list[str], str, int]:
    """Disagreements inside the index (SQLite is the truth), and the state of the FAISS file on disk."""
    store, problems = index.store, []
    orphans = store.execute(
        "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)"
    ).fetchone()[0]
    if orphans:
        problems.append(f"{orphans} chunks belong to no document")
    miscounted = len(store.execute(_HALF_STORED).fetchall())
    if miscounted:
        problems.append(f"{miscounted} documents do not have the chunks they should")
    # what searches use: the vector file when it is current, else vectors rebuilt from SQLite
    stored_ids = {r[0] for r in store.execute("SELECT id FROM chunks")}
    try:
        vector_ids = index.vectors.ids().tolist()
    except VectorStoreError as exc:  # a Milvus collection gone or unreachable: reported, and --repair can help
        problems.append(str(exc))
        vector_ids = []
    if len(set(vector_ids)) != len(vector_ids):
        problems.append("the vector index holds duplicate ids")
    if stored_ids - set(vector_ids):
        problems.append(f"{len(stored_ids - set(vector_ids))} chunks have no vector")
    if set(vector_ids) - stored_ids:
        problems.append(f"{len(set(vector_ids) - stored_ids)} vectors belong to no chunk")
    live = index.vectors  # it has read the saved file already: what it found is the file's state
    external = index.external_vectors
    if external is not None:  # Milvus counts what it holds: its ids, read once above
        return problems, external.describe(), len(vector_ids)
    if not live.trusted:
        vector_file = f"{live.problem}: read from the database on open (--repair rewrites it)"
    else:
        built = live.built
        kind = built["type"] + (f" ({built['factory']})" if "factory" in built else "")
        knob = next((k for k in ("nprobe", "ef_search") if k in built), None)
        if knob and "recall_estimate" in built:
            kind += f", {knob} {built[knob]}: estimated recall@10 {built['recall_estimate']}"
        behind = store.generation - live.saved_generation
        vector_file = f"{kind}, " + ("current" if not behind else f"{behind} commits behind (caught up on open)")
    return problems, vector_file, len(live)


def status(index_path: str | None = None) -> IndexStatus:
    """Counts, size and consistency of the index at index_path (located as `query` does)."""
    with Index.open(locate_index(index_path)) as index:
        counts, (problems, vector_file, vectors) = index.store.counts(), _check(index)
        size = sum(p.stat().st_size for p in index.path.iterdir() if p.is_file())
        m = index.manifest
        return IndexStatus(
            path=str(index.path),
            model=m.model_id,
            dimension=m.dimension,
            chunking=asdict(m.chunking),
            lexical=dict(m.lexical),
            documents=counts["documents"],
            chunks=counts["chunks"],
            vectors=vectors,
            bytes_on_disk=size,
            created=m.created,
            updated=m.updated,
            consistent=not problems,
            problems=tuple(problems),
            vector_file=vector_file,
        )


def repair(index_path: str | None = None) -> IndexStatus:
    """Rebuild what can be rebuilt without embedding: drop half-stored documents, rewrite the vector file."""
    with Index.open(locate_index(index_path)) as index, index.writing():
        store = index.store
        with store.transaction():
            broken = [r[0] for r in store.execute(_HALF_STORED)]
            store.delete_documents(broken)  # the next `index` run embeds them again
            store.execute("DELETE FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)")
            store.bump_generation()
        index.save_vectors(rebuild=True)  # from SQLite, whatever state the file was in
        index.save_lexical()
    return status(str(index.path))
