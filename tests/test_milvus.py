"""--vector-store milvus (Milvus Lite here; a real server in test_scale_out.py): the same answers as the FAISS index,
filters run inside Milvus yet exact, and the two stores kept consistent across SIGKILL by the order of writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from searchbert import Index
from searchbert.errors import IncompatibleIndex, InvalidArgument
from searchbert.records import Document, Filters

from .conftest import FakeEncoder, listening


def _lite(folder: Path) -> dict[str, str]:
    """The store options of a Milvus Lite file in `folder`."""
    return {"uri": str(folder / "v.db")}


TOPICS = ["glacier", "violin", "orchid", "volcano", "satellite", "honeybee", "lighthouse"]


def _docs(n: int = 400) -> list[Document]:
    return [
        Document(
            path=f"notes/{TOPICS[i % 7]}/n{i:04}.{'md' if i % 3 else 'txt'}",
            text=f"note {i} about the {TOPICS[i % 7]} and the {TOPICS[(i * 3) % 7]}, item {i}",
            mtime=1_000_000.0 + i,
            metadata={"team": ["red", "blue", "green", "café"][i % 4], "rank": i % 5, "pinned": i % 50 == 0},
        )
        for i in range(n)
    ]


@pytest.fixture
def pair(tmp_path: Path):
    """The same documents in a FAISS index and a Milvus Lite one."""
    faiss_ix = Index.create(tmp_path / "faiss", encoder=FakeEncoder())
    milvus_ix = Index.create(
        tmp_path / "milvus", encoder=FakeEncoder(), vector_store="milvus", store_options=_lite(tmp_path)
    )
    for ix in (faiss_ix, milvus_ix):
        ix.add_documents(_docs())
    yield faiss_ix, milvus_ix
    faiss_ix.close()
    milvus_ix.close()


FILTERS = [
    Filters(),
    Filters(exts=("txt",)),  # a third: wide
    Filters(paths=("notes/violin/*",)),
    Filters(paths=("notes/v[io]*/*",)),  # a glob class: Milvus cannot say it, SQLite narrows
    Filters(since=1_000_390.0),  # ten documents: narrow
    Filters(metadata={"team": "blue", "rank": [1, 2]}),
    Filters(metadata={"pinned": True}),  # eight: narrow
    Filters(metadata={"team": "café"}),  # text beyond ASCII: written as itself (Milvus reads no \u escapes)
    Filters(paths=("notes/violin/n00*",), metadata={"team": ["café", "red"]}),
    Filters(paths=("notes/orchid/n0002.md",)),  # exactly one
]


def _same_ranking(got, want) -> None:
    """The same scores in the same order, and the same documents at each score (the hashing encoder ties often,
    and two engines order ties their own way); a tie cut by k may keep different members of it."""
    assert [round(h.score, 4) for h in got] == [round(h.score, 4) for h in want]
    last = round(want[-1].score, 4) if want else None
    groups = {}
    for name, hits in (("got", got), ("want", want)):
        for h in hits:
            if round(h.score, 4) != last:
                groups.setdefault(round(h.score, 4), {}).setdefault(name, set()).add(h.path)
    assert all(g.get("got") == g.get("want") for g in groups.values())


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: repr(f)[8:60])
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_milvus_answers_as_faiss_does_filters_included(pair, filters: Filters, mode: str) -> None:
    faiss_ix, milvus_ix = pair
    for query in ("violin and glacier", "orchid item 12", "honeybee"):
        want = faiss_ix.search(query, 10, mode=mode, filters=filters)
        got = milvus_ix.search(query, 10, mode=mode, filters=filters)
        _same_ranking(got, want)
        # "k results whenever k match"
        matching = sum(filters.matches(d.path, "", d.mtime, d.metadata) for d in _docs())
        assert len(got) == min(10, matching)


def test_filters_become_a_milvus_expression() -> None:
    from searchbert.stores.milvus import to_expression

    text = to_expression(Filters(exts=("MD", ".txt"), since=5.0, paths=("a/*.md", "b?"), metadata={"k": [1, "x"]}))
    assert text == (
        'ext in ["md", "txt"] and mtime >= 5.0 and (relpath like "a/%.md" or relpath like "b_") '
        'and (metadata["k"] == 1 or metadata["k"] == "x")'
    )
    assert to_expression(Filters(paths=("a/[ab].md",))) == ""  # wider: the search narrows it with SQLite
    assert to_expression(Filters(metadata={"équipe": 'café "noir"'})) == '(metadata["équipe"] == "café \\"noir\\"")'


def test_updates_deletes_and_metadata_changes_reach_milvus(pair) -> None:
    before = pair[1].count()["chunks"]
    changed = Document(path="notes/glacier/n0000.txt", text="a brand new text about submarines", mtime=2e6,
                       metadata={"team": "red", "rank": 0, "pinned": True})  # fmt: skip
    doc = next(d for d in _docs() if d.path == "notes/orchid/n0002.md")
    relabelled = Document(path=doc.path, text=doc.text, mtime=doc.mtime, metadata={"team": "purple"})
    for ix in pair:  # the same changes to both
        ix.delete(["notes/violin/n0001.md"])
        ix.add_documents([changed])
        ix.add_documents([relabelled])  # metadata alone: written in place in SQLite, and to Milvus's fields
    faiss_ix, ix = pair
    for query in ("note 1 violin", "a brand new text about submarines", "orchid"):
        _same_ranking(ix.search(query, 10, mode="dense"), faiss_ix.search(query, 10, mode="dense"))
    assert "notes/violin/n0001.md" not in [h.path for h in ix.search("note 1 violin", 50, mode="dense")]
    assert ix.search("a brand new text about submarines", 1, mode="dense")[0].path == changed.path
    hits = ix.search("orchid", 5, mode="dense", filters=Filters(metadata={"team": "purple"}))
    assert [h.path for h in hits] == [doc.path]
    assert len(ix.vectors.ids()) == ix.count()["chunks"] == before - 1


def test_a_new_index_without_a_uri_or_with_an_unknown_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="--milvus-uri"):
        Index.create(tmp_path / "a", encoder=FakeEncoder(), vector_store="milvus")
    with pytest.raises(InvalidArgument, match="unknown vector store"):
        Index.create(tmp_path / "b", encoder=FakeEncoder(), vector_store="qdrant")
    assert not (tmp_path / "a" / "manifest.json").exists()


def test_the_store_of_an_existing_index_cannot_be_switched_by_a_flag(tmp_path: Path, docs_dir: Path) -> None:
    from searchbert.folders import index_paths

    index_paths(tmp_path / "ix", [docs_dir], encoder=FakeEncoder())
    with pytest.raises(IncompatibleIndex, match="--rebuild"):
        index_paths(tmp_path / "ix", [docs_dir], encoder=FakeEncoder(), vector_store="milvus",
                    store_options=_lite(tmp_path))  # fmt: skip


def test_rebuild_drops_the_old_collection(tmp_path: Path) -> None:
    from searchbert.stores.milvus import client

    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder(), vector_store="milvus", store_options=_lite(tmp_path))
    old = ix.manifest.vector_store["collection"]
    ix.close()
    again = Index.create(tmp_path / "ix", encoder=FakeEncoder(), rebuild=True, vector_store="milvus",
                         store_options=_lite(tmp_path))  # fmt: skip
    assert again.manifest.vector_store["collection"] != old
    assert client(str(tmp_path / "v.db")).list_collections() == [again.manifest.vector_store["collection"]]
    again.close()


def test_repair_restores_a_dropped_collection_from_sqlite(pair) -> None:
    from searchbert.health import repair, status

    faiss_ix, ix = pair
    ix.vector_store.drop()
    broken = status(str(ix.path))
    assert not broken.consistent and any("is gone" in p for p in broken.problems)
    fixed = repair(str(ix.path))
    assert fixed.consistent and fixed.vectors == fixed.chunks == 400
    _same_ranking(ix.search("orchid", 10, mode="dense"), faiss_ix.search("orchid", 10, mode="dense"))


# -- crash safety: a child process killed between the two stores' writes -------------------------------------------

_CHILD = """
import os, signal, sys
sys.path.insert(0, sys.argv[3])
from conftest import FakeEncoder
from searchbert import Index
from searchbert.records import Document
import searchbert.stores.milvus as milvus

