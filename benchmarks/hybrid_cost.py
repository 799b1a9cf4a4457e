"""What hybrid search costs against dense: query latency in-process (Index.search, one query at a time) and from the
CLI (`searchbert query --no-server` in a new process), and the disk the BM25 index takes. SciFact's 5,183 abstracts
indexed by `searchbert index` with its defaults; its 300 test queries; k=10.

    .venv/bin/python benchmarks/hybrid_cost.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS, Report, scifact_index

MODES = ("dense", "hybrid", "bm25")


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "searchbert")
    index_path = scifact_index(exe)
    queries = [json.loads(line)["text"] for line in (DATASETS / "scifact" / "queries.jsonl").open()][:300]

    from searchbert import Index

    in_process: dict[str, list[float]] = {m: [] for m in MODES}
    with Index.open(index_path) as index:
        for mode in MODES:
            index.search(queries[0], k=10, mode=mode)  # loads what the mode reads
        for query in queries:  # the modes alternate, so a drift in this machine's speed hits all alike
            for mode in MODES:
                started = time.perf_counter()
                index.search(query, k=10, mode=mode)
                in_process[mode].append((time.perf_counter() - started) * 1000)
        chunks = index.count()["chunks"]
    cli: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            started = time.perf_counter()
            subprocess.run([exe, "query", queries[1], "--index", str(index_path), "--mode", mode, "--no-server"],
                           check=True, capture_output=True)  # fmt: skip
            cli[mode].append(time.perf_counter() - started)

    bm25, total = size(index_path / "bm25"), size(index_path)
    report = Report("hybrid_cost", "What hybrid search costs against dense")
    report.line(
        f"SciFact's 5,183 abstracts ({chunks} chunks) indexed with the defaults; {len(queries)} queries, k=10. "
        f"In-process: `Index.search`, one query at a time, the modes alternating. CLI: `searchbert query "
        f"--no-server` in a new process, best of {args.repeats}."
    )
    report.line()
    report.line("| mode | in-process median ms | in-process p95 ms | CLI best s |")
    report.line("|---|---|---|---|")
    for mode in MODES:
        times = sorted(in_process[mode])
        p95 = times[int(0.95 * len(times))]
        report.line(f"| {mode} | {statistics.median(times):.2f} | {p95:.2f} | {min(cli[mode]):.3f} |")
    ratio = statistics.median(in_process["hybrid"]) / statistics.median(in_process["dense"])
    report.line()
    report.line(
        f"Hybrid / dense: {ratio:.2f}x in-process (median), {min(cli['hybrid']) / min(cli['dense']):.2f}x from the "
        f"CLI. Disk: the BM25 index is {bm25 / 2**20:.1f} MiB of the index's {total / 2**20:.1f} MiB "
        f"({bm25 / total:.0%})."
    )
    report.save()


if __name__ == "__main__":
    main()
