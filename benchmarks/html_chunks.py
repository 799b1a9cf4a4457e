"""HTML pages: chunks and word pieces embedded per page, with the site's chrome (before) and without it (now).

"before" is the reader searchbert had until the main-content extraction: every visible text node of <body>, one per
line. "now" is searchbert.html.read_html. Both are chunked with the bundled model's tokenizer and the default chunk
settings (title prefix included), so the difference is what the reader keeps.

Writes benchmarks/results/html_chunks.md and prints it. The default folder is Debian's Python 3.11 HTML documentation
(`apt-get install python3.11-doc`).

    .venv/bin/python benchmarks/html_chunks.py [FOLDER]
"""

from __future__ import annotations

import re
import sys
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
    totals = {"before": [0, 0], "now": [0, 0]}
    example = {}
    for page in pages:
        markup = decode(page.read_bytes())
        for label, (text, title) in (("before", before(markup)), ("now", read_html(markup, page.name))):
            prefix = document_prefix(title, spans, settings)
            chunks = chunk_document(text, spans, settings, prefix)
            totals[label][0] += len(chunks)
            totals[label][1] += sum(len(spans(prefix + c.text)) for c in chunks)
            if page.name == "bugs.html" and chunks:
                example[label] = " ".join(chunks[0].text.split())[:300]
    (cb, tb), (cn, tn) = totals["before"], totals["now"]
    report = Report("html_chunks", "HTML: the page without its chrome")
    report.line(
        f"{len(pages)} pages under {folder}, chunked for all-MiniLM-L6-v2 (254 word pieces, title prefix).\n\n"
        "| reader | chunks | word pieces embedded |\n|---|---|---|\n"
        f"| before (all of <body>) | {cb} | {tb} |\n| now (main content) | {cn} | {tn} |\n"
        f"| now / before | {cn / cb:.3f} | {tn / tb:.3f} |\n\n"
        "First chunk of bugs.html:\n\n"
        + "".join(f"- {label}: {example.get(label, '')!r}\n" for label in ("before", "now"))
    )
    report.save()


if __name__ == "__main__":
    main()
