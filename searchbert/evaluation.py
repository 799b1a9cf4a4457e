"""`searchbert eval`: run a BEIR-format test collection through the normal index and search code and score it.

Metrics come from ir-measures (pytrec_eval underneath): nDCG@10, R@100, MRR@10 (RR@10) and MAP (over the top 100).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DatasetError, InvalidArgument
from .records import MODES, Document, Fusion, SearchOptions

if TYPE_CHECKING:
    from .encoders import Encoder
    from .index import Index

DEPTH = 100  # documents retrieved per query: enough for R@100
PROTOCOLS = {
    # MTEB/BEIR: title + " " + text embedded whole, truncated at the model's limit
    "standard": {"strategy": "truncate"},
    # searchbert's own: chunked, a document scores as its best chunk
    "chunked": {"strategy": "chunk"},
}


@dataclass(frozen=True)
class Collection:
    """A BEIR collection: corpus id -> (title, text), query id -> text, query id -> {doc id: grade}."""

    name: str
    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass(frozen=True)
class EvalResult:
    """Scores of one run over one collection."""

    dataset: str
    mode: str
    protocol: str
    model: str
    split: str
    queries: int
    metrics: dict[str, float]
    seconds: float
    #: chunks embedded by this run (0 when the collection's index was cached)
    chunks_embedded: int = 0
    #: with a reranker: the retrieval's own metrics, before reranking
    before: dict[str, float] | None = None
    #: how hybrid mode fused ("" for the other modes)
    fusion: str = ""
    run: dict[str, dict[str, float]] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "run"}
        return data


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise DatasetError(f"missing file: {path}")
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: malformed JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "_id" not in row:
                raise DatasetError(f"{path}:{number}: expected an object with an '_id'")
            yield number, row


def _qrels(path: Path) -> Iterator[tuple[int, str, str, int]]:
    if not path.is_file():
        raise DatasetError(f"missing file: {path}")
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").split("\t")
            if (number == 1 and parts[0] == "query-id") or not line.strip():
                continue
            try:
                qid, did, grade = parts
                yield number, qid, did, int(grade)
            except ValueError:
                raise DatasetError(f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score'") from None


def load_judgements(
    folder: str | Path, split: str = "test", corpus: dict[str, Any] | None = None
) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """A folder's judged queries (queries.jsonl and qrels/SPLIT.tsv, as BEIR lays them out): query id -> text, and
    query id -> {document id: grade}; with `corpus`, every judged document must be in it. Errors name the file and
    line. Without a corpus the documents are an index's own (`searchbert calibrate`)."""
    folder = Path(folder)
    queries = {str(row["_id"]): str(row.get("text", "")) for _, row in _jsonl(folder / "queries.jsonl")}
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.exists():
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise DatasetError(f"missing file: {qrels_path} (splits here: {', '.join(splits) or 'none'})")
    qrels: dict[str, dict[str, int]] = {}
    for number, qid, did, grade in _qrels(qrels_path):
        if qid not in queries:
            raise DatasetError(f"{qrels_path}:{number}: query id {qid!r} is not in queries.jsonl")
        if corpus is not None and did not in corpus:
            raise DatasetError(f"{qrels_path}:{number}: corpus id {did!r} is not in corpus.jsonl")
        qrels.setdefault(qid, {})[did] = grade
    if corpus is not None and not corpus:
        raise DatasetError(f"{folder / 'corpus.jsonl'} holds no documents")
    if not qrels:
        raise DatasetError(f"{qrels_path} judges no queries: nothing to evaluate")
    empty = [q for q in qrels if not queries[q].strip()]
    if empty:
        raise DatasetError(f"{folder / 'queries.jsonl'}: query {empty[0]!r} has no text")
    return {q: queries[q] for q in qrels}, qrels


