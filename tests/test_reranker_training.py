"""`searchbert finetune reranker` and how a reranker's score meets the retrieval's: negatives drawn from what the
search finds and never labelled relevant, a blend weight chosen on held-out queries that never makes them worse, and
`eval` showing before and after."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from searchbert import Index
from searchbert.evaluation import _reranked_on_top, evaluate
from searchbert.finetune import Pair, TrainingData
from searchbert.finetune_reranker import WEIGHTS, choose_weight, dev_scores, training_rows
from searchbert.records import Document
from searchbert.rerank import combine

from .conftest import TOPICS, write_topic_pairs


class ScriptedReranker:
    """A Reranker that scores by a table (unknown passages: 0) and counts the passages it read."""

    model_id = "fake/scripted"

    def __init__(self, table: dict[str, float], retrieval_weight: float = 0.0) -> None:
        self.table, self.retrieval_weight, self.read = table, retrieval_weight, 0

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        self.read += len(passages)
        return np.array([self.table.get(p.split()[0], 0.0) for p in passages], dtype=np.float32)


def test_combine_is_the_reranker_at_0_the_retrieval_at_1_and_blind_to_scale() -> None:
    rerank, retrieval = np.array([0.1, 0.9, 0.5]), np.array([30.0, 10.0, 20.0])
    assert list(np.argsort(-combine(rerank, retrieval, 0.0))) == [1, 2, 0]
    assert list(np.argsort(-combine(rerank, retrieval, 1.0))) == [0, 2, 1]
    half = combine(rerank, retrieval, 0.5)
    np.testing.assert_allclose(half, combine(rerank * 1000 - 7, retrieval / 100, 0.5))  # min-max: any scale
    np.testing.assert_allclose(half, [0.5, 0.5, 0.5])
    assert combine(np.array([2.0, 2.0]), np.array([1.0, 1.0]), 0.3).tolist() == [0.0, 0.0]  # no spread: no signal


def _index(tmp_path: Path, fake_encoder) -> Index:
    index = Index.create(tmp_path / "ix", encoder=fake_encoder)
    words = ("alpha", "bravo", "charlie", "delta")
    index.add_documents(Document(path=f"{w}.md", text=f"{w} notes about the volcano") for w in words)
    return index


def test_search_blends_by_the_rerankers_weight_and_skips_it_at_1(tmp_path: Path, fake_encoder) -> None:
    index = _index(tmp_path, fake_encoder)
    table = {"delta": 3.0, "charlie": 2.0, "bravo": 1.0, "alpha": 0.0}
    alone = index.search("volcano", k=4, mode="bm25", rerank=ScriptedReranker(table))
    assert [h.path.split("/")[-1] for h in alone] == ["delta.md", "charlie.md", "bravo.md", "alpha.md"]
    assert [h.rerank_score for h in alone] == [3.0, 2.0, 1.0, 0.0] and alone[0].score == 3.0
    plain = index.search("volcano", k=4, mode="bm25")
    untouched = ScriptedReranker(table, retrieval_weight=1.0)
    kept = index.search("volcano", k=4, mode="bm25", rerank=untouched)
    assert [h.path for h in kept] == [h.path for h in plain] and untouched.read == 0  # never run
    blended = index.search("volcano", k=4, mode="bm25", rerank=ScriptedReranker(table, retrieval_weight=0.5))
    assert all(h.rerank_score == table[Path(h.path).stem] for h in blended)
    assert all(0 <= h.score <= 1 for h in blended)


def test_negatives_come_from_the_pool_and_are_never_labelled_relevant() -> None:
    corpus = {f"d{i}": f"passage {i}" for i in range(20)}
    data = TrainingData([Pair("q", "passage 0", (), "q1")], corpus, {"q1": {"d0", "d1"}}, "test")
    pools = {"q1": [(f"d{i}", 1.0 - i / 10) for i in range(6)]}  # d0..d5 retrieved
    (row,) = training_rows(data.pairs, data, pools, negatives=3, seed=0)
    assert row[:2] == ("q", "passage 0") and len(set(row[2])) == 3
    assert set(row[2]) <= {f"passage {i}" for i in range(2, 6)}  # retrieved, never d0/d1
    given = [Pair("q", "passage 0", ("passage 19",), "q1")]
    (row,) = training_rows(given, data, pools, negatives=3, seed=0)
    assert row[2][0] == "passage 19"  # the pair's own negative first
    (row,) = training_rows(data.pairs, data, {"q1": [("d0", 1.0)]}, negatives=3, seed=0)
    assert len(row[2]) == 3 and not {"passage 0", "passage 1"} & set(row[2])  # a short pool: any unlabelled


def test_the_weight_chosen_on_held_out_queries_never_loses_to_the_retrieval() -> None:
    corpus = {f"d{i}": f"d{i}" for i in range(12)}
    queries = {"a": "query a", "b": "query b"}
    relevant = {"a": {"d5"}, "b": {"d7"}}
    # the retrieval has each relevant passage at rank 6
    pools = {q: [(f"d{i}", 10.0 - n) for n, i in enumerate(order)] for q, order in
             {"a": [0, 1, 2, 3, 4, 5, 6], "b": [0, 1, 2, 3, 4, 7, 8]}.items()}  # fmt: skip
    good = dev_scores(lambda pairs: [1.0 if p in ("d5", "d7") else 0.0 for _, p in pairs], queries, pools,
                      corpus, relevant)  # fmt: skip
    assert good.reranker == pytest.approx(1.0) and good.combined == pytest.approx(1.0)
    assert good.retrieval < 0.5 and good.weight < 1
    bad = dev_scores(lambda pairs: [-float(p[1:]) if p not in ("d5", "d7") else -99.0 for _, p in pairs],
                     queries, pools, corpus, relevant)  # fmt: skip
    assert bad.weight == 1.0 and bad.combined == bad.retrieval  # no blend beat it: the retrieval stays


def test_the_weight_kept_helps_the_held_out_queries_and_costs_nothing_on_the_probe() -> None:
    held = {w: 0.80 - 0.1 * w for w in WEIGHTS}  # the reranker alone is best on the user's queries
    flat = dict.fromkeys(WEIGHTS, 0.5)
    assert choose_weight(held, flat) == 0.0  # nothing lost elsewhere: all of the reranker
    probe = {w: 0.5 - 0.04 * (1 - w) for w in WEIGHTS}  # each tenth less of the search costs 0.004 on the probe
    assert choose_weight(held, probe) == 0.9  # 0.8 would lose 0.008 > 0.005: the reranker gets a tenth
    assert choose_weight({w: 0.7 for w in WEIGHTS}, flat) == 1.0  # no better than the search: left out


def test_reranked_documents_go_on_top_and_the_rest_keep_their_order() -> None:
    run = {"q": {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}}
    merged = _reranked_on_top({"q": {"b": 5.0, "a": 1.0}}, run)
    assert sorted(merged["q"], key=lambda d: -merged["q"][d]) == ["b", "a", "c", "d"]


def test_eval_shows_the_retrieval_before_and_after_reranking(tmp_path: Path, fake_encoder) -> None:
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    docs = {"d1": "volcano eruption eruption alpha", "d2": "volcano eruption bravo", "d3": "volcano charlie"}
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n"
                                               for i, t in docs.items()))  # fmt: skip
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "volcano eruption"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\td3\t1\n")
    reranker = ScriptedReranker({"volcano": 0.0})
    reranker.score = lambda q, ps: np.array([1.0 if "charlie" in p else 0.0 for p in ps])  # type: ignore[method-assign]
    result = evaluate(beir, mode="bm25", encoder=fake_encoder, cache_dir=tmp_path / "cache", rerank=reranker,
                      candidates=3)  # fmt: skip
    assert result.before is not None and result.before["nDCG@10"] == pytest.approx(0.5)  # d3 third: 1 / log2(4)
    assert result.metrics["nDCG@10"] == 1.0
    plain = evaluate(beir, mode="bm25", encoder=fake_encoder, cache_dir=tmp_path / "cache")
    assert plain.before is None and plain.metrics == result.before


@pytest.mark.model
def test_a_fine_tuned_reranker_is_trained_saved_and_used_by_query_and_eval(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    write_topic_pairs(tmp_path / "pairs.jsonl")
    topics = TOPICS
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("SEARCHBERT_INDEX", None)

    def searchbert(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "searchbert", *args], capture_output=True, text=True,
                              timeout=600, env=env, cwd=tmp_path)  # fmt: skip

    model = tmp_path / "reranker"
    general = tmp_path / "general"
    (general / "qrels").mkdir(parents=True)
    (general / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{n}", "text": f"Apples grow in orchard {n}."})
                                                  + "\n" for n in range(3)))  # fmt: skip
    (general / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "where apples grow"}) + "\n")
    (general / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\td1\t1\n")
    trained = searchbert("finetune", "reranker", "pairs.jsonl", "-o", str(model), "--epochs", "1", "--batch-size",
                         "4", "--dev-share", "0.25", "--mode", "bm25", "--max-length", "96",
                         "--general", str(general))  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "Held-out nDCG@10 (bm25 search, top 50): search" in trained.stdout and "--rerank-model" in trained.stdout
    settings = json.loads((model / "searchbert-reranker.json").read_text())
    report = json.loads((model / "finetune.json").read_text())
    assert settings["max_length"] == 96 and settings["retrieval_weight"] == report["dev"]["weight"]
    held, probe = report["weight_curve"], report["general_curve"]  # nDCG@10 at each weight, 1: the search alone
    assert len(held) == len(probe) == len(WEIGHTS) and "General probe nDCG@10: search" in trained.stdout
    to_floats = {float(w): v for w, v in held.items()}
    assert report["dev"]["weight"] == choose_weight(to_floats, {float(w): v for w, v in probe.items()})
    assert report["dev_queries"] == 4 and report["train_queries"] == 12 and report["settings"]["negatives"]
    assert (model / "finetune.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from searchbert.rerank import CrossEncoderReranker

    reranker = CrossEncoderReranker(str(model))
    assert reranker.max_length == 96 and reranker.retrieval_weight == settings["retrieval_weight"]
    assert CrossEncoderReranker(str(model), retrieval_weight=0.0).retrieval_weight == 0.0  # the caller's word wins

    docs = tmp_path / "docs"
    docs.mkdir()
    for t in topics:
        (docs / f"{t}.md").write_text(f"All about the {t}.")
    assert searchbert("index", "docs", "--index", "ix", "-q").returncode == 0
    found = searchbert("query", "glacier facts", "--index", "ix", "--rerank", "--rerank-model", str(model), "--json")
    assert found.returncode == 0, found.stderr[-2000:]
    assert json.loads(found.stdout)[0]["path"].endswith("glacier.md")

    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": t, "title": "", "text": f"All about the {t}."})
                                               + "\n" for t in topics))  # fmt: skip
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "the glacier"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\tglacier\t1\n")
    scored = searchbert("eval", "beir", "--rerank-model", str(model), "--candidates", "5")
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert "before rerank  nDCG@10" in scored.stdout and "reranked       nDCG@10" in scored.stdout
