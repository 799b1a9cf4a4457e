"""Files a documentation build writes beside its pages that are not documents of their own.

A built documentation folder is what people most often point searchbert at, and the generators leave more than
pages in it. Sphinx copies every page's source next to the page (`_sources/library/os.rst.txt` for
`library/os.html`): indexed too, every page comes up twice in the results (its HTML and its reST, chunked apart so
no text hash merges them), and embedding takes twice as long; Debian's Python documentation is 530 pages and 497
such copies. Sphinx and MkDocs also write their own search index (`searchindex.js`, one line of several MB;
`search/search_index.json`, with a sitemap.xml of every page's address), which holds the words of every page and
so matches every query, and Sphinx themes ship their scripts in `_static/`. Minified scripts (`*.min.js`) are
machine text wherever they are.

Each is recognized by the build's own layout, never by name alone: a `_sources` copy only where its built page is
there, a search index or `_static` only beside the marks of a Sphinx build. Naming such files with `--include` indexes
them all the same.
"""

from __future__ import annotations

from pathlib import Path

#: what a Sphinx HTML build writes at its root besides pages: any one of them marks a folder as such a build
SPHINX_MARKS = ("objects.inv", "searchindex.js", "_static/documentation_options.js")


class BuildFiles:
    """Tells a documentation build's own files from documents, over one walk of a folder: whether a folder is the
    root of a Sphinx build is looked up once, not again for each of its hundreds of files."""

    def __init__(self) -> None:
        self._sphinx: dict[tuple[Path, str], bool] = {}

    def reason(self, path: Path) -> str | None:
        """Why `path` is a documentation build's own file rather than a document (the reason shown among the
        skipped files), or None for a document."""
        name = path.name
        if name.endswith((".min.js", ".min.mjs")):
            return "minified script"
        parents = path.parents
        if name == "search_index.json" and path.parent.name == "search" and (parents[1] / "sitemap.xml").exists():
            return "search index of an MkDocs build"
        if name == "sitemap.xml" and (path.parent / "search" / "search_index.json").exists():
            return "sitemap of an MkDocs build"
        for depth, folder in enumerate(parents):
            if folder.name == "_sources" and self._is_sphinx_root(folder.parent):
                page = _built_page(folder.parent, path.relative_to(folder))
                return "page sources copied by Sphinx (_sources)" if page.exists() else None
            if folder.name == "_static" and self._is_sphinx_root(folder.parent):
                return "theme files of a Sphinx build (_static)"
            if depth >= 8:  # pages sit a few folders below a build's root; no need to climb to /
                break
        if name == "searchindex.js" and self._is_sphinx_root(path.parent, besides=name):
            return "search index of a Sphinx build (searchindex.js)"
        return None

    def _is_sphinx_root(self, folder: Path, besides: str = "") -> bool:
        key = (folder, besides)
        if key not in self._sphinx:
            self._sphinx[key] = any((folder / mark).exists() for mark in SPHINX_MARKS if mark != besides)
        return self._sphinx[key]


def _built_page(root: Path, source: Path) -> Path:
    """The page Sphinx built from the source it copied to `_sources/<source>`: page.rst.txt (Sphinx 1.5 and later,
    any source suffix kept before .txt) or page.txt (earlier) -> page.html."""
    stem = source.name.removesuffix(".txt")
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return root / source.parent / f"{stem}.html"
