"""Words first: a write commits every document by its words before embedding any, so a folder answers BM25 (and hybrid,
by words alone) within seconds; the vectors fill in behind, and a stopped run leaves both parts for the next."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from searchbert import Index, health
from searchbert.search import _combine

from .conftest import TOPICS, FakeEncoder, write_tree


class _Held(FakeEncoder):
    """Embeds its first batch, then waits at the second until released (a run caught half way)."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting, self.release = threading.Event(), threading.Event()

    def encode(self, texts, **kw):
        if self.calls:
            self.waiting.set()
            assert self.release.wait(30)
        return super().encode(texts, **kw)


def _folder(tmp_path: Path, n: int = 40) -> Path:
    files = {f"page{i:03}.md": f"# Page {i} on the {TOPICS[i % len(TOPICS)]}\n\nNotes number {i}." for i in range(n)}
    return write_tree(tmp_path / "docs", files)


def test_a_reader_finds_every_document_while_the_vectors_are_still_being_made(tmp_path: Path) -> None:
    docs, enc = _folder(tmp_path), _Held()
    Index.create(tmp_path / "ix", encoder=enc).close()
    writer = Index.open(tmp_path / "ix", encoder=enc)
    done = threading.Thread(target=writer.add, args=([docs],), kwargs={"commit_chunks": 10})
    done.start()
    try:
        assert enc.waiting.wait(30)  # ten chunks embedded (committed as the next batch is embedded), the rest waiting
        with Index.open(tmp_path / "ix", encoder=FakeEncoder()) as reader:
            deadline = time.monotonic() + 10
            while reader.count()["embedded"] < 10 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert reader.count() == {"documents": 40, "chunks": 40, "embedded": 10}
            for mode in ("bm25", "hybrid"):
                hits = reader.search("Page 37 on the violin", k=1, mode=mode)
                assert hits[0].path.endswith("page037.md"), mode
            hybrid = reader.search("violin notes", k=40, mode="hybrid")
            violins = {str(p) for p in docs.glob("*.md") if "violin" in p.read_text()}
            assert len(hybrid) == 40 and violins <= {h.path for h in hybrid[: len(violins)]}
            assert any(not h.embedded for h in hybrid) and any(h.embedded for h in hybrid)
            assert all(h.dense_score is None for h in hybrid if not h.embedded)
            assert reader.search("violin notes", k=40, mode="dense")  # what is embedded answers by meaning
            assert all(h.embedded for h in reader.search("violin notes", k=40, mode="dense"))
        info = health.status(str(tmp_path / "ix"))
        assert info.consistent and (info.chunks, info.embedded, info.vectors) == (40, 10, 10)
    finally:
        enc.release.set()
        done.join(30)
    writer.close()
    with Index.open(tmp_path / "ix", encoder=FakeEncoder()) as after:
        assert after.count() == {"documents": 40, "chunks": 40, "embedded": 40}
        assert all(h.embedded for h in after.search("violin notes", k=40, mode="hybrid"))


def test_words_only_hits_are_ranked_by_bm25_alone_in_hybrid() -> None:
    # chunk 1 and 2: found by both; 3: not embedded yet, the best by BM25; 4: embedded, found by BM25 only
    dense = [(1, 0.9), (2, 0.5)]
    bm25 = [(3, 12.0), (2, 9.0), (1, 3.0), (4, 2.0)]
    doc_of = {1: 1, 2: 2, 3: 3, 4: 4}
    fused = {e.chunk_id: e.score for e in _combine("hybrid", dense, bm25, doc_of, True, words_only={3})}
    assert fused[3] == 1.0  # min-max BM25 alone: the top of its list, as in a BM25 search
    before = {e.chunk_id: e.score for e in _combine("hybrid", dense, bm25, doc_of, True)}
    assert before[3] == 0.5  # without the mark it would lose half its score for the vector it cannot have yet
    assert fused[4] == before[4]  # an embedded chunk dense search did not find is fused as before


def test_the_embedding_pass_shows_chunks_per_second_and_the_time_left(tmp_path: Path, capsys) -> None:
    docs = _folder(tmp_path, 30)
    with Index.create(tmp_path / "ix", encoder=FakeEncoder()) as ix:
        ix.add([docs], progress=True)
    err = capsys.readouterr().err
    assert "reading" in err and "30/30" in err and "file" in err
    assert "embedding" in err and "chunk/s" in err and "<" in err  # tqdm's rate, and its elapsed<left


def test_explain_says_a_hit_was_found_by_words_only() -> None:
    from searchbert.cli.query import _explain
    from searchbert.records import Hit

    hit = Hit(1, 0.8, "a.md", "A", "text", 1, 2, 7, bm25_score=3.2, bm25_rank=1, fused_score=0.8, embedded=False)
    assert _explain(hit).startswith("dense - (not embedded yet: words only)  bm25 3.2000 (#1)")