def load_collection(folder: str | Path, split: str = "test") -> Collection:
    """Read and check a BEIR collection; errors name the file and line."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"no such collection folder: {folder}")
    corpus: dict[str, tuple[str, str]] = {}
    for number, row in _jsonl(folder / "corpus.jsonl"):
        if not isinstance(row.get("text"), str):
            raise DatasetError(f"{folder / 'corpus.jsonl'}:{number}: document has no 'text'")
        corpus[str(row["_id"])] = (str(row.get("title") or ""), row["text"])
    queries, qrels = load_judgements(folder, split, corpus)
    return Collection(folder.name, corpus, queries, qrels)


def measure(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """nDCG@10, R@100, MRR@10 and MAP (top 100) of a run, averaged over every judged query (unanswered: 0)."""
    scores = per_query(qrels, run)
    names = next(iter(scores.values())).keys()
    return {name: sum(q[name] for q in scores.values()) / len(scores) for name in names}


def per_query(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """measure's metrics for each judged query (0 for one the run left unanswered): what two runs over the same
    queries are compared by."""
    import ir_measures
    from ir_measures import AP, RR, R, nDCG

    names = {nDCG @ 10: "nDCG@10", R @ 100: "R@100", RR @ 10: "MRR@10", AP @ DEPTH: "MAP"}
    scores: dict[str, dict[str, float]] = {q: dict.fromkeys(names.values(), 0.0) for q in qrels}
    for m in ir_measures.iter_calc(list(names), qrels, {q: r for q, r in run.items() if r}):
        scores[m.query_id][names[m.measure]] = m.value
    return scores


def _documents(collection: Collection, protocol: str) -> Iterator[Document]:
    sep = " " if protocol == "standard" else "\n\n"
    for doc_id, (title, text) in collection.corpus.items():
        yield Document(path=doc_id, text=(title + sep + text).strip() if title else text, title=title)


def cache_key(collection: Collection, corpus_file: Path, protocol: str, model_id: str, extra: dict[str, Any]) -> str:
    # keyed by what the corpus says, not when it was written: a collection copied or unpacked again (a new mtime, the
    # same bytes) finds its index instead of embedding everything anew
    stat = corpus_file.stat()
    raw = json.dumps(
        [_digest(str(corpus_file), stat.st_size, stat.st_mtime_ns), protocol, model_id, extra], sort_keys=True
    )
    return f"{collection.name}-{protocol}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


@functools.lru_cache(maxsize=16)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """The file's SHA-256, hashed once per process while its size and mtime stay (an evaluation with a reranker, or
    of every mode, keys the same corpus several times)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def model_ident(encoder: Encoder) -> str:
    """What names an encoder's vectors in the cache: torch and ONNX fp32 give the same vectors and share it; int8
    vectors get their own, and so do other weights under the same name (a folder fine-tuned again, a hub model
    updated)."""
    fingerprint = encoder.fingerprint()
    ident = encoder.model_id + ("|int8" if fingerprint.get("quantization") else "")
    return ident + (f"|{fingerprint['weights']}" if fingerprint.get("weights") else "")


def _index_run(
    collection: Collection,
    corpus_file: Path,
    protocol: str,
    encoder: Encoder,
    cache_dir: Path,
    progress: bool,
    search_options: SearchOptions,
    lexical: dict[str, float],
    **chunk_options: Any,
) -> tuple[dict[str, dict[str, float]], str, int]:
    index, embedded = collection_index(
        collection, corpus_file, protocol, encoder, cache_dir, progress, lexical, **chunk_options
    )
    with index:
        qids = list(collection.queries)
        hits = index.search_many([collection.queries[q] for q in qids], options=search_options)
    return {q: {h.path: h.score for h in hs} for q, hs in zip(qids, hits)}, encoder.model_id, embedded


