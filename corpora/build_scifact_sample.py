"""Write the sample corpus: 300 SciFact abstracts as Markdown files (run once; the output is committed).

The sample holds every abstract judged relevant to the first 100 SciFact test claims, filled up to 300 with other
abstracts drawn at random (seed 13), so demo queries have real answers among real distractors.
"""

from __future__ import annotations

import json
import random
import re
import sys
import textwrap
from pathlib import Path

SIZE = 300


def slug(title: str) -> str:
    words = re.sub(r"[^a-z0-9]+", " ", title.lower()).split()
    return "-".join(words[:8]) or "untitled"


def main(dataset: Path, out: Path) -> None:
    corpus = {d["_id"]: d for d in map(json.loads, (dataset / "corpus.jsonl").open())}
    rows = [line.split("\t") for line in (dataset / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    queries = sorted({q for q, _, _ in rows}, key=int)[:100]
    wanted = sorted({d for q, d, _ in rows if q in queries})
    rest = sorted(set(corpus) - set(wanted))
    random.Random(13).shuffle(rest)
    chosen = wanted + rest[: SIZE - len(wanted)]
    out.mkdir(parents=True, exist_ok=True)
    for doc_id in chosen:
        doc = corpus[doc_id]
        body = "\n\n".join(textwrap.fill(p, 100) for p in doc["text"].split("\n") if p.strip())
        (out / f"{doc_id}-{slug(doc['title'])}.md").write_text(f"# {doc['title'].strip()}\n\n{body}\n")
    print(f"wrote {len(chosen)} documents to {out}")


if __name__ == "__main__":
    main(
        Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/scifact"),
        Path(__file__).parent / "scifact-sample",
    )
