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

from common import DATASETS, Report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from searchbert.chunking import ChunkSettings, chunk_document
    from searchbert.models import make_encoder

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
    # the plain side at its default batch size (32) and at each other one: the comparison is with its best
    runners = {
        f"sentence-transformers fp32, batch {size}": (
            lambda size=size: plain.encode(texts, batch_size=size, normalize_embeddings=True)
        )
        for size in (8, 16, 32, 64)
    }
    runners |= {f"searchbert {name}": (lambda e=e: e.encode(texts)) for name, e in backends.items()}
    for run in runners.values():
        run()  # load and warm up (and export ONNX once)
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(args.rounds):
        for name, run in runners.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    plain_best = min((v, k) for k, v in best.items() if k.startswith("sentence-transformers"))
    default = best["sentence-transformers fp32, batch 32"]
    report = Report("backend_speed", "Embedding throughput by backend vs plain sentence-transformers fp32")
    report.line(
        f"{len(texts)} chunks from {args.docs} SciFact documents (searchbert's chunks, ~254 word pieces), "
        f"best of {args.rounds} alternating rounds."
    )
    report.line()
    report.line("| runner | chunks/s | x ST default (batch 32) | x ST best |")
    report.line("|---|---|---|---|")
    for name, seconds in best.items():
        report.line(
            f"| {name} | {len(texts) / seconds:.1f} | {default / seconds:.2f} | {plain_best[0] / seconds:.2f} |"
        )
    report.line()
    report.line(f"sentence-transformers at its best here: {plain_best[1]}.")
    report.save()


if __name__ == "__main__":
    main()
