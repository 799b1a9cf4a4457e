"""Fine-tuning on SciFact: train on `train`, score on `test` (nDCG@10), and check Cranfield (never trained on) for
forgetting. Runs `searchbert finetune encoder`'s library function with its defaults, then `searchbert eval`'s.

Rows: dense with the bundled model; dense and hybrid with the fine-tuned encoder; Cranfield dense with both. The
fine-tuned model is kept under benchmarks/.cache/finetune (delete it to train again). Writes
benchmarks/results/finetune.md and prints it.

    .venv/bin/python benchmarks/finetune.py [--epochs 3] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS, REPO, Report

CACHE = REPO / "benchmarks" / ".cache" / "finetune"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    from searchbert.evaluation import evaluate
    from searchbert.finetune import finetune_encoder

    model = CACHE / f"scifact-encoder-e{args.epochs}-b{args.batch_size}"
    if not (model / "finetune.json").exists():
        finetune_encoder(DATASETS / "scifact", model, epochs=args.epochs, batch_size=args.batch_size)
    trained = json.loads((model / "finetune.json").read_text())

    def score(dataset: str, mode: str, which: str | None) -> float:
        # fp32 ONNX for both models: the fine-tuned one was never measured in int8, so `auto` runs it in fp32
        result = evaluate(DATASETS / dataset, mode=mode, model=which, backend="onnx", progress=True)
        return result.metrics["nDCG@10"] * 100

    rows = [
        ("SciFact", "dense", "bundled all-MiniLM-L6-v2", score("scifact", "dense", None), "-"),
        ("SciFact", "dense", "fine-tuned", score("scifact", "dense", str(model)), ">= 68.5"),
        ("SciFact", "hybrid", "fine-tuned", score("scifact", "hybrid", str(model)), ">= 72.5"),
        ("Cranfield", "dense", "bundled all-MiniLM-L6-v2", score("cranfield", "dense", None), "-"),
        ("Cranfield", "dense", "fine-tuned on SciFact", score("cranfield", "dense", str(model)), "within 1 of bundled"),
    ]
    report = Report("finetune", "Fine-tuning the bi-encoder on SciFact")
    report.line(
        f"`finetune_encoder(scifact, epochs={args.epochs}, batch_size={args.batch_size})`: "
        f"{trained['pairs']} training pairs ({trained['train_queries']} queries; {trained['dev_queries']} held out to "
        f"choose the epoch), MultipleNegativesRankingLoss with one mined hard negative each; "
        f"{trained['seconds'] / 60:.1f} min on this machine; best epoch {trained['best_epoch']}; held-out nDCG@10 "
        f"{trained['dev_before']['ndcg@10'] * 100:.2f} -> {trained['dev_after']['ndcg@10'] * 100:.2f}. Scored with "
        "`searchbert eval` (standard protocol, fp32 ONNX).\n"
    )
    report.line("| collection | mode | model | nDCG@10 | target |")
    report.line("|---|---|---|---|---|")
    for collection, mode, which, ndcg, target in rows:
        report.line(f"| {collection} | {mode} | {which} | {ndcg:.2f} | {target} |")
    report.save()


if __name__ == "__main__":
    main()
