"""`searchbert status` and `--repair`: is every stored chunk backed by exactly one vector, and the reverse, and do the
vectors hold what SQLite says they hold (a sample of them; with `deep`, also against the model run again)?"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .errors import VectorStoreError
from .index import Index, locate_index

if TYPE_CHECKING:
    from .encoders import Encoder
    from .stores import VectorStore

#: chunks whose vectors are compared with SQLite's at each status (random ones: repeated checks see others)
SAMPLE = 256
#: chunks embedded again by `status --deep`
DEEP_SAMPLE = 8
#: a vector the model gives again for a chunk's text must be this close (cosine) to the stored one: the same model on
#: another batch or thread count differs in the last bits, an int8 one a little more
DEEP_MIN_COSINE = 0.98


@dataclass(frozen=True)
class IndexStatus:
    """What an index holds, how big it is, and whether its parts agree."""

    path: str
    model: str
    dimension: int
    chunking: dict[str, Any]
    lexical: dict[str, float]
    #: the default min_relevance here, and which weights estimate relevance ("" for words alone)
    relevance_threshold: float
    relevance_model: str
    documents: int
    chunks: int
    #: chunks with their vector (the others wait for it: searchable by their words only)
    embedded: int
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
    """Disagreements inside the index (SQLite is the truth), and the state of its vector store."""
    store, problems = index.store, []
    orphans = store.orphan_chunks()
    if orphans:
        problems.append(f"{orphans} chunks belong to no document")
    miscounted = len(store.half_stored())
    if miscounted:
        problems.append(f"{miscounted} documents do not have the chunks they should")
    stored_ids = set(store.chunk_ids().tolist())
    vectors = index.vectors
    try:
        vector_ids = vectors.ids().tolist()
        problems += _contents(index, vectors)
    except VectorStoreError as exc:  # a Milvus collection gone or unreachable: reported, and --repair can help
        problems.append(str(exc))
        vector_ids = []
    if len(set(vector_ids)) != len(vector_ids):
        problems.append("the vector index holds duplicate ids")
    if stored_ids - set(vector_ids):  # embedded in SQLite, missing from the vector store
        problems.append(f"{len(stored_ids - set(vector_ids))} chunks have no vector")
    if set(vector_ids) - stored_ids:
        problems.append(f"{len(set(vector_ids) - stored_ids)} vectors belong to no chunk")
    return problems, vectors.describe(), len(vector_ids)


def _contents(index: Index, vectors: VectorStore) -> list[str]:
    """Whether the vector store holds, for a sample of chunks, the vectors SQLite holds for them: each must be
    nearer its own stored vector than any other of the sample (an approximate code is close, never exact), and an
    exact one equal to it."""
    import numpy as np

    sample = index.store.sample_chunks(SAMPLE)
    if not sample:
        return []
    ids, held = vectors.vectors(sample)
    _, stored = index.store.vectors_of(ids.tolist(), index.manifest.dimension)
    if not len(ids):
        return []
    scores = held @ stored.T  # two chunks of the same text have the same vector: a tie is no mistake
    own = np.diag(scores) >= scores.max(axis=1) - 1e-4
    same = own if vectors.approximate else np.all(np.abs(held - stored) <= 1e-5, axis=1)
    wrong = int((~(own & same)).sum())
    if wrong:
        return [f"{wrong} of {len(ids)} sampled vectors differ from the chunks' stored ones (--repair rewrites them)"]
    return []


def _deep(index: Index, encoder: Encoder | None) -> list[str]:
    """Whether the model, run again on a few chunks' indexed text, gives the vectors stored for them."""
    import numpy as np

    from .sections import context_line

    enc = encoder or index.encoder
    sample = index.store.sample_chunks(DEEP_SAMPLE)
    if not sample:
        return []
    texts = index.store.indexed_texts(sample)
    ids, stored = index.store.vectors_of(sample, index.manifest.dimension)
    settings = index.manifest.chunking
    lines = {i: context_line(texts[i][0], texts[i][1], enc.token_spans, settings) for i in ids.tolist()}
    again = enc.encode([lines[i] + texts[i][2] for i in ids.tolist()])
    cosine = np.sum(again * stored, axis=1) / np.maximum(
        np.linalg.norm(again, axis=1) * np.linalg.norm(stored, axis=1), 1e-12
    )
    wrong = int((cosine < DEEP_MIN_COSINE).sum())
    if wrong:
        return [
            f"{wrong} of {len(ids)} chunks embedded again do not give their stored vectors (lowest cosine "
            f"{cosine.min():.3f}): the index holds another model's vectors; pass --rebuild to embed it again"
        ]
    return []


def status(index_path: str | None = None, *, deep: bool = False, encoder: Encoder | None = None) -> IndexStatus:
    """Counts, size and consistency of the index at index_path (located as `query` does); `deep` also embeds a few
    chunks again with the index's model (or `encoder`) and compares."""
    with Index.open(locate_index(index_path), encoder=encoder) as index:
        counts, (problems, vector_file, vectors) = index.store.counts(), _check(index)
        if deep:
            problems += _deep(index, encoder)
        size = sum(p.stat().st_size for p in index.path.iterdir() if p.is_file())
        m = index.manifest
        return IndexStatus(
            path=str(index.path),
            model=m.model_id,
            dimension=m.dimension,
            chunking=asdict(m.chunking),
            lexical=dict(m.lexical),
            relevance_threshold=index.calibration.threshold,
            relevance_model=index.calibration.model,
            documents=counts["documents"],
            chunks=counts["chunks"],
            embedded=counts["embedded"],
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
        with index.committing():
            store.drop_broken()  # the next `index` run embeds them again
            store.bump_generation()
        index.save_vectors(rebuild=True)  # from SQLite, whatever state the file was in
        index.save_lexical()
    return status(str(index.path))
