"""Each chunk knows the section it sits in: the heading path of Markdown, reST and HTML documents, returned with hits
and put (with the title) in front of the text that is embedded and BM25-indexed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from searchbert.chunking import ChunkSettings
from searchbert.index import Index
from searchbert.loaders import read_document
from searchbert.manifest import Manifest
from searchbert.sections import context_line, lexical_line, outline, section_at

from .conftest import FakeEncoder, write_tree

MARKDOWN = """# Guide

Intro words.

## Install

```sh
# not a heading: a shell comment in a fence
pip install tool
```

### On Linux

Use the package.

Setup
-----

Underlined heading, level 2.
"""

REST = """=======
 Guide
=======

Intro.

Install
=======

Words.

On Linux
--------

More words.

Usage
=====

:mod:`json` basics
------------------

The end.
"""

HTML = """<html><head><title>json - docs</title></head><body><div class="body">
<h1>json — JSON encoder and decoder<a class="headerlink" href="#">¶</a></h1><p>Intro.</p>
<section><h2>Basic Usage</h2><p>Use dumps to encode a Python object.</p>
<h3>Options</h3><p>indent sets the indentation.</p></section>
<h2>Decoders</h2><p>Use loads.</p></div></body></html>"""


def _paths(text: str, markup: str) -> list[str]:
    return [path for _, path in outline(text, markup)]


def test_markdown_outline_passes_over_fenced_code_and_reads_underlined_headings() -> None:
    assert _paths(MARKDOWN, "md") == ["Guide", "Guide > Install", "Guide > Install > On Linux", "Guide > Setup"]
    found = outline(MARKDOWN, "md")
    assert section_at(found, MARKDOWN.index("pip install")) == "Guide > Install"
    assert section_at(found, MARKDOWN.index("Use the package")) == "Guide > Install > On Linux"
    assert section_at(found, 0) == "Guide" and section_at([], 10) == ""


def test_rest_levels_follow_the_order_adornments_first_appear() -> None:
    assert _paths(REST, "rst") == [
        "Guide",
        "Guide > Install",
        "Guide > Install > On Linux",
        "Guide > Usage",
        "Guide > Usage > json basics",  # the role is dropped, its text kept
    ]
    assert _paths("plain words\n\n----\n\nmore", "rst") == []  # a transition is no heading
    assert _paths("# Title\n\ntext", "") == []  # plain text has no outline


def test_html_headings_are_marked_and_outlined(tmp_path: Path) -> None:
    (tmp_path / "json.html").write_text(HTML, encoding="utf-8")
    doc = read_document(tmp_path / "json.html")
    assert doc.text.startswith("# json — JSON encoder and decoder\n") and "## Basic Usage" in doc.text
    assert _paths(doc.text, "html") == [
        "json — JSON encoder and decoder",
        "json — JSON encoder and decoder > Basic Usage",
        "json — JSON encoder and decoder > Basic Usage > Options",
        "json — JSON encoder and decoder > Decoders",
    ]


def test_the_context_line_leaves_out_a_path_that_repeats_the_title() -> None:
    settings = ChunkSettings(max_tokens=100, overlap=10, section_prefix=True)
    spans = FakeEncoder().token_spans
    assert context_line("json", "json > Basic Usage", spans, settings) == "json > Basic Usage\n"
    assert context_line("Guide", "Other > Part", spans, settings) == "Guide > Other > Part\n"
    assert context_line("json", "", spans, settings) == "json\n"
    title = " ".join(f"word{n}" for n in range(40))  # cut to 32 word pieces in the line: still the same title
    assert context_line(title, title, spans, settings) == context_line(title, "", spans, settings)
    marked = "`Gain of function' phenotype"  # the heading path keeps headings without their markup
    assert context_line(marked, outline(f"# {marked}\n\ntext", "md")[0][1], spans, settings) == f"{marked}\n"
    long = " > ".join(f"heading{n} words here" for n in range(30))
    assert len(spans(context_line("t", long, spans, settings))) <= 2 + 32  # the title, ">", the path cut
    old = ChunkSettings(max_tokens=100, overlap=10, section_prefix=False)
    assert context_line("json", "json > Basic Usage", spans, old) == "json\n"
    assert lexical_line("json", "json > Basic Usage", settings) == "json > Basic Usage\n"
    assert lexical_line("json", "json > Basic Usage", old) == "json\n"


def test_hits_carry_their_section_and_the_model_and_bm25_saw_it(tmp_path: Path) -> None:
    docs = write_tree(tmp_path / "docs", {"guide.md": MARKDOWN, "guide.rst": REST, "notes.txt": "# Not\n\nplain"})
    encoder = FakeEncoder(max_tokens=24)
    with Index.create(tmp_path / "ix", encoder=encoder, section_prefix=True) as index:
        index.add([docs])
        embedded = encoder.embedded
        assert any(t.startswith("Guide > Install > On Linux\n") and "Use the package" in t for t in embedded)
        assert not any(t.startswith("Not >") for t in embedded)  # plain text has no sections
        # "Linux" is only in the heading: BM25 finds the chunk under it by the path in front of its text
        hits = index.search("package linux", mode="bm25", chunks=True, k=3)
        top = hits[0]
        assert top.section == "Guide > Install > On Linux" and "Use the package" in top.text
        by_section = {h.section for h in index.search("underlined heading", chunks=True, k=20, mode="bm25")}
        assert "Guide > Setup" in by_section


def test_an_index_made_before_sections_keeps_embedding_titles_only(tmp_path: Path) -> None:
    """Indexes made before sections never had them in front of their chunks: they keep it so (it is also the
    default now)."""
    docs = write_tree(tmp_path / "docs", {"guide.md": MARKDOWN})
    with Index.create(tmp_path / "ix", encoder=FakeEncoder(max_tokens=24), section_prefix=True):
        pass
    manifest = tmp_path / "ix" / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["chunking"]["section_prefix"]  # as searchbert wrote it before, in the file and in SQLite
    manifest.write_text(json.dumps(data))
    with sqlite3.connect(tmp_path / "ix" / "index.db") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'manifest'", [json.dumps(data)])
    assert Manifest.load(manifest).chunking.section_prefix is False
    encoder = FakeEncoder(max_tokens=24)
    with Index.open(tmp_path / "ix", encoder=encoder) as index:
        index.add([docs])
        assert not any(" > " in t.split("\n")[0] for t in encoder.embedded)
        # its hits still say where they are
        assert {h.section for h in index.search("package", chunks=True, k=10, mode="bm25")} <= set(
            _paths(MARKDOWN, "md")
        )


def test_adapters_hand_on_the_section(tmp_path: Path) -> None:
    from searchbert.integrations.common import passage

    docs = write_tree(tmp_path / "docs", {"guide.md": MARKDOWN})
    with Index.create(tmp_path / "ix", encoder=FakeEncoder(max_tokens=24)) as index:
        index.add([docs])
        hit = index.search("package linux", mode="bm25", chunks=True, k=1)[0]
    _, meta = passage(hit)
    assert meta["section"] == hit.section and hit.section in _paths(MARKDOWN, "md")  # without the prefix too


def test_an_index_made_before_sections_is_indexed_again_and_can_turn_them_on(tmp_path: Path) -> None:
    from searchbert.errors import IncompatibleIndex
    from searchbert.folders import index_paths

    docs = write_tree(tmp_path / "docs", {"guide.md": MARKDOWN})
    encoder = FakeEncoder(max_tokens=24)
    index_paths(tmp_path / "ix", [docs], encoder=encoder)
    data = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    del data["chunking"]["section_prefix"]  # as searchbert wrote it before sections
    (tmp_path / "ix" / "manifest.json").write_text(json.dumps(data))
    with sqlite3.connect(tmp_path / "ix" / "index.db") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'manifest'", [json.dumps(data)])
    (docs / "more.md").write_text("# More\n\n## Part\n\nwords")
    assert index_paths(tmp_path / "ix", [docs], encoder=encoder).added == 1  # its settings, as they were
    with pytest.raises(IncompatibleIndex):  # another setting means another index: refused, as for titles
        index_paths(tmp_path / "ix", [docs], encoder=encoder, section_prefix=True)
    report = index_paths(tmp_path / "ix", [docs], encoder=encoder, section_prefix=True, rebuild=True)
    assert report.added == 2 and Manifest.load(tmp_path / "ix" / "manifest.json").chunking.section_prefix
