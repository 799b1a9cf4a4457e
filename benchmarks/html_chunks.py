"""HTML pages: chunks and word pieces embedded per page, and the words of the page's own text each reader loses.

"before" is the reader searchbert had until the main-content extraction: every visible text node of <body>, one per
line. "now" is searchbert.html.read_html. trafilatura and readability-lxml, two well-kept main-content extractors,
are measured beside them when installed (`pip install trafilatura readability-lxml`; not searchbert dependencies).
All are chunked with the bundled model's tokenizer and the default chunk settings (title prefix included), so the
difference is what the reader keeps. "Words lost": Sphinx keeps each page's source as _sources/PAGE.rst.txt; of the
source's words (letters, 3 or more, counted with repeats), the share the reader's text lacks. Markup words (directive
and role names) count against every reader alike.

Writes benchmarks/results/html_chunks.md and prints it. The default folder is Debian's Python 3.11 HTML documentation
(`apt-get install python3.11-doc`).

    .venv/bin/python benchmarks/html_chunks.py [FOLDER]
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Report

DEFAULT = Path("/usr/share/doc/python3.11/html")


def before(markup: str) -> tuple[str, str]:
    """The previous reader: all of <body>'s visible text nodes, each on a line."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(markup)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node else ""
    tree.strip_tags(["script", "style", "noscript", "template", "svg", "head"])
    body = tree.body or tree.root
    raw = body.text(separator="\n", strip=False) if body else ""
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in raw.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip(), title


def _trafilatura(markup: str) -> tuple[str, str] | None:
    try:
        import trafilatura
    except ImportError:
        return None
    text = trafilatura.extract(markup, include_comments=False, include_tables=True, favor_recall=True) or ""
    meta = trafilatura.extract_metadata(markup)
    return text, (meta.title if meta and meta.title else "")


def _readability(markup: str) -> tuple[str, str] | None:
    try:
        from readability import Document as Readable
    except ImportError:
        return None
    from searchbert.html import read_html

    readable = Readable(markup)
    return read_html(readable.summary(), "")[0], readable.short_title()


_WORD = re.compile(r"[a-z]{3,}")


def _source(folder: Path, page: Path) -> Path:
    """Where Sphinx keeps a page's reST source."""
    return folder / "_sources" / (str(page.relative_to(folder).with_suffix("")) + ".rst.txt")


def _words(text: str) -> Counter[str]:
    return Counter(_WORD.findall(text.lower()))


def main() -> None:
    from searchbert.chunking import ChunkSettings, chunk_document, document_prefix
    from searchbert.encoders import load_tokenizer, resolve_model
    from searchbert.html import read_html
    from searchbert.loaders import decode

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    pages = sorted(folder.rglob("*.html"))
    if not pages:
        sys.exit(f"no HTML files under {folder}")
    tokenizer = load_tokenizer(resolve_model(None)[1])

    def spans(text: str) -> list[tuple[int, int]]:
        return tokenizer.encode(text, add_special_tokens=False).offsets

    settings = ChunkSettings.for_model(254, None, None)
    readers = {"before (all of <body>)": before, "now (searchbert.html)": lambda m: read_html(m, "")}
    readers |= {"trafilatura": _trafilatura, "readability-lxml": _readability}
    totals = {label: [0, 0, 0, 0, 0] for label in readers}  # chunks, word pieces, source words, lost, empty pages
    example: dict[str, str] = {}
    measured = set()
    for page in pages:
        markup = decode(page.read_bytes())
        source = _source(folder, page)
        wanted = _words(source.read_text(errors="replace")) if source.exists() else Counter()
        for label, read in readers.items():
            got = read(markup)
            if got is None:
                continue
            measured.add(label)
            text, title = got
            prefix = document_prefix(title, spans, settings)
            chunks = chunk_document(text, spans, settings, prefix)
            row = totals[label]
            row[0] += len(chunks)
            row[1] += sum(len(spans(prefix + c.text)) for c in chunks)
            have = _words(text)
            row[2] += sum(wanted.values())
            row[3] += sum(max(0, n - have[w]) for w, n in wanted.items())
            row[4] += not text.strip()
            if page.name == "bugs.html" and chunks:
                example[label] = " ".join(chunks[0].text.split())[:300]
    sources = sum(1 for page in pages if _source(folder, page).exists())
    base = totals["before (all of <body>)"]
    report = Report("html_chunks", "HTML: the page without its chrome")
    lines = [
        f"{len(pages)} pages under {folder} ({sources} with their reST source), chunked for all-MiniLM-L6-v2 "
        "(254 word pieces, title prefix).",
        "",
        "| reader | chunks | word pieces embedded | x before | source words lost | empty pages |",
        "|---|---|---|---|---|---|",
    ]
    for label in readers:
        if label not in measured:
            lines.append(f"| {label} | not installed | | | | |")
            continue
        chunks, pieces, words, lost, empty = totals[label]
        lines.append(
            f"| {label} | {chunks} | {pieces} | {pieces / base[1]:.3f} | {lost / max(1, words):.1%} | {empty} |"
        )
    lines += ["", "First chunk of bugs.html:", ""]
    lines += [f"- {label}: {example.get(label, '')!r}" for label in readers if label in measured]
    report.line("\n".join(lines))
    report.save()


if __name__ == "__main__":
    main()
