"""RAG adapters against the bare API on SciFact: the same hits in the same order, the same nDCG@10, and what each
adapter adds per query.

Every SciFact test query is asked, k=10 (dense, the default), of one index (the cached evaluation index `searchbert
eval` builds: int8 document vectors, `auto`) through `Index.search` and through each adapter: LangChain's retriever
(`invoke`), LlamaIndex's (`retrieve`), Haystack's component (`run`), all on the same open `Index`, and the MCP server
(`searchbert mcp`, a subprocess) through the official SDK's stdio client. Per query the calls alternate, so each pays
the same query embedding; the overhead is the median of (adapter - bare) per query.

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
    from searchbert.evaluation import cache_key, default_cache_dir, evaluate, load_collection
    from searchbert.index import MANIFEST, Index
    from searchbert.onnx_encoder import make_encoder

    encoder = make_encoder(None, "auto")
    collection = load_collection(folder, "test")
    ident = encoder.model_id + ("|int8" if encoder.fingerprint().get("quantization") else "")
    path = default_cache_dir() / cache_key(collection, folder, "standard", ident, {})
    if not (path / MANIFEST).exists():
        evaluate(folder, encoder=encoder, progress=True)
    return collection, Index.open(path, encoder=encoder)


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def in_process(index, queries: list[str]) -> dict[str, tuple[list[list[str]], list[float]]]:
    """Each query through the bare API and the three in-process adapters, alternating; ids found and seconds."""
    from searchbert.integrations.haystack import SearchbertRetriever as Haystack
    from searchbert.integrations.langchain import SearchbertRetriever as LangChain
    from searchbert.integrations.llama_index import SearchbertRetriever as LlamaIndex

    langchain, llama, haystack = LangChain(index=index, k=K), LlamaIndex(index, similarity_top_k=K), Haystack(index, K)
    calls = {
        "Index.search": lambda q: [h.path for h in index.search(q, k=K)],
        "LangChain SearchbertRetriever.invoke": lambda q: [d.id for d in langchain.invoke(q)],
        "LlamaIndex SearchbertRetriever.retrieve": lambda q: [n.node.ref_doc_id for n in llama.retrieve(q)],
        "Haystack SearchbertRetriever.run": lambda q: [d.meta["source"] for d in haystack.run(q)["documents"]],
    }
    for call in calls.values():
        call(queries[0])  # warm: the model session, the vector file's pages
    out: dict[str, tuple[list[list[str]], list[float]]] = {name: ([], []) for name in calls}
    for q in queries:
        for name, call in calls.items():
            ids, seconds = timed(lambda: call(q))  # noqa: B023 (called at once)
            out[name][0].append(ids)
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
                    started = time.perf_counter()
                    result = await session.call_tool("search", {"query": q, "k": K})
                    times.append(time.perf_counter() - started)
                    found.append([h["id"] for h in result.structured_content["hits"]])
        return found, times

    return anyio.run(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=None, help="first N test queries (default: all)")
    args = parser.parse_args()

    from searchbert.evaluation import measure

    collection, index = eval_index(DATASETS / "scifact")
    qids = list(collection.queries)[: args.queries]
    queries = [collection.queries[q] for q in qids]
    results = in_process(index, queries)
    index.close()
    results["MCP search tool (stdio, subprocess)"] = through_mcp(index.path, queries)
    bare_ids, bare_times = results["Index.search"]

    report = Report("rag_parity", "RAG adapters against the bare API on SciFact")
    report.line(
        f"SciFact test, {len(queries)} queries, k={K}, dense, one index (`{index.path.relative_to(REPO)}`: the "
        "evaluation index, int8 document vectors). nDCG@10 is scored on each path's own top 10; 'same top 10' "
        "counts queries whose ids and order equal `Index.search`'s; overhead is the median per query of (adapter - "
        "bare), calls alternating per query.\n"
    )
    report.line("| path | nDCG@10 | same top 10 | median ms/query | overhead ms/query |")
    report.line("|---|---|---|---|---|")
    for name, (ids, times) in results.items():
        run = {q: {d: float(K - r) for r, d in enumerate(found)} for q, found in zip(qids, ids)}
        ndcg = measure({q: collection.qrels[q] for q in qids}, run)["nDCG@10"] * 100
        same = sum(a == b for a, b in zip(ids, bare_ids))
        overhead = statistics.median(t - b for t, b in zip(times, bare_times))
        report.line(
            f"| {name} | {ndcg:.2f} | {same}/{len(queries)} | {statistics.median(times) * 1000:.2f} | "
            + ("-" if name == "Index.search" else f"{overhead * 1000:.2f}")
            + " |"
        )
    report.line(
        "\nThe MCP row's time is a whole tool call from the client: JSON-RPC over a pipe to another process, the "
        "search there, and a structured result back; its overhead is against `Index.search` in this process."
    )
    report.save()


if __name__ == "__main__":
    main()
