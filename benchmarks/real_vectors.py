"""Real embedding vectors for the scale benchmark: every sentence of SciFact and Cranfield, embedded by searchbert.

Synthetic clusters are easy for IVF (recall stays at 1.0 down to nprobe 2); real embeddings are not uniform, so the
recall/speed trade-off is measured on them too. Sentences (>= 4 words) give ~62k vectors from the two collections
(their chunks would give ~7k); the queries are the collections' own queries. Vectors are cached in
benchmarks/.cache/ because embedding them takes minutes on 2 cores.

    .venv/bin/python benchmarks/real_vectors.py     # embeds (once) and prints the counts
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS, REPO

CACHE = REPO / "benchmarks" / ".cache" / "real_vectors.npz"
COLLECTIONS = ("scifact", "cranfield")


def sentences() -> list[str]:
    out = []
    for name in COLLECTIONS:
        with (DATASETS / name / "corpus.jsonl").open() as fh:
            for line in fh:
                doc = json.loads(line)
                text = f"{doc.get('title', '').strip()}. {doc['text']}"
                out += [s for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 4]
    return out


def queries() -> list[str]:
    out = []
    for name in COLLECTIONS:
        with (DATASETS / name / "queries.jsonl").open() as fh:
            out += [json.loads(line)["text"] for line in fh]
    return out


def load() -> tuple[np.ndarray, np.ndarray]:
    """(corpus vectors, query vectors), embedding them on the first call."""
    if not CACHE.exists():
        from searchbert.models import make_encoder

        encoder = make_encoder(None, "onnx")
        texts = sentences()
        print(f"embedding {len(texts):,} sentences (once; cached in {CACHE})", flush=True)
        data = np.concatenate([encoder.encode(texts[i : i + 4096], batch_size=32) for i in range(0, len(texts), 4096)])
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.savez(CACHE, data=data, queries=encoder.encode(queries(), batch_size=32))
    with np.load(CACHE) as cached:
        return cached["data"], cached["queries"]


if __name__ == "__main__":
    data, qs = load()
    print(f"{len(data):,} corpus vectors, {len(qs):,} query vectors, dimension {data.shape[1]}")