where = sys.argv[2]
docs = [Document(path=f"d{i}", text=f"text {i} about topic {i % 5}") for i in range(int(sys.argv[4]))]
ix = Index.open(sys.argv[1], encoder=FakeEncoder())
if where == "after-upsert":  # vectors in Milvus, the SQLite transaction not committed
    add = milvus.MilvusIndex.add
    def add_then_die(self, *a, **k):
        add(self, *a, **k)
        os.kill(os.getpid(), signal.SIGKILL)
    milvus.MilvusIndex.add = add_then_die
    ix.add_documents(docs)
else:  # SQLite's delete committed, Milvus's not done
    milvus.MilvusIndex.remove = lambda self, ids: os.kill(os.getpid(), signal.SIGKILL)
    ix.delete([d.path for d in docs[:30]])
"""


def _child(ix: Path, where: str, n: int) -> None:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(ix), where, str(Path(__file__).parent), str(n)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-2000:]


def test_sigkill_after_milvus_upsert_before_sqlite_commit_leaves_only_invisible_orphans(tmp_path: Path) -> None:
    from searchbert.health import repair, status

    Index.create(
        tmp_path / "ix", encoder=FakeEncoder(), vector_store="milvus", store_options=_lite(tmp_path)
    ).close()  # the Lite file is free for the child
    _child(tmp_path / "ix", "after-upsert", 100)
    info = status(str(tmp_path / "ix"))
    # the words were committed first; the vectors are in Milvus, pointed to by nothing
    assert info.documents == 100 and info.embedded == 0 and info.vectors == 100
    assert "100 vectors belong to no chunk" in info.problems
    with Index.open(tmp_path / "ix", encoder=FakeEncoder()) as ix:
        assert ix.search("topic 3", 5, mode="dense") == []  # never returned
        assert len(ix.search("topic 3", 5, mode="bm25")) == 5
    fixed = repair(str(tmp_path / "ix"))
    assert fixed.consistent and fixed.vectors == 0 and fixed.embedded == 0
    with Index.open(tmp_path / "ix", encoder=FakeEncoder()) as ix:
        ix.add_documents([])  # any write embeds what has no vector yet
    again = status(str(tmp_path / "ix"))
    assert again.consistent and again.embedded == again.vectors == 100


def test_sigkill_between_sqlite_delete_and_milvus_delete_is_caught_up_by_the_next_writer(tmp_path: Path) -> None:
    from searchbert.health import status

    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder(), vector_store="milvus", store_options=_lite(tmp_path))
    ix.add_documents([Document(path=f"d{i}", text=f"text {i} about topic {i % 5}") for i in range(100)])
    ix.close()
    _child(tmp_path / "ix", "after-delete", 100)
    info = status(str(tmp_path / "ix"))
    assert info.documents == 70 and info.vectors == 100
    with Index.open(tmp_path / "ix", encoder=FakeEncoder()) as ix:
        assert all(int(h.path[1:]) >= 30 for h in ix.search("topic 3", 50, mode="dense"))
        ix.add_documents([Document(path="new", text="one more")])  # any write replays the removal log
    info = status(str(tmp_path / "ix"))
    assert info.consistent and info.vectors == 71


def test_a_lite_file_held_by_another_process_is_a_clear_error(tmp_path: Path, docs_dir: Path) -> None:
    import time

    from searchbert.folders import index_paths

    index_paths(tmp_path / "ix", [docs_dir], encoder=FakeEncoder(), vector_store="milvus",
                store_options=_lite(tmp_path))  # fmt: skip
    holder = Index.open(tmp_path / "ix", encoder=FakeEncoder())
    holder.search("pasta", 1, mode="dense")  # this process holds the Lite file now
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "searchbert", "query", "pasta", "--index", str(tmp_path / "ix"),
                          "--mode", "bm25", "--no-server"], capture_output=True, text=True, timeout=120,
                         env={**os.environ})  # fmt: skip
    assert out.returncode == 0, out.stderr  # BM25 never opens Milvus
    out = subprocess.run([sys.executable, "-m", "searchbert", "query", "pasta", "--index", str(tmp_path / "ix"),
                          "--mode", "dense", "--no-server"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 1
    assert "one process at a time" in out.stderr and "Traceback" not in out.stderr
    assert time.monotonic() - started < 60
    holder.close()  # and the file is free again
    out = subprocess.run([sys.executable, "-m", "searchbert", "status", "--index", str(tmp_path / "ix")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0 and "consistent: yes" in out.stdout, out.stderr


def test_index_types_on_milvus() -> None:
    from searchbert.stores.milvus import index_kind

    assert index_kind("auto", "/x/v.db") == "flat" and index_kind("auto", "http://127.0.0.1:19530") == "hnsw"
    assert index_kind("ivf", "http://127.0.0.1:19530") == "ivf"
    with pytest.raises(InvalidArgument, match="exactly"):
        index_kind("hnsw", "/x/v.db")
    with pytest.raises(InvalidArgument, match="not offered"):
        index_kind("ivf-pq", "http://127.0.0.1:19530")


def test_an_approximate_index_on_a_lite_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="exactly"):
        Index.create(tmp_path / "ix", encoder=FakeEncoder(), vector_store="milvus", store_options=_lite(tmp_path),
                     index_type="hnsw")  # fmt: skip
    assert not (tmp_path / "ix").exists() and not (tmp_path / "v.db").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--vector-store", "milvus"], "--milvus-uri"),
        (["--vector-store", "faiss", "--milvus-uri", "x.db"], "goes with --vector-store milvus"),
        (["--milvus-uri", "x.db"], "takes no options"),
        (["--vector-store", "milvus", "--milvus-uri", "vectors.sqlite"], "ending in .db"),
        (["--workers", "2"], "--workers goes with --ray"),
    ],
)
def test_cli_refuses_store_and_ray_flags_that_cannot_work(docs_dir: Path, tmp_path: Path, args, message) -> None:
    from click.testing import CliRunner

    from searchbert.cli import main

    result = CliRunner().invoke(main, ["index", str(docs_dir), "--index", str(tmp_path / "ix"), *args])
    assert result.exit_code in (1, 2) and message in result.output, result.output
    assert not (tmp_path / "ix" / "manifest.json").exists()


def test_a_milvus_lite_server_gets_an_exact_index_and_answers_as_faiss_does(tmp_path: Path) -> None:
    """`milvus-lite server` (what the error for a busy Lite file recommends) at an http:// URI: it is Milvus Lite, so
    the default index is exact as in a Lite file (its HNSW reports no build parameters, and loses recall under
    filters); hnsw is refused before anything is written."""
    import shutil
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = shutil.which("milvus-lite") or str(Path(sys.executable).parent / "milvus-lite")
    server = subprocess.Popen([command, "server", "--data-dir", str(tmp_path / "data"), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "milvus-lite server did not start"
                time.sleep(0.3)
        assert listening(server.pid) == {"127.0.0.1"}
        uri = f"http://127.0.0.1:{port}"
        with pytest.raises(InvalidArgument, match="searches exactly"):
            Index.create(tmp_path / "hnsw", encoder=FakeEncoder(), vector_store="milvus", store_options={"uri": uri},
                         index_type="hnsw")  # fmt: skip
        assert not (tmp_path / "hnsw" / "manifest.json").exists()
        faiss_ix = Index.create(tmp_path / "faiss", encoder=FakeEncoder())
        ix = Index.create(tmp_path / "ix", encoder=FakeEncoder(), vector_store="milvus", store_options={"uri": uri})
        assert ix.manifest.vector_store["index"] == "flat"
        for each in (faiss_ix, ix):
            each.add_documents(_docs(120))
        for filters in (Filters(), Filters(metadata={"team": "café"}), Filters(exts=("txt",))):
            got = ix.search("violin and glacier", 10, mode="dense", filters=filters)
            _same_ranking(got, faiss_ix.search("violin and glacier", 10, mode="dense", filters=filters))
        ix.close()
        faiss_ix.close()
    finally:
        server.terminate()
        server.wait(30)
