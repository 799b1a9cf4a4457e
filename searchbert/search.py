"""Queries -> ranked Hits: dense (FAISS), lexical (BM25) or both fused, optionally reranked, grouped to documents.

Filters are applied inside each retriever (a FAISS id selector, a BM25 weight mask), and the fetch depth grows until
k results are found or the matching chunks are spent, so a narrow filter never starves a query.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from .encoders import checked
from .expression import compile_filters
from .filtering import NARROW_FILTER, POST_FILTER_DEPTH, FilterCache, allowed_chunks
from .records import Fusion, Hit, SearchOptions

if TYPE_CHECKING:
    from .bm25 import BM25Retriever
    from .encoders import Encoder
    from .relevance import Calibration
    from .rerank import Reranker
    from .store import Store
    from .stores import VectorStore

#: chunks fetched per wanted document at first
OVERFETCH = 4
#: how hybrid search fuses when neither the search nor the index says (see records.Fusion): equal weights on min-max
#: scaled scores, the best mean over SciFact and Cranfield of the fusions benchmarks/quality.py compares (RRF, k 1 to
#: 100, scored about 2 points under it on both)
DEFAULT_FUSION = Fusion()


@dataclass(frozen=True)
class _Scored:
    chunk_id: int
    score: float
    dense_score: float | None = None
    dense_rank: int | None = None
    bm25_score: float | None = None
    bm25_rank: int | None = None
    fused_score: float | None = None
    rerank_score: float | None = None
    retrieval_score: float | None = None
    bm25_chunk: int | None = None  # the document's best chunk by BM25 (by_document hybrid shows it when BM25 leads)
    bm25_fraction: float | None = None
    relevance: float | None = None


@dataclass(frozen=True)
class Retrievers:
    """What a search reads, and nothing else of an index. The vector index, BM25 and the model are loaded on first
    use (a bm25 search never maps the vector file, a dense one never loads BM25), each caught up with the store."""

    store: Store
    vectors: Callable[[], VectorStore]
    lexical: Callable[[], BM25Retriever[int]]
    encoder: Callable[[], Encoder]
    dimension: int
    model_id: str
    filter_cache: FilterCache | None = None
    #: the index's own fusion, used when a search names none
    fusion: Fusion = DEFAULT_FUSION
    #: the weights that turn a hit's evidence into its relevance (None: hits carry none)
    calibration: Calibration | None = None


def _rank_lists(
    dense: list[tuple[int, float]], bm25: list[tuple[int, float]], doc_of: dict[int, int], by_document: bool
) -> tuple[dict[object, _Scored], list[object], list[object]]:
    """Per key (a document, or a chunk): how each retriever scored and ranked it, and each retriever's order."""
    seen: dict[object, _Scored] = {}
    orders: list[list[object]] = [[], []]
    for which, hits in enumerate((dense, bm25)):
        for chunk_id, score in hits:
            if chunk_id not in doc_of:  # deleted after the retriever's index was read
                continue
            key = doc_of[chunk_id] if by_document else chunk_id
            entry = seen.get(key)
            if entry is not None and (entry.dense_rank if which == 0 else entry.bm25_rank) is not None:
                continue  # a document's later chunks: its best one is already counted
            orders[which].append(key)
            rank = len(orders[which])
            if entry is None:
                entry = _Scored(chunk_id, score)
            entry = (
                replace(entry, dense_score=score, dense_rank=rank)
                if which == 0
                else replace(entry, bm25_score=score, bm25_rank=rank, bm25_chunk=chunk_id)
            )
            seen[key] = entry
    return seen, orders[0], orders[1]


