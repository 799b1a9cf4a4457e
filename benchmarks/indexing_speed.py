"""Indexing throughput of `searchbert index` as a ratio to a plain sentence-transformers `encode` of the same chunks.

Both sides use the same bundled model, loaded before timing starts, in one process and one run. searchbert's time
covers everything `index` does (walk, read, chunk, embed, SQLite, FAISS); the plain side only embeds the very texts
searchbert embedded. Target: ratio >= 0.95 (searchbert adds no overhead to the embedding itself). By default
searchbert runs the model with torch too, so only the pipeline is compared; --backend auto measures what
`searchbert index` does by default (int8 ONNX documents) against the same plain encode.

    .venv/bin/python benchmarks/indexing_speed.py [--docs 500] [--dataset scifact] [--backend torch|auto|onnx]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS, write_corpus_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200, help="documents to index (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best time of each side counts")
    parser.add_argument("--dataset", default="scifact", help="collection under ../shared/datasets")
    parser.add_argument("--backend", default="torch", help="what runs the model in searchbert (default torch)")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from searchbert.index import Index
    from searchbert.onnx_encoder import make_encoder

    ours: list[float] = []
    theirs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp) / "docs"
        n = write_corpus_files(DATASETS / args.dataset, files, args.docs)
        encoder = make_encoder(None, args.backend)
        plain = SentenceTransformer(str(encoder.folder), device="cpu")
        encoder.encode(["warm up"] * 8)
        plain.encode(["warm up"] * 8)
        for r in range(args.rounds):
            # this machine's speed drifts by 10-15% between identical runs: alternate, and keep each side's best
            index = Index.create(Path(tmp) / f"ix{r}", encoder=encoder)
            started = time.perf_counter()
            report = index.add([files])
            ours.append(time.perf_counter() - started)
            texts = [row[0] for row in index.store.db.execute("SELECT text FROM chunks ORDER BY id")]
            index.close()

            started = time.perf_counter()
            plain.encode(texts, batch_size=32, normalize_embeddings=True)
            theirs.append(time.perf_counter() - started)
            print(f"round {r + 1}: searchbert {ours[-1]:.1f} s, plain encode {theirs[-1]:.1f} s", flush=True)

    chunks = report.chunks_embedded
    best_ours, best_theirs = min(ours), min(theirs)
    print(f"documents: {n}   chunks: {chunks}   rounds: {args.rounds}   searchbert backend: {encoder.backend}")
    print(f"searchbert index:              {best_ours:7.1f} s   {chunks / best_ours:7.1f} chunks/s")
    print(f"sentence-transformers encode:  {best_theirs:7.1f} s   {chunks / best_theirs:7.1f} chunks/s")
    print(f"throughput ratio (searchbert / plain encode): {best_theirs / best_ours:.3f}   target >= 0.95")


if __name__ == "__main__":
    main()
