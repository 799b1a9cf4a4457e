"""Search modes (dense, BM25, hybrid), filters inside the search, thresholds and --explain, with the fake encoder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from searchbert import Index
from searchbert.errors import InvalidArgument
from searchbert.records import Filters, Fusion

from .conftest import FakeEncoder, write_tree

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
]


@pytest.fixture
def big(tmp_path: Path) -> Index:
    """300 documents, a handful of chunks each; 3 of them (1%) live under guides/ and are .txt files."""
    files = {}
    for i in range(300):
        words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(30))
        body = "\n\n".join(f"Section {s} of note {i}: {words}." for s in range(3))
        files[f"notes/n{i:03}.md"] = f"# Note {i}\n\n{body}\n"
    for i in range(3):
        files[f"guides/install-{i}.txt"] = f"Installation guide {i}: unpack, configure, run alpha. Zeta omega {i}."
    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder(max_tokens=24))
    ix.add([write_tree(tmp_path / "docs", files)])
    return ix


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_a_filter_matching_1_percent_still_returns_k(big: Index, mode: str) -> None:
    # the query matches the other 99% better: only filtering inside the search can return the guides
    query = "alpha bravo charlie delta"
    unfiltered = big.search(query, k=20, mode=mode)
    assert len(unfiltered) == 20 and not any("/guides/" in h.path for h in unfiltered)
    hits = big.search(query, k=3, mode=mode, filters=Filters(paths=("guides/*",)))
    assert len(hits) == 3 and all("/guides/" in h.path for h in hits)
    chunks = big.search(query, k=3, mode=mode, chunks=True, filters=Filters(exts=("txt",)))
    assert len(chunks) == 3 and all(h.path.endswith(".txt") for h in chunks)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_modes_rank_documents_once_and_in_order(big: Index, mode: str) -> None:
    hits = big.search("installation guide unpack configure alpha", k=10, mode=mode)
    assert hits[0].path.endswith(".txt")
    assert len({h.path for h in hits}) == len(hits) == 10
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hybrid_is_reciprocal_rank_fusion_of_both(big: Index) -> None:
    hits = big.search("zeta omega installation", k=8, mode="hybrid", fusion=Fusion("rrf", k=60))
    assert len(hits) == 8
    for h in hits:
        want = sum(1 / (60 + r) for r in (h.dense_rank, h.bm25_rank) if r is not None)
        assert h.fused_score == pytest.approx(want) == pytest.approx(h.score)
        assert h.dense_rank is not None or h.bm25_rank is not None


def test_bm25_finds_exact_tokens(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "d", {"err.md": "Failure code ERR_4711 means the disk is full.", "x.md": "Disks."})
    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder())
    ix.add([root])
    [hit] = ix.search("ERR_4711", k=1, mode="bm25")
    assert hit.path.endswith("err.md") and hit.bm25_rank == 1 and hit.dense_score is None


def test_path_globs_cross_folders_and_match_names(tmp_path: Path) -> None:
    f = Filters(paths=("guides/*",))
    assert f.matches("/r/guides/a/b.md", "/r", 0) and not f.matches("/r/api/guides.md", "/r", 0)
    g = Filters(paths=("*install*",))
    assert g.matches("/r/docs/deep/install-linux.md", "/r", 0) and not g.matches("/r/docs/usage.md", "/r", 0)
    assert Filters(exts=("md", ".TXT")).matches("/r/a.txt", "/r", 0)
    assert not Filters(since=100.0).matches("/r/a.txt", "/r", 99.0)
    assert not Filters()


def test_since_filter_and_min_score(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "d", {"old.md": "apples and pears", "new.md": "apples and plums"})
    os.utime(root / "old.md", (1_000_000, 1_000_000))
    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder())
    ix.add([root])
    hits = ix.search("apples", k=5, filters=Filters(since=time.time() - 3600))
    assert [Path(h.path).name for h in hits] == ["new.md"]
    assert ix.search("apples pears", k=5, min_score=2.0) == []  # cosine never exceeds 1: "nothing relevant"
    top = ix.search("apples pears", k=5)
    assert ix.search("apples pears", k=5, min_score=top[0].score) == top[:1]


def test_filters_matching_nothing_and_bad_options(big: Index) -> None:
    assert big.search("alpha", k=5, filters=Filters(paths=("nowhere/*",))) == []
    with pytest.raises(InvalidArgument):
        big.search("alpha", mode="sparse")
    with pytest.raises(InvalidArgument):
        big.search("alpha", rerank=None, candidates=0)


def test_index_keeps_bm25_current_through_incremental_runs(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "d", {"a.md": "kiwi fruit", "b.md": "mango fruit"})
    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder())
    ix.add([root])
    (root / "b.md").write_text("papaya fruit")
    (root / "c.md").write_text("guava fruit")
    (root / "a.md").unlink()
    ix.add([root])
    ix.close()
    again = Index.open(ix.path, encoder=FakeEncoder())
    assert again.search("mango", k=5, mode="bm25") == [] and again.search("kiwi", k=5, mode="bm25") == []
    assert [Path(h.path).name for h in again.search("papaya guava", k=5, mode="bm25")] == ["b.md", "c.md"] or [
        Path(h.path).name for h in again.search("papaya guava", k=5, mode="bm25")
    ] == ["c.md", "b.md"]


def test_cli_query_modes_filters_and_explain(big: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    from searchbert import cli
    from searchbert.cli import query

    monkeypatch.setattr(query, "open_index", lambda path: Index.open(big.path, encoder=FakeEncoder(max_tokens=24)))
    run = CliRunner().invoke
    out = run(
        cli.main,
        [
            "query",
            "alpha bravo",
            "--index",
            str(big.path),
            "--mode",
            "hybrid",
            "--explain",
            "--path",
            "guides/*",
            "-k",
            "2",
        ],
    )
    assert out.exit_code == 0, out.output
    assert out.output.count("guides/install-") == 2 and "fused" in out.output and "dense" in out.output
    out = run(cli.main, ["query", "alpha", "--index", str(big.path), "--ext", "rst"])
    assert "No results" in out.output
    out = run(cli.main, ["query", "alpha", "--index", str(big.path), "--since", "not-a-date"])
    assert out.exit_code == 2


def test_bm25_built_from_a_stream_scores_like_lucene() -> None:
    from searchbert.bm25 import BM25Retriever

    texts = {
        1: "The cats are running in the garden",
        2: "A dog runs after the cat",
        3: "Gardens need water and sun",
        4: "the and of",  # nothing but stopwords: an empty document, never a match
    }
    streamed = BM25Retriever.from_rows((i, t) for i, t in texts.items())  # a generator: read once
    listed = BM25Retriever(list(texts), list(texts.values()))
    assert streamed.ids == [1, 2, 3, 4]
    hits = streamed.search_many(["running cats"], 4)[0]
    assert hits == listed.search_many(["running cats"], 4)[0]
    assert [i for i, _ in hits] == [1, 2]  # stemming: running~runs, cats~cat; both docs have both, doc 1 is shorter
    # Lucene's BM25 by hand for doc 2 ("dog run after cat" once stopwords go; tf = 1 for both query terms):
    # idf = ln(1 + (N - n + 0.5) / (n + 0.5)), term score = idf * tf / (tf + k1 * (1 - b + b * len / avg_len))
    import math

    n_docs, avg_len = 4, (3 + 4 + 4 + 1) / 4  # the stopword-only doc counts one (an empty token)
    idf = math.log(1 + (n_docs - 2 + 0.5) / (2 + 0.5))  # "run" and "cat" are each in docs 1 and 2
    from searchbert.bm25 import K1, B

    assert hits[1][1] == pytest.approx(2 * idf / (1 + K1 * (1 - B + B * 4 / avg_len)), rel=1e-4)


def test_bm25_settings_are_recorded_and_changing_them_embeds_nothing(tmp_path: Path) -> None:
    import json

    from searchbert.bm25 import K1, B
    from searchbert.folders import index_paths

    docs = write_tree(tmp_path / "docs", {f"d{i}.md": f"# Fruit\n\napple {'apple ' * i} pear" for i in range(6)})
    enc = FakeEncoder()
    index_paths(tmp_path / "ix", [docs], encoder=enc)
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["lexical"] == {"k1": K1, "b": B} == {"k1": 1.5, "b": 0.75}
    with Index.open(tmp_path / "ix", encoder=enc) as ix:
        before = {h.path: h.score for h in ix.search("apple", k=6, mode="bm25")}
    enc.calls.clear()
    index_paths(tmp_path / "ix", [docs], encoder=enc, bm25_k1=0.5, bm25_b=0.0)
    assert enc.embedded == []
    assert json.loads((tmp_path / "ix" / "manifest.json").read_text())["lexical"] == {"k1": 0.5, "b": 0.0}
    with Index.open(tmp_path / "ix", encoder=enc) as ix:
        after = {h.path: h.score for h in ix.search("apple", k=6, mode="bm25")}
    assert before.keys() == after.keys() and before != after
    # with b = 0, Lucene's BM25 term weight is idf * tf / (tf + k1), whatever the length: d3 has tf 4, d1 tf 2
    ratio = after[str(docs / "d3.md")] / after[str(docs / "d1.md")]
    assert ratio == pytest.approx((4 / (4 + 0.5)) / (2 / (2 + 0.5)), rel=1e-4)


def test_an_index_without_recorded_bm25_settings_keeps_the_ones_it_was_built_with(tmp_path: Path) -> None:
    import json
    import sqlite3

    from searchbert.bm25 import LEGACY_B, LEGACY_K1
    from searchbert.folders import index_paths

    docs = write_tree(tmp_path / "docs", {"a.md": "alpha", "b.md": "bravo"})
    index_paths(tmp_path / "ix", [docs], encoder=FakeEncoder())
    path = tmp_path / "ix" / "manifest.json"
    data = json.loads(path.read_text())
    del data["lexical"]
    path.write_text(json.dumps(data))
    with sqlite3.connect(tmp_path / "ix" / "index.db") as db:  # as an index made before SQLite kept its manifest
        db.execute("DELETE FROM meta WHERE key IN ('manifest', 'instance')")
    assert Index.open(tmp_path / "ix").manifest.lexical == {"k1": LEGACY_K1, "b": LEGACY_B}


@pytest.mark.parametrize("mode", ["dense", "bm25"])
@pytest.mark.parametrize(
    "filters",
    [Filters(paths=("guides/*",)), Filters(exts=("md",)), Filters(paths=("notes/n0*", "guides/*"))],
    ids=["1% (a bitmap inside the search)", "99% (checked on the results)", "34%"],
)
def test_filtered_search_is_the_unfiltered_ranking_cut_to_the_filter(big: Index, mode: str, filters: Filters) -> None:
    """On an exact index, narrow and wide filters alike return what the full ranking holds first among matches."""
    query = "alpha install zeta"
    full = big.search(query, k=big.count()["chunks"], chunks=True, mode=mode)
    rows = dict(big.store.execute("SELECT path, root FROM documents").fetchall())
    matching = [h for h in full if filters.matches(h.path, rows[h.path], 1e12)]
    got = big.search(query, k=5, chunks=True, mode=mode, filters=filters)
    assert len(got) == 5 and {h.chunk_id for h in got} <= {h.chunk_id for h in matching}
    # the same scores in the same order (chunks that tie may come in either order)
    assert [round(h.score, 5) for h in got] == [round(h.score, 5) for h in matching[:5]]