def _combine(
    mode: str,
    dense: list[tuple[int, float]],
    bm25: list[tuple[int, float]],
    doc_of: dict[int, int],
    by_document: bool,
    fusion: Fusion = DEFAULT_FUSION,
    words_only: set[int] | frozenset[int] = frozenset(),
) -> list[_Scored]:
    """One ranking out of the retrievers' lists: as is for one retriever, fused (`fusion`) for both. By document,
    each retriever's best chunk of a document stands for it, so a document is fused once, whichever chunks won.
    The `words_only` chunks have no vector yet (an index being embedded): their keys are ranked by BM25 alone."""
    seen, dense_order, bm25_order = _rank_lists(dense, bm25, doc_of, by_document)
    if mode != "hybrid":
        return [replace(seen[key], retrieval_score=seen[key].score) for key in (dense_order or bm25_order)]
    unseen = {doc_of[c] if by_document else c for c in words_only if c in doc_of}
    fuse = _fuser(fusion, seen, dense_order, bm25_order, unseen)
    fused = []
    for key, entry in seen.items():
        score = fuse(key, entry)
        # the passage shown is the one the retriever that ranked the document higher found
        chunk = entry.chunk_id
        if entry.bm25_chunk is not None and (entry.dense_rank is None or entry.bm25_rank < entry.dense_rank):  # type: ignore[operator]
            chunk = entry.bm25_chunk
        fused.append(replace(entry, chunk_id=chunk, score=score, fused_score=score, retrieval_score=score))
    return sorted(fused, key=lambda e: -e.score)


def _fuser(
    fusion: Fusion,
    seen: dict[object, _Scored],
    dense_order: list[object],
    bm25_order: list[object],
    unseen: set[object],
) -> Callable[[object, _Scored], float]:
    """The fused score of a key, as `fusion` says (see records.Fusion). A key dense search cannot see yet (`unseen`:
    not embedded) is scored as if dense search agreed with BM25, which ranks it by BM25 alone: neither punished for
    the vector it lacks nor lifted above what its words earn."""
    if fusion.method == "rrf":
        k = fusion.k

        def rrf(key: object, e: _Scored) -> float:
            if key in unseen:
                return 2.0 / (k + e.bm25_rank) if e.bm25_rank is not None else 0.0
            return sum(1.0 / (k + r) for r in (e.dense_rank, e.bm25_rank) if r is not None)

        return rrf
    dense = normalise([seen[key].dense_score for key in dense_order], fusion.norm)  # type: ignore[misc]
    lexical = normalise([seen[key].bm25_score for key in bm25_order], fusion.norm)  # type: ignore[misc]
    d, b = dict(zip(dense_order, dense)), dict(zip(bm25_order, lexical))
    d_floor, b_floor = min(dense, default=0.0), min(lexical, default=0.0)
    alpha = fusion.alpha

    def convex(key: object, _: _Scored) -> float:
        words = b.get(key, b_floor)
        return words if key in unseen else alpha * d.get(key, d_floor) + (1 - alpha) * words

    return convex


def normalise(scores: Sequence[float], norm: str) -> list[float]:
    """One retriever's scores for one query on a common scale: min-max to [0, 1], or z-scores. All equal (one
    candidate, above all): each is the best there is, 1 on the min-max scale (0 would rank a lone perfect match
    as the worst); z-scores all 0."""
    if not scores:
        return []
    values = np.asarray(scores, dtype=np.float64)
    if norm == "minmax":
        span = values.max() - values.min()
        return ((values - values.min()) / span).tolist() if span > 0 else [1.0] * len(values)
    spread = values.std()
    return ((values - values.mean()) / spread).tolist() if spread > 0 else [0.0] * len(values)


def _rerank(reranker: Reranker, query: str, ranked: list[_Scored], texts: dict[int, str]) -> list[_Scored]:
    """The candidates by the reranker's score, or by its blend with the retrieval's (see rerank.combine); a
    reranker whose weight leaves all to the retrieval is not run."""
    from .rerank import combine

    weight = reranker.retrieval_weight
    if weight >= 1 or not ranked:
        return ranked
    scores = reranker.score(query, [texts[e.chunk_id] for e in ranked])
    final = combine(scores, np.array([e.retrieval_score or 0.0 for e in ranked]), weight)
    out = [replace(e, score=float(f), rerank_score=float(s)) for e, s, f in zip(ranked, scores, final)]
    return sorted(out, key=lambda e: -e.score)


