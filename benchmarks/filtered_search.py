"""Filtered search and one-file updates at a million chunks, through searchbert's own index and search code.

A real index folder is built once (cached under benchmarks/.cache): 100,000 documents of 10 chunks each, with
clustered 384-d vectors like real embeddings (vector_scale.clustered). Documents carry paths, extensions and
modification times so that filters select 1%, 10% and 50% of them. Queries are vectors from the same distribution,
handed to `Index.search` by an encoder that looks them up, so the timing is the search and nothing else.

Per index type (flat = exact, ivf = what `auto` picks above 200,000 chunks), one query at a time as `searchbert query`
runs them: median latency unfiltered and under each filter (repeated, and met for the first time), the ratio, and
recall@10 within the filter against an exact scan of the allowed vectors. Then the peak memory of a one-file update
(one document replaced) against the vectors' size, the way `searchbert index` does it now (from the saved file) and
the full rebuild it replaces.

Writes benchmarks/results/filtered_search.md and prints it.

    .venv/bin/python benchmarks/filtered_search.py [--docs 100000] [--chunks-per-doc 10] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, Report
from vector_scale import clustered

DIM, K = 384, 10
CACHE = REPO / "benchmarks" / ".cache" / "filtered"
SINCE = 1_700_000_000.0


class LookupEncoder:
    """Query 'q<n>' -> the n-th prepared query vector (the benchmark times search, not embedding)."""

    model_id = "bench/lookup"
    max_tokens = 256
    dimension = DIM

    def __init__(self, queries: np.ndarray) -> None:
        self.queries = queries

    def fingerprint(self) -> dict:
        return {"id": self.model_id, "dimension": DIM, "pooling": "mean", "normalized": True, "max_tokens": 256}

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]

    def encode(self, texts, *, batch_size=None) -> np.ndarray:
        return np.stack([self.queries[int(t[1:])] for t in texts])

    def encode_queries(self, texts) -> np.ndarray:
        return self.encode(texts)


def document(i: int):
    """Document i: 1% under rare/, 10% .rst (else .md), 50% modified after SINCE."""
    from searchbert.records import Document

    folder = "rare" if i % 100 == 0 else f"part{i % 7}"
    ext = "rst" if i % 10 == 1 else "md"
    mtime = SINCE + 1000 if i % 2 == 0 else SINCE - 1000
    path = f"/bench/docs/{folder}/doc{i:06}.{ext}"
    return Document(path=path, text="", title=f"doc {i}", root="/bench/docs", size=100, mtime=mtime, format="text")


def build(folder: Path, docs: int, per_doc: int, index_type: str, encoder: LookupEncoder) -> float:
    """The index folder with every vector stored and the vector file saved; returns seconds (0 if cached)."""
    from searchbert.index import MANIFEST, Index
    from searchbert.records import Chunk

    if (folder / MANIFEST).exists():
        return 0.0
    started = time.perf_counter()
    index = Index.create(folder, encoder=encoder, index_type=index_type)
    vectors = clustered(docs * per_doc, DIM, clusters=2000, seed=1)
    chunks = [Chunk(j, f"chunk {j}", 0, 7, 1, 1) for j in range(per_doc)]
    store = index.store
    for start in range(0, docs, 10_000):
        with store.transaction():
            for i in range(start, min(docs, start + 10_000)):
                store.insert_document(document(i), f"{i:064x}", chunks, vectors[i * per_doc : (i + 1) * per_doc], "")
            store.bump_generation()
    del vectors
    index.save_vectors()
    index.close()
    return time.perf_counter() - started


def latency(index, queries: list[str], filters, fresh: bool = False) -> tuple[float, list[list[int]]]:
    """Median milliseconds per query (one at a time), and the chunk ids found. fresh: each query meets its filter
    for the first time (the open index's cache of filter bitmaps is dropped before it)."""
    index.search(queries[0], k=K, chunks=True, filters=filters, mode="dense")  # warm: maps the file's pages
    times, found = [], []
    for q in queries:
        if fresh:
            index._filter_cache = None
        started = time.perf_counter()
        hits = index.search(q, k=K, chunks=True, filters=filters, mode="dense")
        times.append(time.perf_counter() - started)
        found.append([h.chunk_id for h in hits])
    return statistics.median(times) * 1000, found


def truth(index, queries: np.ndarray, filters) -> list[list[int]]:
    """The exact top k among the allowed chunks: a brute-force scan of their stored vectors."""
    import faiss

    ids = None
    if filters:
        starts, counts = index.store.allowed_ranges(filters)
        ids = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts)])
    ids, vectors = (
        index.store.vectors_of(ids.tolist(), DIM)
        if ids is not None
        else tuple(np.concatenate(p) for p in zip(*index.store.all_vectors(DIM)))
    )
    _, rows = faiss.knn(queries, vectors, K, metric=faiss.METRIC_INNER_PRODUCT)
    return [ids[r].tolist() for r in rows]


