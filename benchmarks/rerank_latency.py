"""Latency of cross-encoder reranking of 50 candidates (and of the dense query path, for scale), on this machine.

No pretrained cross-encoder can be downloaded here, so the script builds one of the same architecture as
cross-encoder/ms-marco-MiniLM-L6-v2 (BertForSequenceClassification, 6 layers, 384 wide) from the bundled MiniLM
weights: its scores are meaningless, its speed is the real one. Candidates are real SciFact chunks (~254 tokens).

    .venv/bin/python benchmarks/rerank_latency.py [--candidates 50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS, Report


def build_cross_encoder(out: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from searchbert.encoders import resolve_model

    folder = resolve_model(None)[1]
    torch.manual_seed(0)
    BertForSequenceClassification.from_pretrained(str(folder), num_labels=1).save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(folder)).save_pretrained(str(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    report = Report("rerank_latency", "Cross-encoder rerank latency")

    from searchbert.rerank import CrossEncoderReranker

    docs = [json.loads(line) for _, line in zip(range(args.candidates), (DATASETS / "scifact" / "corpus.jsonl").open())]
    passages = [f"{d['title']}\n\n{d['text']}" for d in docs]
    query = "Hematopoietic stem cells segregate their chromosomes randomly."
    with tempfile.TemporaryDirectory() as tmp:
        reranker = CrossEncoderReranker(str(build_cross_encoder(Path(tmp))))
        reranker.score(query, passages[:4])  # load and warm up
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            reranker.score(query, passages)
            times.append(time.perf_counter() - started)
    report.line(
        f"cross-encoder rerank of {args.candidates} candidates: median {statistics.median(times) * 1000:.0f} ms, "
        f"best {min(times) * 1000:.0f} ms over {args.repeats} runs"
    )
    report.save()


if __name__ == "__main__":
    main()
