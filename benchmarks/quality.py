"""Retrieval quality on every collection in ../shared/datasets: dense (standard and chunked protocols), BM25 and
hybrid, then the fusion comparison: hybrid's nDCG@10 under reciprocal rank fusion (several k) and under a convex
combination of min-max or z-score normalised scores (several alpha), on every collection and both protocols, through
`searchbert eval`'s own search. The default fusion is the best mean over the collections, chunked protocol (what
`searchbert index` builds).

Writes benchmarks/results/quality.md (dataset, mode, protocol, nDCG@10, R@100, MRR@10, MAP, seconds; the fusion
table) and prints it. Indexes are cached under indexes/eval, so a second run only re-runs the queries; pass --fresh
to time a cold run, --no-fusion to skip the comparison.

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
DEFAULT_RUNS = ["hybrid-chunked", "hybrid-standard", "dense-chunked", "dense-standard", "bm25"]
FUSIONS = (
    [("rrf", {"k": k}) for k in (1, 10, 30, 60, 100)]
    + [("convex", {"alpha": a / 10, "norm": "minmax"}) for a in range(2, 9)]
    + [("convex", {"alpha": a / 10, "norm": "zscore"}) for a in range(2, 9)]
)


def fusion_table(names: list[str], cache: Path, backend: str) -> list[str]:
    """One row per fusion: nDCG@10 per collection and protocol, and the mean over collections per protocol."""
    from searchbert.evaluation import evaluate
    from searchbert.records import Fusion
    from searchbert.search import DEFAULT_FUSION

    protocols = ("chunked", "standard")
    scores: dict[tuple[str, str, str], float] = {}
    fusions = [Fusion(method, **settings) for method, settings in FUSIONS]
    for fusion in fusions:
        for name in names:
            for protocol in protocols:
                result = evaluate(DATASETS / name, cache_dir=cache, backend=backend, mode="hybrid",
                                  protocol=protocol, fusion=fusion)  # fmt: skip
                scores[(fusion.describe(), name, protocol)] = result.metrics["nDCG@10"] * 100
        print(fusion.describe(), [round(scores[(fusion.describe(), n, p)], 2) for n in names for p in protocols])

    def mean(f: Fusion, protocol: str) -> float:
        return sum(scores[(f.describe(), n, protocol)] for n in names) / len(names)

    best = max(fusions, key=lambda f: mean(f, "chunked"))
    head = " | ".join(f"{n} {p}" for p in protocols for n in names)
    lines = [
        f"| fusion | {head} | mean chunked | mean standard |",
        "|---|" + "---|" * (len(names) * len(protocols) + 2),
    ]
    for f in fusions:
        cells = " | ".join(f"{scores[(f.describe(), n, p)]:.2f}" for p in protocols for n in names)
        mark = " (best)" if f == best else ""
        default = " (default)" if f == DEFAULT_FUSION else ""
        lines.append(
            f"| {f.describe()}{mark}{default} | {cells} | {mean(f, 'chunked'):.2f} | {mean(f, 'standard'):.2f} |"
        )
    spread = {}
    families = {
        "rrf": [f for f in fusions if f.method == "rrf"],
        "convex min-max": [f for f in fusions if f.method == "convex" and f.norm == "minmax"],
        "convex z-score": [f for f in fusions if f.method == "convex" and f.norm == "zscore"],
    }
    for label, group in families.items():
        values = [mean(f, "chunked") for f in group]
        spread[label] = (min(values), max(values))
    lines.append("")
    lines.append(
        f"Best mean over the collections, chunked protocol: **{best.describe()}** ({mean(best, 'chunked'):.2f}; "
        f"standard protocol {mean(best, 'standard'):.2f}). searchbert's default: {DEFAULT_FUSION.describe()}. "
        "How much each family's mean (chunked) moves over its one parameter: "
        + "; ".join(f"{k} {lo:.2f} to {hi:.2f}" for k, (lo, hi) in spread.items())
        + "."
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", help="collection folders under ../shared/datasets (default: all)")
    parser.add_argument("--runs", nargs="*", default=DEFAULT_RUNS, choices=list(RUNS))
    parser.add_argument("--fresh", action="store_true", help="drop the cached indexes first")
    parser.add_argument("--backend", default="onnx", help="what embeds the documents (default onnx, full precision)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quality.md")
    parser.add_argument("--no-fusion", action="store_true", help="skip the fusion comparison")
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
    if not args.no_fusion:
        report.line()
        report.line("## Fusion: hybrid nDCG@10 by fusion, collection and protocol")
        report.line()
        for line in fusion_table(names, cache, args.backend):
            report.line(line)
    report.save()


if __name__ == "__main__":
    main()
