"""A token budget: the best hits that fit, the last cut where a sentence ends, never inside a word; through the API,
the server and every adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchbert import Index
from searchbert.budget import fit
from searchbert.errors import InvalidArgument
from searchbert.records import Document, Hit

from .conftest import FakeEncoder

PAGES = [
    Document(f"p{i}.md", f"Volcano notes {i}. Lava flows downhill slowly. Ash falls on the town nearby. The end {i}.")
    for i in range(6)
]


def _words(text: str) -> int:
    return len(text.split())


def test_the_best_hits_fit_and_the_last_is_cut_at_a_sentence_end() -> None:
    hits = [Hit(i + 1, 1.0, f"p{i}", "", PAGES[i].text, 1, 1, i, end_char=len(PAGES[i].text)) for i in range(3)]
    per = _words(PAGES[0].text)  # 16 words a page
    got = fit(hits, 2 * per + 7, _words)
    assert [h.path for h in got] == ["p0", "p1", "p2"] and got[:2] == hits[:2]
    assert got[2].text == "Volcano notes 2. Lava flows downhill slowly." and got[2].end_char == len(got[2].text)
    assert sum(_words(h.text) for h in got) <= 2 * per + 7
    # no sentence end fits: cut at a word end, never inside a word
    assert fit(hits[:1], 2, _words)[0].text == "Volcano notes"
    assert fit(hits, per - 1, _words)[0].text.endswith("town nearby.")
    assert fit(hits, 10_000, _words) == hits


def test_search_keeps_to_max_tokens_with_the_models_own_count(tmp_path: Path) -> None:
    enc = FakeEncoder()
    with Index.create(tmp_path / "ix", encoder=enc) as ix:
        ix.add_documents(PAGES)
        for options in ({}, {"chunks": True}, {"mode": "bm25"}):
            hits = ix.search("lava ash volcano", k=6, max_tokens=40, **options)
            assert sum(len(enc.token_spans(h.text)) for h in hits) <= 40 and hits
            assert hits[-1].text.rstrip().endswith(".")
        with pytest.raises(InvalidArgument, match="max_tokens"):
            ix.search("lava", max_tokens=0)


def character_tokenizer(folder: Path) -> Path:
    """A tokenizer.json with a token per character: another model's count than the index's own."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def test_a_named_tokenizer_counts_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chars = character_tokenizer(tmp_path / "chars")
    with Index.create(tmp_path / "ix", encoder=FakeEncoder()) as ix:
        ix.add_documents(PAGES)
        hits = ix.search("lava ash volcano", k=6, max_tokens=120, tokenizer=str(chars))
        assert len(hits) > 1 and sum(len(h.text) for h in hits) <= 120
        assert hits == ix.search("lava ash volcano", k=6, max_tokens=120, tokenizer=str(chars / "tokenizer.json"))
        assert len(ix.search("lava ash volcano", k=6, max_tokens=120)) > len(hits)  # the model's count: more fit
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(InvalidArgument, match="cannot load the tokenizer 'no-such/tokenizer'"):
            ix.search("lava", max_tokens=10, tokenizer="no-such/tokenizer")


def test_the_server_and_every_adapter_take_max_tokens(tmp_path: Path) -> None:
    import asyncio

    import httpx
    from llama_index.core.schema import QueryBundle

    from searchbert.integrations.haystack import SearchbertRetriever as HaystackRetriever
    from searchbert.integrations.langchain import SearchbertRetriever as LangChainRetriever
    from searchbert.integrations.llama_index import SearchbertRetriever as LlamaRetriever
    from searchbert.integrations.mcp import make_server
    from searchbert.server.app import create_app
    from searchbert.service import Service

    from .test_server import running

    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder())
    ix.add_documents(PAGES)
    chars = str(character_tokenizer(tmp_path / "chars"))  # counted by another tokenizer than the model's
    budget = {"max_tokens": 120, "tokenizer": chars}
    expected = [h.text for h in ix.search("lava ash", k=6, mode="bm25", **budget)]
    assert 1 < len(expected) < 6
    assert expected != [h.text for h in ix.search("lava ash", k=6, mode="bm25", max_tokens=120)]
    assert [d.page_content for d in LangChainRetriever(index=ix, k=6, mode="bm25", **budget).invoke("lava ash")] \
        == expected  # fmt: skip
    llama = LlamaRetriever(ix, similarity_top_k=6, mode="bm25", **budget).retrieve(QueryBundle("lava ash"))
    assert [n.node.get_content() for n in llama] == expected
    hay = HaystackRetriever(ix, top_k=6, mode="bm25", **budget)
    assert [d.content for d in hay.run("lava ash")["documents"]] == expected
    again = HaystackRetriever.from_dict(hay.to_dict())
    assert (again.max_tokens, again.tokenizer) == (120, chars)
    called = asyncio.run(make_server(ix).call_tool("search", {"query": "lava ash", "k": 6, "mode": "bm25",
                                                              **budget}))  # fmt: skip
    assert [h["text"] for h in called.structured_content["hits"]] == expected
    path = ix.path
    ix.close()
    service = Service(path, encoder=FakeEncoder())
    with running(create_app(service)) as url, httpx.Client(base_url=url, timeout=30) as client:
        got = client.post("/search", json={"query": "lava ash", "k": 6, "mode": "bm25", **budget}).json()
        assert [h["text"] for h in got] == expected
    service.close()
