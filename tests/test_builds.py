"""A built documentation folder is indexed as its pages: the copies, search indexes and theme files a generator
writes beside them are passed over (searchbert.builds), by the build's layout and never by a name alone."""

from __future__ import annotations

from pathlib import Path

from searchbert.index import Index
from searchbert.loaders import discover

from .conftest import FakeEncoder, write_tree

PAGE = "<html><head><title>{0}</title></head><body><h1>{0}</h1><p>{1}</p></body></html>"
SPHINX = {
    "index.html": PAGE.format("Welcome", "The documentation of the volcano observatory."),
    "library/lava.html": PAGE.format("Lava flows", "Basaltic lava flows advance slowly downhill."),
    "_sources/index.rst.txt": "Welcome\n=======\n\nThe documentation of the volcano observatory.\n",
    "_sources/library/lava.rst.txt": "Lava flows\n==========\n\nBasaltic lava flows advance slowly downhill.\n",
    "_sources/changelog.rst.txt": "Changelog\n=========\n\nIts page was not shipped: this copy is all.\n",
    "_static/doctools.js": "function highlight(term) { return term; }\n",
    "_static/documentation_options.js": "var DOCUMENTATION_OPTIONS = {};\n",
    "searchindex.js": 'Search.setIndex({"docnames": ["index", "library/lava"], "terms": {"lava": [1]}})',
    "objects.inv": "# Sphinx inventory version 2\n",
    "_downloads/example.py": "def erupt():\n    return 'lava'\n",
}


def relative(found, root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p, _ in found.files)


def test_a_sphinx_build_is_read_as_its_pages(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "html", SPHINX)
    found = discover([root])
    assert relative(found, root) == [
        "_downloads/example.py",  # a download is a document of its own
        "_sources/changelog.rst.txt",  # its page is not there: the copy is the only text of it
        "index.html",
        "library/lava.html",
    ]
    assert found.skipped["page sources copied by Sphinx (_sources)"] == 2
    assert found.skipped["search index of a Sphinx build (searchindex.js)"] == 1
    assert found.skipped["theme files of a Sphinx build (_static)"] == 2


def test_what_looks_like_a_build_without_being_one_is_indexed(tmp_path: Path) -> None:
    """A folder of notes that happens to use the same names, with no mark of a Sphinx build, is all documents."""
    root = write_tree(
        tmp_path / "notes",
        {
            "lava.html": PAGE.format("Lava", "A page."),
            "_sources/lava.rst.txt": "Lava\n====\n\nMy own notes, not a copy.\n",
            "_static/tool.js": "function tool() {}\n",
            "search/search_index.json": '{"docs": []}',  # no sitemap.xml beside it: not MkDocs's
        },
    )
    assert len(discover([root]).files) == 4


def test_named_files_and_included_ones_are_read_all_the_same(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "html", SPHINX)
    assert relative(discover([root / "_sources" / "index.rst.txt"]), root / "_sources") == ["index.rst.txt"]
    included = discover([root], include=["*.rst.txt", "*.js"])
    assert relative(included, root) == [
        "_sources/changelog.rst.txt", "_sources/index.rst.txt", "_sources/library/lava.rst.txt",
        "_static/doctools.js", "_static/documentation_options.js", "searchindex.js",
    ]  # fmt: skip


def test_mkdocs_search_index_and_minified_scripts_are_passed_over(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "site",
        {
            "index.html": PAGE.format("Home", "Welcome."),
            "sitemap.xml": "<urlset/>",
            "search/search_index.json": '{"docs": [{"location": "", "text": "Welcome."}]}',
            "assets/javascripts/bundle.min.js": "!function(){var a=1}();",
        },
    )
    found = discover([root])
    assert relative(found, root) == ["index.html"]
    assert found.skipped["minified script"] == 1 and found.skipped["sitemap of an MkDocs build"] == 1


def test_each_page_is_found_once_and_an_old_index_drops_the_copies(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "html", SPHINX)
    with Index.create(tmp_path / "ix", encoder=FakeEncoder()) as ix:
        report = ix.add([root], include=["*"])  # as an index made before: the copies and the search index too
        assert report.indexed == len(SPHINX) - 1  # all but objects.inv, which no reader reads
        report = ix.add([root])
        assert report.removed == 2 + 1 + 2 and report.added == report.updated == 0
        hits = ix.search("basaltic lava flows advance downhill", k=10, mode="bm25")
        assert [h.path for h in hits if "lava" in h.path] == [str(root / "library" / "lava.html")]
