"""Query vectors -> ranked Hits: nearest chunks from the vector index, grouped to their best chunk per document."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import Hit
from .store import Store

if TYPE_CHECKING:
    import numpy as np

    from .vectors import VectorIndex

#: chunks fetched per wanted document at first; the fetch grows until k documents are found or the index is spent
OVERFETCH = 4


def _best_per_document(store: Store, ids: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The first (best) chunk of each document, in score order, at most k."""
    valid = [(int(i), float(s)) for i, s in zip(ids, scores, strict=False) if i >= 0]
    doc_of = store.document_ids(i for i, _ in valid)
    seen: set[int] = set()
    best: list[tuple[int, float]] = []
    for chunk_id, score in valid:
        doc = doc_of.get(chunk_id)
        if doc is None or doc in seen:  # None: the chunk was deleted after the vector index was read
            continue
        seen.add(doc)
        best.append((chunk_id, score))
        if len(best) == k:
            break
    return best


def rank(store: Store, vectors: VectorIndex, queries: np.ndarray, k: int, *, chunks: bool = False) -> list[list[Hit]]:
    """The k best hits for each query vector: documents (best chunk each), or chunks."""
    total = len(vectors)
    if total == 0:
        return [[] for _ in range(len(queries))]
    results: list[list[tuple[int, float]]] = [[] for _ in range(len(queries))]
    todo = list(range(len(queries)))
    fetch = k if chunks else k * OVERFETCH
    while todo:
        fetch = min(fetch, total)
        scores, ids = vectors.search(queries[todo], fetch)
        still: list[int] = []
        for row, q in enumerate(todo):
            if chunks:
                doc_of = store.document_ids(int(i) for i in ids[row] if i >= 0)
                results[q] = [
                    (int(i), float(s)) for i, s in zip(ids[row], scores[row], strict=False) if int(i) in doc_of
                ][:k]
            else:
                results[q] = _best_per_document(store, ids[row], scores[row], k)
            if len(results[q]) < k and fetch < total:
                still.append(q)
        todo, fetch = still, fetch * 4
    rows = store.chunks({cid for res in results for cid, _ in res})
    return [
        [
            Hit(
                rank=r,
                score=score,
                path=rows[cid].path,
                title=rows[cid].title,
                text=rows[cid].text,
                start_line=rows[cid].start_line,
                end_line=rows[cid].end_line,
                chunk_id=cid,
                start_char=rows[cid].start_char,
                end_char=rows[cid].end_char,
            )
            for r, (cid, score) in enumerate((x for x in res if x[0] in rows), start=1)
        ]
        for res in results
    ]