def collection_index(
    collection: Collection,
    corpus_file: Path,
    protocol: str,
    encoder: Encoder,
    cache_dir: Path,
    progress: bool = False,
    lexical: dict[str, float] | None = None,
    **chunk_options: Any,
) -> tuple[Index, int]:
    """The collection's index (built once, kept in `cache_dir` by corpus, protocol, model and settings), open, and
    how many chunks this call embedded."""
    from .bm25 import K1, B
    from .index import MANIFEST, Index

    lexical = lexical or {"k1": K1, "b": B}
    if protocol == "chunked":  # the cache key names every setting that differs from the standard protocol
        chunk_options = {"title_prefix": True, **chunk_options}
    key = cache_key(collection, corpus_file, protocol, model_ident(encoder), chunk_options)
    path = cache_dir / key
    if (path / MANIFEST).exists():
        index = Index.open(path, encoder=encoder)
        index.set_lexical(**lexical)  # BM25's settings need no embedding: the cache serves them all
    else:
        index = Index.create(
            path, encoder=encoder, strategy=PROTOCOLS[protocol]["strategy"], bm25=lexical, **chunk_options
        )
    # the normal incremental path: a cached index re-embeds nothing (every text hashes the same)
    report = index.add_documents(_documents(collection, protocol), progress=progress, total=len(collection.corpus))
    return index, report.chunks_embedded


def _bm25_run(collection: Collection, k1: float, b: float) -> dict[str, dict[str, float]]:
    from .bm25 import BM25Retriever

    ids = list(collection.corpus)
    texts = [f"{t} {x}".strip() for t, x in (collection.corpus[i] for i in ids)]
    retriever = BM25Retriever(ids, texts, k1=k1, b=b)
    qids = list(collection.queries)
    results = retriever.search_many([collection.queries[q] for q in qids], DEPTH)
    return {q: dict(r) for q, r in zip(qids, results)}


def evaluate(
    folder: str | Path,
    *,
    split: str = "test",
    mode: str = "hybrid",
    protocol: str = "standard",
    model: str | None = None,
    encoder: Encoder | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    rerank: Any = None,
    candidates: int = DEPTH,
    backend: str = "auto",
    bm25_k1: float | None = None,
    bm25_b: float | None = None,
    fusion: Fusion | None = None,
    **chunk_options: Any,
) -> EvalResult:
    """Index a collection (cached), run its queries, and score the run; with `rerank`, the retrieval alone too
    (`before`), so a reranker is seen to help or not."""
    started = time.monotonic()
    collection = load_collection(Path(folder), split)
    settings = dict(
        mode=mode, protocol=protocol, model=model, encoder=encoder, cache_dir=cache_dir, backend=backend,
        bm25_k1=bm25_k1, bm25_b=bm25_b, fusion=fusion, **chunk_options,
    )  # fmt: skip
    corpus_file = Path(folder) / "corpus.jsonl"
    run, model_id, protocol, embedded = retrieve(collection, corpus_file, progress=progress, **settings)
    before = None
    if rerank is not None:
        # the reranker reorders the top `candidates`; the rest of the DEPTH keep their places below them
        reranked = retrieve(collection, corpus_file, rerank=rerank, candidates=candidates, depth=candidates, **settings)
        before, run = measure(collection.qrels, run), _reranked_on_top(reranked[0], run)
    return EvalResult(
        dataset=collection.name,
        mode=mode,
        protocol=protocol,
        model=model_id,
        split=split,
        queries=len(collection.qrels),
        metrics=measure(collection.qrels, run),
        seconds=time.monotonic() - started,
        chunks_embedded=embedded,
        before=before,
        fusion=_fusion_used(mode, fusion),
        run=run,
    )


#: the modes `compare` runs, in the order a chart and a table show them
COMPARED = ("dense", "bm25", "hybrid")


def compare(
    folder: str | Path,
    *,
    split: str = "test",
    model: str | None = None,
    encoder: Encoder | None = None,
    backend: str = "auto",
    rerank: Any = None,
    candidates: int = DEPTH,
    **settings: Any,
) -> list[tuple[str, EvalResult, list[float]]]:
    """Every mode on one collection (dense, BM25, hybrid, and hybrid reranked when `rerank` names a cross-encoder),
    each as (label, result, recall@k for k = 1..DEPTH): what each mode buys on the user's own collection."""
    if encoder is None:
        from .models import make_encoder

        encoder = make_encoder(model, backend)  # once for every mode
    qrels = load_collection(Path(folder), split).qrels
    out = []
    for mode in COMPARED:
        result = evaluate(folder, split=split, mode=mode, encoder=encoder, **settings)
        out.append((mode, result, recall_curve(qrels, result.run)))
    if rerank is not None:
        result = evaluate(folder, split=split, mode="hybrid", encoder=encoder, rerank=rerank, candidates=candidates,
                          **settings)  # fmt: skip
        out.append(("hybrid, reranked", result, recall_curve(qrels, result.run)))
    return out


