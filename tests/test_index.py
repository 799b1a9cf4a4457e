"""The Index with a fake encoder: what is embedded, stored and found, and the errors it raises."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from searchbert import Hit, Index
from searchbert.errors import IncompatibleIndex, IndexExists, IndexNotFound, InvalidArgument, NoDocuments
from searchbert.folders import index_paths
from searchbert.index import VECTORS, VECTORS_STATE, locate_index
from searchbert.records import Document

from .conftest import DOCS, FakeEncoder, write_tree


@pytest.fixture
def index(tmp_path: Path, fake_encoder: FakeEncoder, docs_dir: Path) -> Index:
    ix = Index.create(tmp_path / "ix", encoder=fake_encoder)
    ix.add([docs_dir])
    return ix


def test_add_embeds_every_chunk_once_and_finds_documents(index: Index, fake_encoder: FakeEncoder) -> None:
    n = len(fake_encoder.embedded)
    assert index.count() == {"documents": len(DOCS), "chunks": n, "embedded": n}
    hits = index.search("signing key rotate", k=3)
    assert hits[0].path.endswith("ops/keys.md")
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert hits[0].title == "Rotating signing keys" and hits[0].start_line == 1


def test_hit_fields_are_frozen_and_json_ready(index: Index) -> None:
    hit = index.search("pasta", k=1)[0]
    assert isinstance(hit, Hit)
    data = json.loads(json.dumps(hit.to_dict()))
    assert {"path", "score", "text", "start_line", "end_line", "chunk_id", "rank"} <= set(data)
    with pytest.raises(AttributeError):
        hit.score = 1.0  # type: ignore[misc]


def test_one_hit_per_document_unless_chunks_asked(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    long_doc = "\n\n".join(f"Paragraph {i} about volcanoes and lava flows." for i in range(40))
    root = write_tree(tmp_path / "d", {"volcano.md": long_doc, "other.md": "Nothing about mountains."})
    ix = Index.create(tmp_path / "ix", encoder=fake_encoder)
    ix.add([root])
    docs = ix.search("volcanoes lava", k=5)
    assert len({h.path for h in docs}) == len(docs) == 2
    chunks = ix.search("volcanoes lava", k=5, chunks=True)
    assert len(chunks) == 5 and all(h.path.endswith("volcano.md") for h in chunks)


def test_search_returns_k_documents_when_best_chunks_crowd_in_one_document(tmp_path: Path) -> None:
    enc = FakeEncoder(max_tokens=16)
    files = {"big.md": "\n\n".join("apple banana cherry apple" for _ in range(200))}
    files |= {f"small{i}.md": f"apple and something else {i}" for i in range(12)}
    ix = Index.create(tmp_path / "ix", encoder=enc)
    ix.add([write_tree(tmp_path / "d", files)])
    hits = ix.search("apple banana cherry", k=10)
    assert len(hits) == 10 and len({h.path for h in hits}) == 10


def test_search_many_matches_single_searches(index: Index) -> None:
    queries = ["pasta water", "backup restore", "café crème"]
    many = index.search_many(queries, k=2)
    assert [[h.chunk_id for h in hits] for hits in many] == [
        [h.chunk_id for h in index.search(q, k=2)] for q in queries
    ]


def test_documents_from_data(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    ix = Index.create(tmp_path / "ix", encoder=fake_encoder)
    report = ix.add_documents([Document(path="d1", text="red apples", title="Apples"), Document("d2", "blue sky")])
    assert report.added == 2
    assert ix.search("apples", k=1)[0].path == "d1"
    assert ix.add_documents([Document("d1", "red apples", title="Apples"), Document("d2", "grey sky")]).updated == 1


def test_reopen_uses_saved_vectors_and_rebuilds_stale_ones(index: Index, fake_encoder: FakeEncoder) -> None:
    before = [h.chunk_id for h in index.search("bread dough", k=3)]
    index.close()
    again = Index.open(index.path, encoder=fake_encoder)
    assert [h.chunk_id for h in again.search("bread dough", k=3)] == before
    (index.path / VECTORS).unlink()  # the FAISS file is a cache: SQLite holds every vector
    rebuilt = Index.open(index.path, encoder=fake_encoder)
    assert [h.chunk_id for h in rebuilt.search("bread dough", k=3)] == before
    (index.path / VECTORS_STATE).write_text(json.dumps({"generation": -1}))
    assert [h.chunk_id for h in Index.open(index.path, encoder=fake_encoder).search("bread dough", k=3)] == before


def test_stored_vectors_equal_what_the_encoder_returned(index: Index, fake_encoder: FakeEncoder) -> None:
    rows = index.store.db.execute(
        "SELECT c.text, d.title, c.vector FROM chunks c JOIN documents d ON d.id = c.document_id"
    )
    for text, title, blob in rows:
        embedded = f"{title}\n{text}"  # the default title prefix
        np.testing.assert_array_equal(np.frombuffer(blob, dtype=np.float32), fake_encoder.encode([embedded])[0])


def test_bad_queries_are_usage_errors(index: Index) -> None:
    for bad in ["", "   "]:
        with pytest.raises(InvalidArgument):
            index.search(bad)
    for k in [0, -3]:
        with pytest.raises(InvalidArgument):
            index.search("pasta", k=k)


def test_open_missing_index(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFound, match="searchbert index"):
        Index.open(tmp_path / "nope")


def test_create_twice_needs_rebuild(index: Index, fake_encoder: FakeEncoder) -> None:
    with pytest.raises(IndexExists, match="--rebuild"):
        Index.create(index.path, encoder=fake_encoder)
    fresh = Index.create(index.path, encoder=fake_encoder, rebuild=True)
    assert fresh.count() == {"documents": 0, "chunks": 0, "embedded": 0}


def test_another_model_is_refused(index: Index) -> None:
    with pytest.raises(IncompatibleIndex, match="--rebuild"):
        Index.open(index.path, encoder=FakeEncoder(dimension=32, model_id="fake/other"))


def test_index_paths_refuses_empty_folder_and_other_settings(tmp_path: Path, docs_dir: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoDocuments):
        index_paths(tmp_path / "ix", [tmp_path / "empty"], encoder=FakeEncoder())
    assert not (tmp_path / "ix").exists(), "a failed first run leaves nothing behind"
    index_paths(tmp_path / "ix", [docs_dir], encoder=FakeEncoder())
    with pytest.raises(IncompatibleIndex, match="chunk settings"):
        index_paths(tmp_path / "ix", [docs_dir], encoder=FakeEncoder(), chunk_size=20)
    with pytest.raises(InvalidArgument):
        index_paths(tmp_path / "ix", [tmp_path / "missing"], encoder=FakeEncoder())


def test_unreadable_files_are_reported_not_fatal(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    root = write_tree(tmp_path / "d", {"good.md": "fine text", "bad.pdf": b"%PDF-1.4 broken", "bin.txt": b"\x00\x01"})
    ix = Index.create(tmp_path / "ix", encoder=fake_encoder)
    report = ix.add([root])
    assert report.added == 1 and report.skipped["unreadable"] == 2
    assert {Path(p).name for p, _ in report.errors} == {"bad.pdf", "bin.txt"}


def test_locate_index_walks_up_like_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEARCHBERT_INDEX", raising=False)
    (tmp_path / "indexes" / "default").mkdir(parents=True)
    (tmp_path / "indexes" / "default" / "manifest.json").write_text("{}")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert locate_index(start=deep) == tmp_path / "indexes" / "default"
    assert locate_index("elsewhere") == Path("elsewhere")
    monkeypatch.setenv("SEARCHBERT_INDEX", str(tmp_path / "env"))
    assert locate_index(start=deep) == tmp_path / "env"


def test_removing_the_last_document_leaves_an_empty_searchable_index(tmp_path: Path) -> None:
    """The BM25 index of no text was saved by bm25s, which cannot save an empty index (it crashed after the commit)."""
    from searchbert.records import Document

    index = Index.create(tmp_path / "ix", encoder=FakeEncoder())
    index.add_documents([Document(path="a", text="hello there")])
    assert index.delete(["a"]) == 1
    assert index.count() == {"documents": 0, "chunks": 0, "embedded": 0}
    index.close()
    with Index.open(tmp_path / "ix", encoder=FakeEncoder()) as again:
        assert again.search("hello", 3) == [] and again.search("hello", 3, mode="bm25") == []


def test_a_folder_of_unreadable_files_says_why(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    from searchbert.errors import NoDocuments

    root = write_tree(tmp_path / "d", {"bad.pdf": b"%PDF-1.4 broken", "bin.txt": b"\x00\x01"})
    with pytest.raises(NoDocuments, match=r"bad\.pdf: unreadable PDF.*bin\.txt"):
        index_paths(tmp_path / "ix", [root], encoder=fake_encoder)
