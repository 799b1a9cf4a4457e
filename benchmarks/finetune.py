"""Fine-tuning, measured: `searchbert finetune`'s library functions, then `searchbert eval`'s (nDCG@10, standard
protocol, fp32 ONNX). Models are kept under benchmarks/.cache/finetune (delete them to train again). Three parts:

    .venv/bin/python benchmarks/finetune.py supervised [--epochs 3] [--reranker-base finetuned|bundled]
    .venv/bin/python benchmarks/finetune.py blend [--shares 0,0.25,0.5,0.75,1]
    .venv/bin/python benchmarks/finetune.py unlabelled [--max-pairs 2000]

supervised (results/finetune.md): trained on SciFact's train split; dense with the bundled model, dense and hybrid
with the fine-tuned encoder, Cranfield for forgetting; then a cross-encoder reranker trained to rerank the best of
those (hybrid, fine-tuned encoder, top 50), scored over it on SciFact's test queries.

blend (results/finetune_blend.md): both directions. Trained on SciFact train, tested on SciFact test and Cranfield;
trained on half of Cranfield's queries (the other half held back), tested on that other half and on SciFact. Each
fine-tuned model is blended back toward the bundled one at every share `finetune encoder` measures; each blend is
scored on the held-out training queries, on the general probe that ships with searchbert, and on both collections
(dense and hybrid); the share `--blend auto` keeps is marked.

unlabelled (results/finetune_unlabelled.md): searchbert.adapt.adapt_encoder on SciFact's and on Cranfield's corpus
(as Markdown files, no queries, no qrels), each adapted model scored dense on both collections' test queries; the
unblended adapted model beside the one the guard keeps.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS, REPO, Report, paired_difference, per_query_ndcg

CACHE = REPO / "benchmarks" / ".cache" / "finetune"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = parser.add_subparsers(dest="part", required=True)
    supervised = parts.add_parser("supervised")
    supervised.add_argument("--epochs", type=int, default=3)
    supervised.add_argument("--batch-size", type=int, default=16)
    supervised.add_argument("--reranker-base", choices=["finetuned", "bundled"], default="finetuned")
    supervised.add_argument("--reranker-epochs", type=int, default=3)
    supervised.add_argument("--negatives", type=int, default=3)
    supervised.add_argument(
        "--depths", default="10,20,30,50", help="candidates the trained reranker reranks on the test queries"
    )
    blend = parts.add_parser("blend")
    blend.add_argument(
        "--shares",
        default="0,0.25,0.5,0.75,1",
        help="shares scored on the test collections "
        "(0, 1 and the one auto keeps always are; the held-out and probe curves have every share)",
    )
    unlabelled = parts.add_parser("unlabelled")
    unlabelled.add_argument("--max-pairs", type=int, default=2000, help="pseudo-queries trained on (CPU time here)")
    args = parser.parse_args()
    if args.part == "blend":
        from finetune_blend import blend_both_ways

        blend_both_ways([float(x) for x in args.shares.split(",")])
    elif args.part == "unlabelled":
        from finetune_blend import unlabelled

        unlabelled(args.max_pairs)
    else:
        run_supervised(args)


def run_supervised(args: argparse.Namespace) -> None:

    from finetune_blend import score, scored  # fp32 ONNX: the fine-tuned models were never measured in int8

    from searchbert.evaluation import evaluate
    from searchbert.finetune import finetune_encoder
    from searchbert.finetune_reranker import finetune_reranker
    from searchbert.rerank import CrossEncoderReranker

    model = CACHE / f"scifact-encoder-e{args.epochs}-b{args.batch_size}"
    if not (model / "finetune.json").exists():
        finetune_encoder(DATASETS / "scifact", model, epochs=args.epochs, batch_size=args.batch_size, blend=1.0)
    trained = json.loads((model / "finetune.json").read_text())

    scifact, cranfield = DATASETS / "scifact", DATASETS / "cranfield"
    hybrid, hybrid_queries = scored(scifact, "hybrid", model)  # the search the reranker is trained to rerank
    rows = [
        ("SciFact", "dense", "bundled all-MiniLM-L6-v2", score(scifact, "dense", None), "-"),
        ("SciFact", "dense", "fine-tuned", score(scifact, "dense", model), ">= 68.5"),
        ("SciFact", "hybrid", "fine-tuned", hybrid, ">= 72.5"),
        ("Cranfield", "dense", "bundled all-MiniLM-L6-v2", score(cranfield, "dense", None), "-"),
        ("Cranfield", "dense", "fine-tuned on SciFact", score(cranfield, "dense", model), "within 1 of bundled"),
    ]
    reranker = CACHE / f"scifact-reranker-{args.reranker_base}-e{args.reranker_epochs}-n{args.negatives}"
    if not (reranker / "finetune.json").exists():
        finetune_reranker(
            DATASETS / "scifact", reranker, base=str(model) if args.reranker_base == "finetuned" else None,
            retriever=str(model), mode="hybrid", candidates=50, epochs=args.reranker_epochs, negatives=args.negatives,
        )  # fmt: skip
    ranked = json.loads((reranker / "finetune.json").read_text())
    # trained on the top 50's negatives, its weight chosen over the top 50; reranked at other depths as well, since
    # a deeper pool can find more and a shallower one gives the cross-encoder fewer chances to promote a wrong passage
    depths = sorted({int(x) for x in args.depths.split(",")} | {50})
    after, gains = {}, {}
    remembered = Remembered(CrossEncoderReranker(str(reranker)))  # each depth scores only the pairs new to it
    for depth in depths:
        reranked = evaluate(
            scifact, mode="hybrid", model=str(model), backend="onnx", rerank=remembered,
            candidates=depth, progress=True,
        )  # fmt: skip
        before, after[depth] = reranked.before["nDCG@10"] * 100, reranked.metrics["nDCG@10"] * 100  # type: ignore[index]
        gains[depth] = paired_difference(per_query_ndcg(scifact, reranked.run), hybrid_queries)
    for depth in depths:
        mode = f"hybrid + reranker (top {depth})"
        rows.append(("SciFact", mode, "fine-tuned both", after[depth], f">= {before + 1:.2f}"))

    report = Report("finetune", "Fine-tuning the bi-encoder and a cross-encoder reranker on SciFact")
    report.line(
        f"`finetune_encoder(scifact, epochs={args.epochs}, batch_size={args.batch_size})`: "
        f"{trained['pairs']} training pairs ({trained['train_queries']} queries; {trained['dev_queries']} held out to "
        f"choose the epoch), MultipleNegativesRankingLoss with one mined hard negative each; "
        f"{trained['seconds'] / 60:.1f} min on this machine; best epoch {trained['best_epoch']}; held-out nDCG@10 "
        f"{trained['dev_before']['ndcg@10'] * 100:.2f} -> {trained['dev_after']['ndcg@10'] * 100:.2f}. Scored with "
        "`searchbert eval` (standard protocol, fp32 ONNX).\n"
    )
    dev = ranked["dev"]
    start = "the fine-tuned encoder" if args.reranker_base == "finetuned" else "the bundled MiniLM"
    report.line(
        f"`finetune_reranker(scifact, base={start}, "
        f"retriever=the fine-tuned encoder, mode=hybrid, candidates=50, epochs={args.reranker_epochs}, "
        f"negatives={args.negatives})`: {ranked['pairs']} pairs, {ranked['seconds'] / 60:.1f} min; best epoch "
        f"{ranked['best_epoch']}; held-out nDCG@10: search {dev['retrieval'] * 100:.2f}, cross-encoder alone "
        f"{dev['reranker'] * 100:.2f}, blended {dev['combined'] * 100:.2f} at retrieval weight {dev['weight']:.1f}. "
        f"On the test queries the same hybrid search scores {before:.2f} before reranking, {after[50]:.2f} after "
        f"(top 50); the cross-encoder alone (weight 0) is not what `--rerank` runs with this model.\n"
    )
    if "general_curve" in ranked:
        probe = ", ".join(f"{w}: {v * 100:.2f}" for w, v in ranked["general_curve"].items())
        report.line(
            f"The general probe, searched dense by the fine-tuned encoder and reranked over its top 20, by retrieval "
            f"weight: {probe}. The weight kept is the best on the held-out queries among those, from weight 1 down, "
            "before the first that falls more than 0.5 under the search alone (weight 1) on the probe.\n"
        )
    report.line(
        "What the reranker adds to the hybrid search, per query (mean, paired 95% interval over SciFact's test "
        "queries), by depth reranked: " + "; ".join(f"top {d}: {gains[d]}" for d in depths) + ".\n"
    )
    report.line("| collection | mode | model | nDCG@10 | target |")
    report.line("|---|---|---|---|---|")
    for collection, mode, which, ndcg, target in rows:
        report.line(f"| {collection} | {mode} | {which} | {ndcg:.2f} | {target} |")
    report.save()


class Remembered:
    """A reranker (searchbert.rerank.Reranker) whose scores are kept by (query, passage): the same cross-encoder
    scores, but each deeper pool reranks only the passages the shallower ones did not (the cross-encoder reads about
    15 pairs a second here)."""

    def __init__(self, reranker: Any) -> None:
        self.reranker = reranker
        self.model_id = reranker.model_id
        self.retrieval_weight = reranker.retrieval_weight
        self.scores: dict[tuple[str, str], float] = {}

    def score(self, query: str, passages: Sequence[str]) -> Any:
        import numpy as np

        new = [p for p in dict.fromkeys(passages) if (query, p) not in self.scores]
        if new:
            self.scores.update(((query, p), float(s)) for p, s in zip(new, self.reranker.score(query, new)))
        return np.array([self.scores[query, p] for p in passages], dtype=np.float32)


if __name__ == "__main__":
    main()