UPDATE = """
import json, re, sys, time
from pathlib import Path
sys.path.insert(0, {bench!r})
import numpy as np
from filtered_search import LookupEncoder, document, DIM
from searchbert.index import Index
from searchbert.records import Chunk, Document
from searchbert.indexing import Writer
enc = LookupEncoder(np.zeros((1, DIM), np.float32))
index = Index.open({folder!r}, encoder=enc)
started = time.perf_counter()
with index.writing():
    writer = Writer(index)
    old = index.store.document(document(3).path)
    chunk = [Chunk(0, "replaced", 0, 8, 1, 1)]
    vector = np.random.default_rng(5).standard_normal((1, DIM)).astype(np.float32)
    vector /= np.linalg.norm(vector)
    with index.store.transaction():
        index.store.delete_documents([old.id])
        index.store.insert_document(document(3), "f" * 64, chunk, vector, "")
        index.store.bump_generation()
    if {rebuild}:
        index.settings_changed = True  # what a one-file update did before: the whole vector index built again
peak = int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({{"seconds": time.perf_counter() - started, "peak_mb": peak / 1024}}))
"""


def update_memory(folder: Path, rebuild: bool) -> dict:
    """Peak memory of a one-file update in a fresh process: VmHWM, which starts anew at exec (ru_maxrss would
    carry over this process's own peak through the fork)."""
    code = UPDATE.format(bench=str(Path(__file__).parent), folder=str(folder), rebuild=rebuild)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--chunks-per-doc", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--types", nargs="*", default=["flat", "ivf"])
    args = parser.parse_args()

    from searchbert import Filters
    from searchbert.filtering import allowed_chunks
    from searchbert.index import Index

    n = args.docs * args.chunks_per_doc
    query_vectors = clustered(n + args.queries, DIM, clusters=2000, seed=1)[n:]
    encoder = LookupEncoder(query_vectors)
    queries = [f"q{i}" for i in range(args.queries)]
    filters = {
        "none": None,
        "1% (--path 'rare/*')": Filters(paths=("rare/*",)),
        "10% (--ext rst)": Filters(exts=("rst",)),
        "50% (--since)": Filters(since=SINCE),
    }
    lines = []
    for kind in args.types:
        folder = CACHE / f"{kind}-{args.docs}x{args.chunks_per_doc}"
        seconds = build(folder, args.docs, args.chunks_per_doc, kind, encoder)
        print(f"{kind}: index of {n:,} chunks " + (f"built in {seconds:.0f} s" if seconds else "cached"), flush=True)
        index = Index.open(folder, encoder=encoder)
        built = index.vectors.live.built
        label = kind + (f" ({built.get('factory')}, nprobe {built.get('nprobe')})" if "factory" in built else "")
        for q in queries:  # warm: every list the queries visit mapped once, so no row pays for first touches
            index.search(q, k=K, chunks=True, mode="dense")
        base = None
        for name, f in filters.items():
            ms, found = latency(index, queries, f)
            first, _ = latency(index, queries[: args.queries // 4], f, fresh=True) if f else (ms, None)
            exact = truth(index, query_vectors, f)
            rec = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, exact)]))
            share = (allowed_chunks(index.store, f).count or 0) / n if f else 1.0
            base = base or ms
            cells = [label, name, f"{share:.3f}", f"{ms:.2f}", f"{ms / base:.2f}", f"{rec:.3f}"]
            lines.append("| " + " | ".join([*cells, f"{first:.2f}", f"{first / base:.2f}"]) + " |")
            print(lines[-1], flush=True)
        index.close()
    vectors_mb = n * DIM * 4 / 2**20
    memory = []
    ivf = CACHE / f"ivf-{args.docs}x{args.chunks_per_doc}"
    if ivf.exists():
        for how, rebuild in (("now: the saved file, updated", False), ("before: rebuilt from every vector", True)):
            result = update_memory(ivf, rebuild)
            memory.append(
                f"| {how} | {result['seconds']:.0f} | {result['peak_mb']:,.0f} | {result['peak_mb'] / vectors_mb:.2f} |"
            )
            print(memory[-1], flush=True)
    report = Report("filtered_search", "Filtered search and updates at a million chunks")
    report.line(
        f"{args.docs:,} documents x {args.chunks_per_doc} chunks = {n:,} chunks of clustered {DIM}-d vectors; "
        f"{args.queries} queries, one at a time through `Index.search(..., chunks=True)`, k=10. Recall@10 is within "
        "the filter, against an exact scan of the allowed vectors. An open index keeps the bitmaps of its last 8 "
        "filters until the next commit: the last two columns are for a filter's first query (a quarter as many "
        "queries, each with the cache dropped).\n\n"
        "| index | filter | share of chunks | median ms/query | x unfiltered | recall@10 | first query ms "
        "| x unfiltered |\n"
        "|---|---|---|---|---|---|---|---|\n"
        + "\n".join(lines)
        + f"\n\nOne-file update of the IVF index (one document replaced; vectors: {vectors_mb:,.0f} MiB):\n\n"
        "| how | seconds | peak memory MiB | x vectors' size |\n|---|---|---|---|\n" + "\n".join(memory)
    )
    report.save()


if __name__ == "__main__":
    main()