def _pool(
    ranked: list[_Scored], k: int, candidates: int, doc_of: dict[int, int], by_document: bool = True
) -> tuple[list[_Scored], set[int]]:
    """The chunks a reranker reads: the best `candidates`, and more until they cover k documents (one long
    document must not fill the pool and leave fewer than k documents to return), or k chunks when chunks are
    ranked; with the documents (or chunks) they cover."""
    covered: set[int] = set()
    for n, e in enumerate(ranked):
        if n >= candidates and len(covered) >= k:
            return ranked[:n], covered
        covered.add(doc_of[e.chunk_id] if by_document else e.chunk_id)
    return ranked, covered


def _best_per_document(ranked: list[_Scored], doc_of: dict[int, int]) -> list[_Scored]:
    seen: set[int] = set()
    out = []
    for e in ranked:
        if doc_of[e.chunk_id] not in seen:
            seen.add(doc_of[e.chunk_id])
            out.append(e)
    return out


def search(
    use: Retrievers, queries: Sequence[str], options: SearchOptions, reranker: Reranker | None = None
) -> list[list[Hit]]:
    """The k best hits per query (documents by their best chunk, or chunks), as `options` say; `reranker` is
    options.rerank made ready."""
    k, mode, chunks, candidates = options.k, options.mode, options.chunks, options.candidates
    filters, min_score = options.filters, options.min_score
    fusion = options.fusion or use.fusion
    store = use.store
    # each retriever caught up once for the whole search; bm25 mode never maps the vector file, dense never loads BM25
    vectors = use.vectors() if mode != "bm25" else None
    lexical = use.lexical() if mode != "dense" else None
    # what the retrievers hold (counting SQLite's rows would cost a scan); BM25 holds chunks not embedded yet too
    size = max(len(r) for r in (vectors, lexical) if r is not None)  # type: ignore[arg-type]
    # exact search scans every vector a bitmap allows, so a bitmap always pays; an approximate one costs the same at
    # any depth, so a wide filter is checked on its results instead
    post_first = vectors is None or vectors.approximate
    cache = use.filter_cache.at(store.generation) if use.filter_cache is not None and filters else None
    dense_dimension = use.dimension if mode != "bm25" else None  # a narrow filter's own vectors serve dense search
    narrow = NARROW_FILTER if post_first else None
    allowed = allowed_chunks(store, filters, narrow, cache, dense_dimension) if filters else None
    total = size if allowed is None or allowed.count is None else allowed.count
    if total == 0:
        return [[] for _ in queries]
    inside = allowed.selection if allowed is not None else None
    query_vectors = None
    if mode != "bm25":
        raw = use.encoder().encode_queries(list(queries))
        query_vectors = checked(raw, len(queries), use.dimension, use.model_id)
    depth = max(k * (1 if chunks else OVERFETCH), candidates if reranker or options.diverse else 0)

    ranked: list[list[_Scored]] = [[] for _ in queries]
    doc_of: dict[int, int] = {}
    todo = list(range(len(queries)))
    passing, checked_rounds = 0.5, 0  # a wide filter: the share of results that pass it, first guessed, then seen
    while todo:
        depth = min(depth, total)
        checking = allowed is not None and inside is None
        fetch = min(size, math.ceil(depth / passing)) if checking else depth
        dense = None
        if allowed is not None and allowed.exact is not None and query_vectors is not None:
            dense = allowed.exact.nearest(query_vectors[todo], fetch)  # exactly the allowed chunks, as committed
        elif vectors is not None and query_vectors is not None:
            # a store that filters inside (Milvus) is handed the expression; the others use `inside`, or their
            # results are checked below
            where = compile_filters(filters) if filters and vectors.filters_inside else None
            dense = vectors.nearest(query_vectors[todo], fetch, inside, where)
        bm25 = lexical.search_many([queries[q] for q in todo], fetch, inside) if lexical is not None else None
        lists = [(dense[i] if dense else [], bm25[i] if bm25 else []) for i in range(len(todo))]
        found_ids = {c for pair in lists for hits in pair for c, _ in hits}
        if checking:  # one lookup maps the chunks and drops those the filter rejects
            kept = store.document_ids(found_ids, allowed.expression)  # type: ignore[union-attr]
            lists = [tuple([h for h in hits if h[0] in kept][:depth] for hits in pair) for pair in lists]
            doc_of.update(kept)
            passing, checked_rounds = len(kept) / max(1, len(found_ids)), checked_rounds + 1
        else:
            doc_of.update(store.document_ids(found_ids))
        # chunks committed before their vectors (an index being embedded) count on their words alone
        words = store.words_only(found_ids) if mode == "hybrid" else frozenset()
        still = []
        for q, (d, b) in zip(todo, lists):
            ranked[q] = _combine(mode, d, b, doc_of, not chunks and reranker is None, fusion, words)
            found = len(ranked[q]) if reranker is None or chunks else len(_pool(ranked[q], k, candidates, doc_of)[1])
            if found < k and depth < total:
                still.append(q)
        todo = still
        if checking and todo:
            # once more, as deep as the share that passed asks (with a margin); past that, or when too deep, the
            # filter's bitmap after all, which also knows when every allowed chunk has been found
            passing /= 1.5
            if checked_rounds >= 2 or fetch >= size or passing * POST_FILTER_DEPTH < 1:
                allowed = allowed_chunks(store, filters, None, cache)  # type: ignore[arg-type]
                inside, total = allowed.selection, allowed.count or 0
                if not total:
                    break
            continue
        depth *= 4
    if reranker is not None:
        pools = [_pool(r, k, candidates, doc_of, by_document=not chunks)[0] for r in ranked]
        texts = {cid: row.text for cid, row in store.chunks({e.chunk_id for p in pools for e in p}).items()}
        for q, query in enumerate(queries):
            ranked[q] = _rerank(reranker, query, [e for e in pools[q] if e.chunk_id in texts], texts)
            if not chunks:
                ranked[q] = _best_per_document(ranked[q], doc_of)
    if options.diverse:
        ranked = [_diverse(r, k, candidates, options.mmr_lambda, store, use.dimension) for r in ranked]
    ranked = [[e for e in r if min_score is None or e.score >= min_score][:k] for r in ranked]
    if use.calibration is not None:
        ranked = _judged(use.calibration, mode, queries, query_vectors, lexical, ranked, store, use.dimension)
        if options.min_relevance is not None:  # a hit whose relevance is unknown is kept (see relevance.py)
            floor = options.min_relevance
            ranked = [[e for e in r if e.relevance is None or e.relevance >= floor] for r in ranked]
    hits = _hits(store, ranked)
    if options.context:
        hits = [[_with_context(store, h, options.context) for h in row] for row in hits]
    if options.max_tokens is not None:
        from .budget import fit, named_counter

        def own(text: str) -> int:  # the index's model's word pieces
            return len(use.encoder().token_spans(text))

        count = named_counter(options.tokenizer) if options.tokenizer is not None else own
        hits = [fit(row, options.max_tokens, count) for row in hits]
    return hits


