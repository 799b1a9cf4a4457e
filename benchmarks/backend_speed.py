"""Embedding throughput of each backend as a ratio to plain sentence-transformers fp32 on the same chunks.

Chunks are real SciFact chunks cut by searchbert (~254 word pieces). Rounds alternate between backends and each
backend's best round counts (this machine's speed drifts between identical runs). Quality per backend comes from
`searchbert eval ../shared/datasets/scifact --backend B` (see README).

    .venv/bin/python benchmarks/backend_speed.py [--docs 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from searchbert.chunking import ChunkSettings, chunk_document
    from searchbert.onnx_encoder import make_encoder

    names = ["torch", "onnx", "onnx-int8"]
    try:
        import openvino  # noqa: F401

        names.append("openvino")
    except ImportError:
        print("openvino is not installed (pip install 'searchbert[openvino]'): left out")
    backends = {name: make_encoder(None, name) for name in names}
    torch_encoder = backends["torch"]
    settings = ChunkSettings.for_model(torch_encoder.max_tokens)
    texts = []
    with (DATASETS / "scifact" / "corpus.jsonl").open() as fh:
        for _, line in zip(range(args.docs), fh):
            doc = json.loads(line)
            text = f"{doc['title']}\n\n{doc['text']}"
            texts += [c.text for c in chunk_document(text, torch_encoder.token_spans, settings)]
    plain = SentenceTransformer(str(torch_encoder.folder), device="cpu")
    runners = {"sentence-transformers fp32": lambda: plain.encode(texts, normalize_embeddings=True)}
    runners |= {f"searchbert {name}": (lambda e=e: e.encode(texts)) for name, e in backends.items()}
    for run in runners.values():
        run()  # load and warm up (and export ONNX once)
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(args.rounds):
        for name, run in runners.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    base = best["sentence-transformers fp32"]
    print(f"{len(texts)} chunks from {args.docs} SciFact documents, best of {args.rounds} rounds")
    for name, seconds in best.items():
        print(f"{name:30s} {len(texts) / seconds:7.1f} chunks/s   ratio {base / seconds:.2f}")


if __name__ == "__main__":
    main()
