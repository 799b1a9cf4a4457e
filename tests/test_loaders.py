"""Loaders: every format, non-ASCII text, encodings, and what discovery passes over."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from searchbert.errors import DocumentError
from searchbert.loaders import READERS, decode, discover, read_document

from .conftest import write_tree
from .pdf import make_pdf

SAMPLES: dict[str, bytes] = {
    ".txt": "Grüße aus Köln.\nSecond line.\n".encode(),
    ".md": "# Überschrift\n\nText mit Umlauten: ä ö ü.\n".encode(),
    ".rst": "Título\n======\n\nTexto en español: ñandú.\n".encode(),
    ".py": 'def greet():\n    return "héllo"\n'.encode(),
    ".html": "<html><head><title>Page ü</title><style>p{}</style></head><body><p>Visible ä</p>"
    "<script>var hidden = 1;</script></body></html>".encode(),
    ".pdf": make_pdf(["PDF line one with caf\u00e9", "Second PDF line"]),
}


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.format)
def test_reader_contract(reader) -> None:
    """Every reader turns its own format into non-empty text and a title, and rejects binary junk."""
    suffix = next(s for s in SAMPLES if s in reader.suffixes)
    text, title = reader.read(SAMPLES[suffix], f"sample{suffix}")
    assert isinstance(text, str) and text.strip()
    assert isinstance(title, str) and title.strip()
    with pytest.raises(DocumentError):
        reader.read(b"\x00\x01\x02garbage\x00" * 50, f"junk{suffix}")


def test_formats_read_visible_text_and_titles(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"doc{s}": b for s, b in SAMPLES.items()})
    md = read_document(tmp_path / "doc.md")
    assert md.title == "Überschrift" and "Umlauten: ä ö ü" in md.text
    assert read_document(tmp_path / "doc.rst").title == "Título"
    html = read_document(tmp_path / "doc.html")
    assert html.title == "Page ü" and "Visible ä" in html.text
    assert "hidden" not in html.text and "p{}" not in html.text
    pdf = read_document(tmp_path / "doc.pdf")
    assert "PDF line one with café" in pdf.text and "Second PDF line" in pdf.text
    assert read_document(tmp_path / "doc.py").title == "doc.py"


def test_decoding_utf8_and_legacy_encodings() -> None:
    assert decode("naïve café".encode()) == "naïve café"
    assert decode("\ufeffBOM text".encode()) == "BOM text"
    latin = "Le cœur a ses raisons que la raison ne connaît point. Ça, c'est très élégant, déjà vu.".encode("cp1252")
    assert decode(latin) == latin.decode("cp1252")


def test_unreadable_pdf_is_a_document_error(tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    with pytest.raises(DocumentError):
        read_document(tmp_path / "broken.pdf")


def test_a_broken_pdf_is_reported_once_not_by_pypdf_on_stderr(tmp_path: Path) -> None:
    """A process with no logging set up, as the CLI is: pypdf's warnings would reach stderr through Python's last
    resort handler, between the progress lines (pytest's own handlers hide that in-process)."""
    import subprocess
    import sys

    (tmp_path / "broken.pdf").write_bytes(b"hello")
    code = ("import sys; from pathlib import Path\nfrom searchbert.loaders import read_document\n"
            "from searchbert.errors import DocumentError\n"
            "try: read_document(Path(sys.argv[1]))\nexcept DocumentError as e: print(e)")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "broken.pdf")], capture_output=True, text=True)
    assert run.stdout.startswith("unreadable PDF") and run.stderr == "", run.stderr


def test_size_limits_read_as_people_write_them() -> None:
    from searchbert.loaders import MAX_FILE_BYTES, size_text

    assert (size_text(MAX_FILE_BYTES), size_text(2_000_000), size_text(500_000)) == ("20 MiB", "2 MB", "0.5 MB")


