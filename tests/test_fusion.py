"""Hybrid fusion against hand-computed values: reciprocal rank fusion, the convex combination of normalised scores,
and a document fused once when its best dense chunk and its best BM25 chunk differ."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from searchbert import Index
from searchbert.errors import InvalidArgument
from searchbert.records import Document, Fusion
from searchbert.search import _combine, normalise


def test_normalisations() -> None:
    assert normalise([3.0, 1.0, 2.0], "minmax") == [1.0, 0.0, 0.5]
    z = normalise([1.0, 2.0, 3.0], "zscore")
    assert z == pytest.approx([-math.sqrt(1.5), 0.0, math.sqrt(1.5)])
    assert normalise([2.0, 2.0], "minmax") == [1.0, 1.0] and normalise([2.0, 2.0], "zscore") == [0.0, 0.0]
    assert normalise([], "minmax") == []


DENSE = [(1, 0.9), (2, 0.5), (3, 0.1)]
BM25 = [(2, 10.0), (4, 4.0)]
CHUNKS = {1: 1, 2: 2, 3: 3, 4: 4}  # chunk -> document: one chunk each


def _scores(fusion: Fusion, dense=DENSE, bm25=BM25, doc_of=CHUNKS, by_document=False) -> dict[int, float]:  # type: ignore[no-untyped-def]
    return {e.chunk_id: e.score for e in _combine("hybrid", dense, bm25, doc_of, by_document, fusion)}


def test_reciprocal_rank_fusion() -> None:
    got = _scores(Fusion("rrf", k=60))
    assert got == pytest.approx({1: 1 / 61, 2: 1 / 62 + 1 / 61, 3: 1 / 63, 4: 1 / 62})
    assert _scores(Fusion("rrf", k=0))[2] == pytest.approx(1 / 2 + 1 / 1)


def test_convex_combination_of_min_max_scores() -> None:
    # dense min-max: 1 -> 1.0, 2 -> 0.5, 3 -> 0.0; bm25: 2 -> 1.0, 4 -> 0.0; missing: that side's lowest (0.0)
    got = _scores(Fusion("convex", alpha=0.5))
    assert got == pytest.approx({1: 0.5, 2: 0.75, 3: 0.0, 4: 0.0})
    got = _scores(Fusion("convex", alpha=0.8))
    assert got == pytest.approx({1: 0.8, 2: 0.8 * 0.5 + 0.2, 3: 0.0, 4: 0.0})
    assert list(_scores(Fusion("convex", alpha=1.0)))[:1] == [1]  # all dense: dense's order


def test_convex_combination_of_z_scores() -> None:
    dense_z = dict(zip([1, 2, 3], normalise([0.9, 0.5, 0.1], "zscore")))
    bm25_z = {2: 1.0, 4: -1.0}  # two values: +-1
    got = _scores(Fusion("convex", alpha=0.5, norm="zscore"))
    assert got[2] == pytest.approx(0.5 * dense_z[2] + 0.5 * bm25_z[2])
    assert got[1] == pytest.approx(0.5 * dense_z[1] + 0.5 * -1.0)  # not found by BM25: its lowest
    assert got[4] == pytest.approx(0.5 * min(dense_z.values()) + 0.5 * bm25_z[4])


def test_a_document_is_fused_once_when_its_best_chunks_differ() -> None:
    # document 10 has chunk 11 (dense's best) and chunk 12 (BM25's best); document 20 has chunk 21
    dense, bm25, doc_of = [(11, 0.9), (21, 0.8), (12, 0.1)], [(12, 5.0), (21, 4.0)], {11: 10, 12: 10, 21: 20}
    fused = _combine("hybrid", dense, bm25, doc_of, True, Fusion("rrf", k=60))
    assert len(fused) == 2  # not split into two hits, not counted twice
    first, second = fused
    assert (first.dense_rank, first.bm25_rank) == (1, 1) and first.score == pytest.approx(2 / 61)
    assert doc_of[second.chunk_id] == 20 and second.score == pytest.approx(2 / 62)
    convex = _combine("hybrid", dense, bm25, doc_of, True, Fusion("convex", alpha=0.5))
    assert [doc_of[e.chunk_id] for e in convex] == [10, 20] and convex[0].score == pytest.approx(1.0)
    # ranked by chunks instead, the two chunks of document 10 are two entries
    assert len(_combine("hybrid", dense, bm25, doc_of, False, Fusion("rrf", k=60))) == 3


def test_bad_fusions_are_refused() -> None:
    for bad in ({"method": "max"}, {"alpha": 1.5}, {"norm": "rank"}, {"k": -1}):
        with pytest.raises(InvalidArgument):
            Fusion(**bad)  # type: ignore[arg-type]


def test_an_index_keeps_its_fusion_and_a_search_can_override_it(tmp_path: Path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    with Index.create(tmp_path / "ix", encoder=fake_encoder) as index:
        index.add_documents(Document(path=f"d{i}", text=f"volcano lava note {i} " * (i + 1)) for i in range(6))
        index.set_fusion(Fusion("convex", alpha=0.3, norm="zscore"))
    with Index.open(tmp_path / "ix", encoder=fake_encoder) as index:
        assert index.fusion == Fusion("convex", alpha=0.3, norm="zscore")
        own = index.search("volcano lava", k=6, mode="hybrid")
        rrf = index.search("volcano lava", k=6, mode="hybrid", fusion=Fusion("rrf", k=60))
        for h in rrf:
            assert h.score == pytest.approx(sum(1 / (60 + r) for r in (h.dense_rank, h.bm25_rank) if r))
        assert [h.score for h in own] != [h.score for h in rrf]


def test_one_fusion_default_everywhere_and_a_lone_candidate_is_the_best() -> None:
    from searchbert.records import Fusion
    from searchbert.search import DEFAULT_FUSION, normalise
    from searchbert.server.app import FusionSpec

    assert Fusion(alpha=0.3) == Fusion("convex", alpha=0.3, norm="minmax")  # not RRF, silently
    assert Fusion() == DEFAULT_FUSION and FusionSpec().model_dump() == DEFAULT_FUSION.to_dict()
    assert Fusion(**FusionSpec(alpha=0.3).model_dump()) == Fusion(alpha=0.3)  # {"fusion": {"alpha": 0.3}} over HTTP
    assert normalise([3.1], "minmax") == [1.0] and normalise([2.0, 2.0], "minmax") == [1.0, 1.0]


def test_a_perfect_match_that_is_the_only_candidate_scores_one(tmp_path) -> None:
    from searchbert import Index
    from searchbert.records import Document, Filters

    from .conftest import FakeEncoder

    notes = [Document(f"notes/n{i}.md", f"note {i} on compiler linking flags") for i in range(8)]
    notes.append(Document("build/b.md", "XJ4721 fails at compiler linking"))
    with Index.create(tmp_path / "ix", encoder=FakeEncoder()) as ix:
        ix.add_documents(notes)
        only = Filters(paths=("build*",))
        hits = ix.search("XJ4721 compiler linking", k=3, filters=only)
        assert [h.path for h in hits] == ["build/b.md"] and hits[0].score == 1.0
        assert ix.search("XJ4721 compiler linking", k=3, filters=only, min_score=0.1)
