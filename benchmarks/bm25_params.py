"""BM25's k1 and b on every collection in ../shared/datasets: the usual settings, measured with `searchbert eval`.

Settings: the widely used defaults, Lucene's (1.2, 0.75), bm25s' own (1.5, 0.75) and Anserini's MS MARCO setting
(0.9, 0.4). The same tokenizer for all (English stopwords, Snowball stemmer). The default is the
setting with the best mean nDCG@10 over the collections together, never one collection's best.

Writes benchmarks/results/bm25_params.md and prints it.

    .venv/bin/python benchmarks/bm25_params.py [--datasets scifact cranfield]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS, REPO, Report

SETTINGS = {"lucene": (1.2, 0.75), "bm25s": (1.5, 0.75), "anserini": (0.9, 0.4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", help="collection folders under ../shared/datasets (default: all)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bm25_params.md")
    args = parser.parse_args()

    from searchbert.bm25 import K1, B
    from searchbert.evaluation import evaluate

    names = args.datasets or sorted(p.name for p in DATASETS.iterdir() if (p / "corpus.jsonl").exists())
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for label, (k1, b) in SETTINGS.items():
        for name in names:
            result = evaluate(DATASETS / name, mode="bm25", bm25_k1=k1, bm25_b=b)
            scores.setdefault(label, {})[name] = result.metrics
            print(f"{label:10} k1={k1} b={b} {name:10} nDCG@10 {result.metrics['nDCG@10'] * 100:.2f}", flush=True)
    mean = {label: sum(s[n]["nDCG@10"] for n in names) / len(names) for label, s in scores.items()}
    best = max(mean, key=mean.__getitem__)
    rows = [
        f"| {label} | {SETTINGS[label][0]} | {SETTINGS[label][1]} | "
        + " | ".join(f"{scores[label][n]['nDCG@10'] * 100:.2f} / {scores[label][n]['R@100'] * 100:.2f}" for n in names)
        + f" | {mean[label] * 100:.2f} |"
        for label in SETTINGS
    ]
    table = "\n".join(
        [
            "| setting | k1 | b | " + " | ".join(f"{n} nDCG@10 / R@100" for n in names) + " | mean nDCG@10 |",
            "|---|---|---|" + "---|" * len(names) + "---|",
            *rows,
        ]
    )
    report = Report(args.out.stem, "BM25 parameters")
    report.path = args.out
    report.line(
        "`searchbert eval --mode bm25` (bm25s, Lucene's formula, English stopwords, Snowball stemmer, title + text "
        f"per document), test splits, metrics x100.\n\n{table}\n\n"
        f"Best mean nDCG@10: **{best}** (k1={SETTINGS[best][0]}, b={SETTINGS[best][1]}). "
        f"searchbert's default now: k1={K1}, b={B}."
    )
    report.save()


if __name__ == "__main__":
    main()
