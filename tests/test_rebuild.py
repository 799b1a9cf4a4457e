"""An index rebuilt under its readers and writers stays whole: the database is never unlinked, every long-lived Index
notices the new instance on its next call, and a vector or BM25 file that does not belong to the index is never
trusted. `status` checks what the vectors hold, not only their ids."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from searchbert import Document, Index
from searchbert.errors import IndexReplaced
from searchbert.health import status
from searchbert.index import DATABASE, VECTORS, VECTORS_STATE

from .conftest import FakeEncoder

OLD = {
    "lighthouse": "Lighthouses guide ships at night with a rotating beam of light.",
    "bread": "Sourdough bread needs a starter, flour, water and patience.",
}
NEW = {
    "volcano": "Lava and ash pour from an erupting volcano onto the island.",
    "glacier": "Glaciers carve deep fjords into the northern coast.",
}


def _docs(texts: dict[str, str]) -> list[Document]:
    return [Document(path=key, text=text, title=key) for key, text in texts.items()]


def _rebuild(path: Path, texts: dict[str, str], encoder: FakeEncoder | None = None) -> None:
    """What `searchbert index --rebuild` does, through its own Index (another process, as far as SQLite knows)."""
    with Index.create(path, encoder=encoder or FakeEncoder(), rebuild=True) as fresh:
        fresh.add_documents(_docs(texts))


@pytest.fixture
def built(tmp_path: Path) -> Path:
    with Index.create(tmp_path / "ix", encoder=FakeEncoder()) as index:
        index.add_documents(_docs(OLD))
    return tmp_path / "ix"


def test_a_rebuild_never_unlinks_the_database_in_use(built: Path) -> None:
    before = (built / DATABASE).stat().st_ino
    reader = Index.open(built, encoder=FakeEncoder())
    assert reader.search("ships at night with a rotating beam", k=1)[0].path == "lighthouse"
    _rebuild(built, NEW)
    assert (built / DATABASE).stat().st_ino == before
    reader.close()


def test_a_long_lived_reader_answers_from_the_rebuilt_index(built: Path) -> None:
    reader = Index.open(built, encoder=FakeEncoder())
    assert {h.path for h in reader.search("lighthouse bread", k=5)} == set(OLD)
    _rebuild(built, NEW)
    for mode in ("dense", "bm25", "hybrid"):
        found = {h.path for h in reader.search("lighthouse bread volcano glacier", k=5, mode=mode)}
        assert found == set(NEW), mode
    assert reader.get(list(OLD)) == []  # deleted documents' text is gone too
    assert reader.count() == {"documents": 2, "chunks": 2, "embedded": 2}
    reader.close()


def test_a_write_through_an_index_opened_before_a_rebuild_lands_in_the_new_one(built: Path) -> None:
    """The worst case: a long-lived Index adds a record after another process rebuilt, then a normal writer adds one
    more. Every document must still find itself by its own text, and nothing else must."""
    old = Index.open(built, encoder=FakeEncoder())
    old.search("lighthouse", k=1)  # it has read the index as it was
    _rebuild(built, {"volcano": NEW["volcano"]})
    old.add_documents(_docs({"glacier": NEW["glacier"]}))
    with Index.open(built, encoder=FakeEncoder()) as writer:
        writer.add_documents(_docs({"pasta": "Boil the pasta in salted water for nine minutes."}))
    with Index.open(built, encoder=FakeEncoder()) as fresh:
        texts = {"volcano": NEW["volcano"], "glacier": NEW["glacier"], "pasta": "Boil the pasta in salted water"}
        for key, text in texts.items():
            top = fresh.search(text, k=1, mode="dense")[0]
            assert top.path == key and top.score > 0.6, (key, top)
        assert not fresh.search("lighthouse beam of light ships", k=3, mode="dense", min_score=0.6)
    health = status(str(built))
    assert health.consistent, health.problems
    old.close()


def test_a_write_under_way_when_the_index_is_replaced_stores_nothing(built: Path) -> None:
    index = Index.open(built, encoder=FakeEncoder())

    def documents():  # type: ignore[no-untyped-def]
        yield Document(path="a", text="first of two records", title="a")
        # another process resets the index without taking the write lock (a lock on a network share that did not
        # hold, say): the commit that follows must see it and refuse
        with index.store.transaction():
            index.store.set_meta("instance", "someone-else")
        yield Document(path="b", text="second of two records", title="b")

    with pytest.raises(IndexReplaced, match="again"):
        index.add_documents(documents())
    assert index.store.execute("SELECT count(*) FROM documents WHERE path IN ('a', 'b')").fetchone()[0] == 0
    index.close()


def test_a_vector_file_of_another_index_is_never_trusted(tmp_path: Path, built: Path) -> None:
    """Same generation, same chunk ids, other vectors: only the instance named in the file tells them apart."""
    with Index.create(tmp_path / "other", encoder=FakeEncoder()) as other:
        other.add_documents(_docs(dict(zip(OLD, NEW.values()))))  # the same ids and chunk ids, other texts
    assert (
        json.loads((built / VECTORS_STATE).read_text())["generation"]
        == json.loads((tmp_path / "other" / VECTORS_STATE).read_text())["generation"]
    )
    for name in (VECTORS, VECTORS_STATE):
        shutil.copy(tmp_path / "other" / name, built / name)
    with Index.open(built, encoder=FakeEncoder()) as index:
        top = index.search(OLD["lighthouse"], k=1, mode="dense")[0]
        assert top.path == "lighthouse" and top.score > 0.9 and not index.vectors.live.trusted
    assert "instance" in json.loads((built / "bm25" / "state.json").read_text())


def test_a_vector_file_ahead_of_the_database_is_not_trusted(built: Path) -> None:
    state = json.loads((built / VECTORS_STATE).read_text())
    (built / VECTORS_STATE).write_text(json.dumps({**state, "generation": state["generation"] + 5}))
    with Index.open(built, encoder=FakeEncoder()) as index:
        assert not index.vectors.live.trusted


def test_status_compares_the_vectors_themselves(built: Path) -> None:
    from searchbert.vectors import FaissFlatIndex

    assert status(str(built)).consistent
    saved = FaissFlatIndex.load(built / VECTORS, 64)
    ids = saved.ids()
    swapped = FaissFlatIndex(64)
    vectors = saved.vectors(ids)
    swapped.add(ids, vectors[::-1].copy())  # the right ids, each with another chunk's vector
    swapped.save(built / VECTORS)
    health = status(str(built))
    assert not health.consistent and any("differ" in p for p in health.problems), health.problems


def test_status_deep_embeds_a_sample_again(built: Path) -> None:
    with Index.open(built, encoder=FakeEncoder()) as index:
        store = index.store
        with store.transaction():  # a stored vector that is not its text's (and the file agrees with it)
            store.execute("UPDATE chunks SET vector = ? WHERE id = (SELECT min(id) FROM chunks)",
                          [np.ones(64, dtype=np.float32).tobytes()])  # fmt: skip
            store.bump_generation()
        index.save_vectors(rebuild=True)
    assert status(str(built)).consistent  # file and database agree ...
    deep = status(str(built), deep=True, encoder=FakeEncoder())
    assert not deep.consistent and any("embed" in p for p in deep.problems), deep.problems


def test_an_index_made_before_instances_were_recorded_adopts_its_files(built: Path, monkeypatch) -> None:
    """Its first write records an instance, and its saved files, generation and all, are kept, not rebuilt."""
    import sqlite3

    import searchbert.stores.faiss as faiss_store

    with sqlite3.connect(built / DATABASE) as db:  # as searchbert wrote it before
        db.execute("DELETE FROM meta WHERE key IN ('instance', 'manifest')")
    for state in (built / VECTORS_STATE, built / "bm25" / "state.json"):
        saved = json.loads(state.read_text())
        del saved["instance"]
        state.write_text(json.dumps(saved))

    def no_rebuild(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the saved vector file was built again")

    monkeypatch.setattr(faiss_store, "_built", no_rebuild)
    with Index.open(built, encoder=FakeEncoder()) as index:
        assert index.instance == "" and index.vectors.live.trusted
        index.add_documents(_docs({"volcano": NEW["volcano"]}))
        assert index.instance and json.loads((built / VECTORS_STATE).read_text())["instance"] == index.instance
        assert index.vectors.live.trusted and index.search(NEW["volcano"], k=1)[0].path == "volcano"
    assert status(str(built)).consistent
