"""The reranker seam: a small BERT cross-encoder built here from the bundled MiniLM, loaded the real way."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from searchbert import Index
from searchbert.errors import InvalidArgument, ModelNotAvailable
from searchbert.rerank import CrossEncoderReranker

from .test_integration import CORPUS, QUERIES

pytestmark = pytest.mark.model


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BertForSequenceClassification initialised from all-MiniLM-L6-v2 (one label, seeded head), saved to disk."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from searchbert.encoders import resolve_model

    folder = resolve_model(None)[1]
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(str(folder), num_labels=1)
    out = tmp_path_factory.mktemp("cross-encoder")
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(folder)).save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def reranker(cross_encoder_dir: Path) -> CrossEncoderReranker:
    return CrossEncoderReranker(str(cross_encoder_dir))


def test_reranker_contract(reranker: CrossEncoderReranker) -> None:
    """Any Reranker: one float32 score per passage, deterministic, empty in -> empty out."""
    passages = ["The espresso machine needs descaling.", "Tomatoes grow in summer.", "x " * 2000]
    scores = reranker.score("how to clean a coffee machine", passages)
    assert scores.dtype == np.float32 and scores.shape == (3,)
    np.testing.assert_allclose(scores, reranker.score("how to clean a coffee machine", passages), rtol=1e-5)
    assert reranker.score("anything", []).shape == (0,)
    assert reranker.retrieval_weight == 0.0  # a cross-encoder with no searchbert settings ranks by itself
    with pytest.raises(InvalidArgument, match="retrieval weight must be in"):
        CrossEncoderReranker(str(reranker.folder), retrieval_weight=1.5)


def test_passages_are_cut_never_the_query(reranker: CrossEncoderReranker) -> None:
    query = "what does the long passage say about rotating keys " * 3
    cut = reranker.fit_passage(query, "key rotation details " * 400)
    q = len(reranker.tokenizer.encode(query, add_special_tokens=False).ids)
    p = len(reranker.tokenizer.encode(cut, add_special_tokens=False).ids)
    assert q + p + 3 <= 512 and p >= 400  # [CLS] q [SEP] p [SEP]: the whole query, as much passage as fits
    assert reranker.fit_passage("short", "short passage") == "short passage"
    with pytest.raises(InvalidArgument, match="too long to rerank"):
        reranker.fit_passage("word " * 600, "passage")


def test_search_with_rerank_orders_by_the_cross_encoder(tmp_path: Path, minilm, reranker: CrossEncoderReranker) -> None:
    from .conftest import write_tree

    ix = Index.create(tmp_path / "ix", encoder=minilm)
    ix.add([write_tree(tmp_path / "docs", CORPUS)])
    query = next(iter(QUERIES))
    plain = ix.search(query, k=len(CORPUS), chunks=True)
    hits = ix.search(query, k=len(CORPUS), chunks=True, rerank=reranker, candidates=5)
    assert len(hits) == len(plain) == len(CORPUS)  # k hits: the pool widens to k, as documents' does
    assert [h.rerank_score for h in hits] == sorted((h.rerank_score for h in hits), reverse=True)
    assert all(h.score == h.rerank_score and h.retrieval_score is not None for h in hits)
    assert {h.chunk_id for h in hits} == {h.chunk_id for h in plain}  # the same candidates, reordered
    direct = reranker.score(query, [h.text for h in hits])
    np.testing.assert_allclose(direct, [h.rerank_score for h in hits], rtol=1e-4)
    docs = ix.search(query, k=3, rerank=reranker, mode="hybrid")
    assert len({h.path for h in docs}) == len(docs) == 3


def test_uncached_reranker_id_fails_fast_with_advice() -> None:
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache("cross-encoder/ms-marco-MiniLM-L6-v2", "config.json"), str):
        pytest.skip("this machine has the default cross-encoder cached")
    started = time.monotonic()
    with pytest.raises(ModelNotAvailable, match="--rerank-model /path/to/DIR"):
        CrossEncoderReranker()  # the default hub id is not cached on an offline machine
    assert time.monotonic() - started < 10


def test_cli_rerank(tmp_path: Path, cross_encoder_dir: Path) -> None:
    from searchbert.cli import main

    from .conftest import write_tree

    docs = write_tree(tmp_path / "docs", CORPUS)
    runner = CliRunner()
    assert runner.invoke(main, ["index", str(docs), "--index", str(tmp_path / "ix"), "-q"]).exit_code == 0
    out = runner.invoke(
        main,
        [
            "query",
            "espresso descaling",
            "--index",
            str(tmp_path / "ix"),
            "--rerank",
            "--rerank-model",
            str(cross_encoder_dir),
            "--explain",
            "--min-relevance",
            "0",
            "-k",
            "3",
            "--candidates",
            "6",
        ],
    )
    assert out.exit_code == 0, out.output
    assert "rerank " in out.output and out.output.count(" score ") == 3
    bad = runner.invoke(main, ["query", "espresso", "--index", str(tmp_path / "ix"), "--rerank"])
    assert bad.exit_code == 1 and "--rerank-model /path/to/DIR" in bad.output