def recall_curve(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], depth: int = DEPTH) -> list[float]:
    """Recall@k for k = 1..depth, averaged over every judged query (as `measure` counts them)."""
    import ir_measures
    from ir_measures import R

    wanted = [R @ k for k in range(1, depth + 1)]
    sums = dict.fromkeys(range(1, depth + 1), 0.0)
    for m in ir_measures.iter_calc(wanted, qrels, {q: r for q, r in run.items() if r}):
        sums[m.measure.params["cutoff"]] += m.value
    return [sums[k] / len(qrels) for k in range(1, depth + 1)]


def retrieve(
    collection: Collection,
    corpus_file: Path,
    *,
    mode: str = "hybrid",
    protocol: str = "standard",
    model: str | None = None,
    encoder: Encoder | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    rerank: Any = None,
    candidates: int = DEPTH,
    depth: int = DEPTH,
    backend: str = "auto",
    bm25_k1: float | None = None,
    bm25_b: float | None = None,
    fusion: Fusion | None = None,
    **chunk_options: Any,
) -> tuple[dict[str, dict[str, float]], str, str, int]:
    """The `depth` best documents of every query of `collection` (indexed, cached by `corpus_file`'s path, size and
    time): (query id -> {document id: score}, model id, protocol, chunks embedded)."""
    from .bm25 import K1, B

    lexical = {"k1": K1 if bm25_k1 is None else bm25_k1, "b": B if bm25_b is None else bm25_b}
    if mode not in MODES:
        raise InvalidArgument(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    if protocol not in PROTOCOLS:
        raise InvalidArgument(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    if mode == "bm25" and rerank is None:
        return _bm25_run(collection, **lexical), "bm25", "-", 0
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if encoder is None:
        from .models import make_encoder

        encoder = make_encoder(model, backend)
    search_options = SearchOptions(k=depth, mode=mode, rerank=rerank, candidates=candidates, fusion=fusion)
    run, model_id, embedded = _index_run(
        collection, corpus_file, protocol, encoder, cache, progress, search_options, lexical, **chunk_options
    )
    return run, model_id, protocol, embedded


def _fusion_used(mode: str, fusion: Fusion | None) -> str:
    from .search import DEFAULT_FUSION

    return (fusion or DEFAULT_FUSION).describe() if mode == "hybrid" else ""  # an eval index keeps the default


def _reranked_on_top(reranked: dict[str, dict[str, float]], run: dict[str, dict[str, float]]) -> dict:
    """Each query's reranked documents in their new order, then the rest of `run` in its order below them."""
    out = {}
    for q, docs in run.items():
        top = sorted(reranked.get(q, {}).items(), key=lambda x: -x[1])
        rest = [d for d, _ in sorted(docs.items(), key=lambda x: -x[1]) if d not in reranked.get(q, {})]
        order = [d for d, _ in top] + rest
        out[q] = {d: float(len(order) - n) for n, d in enumerate(order)}
    return out


def default_cache_dir() -> Path:
    """indexes/eval beside the default index (found upward from here, as `searchbert index` finds it)."""
    from .index import locate_index

    return locate_index().parent / "eval"


def write_trec_run(result: EvalResult, path: str | Path, tag: str = "searchbert") -> None:
    """The run in TREC format (qid Q0 docid rank score tag), to compare runs with trec_eval or ranx."""
    lines = []
    for qid, docs in result.run.items():
        ranked = sorted(docs.items(), key=lambda x: -x[1])
        lines += [f"{qid} Q0 {did} {rank} {score:.6f} {tag}" for rank, (did, score) in enumerate(ranked, start=1)]
    Path(path).write_text("\n".join(lines) + "\n")
