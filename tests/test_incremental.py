"""Incremental indexing with the counting fake encoder: what is (not) embedded again, removal, refusal to mix."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from searchbert import Index, health
from searchbert.errors import IncompatibleIndex, IndexLocked
from searchbert.folders import index_paths
from searchbert.index import VECTORS, VECTORS_STATE
from searchbert.locking import LOCK
from searchbert.records import Filters
from searchbert.vectors import NumpyIndex, nearest

from .conftest import DOCS, FakeEncoder, write_tree


@pytest.fixture
def setup(tmp_path: Path, docs_dir: Path) -> tuple[Index, FakeEncoder, Path]:
    enc = FakeEncoder()
    ix = Index.create(tmp_path / "ix", encoder=enc)
    ix.add([docs_dir])
    enc.calls.clear()
    return ix, enc, docs_dir


def _consistent(ix: Index) -> None:
    """The vector store holds exactly the embedded chunks (those waiting for a vector are found by words)."""
    stored = sorted(r[0] for r in ix.store.db.execute("SELECT id FROM chunks WHERE length(vector) > 0"))
    assert sorted(ix.vectors.ids().tolist()) == stored


def test_no_op_rerun_embeds_nothing(setup) -> None:
    ix, enc, docs = setup
    report = ix.add([docs])
    assert enc.embedded == []
    assert (report.added, report.updated, report.unchanged, report.removed) == (0, 0, len(DOCS), 0)


def test_one_changed_file_embeds_only_its_chunks(setup) -> None:
    ix, enc, docs = setup
    (docs / "ops/keys.md").write_text("# Rotating signing keys\n\nNew procedure: use the hardware token.\n")
    report = ix.add([docs])
    assert report.updated == 1 and report.unchanged == len(DOCS) - 1
    # the chunk is embedded with its document's title in front (the default title prefix)
    assert enc.embedded == [
        "Rotating signing keys\n# Rotating signing keys\n\nNew procedure: use the hardware token.\n"
    ]
    assert ix.search("hardware token", k=1)[0].path.endswith("ops/keys.md")
    assert "retire the old key" not in " ".join(h.text for h in ix.search("retire old key", k=10))
    _consistent(ix)


def test_touched_but_identical_file_is_not_embedded(setup) -> None:
    ix, enc, docs = setup
    os.utime(docs / "cooking/pasta.md", (1e9, 1e9))
    assert ix.add([docs]).unchanged == len(DOCS) and enc.embedded == []
    assert ix.store.document(str(docs / "cooking/pasta.md")).mtime == 1e9  # the fast path holds next time


def test_new_and_deleted_files(setup) -> None:
    ix, enc, docs = setup
    (docs / "ops/backup.txt").unlink()
    (docs / "new.md").write_text("Fresh document about lighthouses.")
    report = ix.add([docs])
    assert (report.added, report.removed) == (1, 1)
    assert enc.embedded == ["Fresh document about lighthouses.\nFresh document about lighthouses."]
    hits = ix.search("backup restore", k=10)
    assert len(hits) == len(DOCS) and all(not h.path.endswith("backup.txt") for h in hits)
    _consistent(ix)


def test_several_roots_and_remove(tmp_path: Path, setup) -> None:
    ix, _enc, docs = setup
    other = write_tree(tmp_path / "other", {"x.md": "Lighthouse keepers", "sub/y.md": "Lighthouse lamps"})
    ix.add([other])
    assert ix.count()["documents"] == len(DOCS) + 2
    ix.add([docs])  # re-indexing one root leaves the other alone
    assert ix.count()["documents"] == len(DOCS) + 2
    assert ix.remove([other / "sub"]) == 1
    assert ix.remove([docs / "cooking" / "pasta.md"]) == 1
    assert ix.count()["documents"] == len(DOCS)
    _consistent(ix)


def test_identical_text_in_two_files_is_stored_for_both(tmp_path: Path) -> None:
    enc = FakeEncoder()
    root = write_tree(tmp_path / "d", {"a.md": "same words here", "b/a.md": "same words here"})
    ix = Index.create(tmp_path / "ix", encoder=enc)
    assert ix.add([root]).added == 2
    assert {Path(h.path).relative_to(root).as_posix() for h in ix.search("same words", k=5)} == {"a.md", "b/a.md"}


def test_another_model_or_chunking_is_refused_and_rebuild_starts_over(setup) -> None:
    ix, _, docs = setup
    ix.close()
    with pytest.raises(IncompatibleIndex, match="--rebuild"):
        index_paths(ix.path, [docs], encoder=FakeEncoder(dimension=32, model_id="fake/other"))
    with pytest.raises(IncompatibleIndex, match="--rebuild"):
        index_paths(ix.path, [docs], encoder=FakeEncoder(), overlap=3)
    other = FakeEncoder(dimension=32, model_id="fake/other")
    report = index_paths(ix.path, [docs], encoder=other, rebuild=True)
    assert report.added == len(DOCS)
    assert Index.open(ix.path, encoder=other).manifest.model_id == "fake/other"


class Boom(RuntimeError):
    pass


def test_a_crash_mid_run_keeps_committed_batches_and_resume_embeds_the_rest(tmp_path: Path) -> None:
    files = {f"doc{i:03}.md": f"document number {i} about topic {i % 7}" for i in range(60)}
    root = write_tree(tmp_path / "d", files)
    enc = FakeEncoder()
    ix = Index.create(tmp_path / "ix", encoder=enc)
    real_encode, calls = enc.encode, []

    def failing(texts, **kw):
        calls.append(len(texts))
        if len(calls) == 3:
            raise Boom("killed")
        return real_encode(texts, **kw)

    enc.encode = failing  # type: ignore[method-assign]
    with pytest.raises(Boom):
        ix.add([root], commit_chunks=10)
    # every document landed by its words first; two batches of ten vectors landed, the third did not
    assert ix.count() == {"documents": 60, "chunks": 60, "embedded": 20}
    ix.close()

    enc2 = FakeEncoder()
    again = Index.open(ix.path, encoder=enc2)
    _consistent(again)
    hits = again.search("document number 59", k=3)  # not embedded: found by its words, and said so
    assert hits[0].path.endswith("doc059.md") and not hits[0].embedded
    enc2.calls.clear()
    report = again.add([root])
    assert report.added == 0 and report.unchanged == 60 and report.chunks_embedded == 40 and len(enc2.embedded) == 40
    assert again.count()["embedded"] == 60 and again.search("document number 59", k=1)[0].embedded
    _consistent(again)


def test_status_reports_and_repair_rewrites_the_vector_file(setup) -> None:
    ix, _, _ = setup
    ix.close()
    info = health.status(str(ix.path))
    assert info.consistent and info.documents == len(DOCS) and info.vectors == info.chunks
    assert info.vector_file == "flat, current" and info.bytes_on_disk > 0
    (ix.path / VECTORS).write_bytes(b"garbage")
    assert health.status(str(ix.path)).vector_file.startswith("missing or unreadable")
    assert health.status(str(ix.path)).consistent  # searches still see every vector, rebuilt from SQLite
    with Index.open(ix.path) as raw:
        raw.store.db.execute("DELETE FROM chunks WHERE id = (SELECT min(id) FROM chunks)")
    broken = health.status(str(ix.path))
    assert not broken.consistent and "do not have the chunks" in broken.problems[0]
    fixed = health.repair(str(ix.path))
    assert fixed.consistent and fixed.vector_file == "flat, current" and fixed.documents == len(DOCS) - 1


def test_stale_vector_file_is_rebuilt_not_trusted(setup) -> None:
    ix, enc, docs = setup
    before = (ix.path / VECTORS).read_bytes(), (ix.path / VECTORS_STATE).read_text()
    (docs / "new.md").write_text("zebra crossing")
    ix.add([docs])
    (ix.path / VECTORS).write_bytes(before[0])  # as if killed between the SQLite commit and the FAISS save
    (ix.path / VECTORS_STATE).write_text(before[1])
    fresh = Index.open(ix.path, encoder=enc)
    assert fresh.search("zebra crossing", k=1)[0].path.endswith("new.md")
    _consistent(fresh)


def test_second_writer_times_out_with_a_clear_error(setup) -> None:
    from filelock import FileLock

    ix, _, docs = setup
    with FileLock(str(ix.path / LOCK)), pytest.raises(IndexLocked, match="another process"):
        ix.add([docs], lock_timeout=0.2)
    assert ix.add([docs]).unchanged == len(DOCS)


def test_vectors_round_trip_through_sqlite(setup) -> None:
    """What the encoder returned comes back bit for bit, in batches of awkward size, and by id."""
    ix, enc, _ = setup
    dim = ix.manifest.dimension
    parts = list(ix.store.all_vectors(dim, batch=2))
    ids, rebuilt = np.concatenate([i for i, _ in parts]), np.concatenate([v for _, v in parts])
    rows = ix.store.execute(
        "SELECT d.title, c.text FROM chunks c JOIN documents d ON d.id = c.document_id ORDER BY c.id"
    ).fetchall()
    assert len(rows) == len(DOCS) and ids.tolist() == sorted(ids.tolist())
    np.testing.assert_array_equal(rebuilt, enc.encode([f"{title}\n{text}" for title, text in rows]))
    again_ids, again = ix.store.vectors_of(ids[::-1].tolist(), dim)
    order = np.argsort(again_ids)
    np.testing.assert_array_equal(again[order], rebuilt)


@pytest.mark.parametrize("kind", ["hnsw", "ivf", "ivf-sq8"])
def test_approximate_index_types_search_filter_and_stay_consistent(tmp_path: Path, kind: str) -> None:
    files = {f"d{i:03}.md": f"document {i} talks about subject {i % 11} and item {i % 5}" for i in range(400)}
    root = write_tree(tmp_path / "d", files)
    enc = FakeEncoder()
    ix = Index.create(tmp_path / "ix", encoder=enc, index_type=kind)
    ix.add([root])
    ix.close()
    again = Index.open(ix.path, encoder=enc)
    assert not again.vectors.live.base.exact and len(again.vectors) == 400
    top = again.search("subject 7 item 2", k=5, mode="dense")  # the vector index itself, against exact search
    oracle = NumpyIndex(enc.dimension)
    for ids, vectors in again.store.all_vectors(enc.dimension):
        oracle.add(ids, vectors)
    exact = nearest(oracle, enc.encode(["subject 7 item 2"]), 5)[0]
    assert len({h.chunk_id for h in top} & {i for i, _ in exact}) >= 3
    # a narrow filter on an approximate index still fills k (the index searches more of itself)
    narrow = again.search("subject 7", k=4, filters=Filters(paths=("d00*",)))
    assert len(narrow) == 4 and all(Path(h.path).name.startswith("d00") for h in narrow)
    info = health.status(str(ix.path))
    assert info.consistent and "estimated recall@10" in info.vector_file  # the calibration is shown
    (root / "d000.md").write_text("a changed document about lighthouses")
    assert again.add([root]).updated == 1  # the change is applied to the saved index (HNSW: rebuilt)
    assert Index.open(ix.path, encoder=enc).search("lighthouses", k=1)[0].path.endswith("d000.md")


def test_the_next_batch_is_chunked_while_this_one_is_embedded(tmp_path: Path) -> None:
    files = {f"doc{i:03}.md": f"document number {i} about topic {i % 7}" for i in range(30)}
    root = write_tree(tmp_path / "d", files)
    main_thread = threading.get_ident()
    embedding, chunked_meanwhile = threading.Event(), threading.Event()
    threads: set[int] = set()

    class Overlapping(FakeEncoder):
        def token_spans(self, text: str) -> list[tuple[int, int]]:
            if embedding.is_set():
                chunked_meanwhile.set()
            return super().token_spans(text)

        def encode(self, texts, **kw):
            threads.add(threading.get_ident())
            embedding.set()
            # the first batch waits (at most 10 s) for the reader to chunk a document of the next one
            chunked_meanwhile.wait(10)
            embedding.clear()
            return super().encode(texts, **kw)

    enc = Overlapping()
    ix = Index.create(tmp_path / "ix", encoder=enc)
    report = ix.add([root], commit_chunks=10)
    assert chunked_meanwhile.is_set() and main_thread not in threads
    assert report.added == 30 and ix.count()["documents"] == 30 and len(enc.embedded) == 30
    _consistent(ix)


def test_an_interrupt_stops_the_embedding_thread_within_a_slice(tmp_path: Path) -> None:
    import signal
    import time

    from searchbert.indexing import EMBED_SLICE

    files = {f"doc{i:04}.md": f"document number {i} about topic {i % 7}" for i in range(EMBED_SLICE * 8 + 10)}
    root = write_tree(tmp_path / "d", files)
    pressed = threading.Event()

    class SlowThenCtrlC(FakeEncoder):
        def encode(self, texts, **kw):
            if not pressed.is_set():  # the user presses Ctrl-C while the first batch is being embedded
                pressed.set()
                os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.005 * len(texts))  # 0.3 s a slice, 2.6 s the whole batch
            return super().encode(texts, **kw)

    enc = SlowThenCtrlC()
    ix = Index.create(tmp_path / "ix", encoder=enc)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored where tests run in the background
    try:
        with pytest.raises(KeyboardInterrupt):
            ix.add([root], commit_chunks=EMBED_SLICE * 8)
    finally:
        signal.signal(signal.SIGINT, before)
    deadline = time.monotonic() + 2
    while any(t.name.startswith("searchbert-embed") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith("searchbert-embed") for t in threading.enumerate())
    assert len(enc.calls) <= 2  # one slice (maybe two), not the batch's eight
    assert ix.count() == {"documents": len(files), "chunks": len(files), "embedded": 0}  # words in, no vector half-in


_NEVER_RETURNS = """
import signal, sys, threading
from pathlib import Path
from searchbert import Index
from tests.conftest import FakeEncoder

