"""Approximate vector indexes at scale: recall@10 against exact search, queries/s as a ratio to exact, bytes/vector.

Vectors are random but clustered (like real embeddings: many topics, tight neighbourhoods), 384-d and L2-normalized;
queries come from the same distribution. With --real, the vectors are ~62k real sentence embeddings of SciFact and
Cranfield and the queries are the collections' queries (benchmarks/real_vectors.py). Every index is built with the
same settings `searchbert index` records (`searchbert.ann.ann_settings`). Target: an index type with
recall@10 >= 0.95 at >= 10x the exact QPS.

    .venv/bin/python benchmarks/vector_scale.py [--n 1000000] [--types ivf ivf-sq8 ivf-pq hnsw] [--hnsw-n 200000]
    .venv/bin/python benchmarks/vector_scale.py --real
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Report

#: noise around each cluster centre, relative to the centres' spread: 1.0 makes neighbouring clusters overlap,
#: so nearest neighbours are not all in one cell (at 0.6 every index found them at any setting)
NOISE = 1.0


def clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        rows = min(100_000, n - start)
        out[start : start + rows] = centers[rng.integers(0, clusters, rows)] + NOISE * rng.standard_normal(
            (rows, dim), dtype=np.float32
        )
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def timed_search(index, queries: np.ndarray, k: int, vectors_of=None) -> tuple[float, list]:
    """QPS and ids; with vectors_of, through FaissFlatIndex.nearest as searchbert searches (compressed codes are
    re-scored with stored vectors)."""
    if vectors_of is not None:
        index.nearest(queries[:50], k, vectors_of)  # warm up: the page cache holds the re-scored rows' pages
    started = time.perf_counter()
    if vectors_of is None:
        ids = index.search(queries, k)[1].tolist()
    else:
        ids = [[i for i, _ in row] for row in index.nearest(queries, k, vectors_of)]
    return len(queries) / (time.perf_counter() - started), ids


def sqlite_vectors(folder: Path, ids: np.ndarray, data: np.ndarray):
    """Vectors as blobs in SQLite, read back the way searchbert's store reads them for re-scoring."""
    db = sqlite3.connect(folder / "vectors.db")
    db.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, vector BLOB)")
    db.executemany("INSERT INTO chunks VALUES (?, ?)", ((int(i), v.tobytes()) for i, v in zip(ids, data)))
    db.commit()

    def vectors_of(wanted: list[int]) -> tuple[np.ndarray, np.ndarray]:
        rows = db.execute(f"SELECT id, vector FROM chunks WHERE id IN ({','.join('?' * len(wanted))})", wanted)
        got = rows.fetchall()
        return np.array([r[0] for r in got]), np.frombuffer(b"".join(r[1] for r in got), np.float32).reshape(
            len(got), -1
        )

    return vectors_of


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--types", nargs="*", default=["ivf", "ivf-sq8", "ivf-pq", "hnsw"])
    parser.add_argument("--hnsw-n", type=int, default=200_000, help="HNSW builds slowly on 2 cores: its own size")
    parser.add_argument("--real", action="store_true", help="real sentence embeddings instead of synthetic clusters")
    args = parser.parse_args()

    import faiss

    from searchbert.ann import ann_settings, build
    from searchbert.vectors import FaissFlatIndex, Selection

    size = f"{args.n // 1_000_000}m" if args.n % 1_000_000 == 0 else f"{args.n // 1000}k"
    name = "vector_scale_real" if args.real else f"vector_scale_{size}"
    report = Report(name, "Approximate vector indexes: recall@10, QPS against exact, bytes per vector")

    dim, k = 384, 10
    if args.real:
        from real_vectors import load

        data, queries = load()
        args.n = len(data)
        report.line(f"{args.n:,} real sentence vectors (SciFact + Cranfield), {len(queries)} real queries, k={k}")
    else:
        data = clustered(args.n, dim, clusters=2000, seed=1)
        queries = clustered(args.n + args.queries, dim, clusters=2000, seed=1)[args.n :]
        report.line(f"{args.n:,} clustered {dim}-d vectors, {args.queries} queries, k={k}")
    ids = np.arange(len(data), dtype=np.int64)
    report.line("| index | n | build s | recall@10 | QPS | QPS / exact | bytes/vector |")
    report.line("|---|---|---|---|---|---|---|")
    baselines: dict[int, tuple[float, np.ndarray]] = {}

    def exact_for(n: int) -> tuple[float, np.ndarray]:
        if n not in baselines:
            flat = FaissFlatIndex(dim)
            flat.add(ids[:n], data[:n])
            baselines[n] = timed_search(flat, queries, k)
            report.line(f"| flat (exact) | {n:,} | 0 | 1.000 | {baselines[n][0]:,.0f} | 1.0 | {dim * 4 + 8} |")
        return baselines[n]

    work = tempfile.TemporaryDirectory()
    stored = sqlite_vectors(Path(work.name), ids, data)
    for kind in args.types:
        n = min(args.n, args.hnsw_n) if kind == "hnsw" else args.n
        exact_qps, truth = exact_for(n)
        settings = ann_settings(kind, n, dim)
        started = time.perf_counter()
        index = build(settings, dim, ids[:n], data[:n])
        seconds = time.perf_counter() - started
        qps, found = timed_search(index, queries, k, stored)
        knob = "nprobe" if "nprobe" in settings else "ef_search"
        with tempfile.TemporaryDirectory() as tmp:
            index.save(Path(tmp) / "v.faiss")
            size = os.path.getsize(Path(tmp) / "v.faiss")
        report.line(
            f"| {kind} ({settings['factory']}, {knob}={settings[knob]} as calibrated: "
            f"estimate {settings['recall_estimate']}) | {n:,} | {seconds:.0f} | {recall(found, truth):.3f} "
            f"| {qps:,.0f} | {qps / exact_qps:.1f} | {size / n:.0f} |",
        )
        # under filters allowing a random share of the vectors: the calibrated filtered setting, against the exact
        # top 10 among the allowed vectors, and the time as a multiple of the unfiltered search's
        index.tune(settings)
        rng = np.random.default_rng(7)
        for share in (0.5, 0.1, 0.01):
            keep = rng.random(n) < share
            allowed = Selection.from_ids(ids[:n][keep])
            _, rows = faiss.knn(queries, data[:n][keep], k, metric=faiss.METRIC_INNER_PRODUCT)
            started = time.perf_counter()
            found = [[i for i, _ in row] for row in index.nearest(queries, k, stored, allowed)]
            filtered_qps = len(queries) / (time.perf_counter() - started)
            report.line(
                f"|   filter {share:.0%} | | | {recall(found, ids[:n][keep][rows]):.3f} | {filtered_qps:,.0f} "
                f"| {filtered_qps / exact_qps:.1f} (time x{qps / filtered_qps:.1f} unfiltered) | |",
            )
        # the recall/speed curve around the recorded setting
        for value in (4, 16, 64) if knob == "nprobe" else (16, 64, 256):
            index.tune({knob: value})
            qps, found = timed_search(index, queries, k, stored)
            report.line(
                f"|   {knob}={value} | | | {recall(found, truth):.3f} | {qps:,.0f} | {qps / exact_qps:.1f} | |",
            )
        del index
    work.cleanup()
    report.save()


if __name__ == "__main__":
    main()