def _diverse(ranked: list[_Scored], k: int, candidates: int, lam: float, store: Store, dim: int) -> list[_Scored]:
    """k of the best `candidates` by maximal marginal relevance (Carbonell and Goldstein, 1998): each next pick is
    the one with the best lam * relevance - (1 - lam) * its highest cosine to those already picked; relevance is the
    ranking score min-max scaled over the pool. A chunk not embedded yet counts as like none of them."""
    pool = ranked[: max(k, candidates)]
    if len(pool) <= 1:
        return pool
    ids, found = store.vectors_of([e.chunk_id for e in pool], dim)
    at = {int(i): n for n, i in enumerate(ids.tolist())}
    vectors = np.zeros((len(pool), dim), dtype=np.float32)
    for n, e in enumerate(pool):
        if e.chunk_id in at:
            vectors[n] = found[at[e.chunk_id]]
    relevance = np.asarray(normalise([e.score for e in pool], "minmax"))
    similar = vectors @ vectors.T
    picked: list[int] = []
    closest = np.full(len(pool), -np.inf)  # each one's highest cosine to those picked
    while len(picked) < min(k, len(pool)):
        gain = lam * relevance - (1 - lam) * (closest if picked else 0.0)
        gain[picked] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        closest = np.maximum(closest, similar[best])
    return [pool[n] for n in picked]