class NeverReturns(FakeEncoder):  # a model load or an encode call that hangs (a lock never released, a stuck device)
    def encode(self, texts, **kw):
        Path(sys.argv[2]).touch()
        threading.Event().wait()

def interrupted(signum, frame):
    raise KeyboardInterrupt

signal.signal(signal.SIGTERM, interrupted)  # as `searchbert watch` does
Index.create(Path(sys.argv[1]) / "ix", encoder=NeverReturns()).add([Path(sys.argv[1]) / "d"])
"""


def test_a_stop_does_not_wait_for_an_encode_call_that_never_returns(tmp_path: Path) -> None:
    """The process exits on a stop even while its embedding thread is stuck: the interpreter must not join it (a
    watcher killed in CI once waited on it past 30 s)."""
    import signal
    import subprocess
    import sys
    import time

    write_tree(tmp_path / "d", {"a.md": "glaciers carve fjords", "b.md": "lighthouses guide ships"})
    root = Path(__file__).resolve().parent.parent
    embedding = tmp_path / "embedding"
    run = subprocess.Popen([sys.executable, "-c", _NEVER_RETURNS, str(tmp_path), str(embedding)], cwd=root,
                           env={**os.environ, "PYTHONPATH": str(root)}, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not embedding.exists():
            assert run.poll() is None and time.monotonic() < deadline, run.stderr.read() if run.stderr else ""
            time.sleep(0.05)
        run.send_signal(signal.SIGTERM)
        run.wait(20)
    finally:
        run.kill()
    assert "KeyboardInterrupt" in run.stderr.read()  # type: ignore[union-attr]
    ix = Index.open(tmp_path / "ix", encoder=FakeEncoder())
    assert ix.count() == {"documents": 2, "chunks": 2, "embedded": 0}  # the words are in, no vector half-in


def test_each_stored_vector_is_its_own_chunks_embedding(tmp_path: Path) -> None:
    from searchbert.indexing import EMBED_SLICE

    # lengths all over the place, more than one slice: the batch is embedded longest first and put back in order
    files = {f"d{i:03}.md": " ".join(f"word{j}" for j in range(1 + (i * 7) % 30)) for i in range(EMBED_SLICE * 2 + 5)}
    root = write_tree(tmp_path / "d", files)
    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder(), title_prefix=False)  # embedded text = stored text
    ix.add([root])
    rows = ix.store.execute("SELECT id, text FROM chunks ORDER BY id").fetchall()
    ids, stored = ix.store.vectors_of([r[0] for r in rows], ix.manifest.dimension)
    by_id = dict(zip(ids.tolist(), stored))
    expected = FakeEncoder().encode([text for _, text in rows])
    for (chunk_id, _), vector in zip(rows, expected):
        np.testing.assert_allclose(by_id[chunk_id], vector, atol=1e-6)


def test_a_text_is_embedded_once_whatever_document_holds_it(tmp_path: Path) -> None:
    """A licence header in every file is embedded once; editing one paragraph of a long document embeds the chunks
    whose text changed, not the whole document (counted in what the encoder was asked)."""
    header = ("Licensed under the Apache License, Version 2.0 (the License); you may not use this file except in "
              "compliance with the License.")  # fmt: skip
    words = ["oak", "mill", "harbour", "lantern", "meadow", "copper", "falcon", "glacier"]
    paragraphs = [f"Paragraph {i} tells of the {w} and the river by the {w} mill." for i, w in enumerate(words)]
    files = {f"f{i}.md": f"{header}\n\nFile {i} is about topic number {i}.\n" for i in range(5)}
    files["long.md"] = "\n\n".join(paragraphs) + "\n"
    docs = write_tree(tmp_path / "docs", files)
    enc = FakeEncoder(max_tokens=30)
    ix = Index.create(tmp_path / "ix", encoder=enc, title_prefix=False)
    first = ix.add([docs])
    assert sum(header in t for t in enc.embedded) == 1, "the header chunk is embedded once for five files"
    assert first.chunks_embedded == len(set(enc.embedded)) < ix.count()["chunks"]
    long_chunks = len(ix.store.chunk_ids(ix.store.document(str(docs / "long.md")).id))
    assert long_chunks >= 4
    enc.calls.clear()
    edited = paragraphs.copy()
    edited[4] = "Paragraph 4 now tells of a copper kettle instead."
    (docs / "long.md").write_text("\n\n".join(edited) + "\n")
    again = ix.add([docs])
    assert again.updated == 1 and 1 <= again.chunks_embedded <= 2 < long_chunks
    assert len(enc.embedded) == again.chunks_embedded
    assert all("copper kettle" in t or "Paragraph 4" in t or "Paragraph 5" in t for t in enc.embedded)
    hits = ix.search(edited[4], k=1, mode="dense", chunks=True)
    assert hits[0].path.endswith("long.md") and "copper kettle" in hits[0].text
    assert health.status(str(ix.path)).consistent
    ix.close()
