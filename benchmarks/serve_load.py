"""Load and endurance of `searchbert serve` over loopback: SciFact's 5,183 abstracts indexed, its test queries sent
by 1, 4 and 16 concurrent clients for a bounded time each, while a writer upserts records in the background (the
index changing under the searches). Then 10,000 requests with 4 clients, the server's memory (RSS) read before and
after. Reports requests/s, p50/p95/p99 latency and errors (target 0), and whether memory stays flat.

    .venv/bin/python benchmarks/serve_load.py [--seconds 20] [--endurance 10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS, Report, scifact_index

KEY = "benchmark-key"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


def drive(url: str, queries: list[str], clients: int, seconds: float | None, total: int | None) -> dict:
    """`clients` threads, each with its own keep-alive connection, sending queries until the time or count is up."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    sent = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds if seconds else None

    def client(offset: int) -> None:
        nonlocal sent
        with httpx.Client(base_url=url, timeout=60) as http:
            n = offset
            while True:
                with lock:
                    if (total is not None and sent >= total) or (deadline and time.monotonic() >= deadline):
                        return
                    sent += 1
                started = time.perf_counter()
                try:
                    answer = http.post("/search", json={"query": queries[n % len(queries)], "k": 10})
                    ok = answer.status_code == 200 and isinstance(answer.json(), list)
                    problem = None if ok else f"{answer.status_code}: {answer.text[:100]}"
                except httpx.HTTPError as exc:
                    problem = repr(exc)
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
                    if problem:
                        errors.append(problem)
                n += clients

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50": percentile(latencies, 50) * 1000,
        "p95": percentile(latencies, 95) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }


def writer(url: str, corpus: list[dict], stop: threading.Event, done: list[int]) -> None:
    """Upserts 5 records a second (new ones, then the same ids with new text): the index changes while searched."""
    import httpx

    n = 0
    with httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {KEY}"}) as http:
        while not stop.is_set():
            batch = [{"id": f"bench-{(n + i) % 200}", "text": corpus[(n + i) % len(corpus)]["text"]} for i in range(5)]
            answer = http.post("/documents", json={"documents": batch})
            done.append(answer.status_code)
            n += 5
            stop.wait(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--endurance", type=int, default=10_000)
    args = parser.parse_args()
    import psutil

    exe = str(Path(sys.executable).parent / "searchbert")
    scifact = DATASETS / "scifact"
    corpus = [json.loads(line) for line in (scifact / "corpus.jsonl").open()]
    queries = [json.loads(line)["text"] for line in (scifact / "queries.jsonl").open()]
    index = scifact_index(exe)
    (index / "serve.json").unlink(missing_ok=True)
    server = subprocess.Popen([exe, "serve", "--index", str(index), "--port", "0", "--api-key", KEY])
    try:
        while not (index / "serve.json").exists():
            assert server.poll() is None, "the server did not start"
            time.sleep(0.1)
        url = json.loads((index / "serve.json").read_text())["url"]
        process = psutil.Process(server.pid)
        drive(url, queries, 2, None, 200)  # warm up
        rows = []
        writes: list[int] = []
        stop = threading.Event()
        background = threading.Thread(target=writer, args=(url, corpus, stop, writes))
        background.start()
        for clients in (1, 4, 16):
            rows.append((clients, drive(url, queries, clients, args.seconds, None)))
        stop.set()
        background.join()
        rss_before = process.memory_info().rss
        half = drive(url, queries, 4, None, args.endurance // 2)
        rss_half = process.memory_info().rss
        rest = drive(url, queries, 4, None, args.endurance - args.endurance // 2)
        rss_after = process.memory_info().rss
    finally:
        server.terminate()
        server.wait(60)

    report = Report("serve_load", "`searchbert serve` under load, over loopback")
    report.line(
        f"SciFact's {len(corpus)} abstracts indexed (bundled model, the default index); SciFact queries, k=10, the "
        f"default mode; each client keeps one connection. {args.seconds:.0f} s per row, while a writer upserted "
        f"5 records a second ({len(writes)} upserts, {sum(1 for w in writes if w != 200)} failed)."
    )
    report.line()
    report.line("| clients | requests | requests/s | p50 ms | p95 ms | p99 ms | errors |")
    report.line("|---|---|---|---|---|---|---|")
    for clients, r in rows:
        report.line(
            f"| {clients} | {r['requests']} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | "
            f"{r['errors']} |"
        )
    errors = sum(r["errors"] for _, r in rows) + half["errors"] + rest["errors"]
    first = next((r["first_error"] for _, r in rows if r["first_error"]), half["first_error"] or rest["first_error"])
    report.line()
    mib = 2**20
    report.line(
        f"Endurance: {half['requests'] + rest['requests']} more requests with 4 clients ({rest['rps']:.1f}/s in the "
        f"second half, p99 {rest['p99']:.1f} ms). Server memory (RSS): {rss_before / mib:.0f} MiB before, "
        f"{rss_half / mib:.0f} MiB after {half['requests']}, {rss_after / mib:.0f} MiB after all: "
        f"{(rss_after - rss_half) / mib:+.1f} MiB over the second half. Errors in all: {errors}"
        + (f" (first: {first})" if first else "")
        + "."
    )
    report.save()


if __name__ == "__main__":
    main()
