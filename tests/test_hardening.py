"""Bugs a new user met on day one (issue 10), each with a test that failed before its fix. Fake encoder throughout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from searchbert import Index
from searchbert.folders import index_paths
from searchbert.records import Document

from .conftest import DOCS, FakeEncoder, write_tree

ROOT = Path(__file__).resolve().parent.parent


class OverlapReranker:
    """A deterministic stand-in for a cross-encoder: the share of query words the passage contains."""

    model_id = "fake/overlap"
    retrieval_weight = 0.0

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        words = set(query.lower().split())
        return np.array([len(words & set(p.lower().split())) / len(words) for p in passages], dtype=np.float32)


def test_rerank_returns_k_documents_when_one_long_document_fills_the_candidates(tmp_path: Path) -> None:
    long = "\n\n".join(f"Volcano lava eruption report part {i}: lava flows, volcano ash." for i in range(80))
    files = {"long.md": f"# Volcano\n\n{long}\n"}
    files |= {f"short{i:02}.md": f"# Short {i}\n\nA note on a volcano, number {i}." for i in range(12)}
    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder(max_tokens=24))
    ix.add([write_tree(tmp_path / "docs", files)])
    for mode in ("dense", "bm25", "hybrid"):
        hits = ix.search("volcano lava eruption", k=10, rerank=OverlapReranker(), candidates=20, mode=mode)
        assert len(hits) == 10, mode
        assert len({h.path for h in hits}) == 10, mode


def test_filters_is_exported_and_a_plain_string_is_one_glob() -> None:
    from searchbert import Filters

    f = Filters(paths="guides/*", exts="md")  # type: ignore[arg-type]
    assert f.paths == ("guides/*",) and f.exts == ("md",)
    assert f.matches("/r/guides/a.md", "/r", 0) and not f.matches("/r/xguide.md", "/r", 0)


def test_path_globs_match_below_the_indexed_root_only(tmp_path: Path) -> None:
    from searchbert import Filters

    docs = write_tree(tmp_path / "installers" / "docs", {"a.md": "alpha notes", "b.md": "bravo notes"})
    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder())
    ix.add([docs])
    assert ix.search("notes", k=5, filters=Filters(paths=("*install*",))) == []
    assert [h.path for h in ix.search("notes", k=5, filters=Filters(paths=("a*",)))] == [str(docs / "a.md")]


def test_a_file_name_that_is_not_utf8_is_skipped_and_reported(tmp_path: Path) -> None:
    docs = write_tree(tmp_path / "docs", {"good.md": "lighthouse keepers"})
    with open(os.path.join(os.fsencode(docs), b"caf\xe9.md"), "wb") as fh:
        fh.write(b"espresso notes")
    report = index_paths(tmp_path / "ix", [docs], encoder=FakeEncoder())
    assert report.added == 1 and report.skipped.get("unreadable") == 1
    assert "caf\\xe9.md" in report.errors[0][0] and "UTF-8" in report.errors[0][1]
    assert index_paths(tmp_path / "ix", [docs], encoder=FakeEncoder()).unchanged == 1  # and again, for good


def test_an_id_repeated_in_one_call_is_an_upsert_last_one_wins(tmp_path: Path) -> None:
    enc = FakeEncoder()
    ix = Index.create(tmp_path / "ix", encoder=enc)
    docs = [Document("a", "first alpha"), Document("b", "bravo"), Document("a", "second alpha")]
    ix.add_documents(docs)
    assert ix.count()["documents"] == 2
    assert {h.text for h in ix.search("alpha bravo", k=5)} == {"second alpha", "bravo"}


def test_records_can_be_removed_by_their_id(tmp_path: Path) -> None:
    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder())
    ix.add_documents([Document("doc-1", "alpha"), Document("doc-2", "bravo")])
    assert ix.remove(["doc-1"]) == 1
    assert [h.path for h in ix.search("alpha bravo", k=5)] == ["doc-2"]


def test_moving_a_folder_embeds_nothing_and_leaves_no_duplicates(tmp_path: Path) -> None:
    docs = write_tree(tmp_path / "docs", DOCS)
    enc = FakeEncoder()
    index_paths(tmp_path / "ix", [docs], encoder=enc)
    enc.calls.clear()
    moved = tmp_path / "docs2"
    shutil.move(str(docs), str(moved))
    report = index_paths(tmp_path / "ix", [moved], encoder=enc)
    assert enc.embedded == []  # the bytes are the same: their vectors are reused
    assert (report.added, report.removed) == (len(DOCS), len(DOCS))
    with Index.open(tmp_path / "ix", encoder=enc) as ix:
        paths = [h.path for h in ix.search("signing key", k=10)]
        assert len(paths) == len(set(paths)) == len(DOCS)
        assert all(p.startswith(str(moved)) for p in paths)
        hit = ix.search("signing key", k=1)[0]
        assert hit.path == str(moved / "ops/keys.md") and "signing key" in hit.text


def test_a_renamed_code_file_is_embedded_again_because_its_title_changed(tmp_path: Path) -> None:
    docs = write_tree(tmp_path / "docs", {"a.py": "print('alpha')\n"})
    enc = FakeEncoder()
    index_paths(tmp_path / "ix", [docs], encoder=enc)
    enc.calls.clear()
    (docs / "a.py").rename(docs / "b.py")  # a code file's title is its name, and titles are embedded
    index_paths(tmp_path / "ix", [docs], encoder=enc)
    assert enc.embedded == ["b.py\nprint('alpha')\n"]


def test_a_file_excluded_on_a_rerun_leaves_the_index(tmp_path: Path) -> None:
    docs = write_tree(tmp_path / "docs", DOCS)
    index_paths(tmp_path / "ix", [docs], encoder=FakeEncoder())
    report = index_paths(tmp_path / "ix", [docs], encoder=FakeEncoder(), exclude=["cooking/*"])
    assert report.removed == 2
    with Index.open(tmp_path / "ix", encoder=FakeEncoder()) as ix:
        hits = ix.search("pasta bread", k=10)
        assert len(hits) == len(DOCS) - 2 and not any("/cooking/" in h.path for h in hits)


def test_rebuild_waits_for_the_lock_before_it_deletes_anything(tmp_path: Path) -> None:
    from filelock import FileLock

    from searchbert.errors import IndexLocked

    docs = write_tree(tmp_path / "docs", DOCS)
    index_paths(tmp_path / "ix", [docs], encoder=FakeEncoder())
    lock = tmp_path / "ix" / "write.lock"
    with FileLock(str(lock)):  # another writer is at work
        with pytest.raises(IndexLocked):
            index_paths(tmp_path / "ix", [docs], encoder=FakeEncoder(), rebuild=True, lock_timeout=0.3)
        assert lock.exists()
    with Index.open(tmp_path / "ix", encoder=FakeEncoder()) as ix:
        assert ix.count()["documents"] == len(DOCS)


def test_two_first_time_runs_with_different_models_never_share_an_index(tmp_path: Path) -> None:
    """Both start before either has written a manifest: one creates the index, the other must refuse to mix."""
    docs = write_tree(tmp_path / "docs", DOCS)
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from tests.conftest import FakeEncoder
        from searchbert.folders import index_paths
        from searchbert.errors import IncompatibleIndex
        enc = FakeEncoder(model_id="fake/" + sys.argv[1])
        real = enc.encode
        def slow(texts, **kw):
            time.sleep(0.5)
            return real(texts, **kw)
        enc.encode = slow
        try:
            index_paths({str(tmp_path / "ix")!r}, [{str(docs)!r}], encoder=enc, lock_timeout=30)
            print("indexed")
        except IncompatibleIndex:
            print("refused")
        """
    )
    runs = [subprocess.Popen([sys.executable, "-c", script, name], stdout=subprocess.PIPE, text=True) for name in "ab"]
    outputs = sorted(p.communicate(timeout=60)[0].strip() for p in runs)
    assert outputs == ["indexed", "refused"]