def test_discover_skips_hidden_vendored_and_unsupported(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "a.md": "a",
            "sub/b.txt": "b",
            "image.png": b"\x89PNG",
            ".hidden.md": "h",
            ".git/config.md": "g",
            "node_modules/pkg/readme.md": "n",
            "__pycache__/x.py": "p",
            "myenv/pyvenv.cfg": "home = /usr",
            "myenv/lib/site.py": "v",
        },
    )
    found = discover([tmp_path])
    assert sorted(p.relative_to(tmp_path).as_posix() for p, _ in found.files) == ["a.md", "sub/b.txt"]
    assert found.skipped["unsupported type"] == 1
    assert found.skipped["hidden"] == 1


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    write_tree(tmp_path, {"guides/install.md": "i", "guides/usage.md": "u", "api/ref.py": "r"})
    names = lambda found: sorted(p.name for p, _ in found.files)  # noqa: E731
    assert names(discover([tmp_path], include=["*.md"])) == ["install.md", "usage.md"]
    assert names(discover([tmp_path], include=["guides/*"], exclude=["*usage*"])) == ["install.md"]
    assert discover([tmp_path], exclude=["*.md"]).skipped["excluded"] == 2


def test_symlink_loops_are_not_followed_forever(tmp_path: Path) -> None:
    write_tree(tmp_path, {"real/doc.md": "x"})
    os.symlink(tmp_path / "real", tmp_path / "real" / "loop")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    found = discover([tmp_path])
    assert len(found.files) == 1  # real/doc.md once: not again through the alias, never endlessly
    assert found.files[0][0].resolve() == (tmp_path / "real" / "doc.md").resolve()
    both = discover([tmp_path / "real", tmp_path / "alias"])  # the same file reached from two roots
    assert len(both.files) == 1


def test_single_file_root(tmp_path: Path) -> None:
    write_tree(tmp_path, {"one.md": "# One\n\ntext"})
    found = discover([tmp_path / "one.md"])
    assert [p.name for p, _ in found.files] == ["one.md"]


SPHINX_PAGE = """<!DOCTYPE html><html><head><title>Dealing with Bugs &#8212; Python 3.11 documentation</title></head>
<body>
<div class="related" role="navigation"><ul><li><a href="index.html">index</a></li><li>modules |</li>
<li><a href="next.html">next</a> |</li><li>Python &#187; 3.11 Documentation &#187;</li></ul></div>
<div class="document"><div class="documentwrapper"><div class="bodywrapper"><div class="body" role="main">
<section id="bugs"><h1>Dealing with Bugs<a class="headerlink" href="#bugs">¶</a></h1>
<p>Python is a <em>mature</em> language; please <a href="https://bugs.python.org">report a bug</a> when you find
one.</p><pre>def f():
    return 1</pre></section></div></div></div>
<div class="sphinxsidebar" role="navigation"><h3>Table of Contents</h3><ul><li>Previous topic</li>
<li>Next topic</li><li>This Page</li><li>Report a Bug</li><li>Show Source</li></ul></div></div>
<div class="footer">&#169; Copyright 2001-2023, Python Software Foundation.</div></body></html>"""

MKDOCS_PAGE = """<html><head><title>Install - MyTool</title></head><body>
<header class="md-header"><nav>MyTool <a href="/">Home</a> <a href="/guide">Guide</a></nav></header>
<div class="md-container"><nav class="md-nav" aria-label="Navigation"><ul><li>Home</li><li>Install</li></ul></nav>
<div class="md-content"><article class="md-content__inner md-typeset"><h1>Install</h1>
<p>Run <code>pip install mytool</code> and then <strong>restart</strong> the shell.</p>
<ul><li>Linux</li><li>macOS</li></ul></article></div></div>
<footer class="md-footer"><a href="/prev">Previous</a> Made with Material for MkDocs</footer></body></html>"""

PLAIN_PAGE = """<html><head><title>My recipes</title></head><body>
<header><h2>Kitchen notes</h2><a href="/">home</a> | <a href="/about">about</a></header>
<h1>Bread</h1><p>Mix <b>flour</b>, water and <a href="yeast.html">yeast</a>. Knead.</p>
<footer>Copyright me, 2024</footer></body></html>"""


BLOG_PAGE = """<html><head><title>Rotating keys</title></head><body>
<div class="content">Share this</div>
<article><h1>Rotating keys</h1><p>Rotate the signing keys every ninety days: create the new key, publish it beside
the old one, switch the signer, then retire the old key once every token it signed has expired.</p></article>
</body></html>"""

