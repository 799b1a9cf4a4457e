"""RAG adapters against the bare API on SciFact: the same hits in the same order, the same nDCG@10, and what each
adapter adds per query.

Every SciFact test query is asked, k=10 (dense, the default), of one index (the cached evaluation index `searchbert
eval` builds: int8 document vectors, `auto`) through `Index.search` and through each adapter: LangChain's retriever
(`invoke`), LlamaIndex's (`retrieve`), Haystack's component (`run`), all on the same open `Index`, and the MCP server
(`searchbert mcp`, a subprocess) through the official SDK's stdio client. The ids each returns give its nDCG@10 and
whether its top 10 equals `Index.search`'s.

The overhead is timed apart from the model: embedding a query on 2 shared cores jitters by whole scheduler ticks
(~4 ms), far more than an adapter adds. In process, the same index is opened with the queries' vectors computed
beforehand (the same model, the same vectors), and each query is timed best of 3 on every path; the overhead is the
median over queries of (adapter - bare). The MCP server embeds for real, so its row is its whole tool call against
`Index.search` with the real model in this process, best of 3 each.

Writes benchmarks/results/rag_parity.md and prints it.

    .venv/bin/python benchmarks/rag_parity.py [--queries N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS, REPO, Report

K = 10


def eval_index(folder: Path):
    """The evaluation index for SciFact (standard protocol, `auto` backend), built as `searchbert eval` builds it."""
    from searchbert.evaluation import cache_key, default_cache_dir, evaluate, load_collection, model_ident
    from searchbert.index import MANIFEST, Index
    from searchbert.models import make_encoder

    encoder = make_encoder(None, "auto")
    collection = load_collection(folder, "test")
    path = default_cache_dir() / cache_key(collection, folder / "corpus.jsonl", "standard", model_ident(encoder), {})
    if not (path / MANIFEST).exists():
        evaluate(folder, encoder=encoder, progress=True)
    return collection, Index.open(path, encoder=encoder)


def best_of(call, repeats: int = 3) -> tuple[object, float]:
    """The result of call() and its fastest time in seconds."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - started)
    return result, best


class Precomputed:
    """The index's encoder, with the benchmark's query vectors computed once beforehand: searches then time
    everything but the model."""

    def __init__(self, encoder, queries: list[str]) -> None:
        self._encoder = encoder
        self._vectors = dict(zip(queries, encoder.encode_queries(queries)))

    def __getattr__(self, name: str):
        return getattr(self._encoder, name)

    def encode_queries(self, texts):
        import numpy as np

        return np.stack([self._vectors[t] for t in texts])


def paths(index):
    """Each way to ask the index, as query -> ids: the bare API and the three in-process adapters."""
    from searchbert.integrations.haystack import SearchbertRetriever as Haystack
    from searchbert.integrations.langchain import SearchbertRetriever as LangChain
    from searchbert.integrations.llama_index import SearchbertRetriever as LlamaIndex

    langchain, llama, haystack = LangChain(index=index, k=K), LlamaIndex(index, similarity_top_k=K), Haystack(index, K)
    return {
        "Index.search": lambda q: [h.path for h in index.search(q, k=K)],
        "LangChain SearchbertRetriever.invoke": lambda q: [d.id for d in langchain.invoke(q)],
        "LlamaIndex SearchbertRetriever.retrieve": lambda q: [n.node.ref_doc_id for n in llama.retrieve(q)],
        "Haystack SearchbertRetriever.run": lambda q: [d.meta["source"] for d in haystack.run(q)["documents"]],
    }


def in_process(index, queries: list[str], repeats: int) -> dict[str, tuple[list[list[str]], list[float]]]:
    """Each query through every path, alternating: the ids found, and the best of `repeats` seconds."""
    calls = paths(index)
    for call in calls.values():
        call(queries[0])  # warm: the model session, the vector file's pages
    out: dict[str, tuple[list[list[str]], list[float]]] = {name: ([], []) for name in calls}
    for q in queries:
        for name, call in calls.items():
            ids, seconds = best_of(lambda: call(q), repeats)  # noqa: B023 (called at once)
            out[name][0].append(ids)  # type: ignore[arg-type]
            out[name][1].append(seconds)
    return out


def through_mcp(index_path: Path, queries: list[str]) -> tuple[list[list[str]], list[float]]:
    """Each query as a `search` tool call to `searchbert mcp` over stdio: ids found and seconds per call."""
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    async def run() -> tuple[list[list[str]], list[float]]:
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "searchbert", "mcp", "--index", str(index_path)], env=dict(os.environ)
        )
        found, times = [], []
        with open(os.devnull, "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                await session.call_tool("search", {"query": queries[0], "k": K})  # warm
                for q in queries:
                    best = float("inf")
                    for _ in range(3):
                        started = time.perf_counter()
                        result = await session.call_tool("search", {"query": q, "k": K})
                        best = min(best, time.perf_counter() - started)
                    times.append(best)
                    found.append([h["id"] for h in result.structured_content["hits"]])
        return found, times

    return anyio.run(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=None, help="first N test queries (default: all)")
    args = parser.parse_args()

    from searchbert.evaluation import measure
    from searchbert.index import Index

    collection, index = eval_index(DATASETS / "scifact")
    qids = list(collection.queries)[: args.queries]
    queries = [collection.queries[q] for q in qids]
    real = in_process(index, queries, repeats=3)  # the real model: ids for parity, and the bare time MCP is held to
    timed = in_process(Index.open(index.path, encoder=Precomputed(index.encoder, queries)), queries, repeats=3)
    index.close()
    mcp_ids, mcp_times = through_mcp(index.path, queries)
    bare_ids, bare_real = real["Index.search"]
    bare_timed = timed["Index.search"][1]
    rows = [(name, ids, timed[name][1], bare_timed) for name, (ids, _) in real.items()]
    rows.append(("MCP search tool (stdio, subprocess, real model)", mcp_ids, mcp_times, bare_real))

    report = Report("rag_parity", "RAG adapters against the bare API on SciFact")
    report.line(
        f"SciFact test, {len(queries)} queries, k={K}, dense, one index (`{index.path.relative_to(REPO)}`: the "
        "evaluation index, int8 document vectors). nDCG@10 is scored on each path's own top 10 with the real model; "
        "'same top 10' counts queries whose ids and order equal `Index.search`'s; overhead is the median per query "
        "of (path - bare), each timed best of 3, paths alternating per query.\n"
    )
    report.line("| path | nDCG@10 | same top 10 | median ms/query | overhead ms/query |")
    report.line("|---|---|---|---|---|")
    for name, ids, times, bare in rows:
        run = {q: {d: float(K - r) for r, d in enumerate(found)} for q, found in zip(qids, ids)}
        ndcg = measure({q: collection.qrels[q] for q in qids}, run)["nDCG@10"] * 100
        same = sum(a == b for a, b in zip(ids, bare_ids))
        overhead = statistics.median(t - b for t, b in zip(times, bare))
        report.line(
            f"| {name} | {ndcg:.2f} | {same}/{len(queries)} | {statistics.median(times) * 1000:.2f} | "
            + ("-" if name == "Index.search" else f"{overhead * 1000:.2f}")
            + " |"
        )
    report.line(
        f"\nIn-process rows time everything but the model (query vectors computed beforehand); `Index.search` with "
        f"the model takes {statistics.median(bare_real) * 1000:.2f} ms a query here. The MCP row is a whole tool call "
        "from the client (JSON-RPC over a pipe to another process, the search there with the model, a structured "
        "result back), against that."
    )
    report.save()


if __name__ == "__main__":
    main()