def test_a_document_over_the_size_limit_is_skipped_with_its_own_reason(tmp_path: Path) -> None:
    docs = write_tree(tmp_path / "docs", {"note.md": "lighthouse", "big.txt": "word " * 1000})
    report = index_paths(tmp_path / "ix", [docs], encoder=FakeEncoder(), max_doc_size=1000)
    assert report.added == 1
    [(reason, count)] = report.skipped.items()
    assert count == 1 and "--max-doc-size" in reason
    assert index_paths(tmp_path / "ix", [docs], encoder=FakeEncoder(), max_doc_size=0).added == 1
    # grown past the limit: it leaves the index
    assert index_paths(tmp_path / "ix", [docs], encoder=FakeEncoder(), max_doc_size=1000).removed == 1


def test_a_large_document_never_holds_back_the_small_ones(tmp_path: Path) -> None:
    """The large file sorts first; the run is stopped while it embeds: the small notes are committed already."""
    files = {"a-large.txt": "\n\n".join(f"paragraph {i} of the long report" for i in range(300))}
    files |= {f"note{i}.md": f"# Note {i}\n\nlighthouse keeper {i}" for i in range(3)}
    docs = write_tree(tmp_path / "docs", files)

    class Stopped(Exception):
        pass

    class StopsOnTheLargeOne(FakeEncoder):
        def encode(self, texts, *, batch_size=None):  # type: ignore[override]
            if any("long report" in t for t in texts):
                raise Stopped
            return super().encode(texts)

    with pytest.raises(Stopped):
        index_paths(tmp_path / "ix", [docs], encoder=StopsOnTheLargeOne(), commit_chunks=16)
    with Index.open(tmp_path / "ix", encoder=FakeEncoder()) as ix:
        assert sorted(Path(h.path).name for h in ix.search("lighthouse keeper", k=10)) == [
            "note0.md",
            "note1.md",
            "note2.md",
        ]


