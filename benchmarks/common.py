"""Helpers shared by the benchmark scripts: where the collections are, and writing one out as files."""

from __future__ import annotations

import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("SEARCHBERT_DATASETS", REPO.parent / "shared" / "datasets"))


def write_corpus_files(dataset: Path, out: Path, limit: int | None = None) -> int:
    """Write a BEIR corpus as one Markdown file per document (title heading + text); returns the count."""
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with (dataset / "corpus.jsonl").open() as fh:
        for line in fh:
            if limit is not None and n >= limit:
                break
            doc = json.loads(line)
            (out / f"{doc['_id']}.md").write_text(f"# {doc.get('title', '').strip()}\n\n{doc['text']}\n")
            n += 1
    return n
