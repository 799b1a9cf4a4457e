"""Retrieval quality on every collection in ../shared/datasets: dense (standard and chunked protocols) and BM25.

Writes benchmarks/results/quality.md (dataset, mode, protocol, nDCG@10, R@100, MRR@10, MAP, seconds) and prints it.
Indexes are cached under indexes/eval, so a second run only re-runs the queries; pass --fresh to time a cold run.

    .venv/bin/python benchmarks/quality.py [--datasets scifact cranfield] [--runs dense-standard dense-chunked bm25]
        [--backend onnx|onnx-int8|auto|torch]   (default onnx: full precision, the model's own vectors)
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS, REPO, Report

RUNS = {
    "dense-standard": {"mode": "dense", "protocol": "standard"},
    "dense-chunked": {"mode": "dense", "protocol": "chunked"},
    "dense-chunked-no-title": {"mode": "dense", "protocol": "chunked", "title_prefix": False},
    "bm25": {"mode": "bm25"},
    "hybrid-standard": {"mode": "hybrid", "protocol": "standard"},
    "hybrid-chunked": {"mode": "hybrid", "protocol": "chunked"},
}
DEFAULT_RUNS = ["dense-standard", "dense-chunked", "bm25", "hybrid-standard", "hybrid-chunked"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", help="collection folders under ../shared/datasets (default: all)")
    parser.add_argument("--runs", nargs="*", default=DEFAULT_RUNS, choices=list(RUNS))
    parser.add_argument("--fresh", action="store_true", help="drop the cached indexes first")
    parser.add_argument("--backend", default="onnx", help="what embeds the documents (default onnx, full precision)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quality.md")
    args = parser.parse_args()

    from searchbert.evaluation import evaluate

    cache = REPO / "indexes" / "eval"
    if args.fresh and cache.exists():
        shutil.rmtree(cache)
    names = args.datasets or sorted(p.name for p in DATASETS.iterdir() if (p / "corpus.jsonl").exists())
    rows = []
    for name in names:
        for run in args.runs:
            result = evaluate(DATASETS / name, cache_dir=cache, progress=True, backend=args.backend, **RUNS[run])
            m = result.metrics
            cached = "" if result.chunks_embedded or result.mode == "bm25" else " (cached)"
            rows.append(
                f"| {name} | {result.mode} | {result.protocol if result.mode != 'bm25' else '-'} "
                f"{'(no title prefix) ' if RUNS[run].get('title_prefix') is False else ''}"
                f"| {m['nDCG@10'] * 100:.2f} | {m['R@100'] * 100:.2f} | {m['MRR@10'] * 100:.2f} "
                f"| {m['MAP'] * 100:.2f} | {result.seconds:.0f}{cached} |"
            )
            print(rows[-1], flush=True)
    table = "\n".join(
        [
            "| dataset | mode | protocol | nDCG@10 | R@100 | MRR@10 | MAP | seconds |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    from searchbert.bm25 import K1, B

    report = Report(args.out.stem, "Retrieval quality")
    report.path = args.out
    report.line(
        f"Model: sentence-transformers/all-MiniLM-L6-v2 (dense, --backend {args.backend}); bm25s, k1={K1} b={B}, "
        "English stopwords and Snowball stemming (bm25). Test split, metrics x100. Seconds: the whole eval on this "
        "machine, embedding the corpus included, except where marked (cached): then the collection's index was "
        "already built and only the queries ran."
    )
    report.line()
    report.line(table)
    report.save()


if __name__ == "__main__":
    main()