def test_a_vector_file_write_cut_short_leaves_nothing_wrong(tmp_path: Path) -> None:
    """Killed while the FAISS file is written: a temp file is left and the saved file is the previous one."""
    docs = write_tree(tmp_path / "docs", DOCS)
    enc = FakeEncoder()
    index_paths(tmp_path / "ix", [docs], encoder=enc)
    (tmp_path / "ix" / ".vectors.faiss.99999.tmp").write_bytes(b"half a file")
    (docs / "new.md").write_text("zebra crossing")
    index_paths(tmp_path / "ix", [docs], encoder=enc)
    assert not list((tmp_path / "ix").glob(".*.tmp"))
    with Index.open(tmp_path / "ix", encoder=enc) as ix:
        assert ix.vectors.live.trusted and ix.search("zebra crossing", k=1)[0].path.endswith("new.md")


def test_a_local_ray_start_that_times_out_once_is_tried_again() -> None:
    """Ray gives its raylet a fixed 30 s to register; a machine busy with other work missed it once in make test.
    A Ray that fails its first start (as Ray raises it) and then starts is used; one that fails twice is a clear
    error."""
    from searchbert.embedding import _connect
    from searchbert.errors import EmbeddingFailed

    class SlowRay:
        def __init__(self, failures: int) -> None:
            self.failures, self.starts, self.shutdowns = failures, 0, 0

        def is_initialized(self) -> bool:
            return False

        def init(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
            assert kwargs["_node_ip_address"] == "127.0.0.1"
            self.starts += 1
            if self.starts <= self.failures:
                raise Exception("The current node timed out during startup.")

        def shutdown(self) -> None:
            self.shutdowns += 1

    once = SlowRay(failures=1)
    assert _connect(once, "local", 2) and once.starts == 2 and once.shutdowns == 1
    with pytest.raises(EmbeddingFailed, match="2 tries"):
        _connect(SlowRay(failures=2), "local", 2)
