"""Heading paths in front of each chunk: success@5 on a real documentation folder, with and without them.

The folder: Debian's Python 3.11 documentation (apt-get install python3.11-doc), indexed whole twice with the
default model and settings, once with section_prefix off. The questions (benchmarks/queries/python_docs.tsv) and the
pages that answer them were written before any search on this folder was seen. A hit counts when its document is
an answering page or that page's reST source (_sources/PAGE.rst.txt, which the folder holds too; searchbert has
passed these copies over since searchbert/builds.py, so only an index made with --include holds them).

SciFact and Cranfield have no headings: checked here, document by document, that the line put in front of their
chunks is the title alone either way (as Markdown files, "# title" then the text), so their numbers cannot move.

    .venv/bin/python benchmarks/sections.py [--folder /usr/share/doc/python3.11/html]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATASETS, REPO, Report

from searchbert.chunking import ChunkSettings, document_prefix
from searchbert.sections import context_line, outline, section_at

MODES = ("hybrid", "dense", "bm25")
K = 5


def questions() -> list[tuple[str, set[str]]]:
    out = []
    for line in (REPO / "benchmarks" / "queries" / "python_docs.tsv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            question, pages = line.split("\t")
            wanted = set(pages.split("|"))
            wanted |= {f"_sources/{p.removesuffix('.html')}.rst.txt" for p in wanted}
            out.append((question, wanted))
    return out


def headless_collections() -> list[str]:
    """For SciFact and Cranfield as Markdown files: how many documents get a line other than their title."""
    settings = ChunkSettings(max_tokens=254, overlap=38)
    words = str.split

    def spans(text: str) -> list[tuple[int, int]]:
        return [(0, 0)] * len(words(text))

    lines = []
    for name in ("scifact", "cranfield"):
        changed = total = 0
        with (DATASETS / name / "corpus.jsonl").open() as fh:
            for row in map(json.loads, fh):
                title = " ".join(row.get("title", "").split())
                text = f"# {title}\n\n{row['text']}\n"
                found = outline(text, "md")
                for offset in (0, len(text) // 2, len(text) - 1):
                    line = context_line(title, section_at(found, offset), spans, settings)
                    changed += line != document_prefix(title, spans, settings)
                total += 1
        lines.append(f"{name}: {total} documents, {changed} chunk positions whose line differs from the title alone")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path("/usr/share/doc/python3.11/html"))
    args = parser.parse_args()
    from searchbert.index import Index

    asked = questions()
    results: dict[bool, dict[str, list[int | None]]] = {}
    built: dict[bool, tuple[float, int, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for with_sections in (True, False):
            started = time.monotonic()
            with Index.create(Path(tmp) / f"ix-{with_sections}", section_prefix=with_sections) as index:
                index.add([args.folder], progress=True)
                counts = index.count()
                built[with_sections] = (time.monotonic() - started, counts["documents"], counts["chunks"])
                results[with_sections] = {}
                for mode in MODES:
                    found = index.search_many([q for q, _ in asked], K, mode=mode)
                    ranks = []
                    for (_, wanted), hits in zip(asked, found):
                        places = [h.rank for h in hits if str(Path(h.path).relative_to(args.folder)) in wanted]
                        ranks.append(min(places) if places else None)
                    results[with_sections][mode] = ranks
                    print(with_sections, mode, ranks, flush=True)

    report = Report("sections", "Heading paths in front of chunks")
    report.line(
        f"Folder: {args.folder} ({built[True][1]} documents; {built[True][2]} chunks with heading paths, "
        f"{built[False][2]} without), the default model and settings. {len(asked)} questions written before any "
        "result was seen (benchmarks/queries/python_docs.tsv); success@5: an answering page (or its reST source) "
        "among the first 5 documents; MRR@5: the mean of 1/rank of the first one (0 past 5)."
    )
    report.line()
    report.line("| mode | success@5 with paths | success@5 without | MRR@5 with | MRR@5 without |")
    report.line("|---|---|---|---|---|")
    for mode in MODES:
        cells = []
        for metric in ("success", "mrr"):
            for flag in (True, False):
                ranks = results[flag][mode]
                value = (
                    sum(r is not None for r in ranks) / len(ranks)
                    if metric == "success"
                    else sum(1 / r for r in ranks if r) / len(ranks)
                )
                cells.append(f"{value:.3f}" if metric == "mrr" else f"{round(value * len(ranks))}/{len(ranks)}")
        report.line(f"| {mode} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |")
    report.line()
    report.line(f"Indexing took {built[True][0]:.0f} s with paths and {built[False][0]:.0f} s without.")
    report.line()
    report.line("Per question, hybrid (rank of the first answering page, - past 5): with / without paths:")
    report.line()
    for n, (question, _) in enumerate(asked):
        a, b = results[True]["hybrid"][n], results[False]["hybrid"][n]
        report.line(f"- {question}: {a or '-'} / {b or '-'}")
    report.line()
    report.line("Collections without headings (no change possible):")
    report.line()
    for line in headless_collections():
        report.line(f"- {line}")
    report.save()


if __name__ == "__main__":
    main()
