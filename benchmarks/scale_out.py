"""Past one machine: what `index --ray` and `--vector-store milvus` give on this one, and a projection to 100M chunks.

1. Embedding throughput: SciFact abstracts indexed by the local writer (the embedding thread), then through a Ray
   cluster (started here, on loopback) with 1 and 2 encoder actors: chunks/s, and the ratio to the local writer
   (on 2 cores, "no worse" is the honest target: Ray adds processes, not cores). The model, backend and batches are
   searchbert's defaults.
2. Search at 1M vectors: clustered 384-d vectors (benchmarks/vector_scale.py), exact FAISS as the truth; FAISS IVF
   as `searchbert index` builds it at that size (auto); a Milvus standalone server (PyPI's `milvus` wheel, on
   loopback) with what `--vector-store milvus --index-type ivf|hnsw` builds. Recall@10 and latency of one query at a
   time (as `searchbert query` asks); read-after-write against "Strong" consistency.
3. The projection for 100M chunks: workers to embed them in a day, from the measured rate of one actor; Milvus
   memory per index type, on paper from each index's layout.

Ray and the Milvus server listen on every interface, so the script runs itself in a network namespace of its own
(unshare -rn) where only loopback exists.

    .venv/bin/python benchmarks/scale_out.py [--docs 1500] [--n 1000000] [--hnsw-n 200000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import DATASETS, Report

DAY = 86_400
TARGET_CHUNKS = 100_000_000


def documents(limit: int):
    from searchbert.records import Document

    out = []
    with (DATASETS / "scifact" / "corpus.jsonl").open() as fh:
        for line in fh:
            doc = json.loads(line)
            out.append(Document(path=doc["_id"], title=doc.get("title", ""), text=doc["text"]))
            if len(out) >= limit:
                break
    return out


def embedding(report: Report, limit: int) -> dict[str, float]:
    """chunks/s of the local writer and of Ray with 1 and 2 actors; returns them by name."""
    import logging

    import ray

    from searchbert import Index

    docs = documents(limit)
    rates: dict[str, float] = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, logging_level=logging.ERROR)  # fmt: skip
        startup = time.perf_counter() - started
        for name, ray_address, workers in (("local writer", None, None), ("ray, 1 actor", "auto", 1),
                                           ("ray, 2 actors", "auto", 2)):  # fmt: skip
            with Index.create(Path(tmp) / name.replace(" ", "_").replace(",", "")) as index:
                index.encoder  # noqa: B018  (the driver's model loads outside the timing, as in every row)
                started = time.perf_counter()
                done = index.add_documents(docs, ray=ray_address, workers=workers)
                seconds = time.perf_counter() - started
            rates[name] = done.chunks_embedded / seconds
            rows.append((name, done.chunks_embedded, seconds))
        ray.shutdown()
    base = rates["local writer"]
    report.line(f"SciFact's first {len(docs)} abstracts, searchbert's default model and backend, batches of 512")
    report.line(f"chunks. Starting the local Ray instance (`ray.init`) took {startup:.1f} s, outside these timings;")
    report.line("each Ray row includes creating its actors and loading the model in each.")
    report.line()
    report.line("| writer | chunks | seconds | chunks/s | ratio to the local writer |")
    report.line("|---|---|---|---|---|")
    for name, chunks, seconds in rows:
        report.line(f"| {name} | {chunks} | {seconds:.1f} | {chunks / seconds:.1f} | {rates[name] / base:.2f} |")
    report.line()
    return rates


def timed(search, queries: np.ndarray) -> tuple[float, list[list[int]]]:
    """Median ms of one query at a time, and the ids found."""
    search(queries[:5])  # warm up
    times, found = [], []
    for q in queries:
        started = time.perf_counter()
        ids = search(q[None, :])
        times.append((time.perf_counter() - started) * 1000)
        found.append(ids)
    return statistics.median(times), found


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


def search_at_scale(report: Report, n: int, hnsw_n: int, queries_n: int, base: Path) -> None:
    """Recall and latency at n vectors: FAISS exact and IVF, Milvus server IVF (and HNSW at hnsw_n)."""
    from milvus_server import milvus_server
    from vector_scale import clustered

    from searchbert.ann import ann_settings, build
    from searchbert.stores.milvus import MilvusIndex, release
    from searchbert.vectors import FaissFlatIndex

    # the queries come from the same clusters as the vectors (the same call, as vector_scale.py draws them), and
    # are not among them
    both = clustered(n + queries_n, 384, 2000, 1)
    vectors, queries = both[:n], both[n:]
    ids = np.arange(n, dtype=np.int64)
    exact = FaissFlatIndex(384)
    exact.add(ids, vectors)
    truth = exact.search(queries, 10)[1]
    rows = []
    ms, found = timed(lambda q: exact.search(q, 10)[1][0].tolist(), queries)
    rows.append(("FAISS flat (exact)", n, 0.0, recall(found, truth), ms))
    settings = ann_settings("ivf", n, 384)
    started = time.perf_counter()
    ivf = build(settings, 384, ids, vectors)
    built = time.perf_counter() - started
    ms, found = timed(lambda q: ivf.search(q, 10)[1][0].tolist(), queries)
    faiss_ms = ms
    rows.append((f"FAISS {settings['factory']}, nprobe {settings.get('nprobe')} (searchbert auto)", n, built,
                 recall(found, truth), ms))  # fmt: skip
    consistency: dict[str, float] = {}
    with milvus_server(base) as uri:
        for kind, size in (("hnsw", hnsw_n), ("ivf", n)):
            if not size:
                continue
            index = MilvusIndex(384, uri, f"bench_{kind}", kind)
            index.drop()
            index.create()
            started = time.perf_counter()
            index.add(ids[:size], vectors[:size])
            index.client.flush(index.collection)
            while True:  # the server builds the index of each sealed segment in the background
                state = index.client.describe_index(index.collection, "vector")
                if state.get("pending_index_rows", 1) == 0 and state.get("indexed_rows", 0) >= size:
                    break
                time.sleep(2)
            index.client.release_collection(index.collection)
            index.client.load_collection(index.collection)
            built = time.perf_counter() - started
            sub_truth = truth if size == n else FaissFlatIndex(384)
            if size != n:
                sub_truth.add(ids[:size], vectors[:size])
                sub_truth = sub_truth.search(queries, 10)[1]
            ms, found = timed(lambda q, index=index: index.search(q, 10)[1][0].tolist(), queries)
            if kind == "hnsw":  # what read-after-write costs: searchbert's guarantee against "Strong" on every query
                index.guarantee = index.add(ids[:1], vectors[:1])
                consistency["guarantee ts"] = float(index.guarantee)
                consistency["as of the last write"], _ = timed(
                    lambda q, index=index: index.search(q, 10)[1][0].tolist(), queries[:50]
                )
                index.guarantee = 0
                strong = index.client
                consistency["Strong"], _ = timed(
                    lambda q, index=index, strong=strong: [
                        h["id"] for h in strong.search(index.collection, data=q.tolist(), limit=10,
                                                       consistency_level="Strong")[0]
                    ],
                    queries[:50],
                )  # fmt: skip
                consistency["default (Bounded)"] = ms
            name = f"Milvus server {index.kind} {index.knobs} (`--index-type {kind}`)"
            rows.append((name, size, built, recall(found, sub_truth), ms))
            if kind == "ivf":  # what more probing buys
                for nprobe in (32, 512):
                    index.knobs = {"nprobe": nprobe}
                    ms, found = timed(lambda q, index=index: index.search(q, 10)[1][0].tolist(), queries)
                    rows.append((f"  the same, nprobe {nprobe}", size, 0.0, recall(found, sub_truth), ms))
            index.drop()
            index.close()
        release(uri)
    report.line(f"{n:,} clustered 384-d vectors (benchmarks/vector_scale.py), {queries_n} queries one at a time,")
    report.line("k=10; exact FAISS is the truth. Milvus: the standalone server of PyPI's `milvus` wheel on loopback,")
    report.line("searched through searchbert's MilvusIndex (pymilvus, gRPC). Build: seconds to add every vector and")
    report.line("have it indexed (segments compacted and indexed again included) and loaded.")
    report.line()
    report.line("| index | vectors | build s | recall@10 | median ms / query | ratio to FAISS auto |")
    report.line("|---|---|---|---|---|---|")
    for name, size, built, rec, ms in rows:
        report.line(f"| {name} | {size:,} | {built:.0f} | {rec:.3f} | {ms:.2f} | {ms / faiss_ms:.1f} |")
    report.line()
    if consistency:
        ts = consistency.pop("guarantee ts")
        report.line("Consistency on the HNSW collection (50 queries right after a write; searchbert reads as of its")
        report.line(f"last write's timestamp, which the write returned: {'yes' if ts else 'NO'}):")
        report.line()
        report.line("| reads | median ms / query | ratio to searchbert's |")
        report.line("|---|---|---|")
        ours = consistency["as of the last write"]
        for name, value in consistency.items():
            report.line(f"| {name} | {value:.2f} | {value / ours:.1f} |")
        report.line()


def projection(report: Report, rates: dict[str, float]) -> None:
    per_worker = rates["ray, 1 actor"]
    report.line(f"## Projection to {TARGET_CHUNKS:,} chunks (on paper, from the figures above)")
    report.line()
    need = TARGET_CHUNKS / (per_worker * DAY)
    report.line(f"- Embedding in a day: one Ray actor on one CPU core of this machine embedded {per_worker:.1f} "
                f"chunks/s ({per_worker * DAY / 1e6:.1f}M a day), so {TARGET_CHUNKS:,} chunks in 24 h need "
                f"{math.ceil(need)} such actors (cores): {math.ceil(need / 32)} machines of 32 cores if actors scale "
                "linearly with cores.")  # fmt: skip
    report.line(
        "- On GPUs: not measured (no GPU machine was lent to this task); `--ray` gives each actor a GPU where "
        "the cluster has them, and this script's first table on such a cluster gives the rate to project."
    )
    report.line("- Milvus memory to hold the collection loaded, from each index's layout (per vector: 8 bytes of id; "
                "the vector itself, 4 bytes a dimension, or 1 for SQ8; HNSW adds 2M = 32 neighbour ids of 4 bytes "
                "on its base layer); segments, replicas and the filter fields come on top:")  # fmt: skip
    for kind, per in (("FLAT / IVF_FLAT", 4 * 384 + 8), ("HNSW, M=16", 4 * 384 + 8 + 2 * 16 * 4),
                      ("IVF_SQ8", 384 + 8)):  # fmt: skip
        report.line(f"  - {kind}: {per:,} bytes/vector -> {per * TARGET_CHUNKS / 1e9:,.0f} GB for "
                    f"{TARGET_CHUNKS:,} chunks")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--hnsw-n", type=int, default=200_000, help="vectors for HNSW (its build is slow here)")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    from milvus_server import only_loopback

    if not only_loopback():  # run again where nothing but loopback exists
        script = f"ip link set lo up && exec {sys.executable} {' '.join(map(str, sys.argv))}"
        os.execvp("unshare", ["unshare", "-rn", "sh", "-c", script])
    report = Report("scale_out", "Scaling out: Ray embedding, Milvus search, and a projection to 100M chunks")
    report.line("## Embedding: the local writer against Ray actors")
    report.line()
    rates = embedding(report, args.docs)
    report.line("## Search at scale: Milvus against FAISS")
    report.line()
    with tempfile.TemporaryDirectory() as base:
        search_at_scale(report, args.n, args.hnsw_n, args.queries, Path(base))
    projection(report, rates)
    report.save()


if __name__ == "__main__":
    main()
