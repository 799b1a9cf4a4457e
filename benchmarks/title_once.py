"""A file's title embedded twice in its first chunk: does it help or hurt dense search?

A `.txt` file's title is its first line (a Markdown file's, its first heading), and the title line is also put in
front of every chunk, so the first chunk embeds the title twice. Measured on SciFact written out as files, one per
abstract (title on the first line, then the abstract), indexed by the folder path with the default model and
settings; dense nDCG@10 on the 300 test queries (R@100 beside it):

- files, as indexed: the first chunk is "title / title / abstract";
- files with --no-title-prefix: the first chunk is "title / abstract", later chunks of a long abstract lose the title;
- the title once: the same abstracts as records (title and text apart), so every chunk is "title / text".

    .venv/bin/python benchmarks/title_once.py [--format txt|md]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATASETS, Report

from searchbert import Document, Index
from searchbert.evaluation import DEPTH, load_collection, measure


def write_files(out: Path, fmt: str) -> int:
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with (DATASETS / "scifact" / "corpus.jsonl").open() as fh:
        for row in map(json.loads, fh):
            title = " ".join(row.get("title", "").split())
            head = f"# {title}\n\n" if fmt == "md" else f"{title}\n"
            (out / f"{row['_id']}.{fmt}").write_text((head if title else "") + row["text"] + "\n")
            n += 1
    return n


def run(index: Index, queries: dict[str, str], by_path: bool) -> dict[str, dict[str, float]]:
    qids = list(queries)
    hits = index.search_many([queries[q] for q in qids], k=DEPTH, mode="dense")
    name = (lambda p: Path(p).stem) if by_path else (lambda p: p)
    return {q: {name(h.path): h.score for h in hs} for q, hs in zip(qids, hits)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=("txt", "md"), default="txt")
    args = parser.parse_args()
    collection = load_collection(DATASETS / "scifact", "test")
    from searchbert.models import make_encoder

    encoder = make_encoder(None, "auto", None)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        count = write_files(docs, args.format)
        variants = [("files, as indexed (title twice in the first chunk)", {"title_prefix": True}, True),
                    ("files, --no-title-prefix", {"title_prefix": False}, True),
                    ("records (the title once, in every chunk)", {"title_prefix": True}, False)]  # fmt: skip
        for name, options, files in variants:
            started = time.monotonic()
            with Index.create(Path(tmp) / f"ix{len(rows)}", encoder=encoder, **options) as index:
                if files:
                    report = index.add([docs])
                else:
                    report = index.add_documents(
                        Document(path=d, text=text, title=title) for d, (title, text) in collection.corpus.items()
                    )
                metrics = measure(collection.qrels, run(index, collection.queries, files))
                chunks = index.count()["chunks"]
            rows.append((name, metrics, chunks, time.monotonic() - started))
            print(name, metrics, report.chunks_embedded, flush=True)
    out = Report(f"title_once_{args.format}", "The title twice in a file's first chunk")
    out.line(f"SciFact, {count} abstracts written out as .{args.format} files; {len(collection.qrels)} test queries;")
    out.line(f"model {encoder.model_id} ({getattr(encoder, 'backend', '?')}); dense search, documents mode.")
    out.line()
    out.line("| variant | dense nDCG@10 | R@100 | chunks | seconds |")
    out.line("|---|---|---|---|---|")
    for name, metrics, chunks, seconds in rows:
        ndcg, recall = 100 * metrics["nDCG@10"], 100 * metrics["R@100"]
        out.line(f"| {name} | {ndcg:.2f} | {recall:.2f} | {chunks} | {seconds:.0f} |")
    base = rows[0][1]["nDCG@10"]
    out.line()
    out.line("Against the files as indexed: " + ", ".join(
        f"{name.split(' (')[0]} {100 * (m['nDCG@10'] - base):+.2f}" for name, m, _, _ in rows[1:]))  # fmt: skip
    out.save()


if __name__ == "__main__":
    main()