def _judged(
    calibration: Calibration,
    mode: str,
    queries: Sequence[str],
    query_vectors: np.ndarray | None,
    lexical: BM25Retriever[int] | None,
    ranked: list[list[_Scored]],
    store: Store,
    dimension: int,
) -> list[list[_Scored]]:
    """The hits with their relevance. What a retriever's list left out is measured for the hit itself: its cosine
    to the query (from its stored vector) and its share of the query's best BM25 score, so evidence is never
    missing merely because a retriever fetched too few."""
    from .relevance import Evidence

    stored: dict[int, np.ndarray] = {}  # the vectors of the hits dense search did not score, read in one go
    wanted = {e.chunk_id for r in ranked for e in r if e.dense_score is None} if query_vectors is not None else ()
    if wanted:
        ids, vectors = store.vectors_of(sorted(wanted), dimension)
        stored = dict(zip(ids.tolist(), vectors))

    def cosine_of(e: _Scored, q: int) -> float | None:
        if e.dense_score is not None or e.chunk_id not in stored:
            return e.dense_score
        return float(stored[e.chunk_id] @ query_vectors[q])  # type: ignore[index]

    out = []
    for q, r in enumerate(ranked):
        shares: list[float | None] = [None] * len(r)
        if lexical is not None and r:
            shares = list(lexical.share_of_best(queries[q], [e.bm25_chunk or e.chunk_id for e in r]))
        judged = []
        for e, share in zip(r, shares):
            cosine = cosine_of(e, q)
            evidence = Evidence(cosine, share, e.dense_rank, e.bm25_rank)
            relevance = calibration.relevance(mode, evidence)
            judged.append(replace(e, dense_score=cosine, bm25_fraction=share, relevance=relevance))
        out.append(judged)
    return out


def _with_context(store: Store, hit: Hit, n: int) -> Hit:
    found = store.around(hit.chunk_id, n)
    if found is None:
        return hit
    text, first, last = found
    return replace(hit, context=text, context_start_line=first, context_end_line=last)


def _hits(store: Store, ranked: list[list[_Scored]]) -> list[list[Hit]]:
    rows = store.chunks({e.chunk_id for r in ranked for e in r})
    out = []
    for r in ranked:
        hits = []
        for e in r:
            row = rows.get(e.chunk_id)
            if row is None:
                continue
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    score=e.score,
                    path=row.path,
                    title=row.title,
                    text=row.text,
                    start_line=row.start_line,
                    end_line=row.end_line,
                    chunk_id=e.chunk_id,
                    start_char=row.start_char,
                    end_char=row.end_char,
                    section=row.section,
                    retrieval_score=e.retrieval_score,
                    rerank_score=e.rerank_score,
                    dense_score=e.dense_score,
                    dense_rank=e.dense_rank,
                    bm25_score=e.bm25_score,
                    bm25_rank=e.bm25_rank,
                    fused_score=e.fused_score,
                    bm25_fraction=e.bm25_fraction,
                    relevance=e.relevance,
                    metadata=row.metadata,
                    embedded=row.embedded,
                )
            )
        out.append(hits)
    return out