EMPTY_MAIN_PAGE = """<html><head><title>Changelog</title></head><body><main></main>
<div class="wrapper"><h1>Changelog</h1><p>Version 2.1 fixes the importer for large archives and speeds up the
reindexing of unchanged folders by a factor of three on slow disks.</p></div><div id="content">ok</div></body></html>"""

SHORT_PAGE = """<html><head><title>The concurrent package</title></head><body>
<div class="body" role="main"><h1>The concurrent package</h1><p>One module so far: futures.</p></div>
<div class="footer">Copyright 2001-2026, the Python Software Foundation. This page is licensed under the Python
Software Foundation License Version 2. Examples are additionally licensed under the Zero Clause BSD License. Please
donate. Last updated on October 07, 2026. Found a bug? Created using Sphinx 5.3.0.</div></body></html>"""

HEADER_ONLY_PAGE = """<html><head><title>Hours</title></head><body>
<header><h1>Opening hours</h1><p>Monday to Friday, nine to five; closed on public holidays.</p></header>
<nav><a href="/">Home</a></nav></body></html>"""


@pytest.mark.parametrize(
    "page, title, wanted, unwanted",
    [
        (
            BLOG_PAGE,
            "Rotating keys",
            ["Rotate the signing keys every ninety days"],
            ["Share this"],
        ),
        (
            EMPTY_MAIN_PAGE,
            "Changelog",
            ["Version 2.1 fixes the importer"],
            [],
        ),
        (
            SHORT_PAGE,
            "The concurrent package",
            ["One module so far: futures."],
            ["Copyright", "Sphinx"],
        ),
        (
            HEADER_ONLY_PAGE,
            "Opening hours",
            ["Monday to Friday, nine to five"],
            [],
        ),
        (
            SPHINX_PAGE,
            "Dealing with Bugs",
            ["Python is a mature language; please report a bug when you find one.", "def f():\n    return 1"],
            ["Table of Contents", "Previous topic", "modules", "Copyright", "¶", "Python » 3.11"],
        ),
        (
            MKDOCS_PAGE,
            "Install",
            ["Run pip install mytool and then restart the shell.", "Linux\nmacOS"],
            ["Home", "Guide", "Previous", "Material for MkDocs"],
        ),
        (
            PLAIN_PAGE,
            "Bread",
            ["Bread\n\nMix flour, water and yeast. Knead."],
            ["Kitchen notes", "home", "about", "Copyright"],
        ),
    ],
    ids=[
        "article-over-a-small-content-box",
        "empty-main-then-the-page",
        "short-page-long-footer",
        "header-only",
        "sphinx",
        "mkdocs",
        "plain",
    ],
)
def test_html_keeps_the_page_and_drops_its_chrome(
    tmp_path: Path, page: str, title: str, wanted: list[str], unwanted: list[str]
) -> None:
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    doc = read_document(tmp_path / "page.html")
    assert doc.title == title
    for text in wanted:
        assert text in doc.text, (text, doc.text)
    for text in unwanted:
        assert text not in doc.text, (text, doc.text)
    assert doc.text.startswith(f"# {title}")  # the page's own first words come first, its headings marked


def test_sphinx_page_sources_are_read_as_rest_with_their_section_title(tmp_path: Path) -> None:
    sources = write_tree(
        tmp_path / "_sources",
        {
            "c-api/abstract.rst.txt": ".. highlight:: c\n\n.. _abstract:\n\n**********************\n"
            "Abstract Objects Layer\n**********************\n\nThe functions in this chapter...\n",
            "contents.rst.txt": "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\n Python Documentation contents\n"
            "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\n\n.. toctree::\n",
            "guide.md.txt": "Some words first.\n\n# The MyST guide\n\nText.\n",
            "table.rst": "Name\n===\n\n=====  =====\nA      B\n=====  =====\n\nReal Title\n==========\n",
        },
    )
    assert read_document(sources / "c-api" / "abstract.rst.txt").title == "Abstract Objects Layer"
    assert read_document(sources / "contents.rst.txt").title == "Python Documentation contents"
    assert read_document(sources / "guide.md.txt").title == "The MyST guide"
    assert read_document(sources / "table.rst").title == "Real Title"  # an adornment shorter than its line is none
