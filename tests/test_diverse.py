"""Diverse hits (maximal marginal relevance): k hits that are not k near-copies, through the API, the server and
LangChain's max_marginal_relevance_search."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchbert import Index
from searchbert.errors import InvalidArgument
from searchbert.records import Document

from .conftest import FakeEncoder

COPIES = [Document(f"copy{i}.md", "volcano lava eruption report from the crater") for i in range(5)]
OTHERS = [
    Document("ash.md", "volcano lava ash cloud over the town"),
    Document("seismic.md", "volcano lava seismic station readings"),
    Document("bread.md", "sourdough bread needs a starter"),
]
QUERY = "volcano lava eruption report"


@pytest.fixture
def index(tmp_path: Path) -> Index:
    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder())
    ix.add_documents(COPIES + OTHERS)
    return ix


def test_diverse_hits_are_not_near_copies(index: Index) -> None:
    plain = [h.path for h in index.search(QUERY, k=3, mode="dense")]
    assert all(p.startswith("copy") for p in plain)  # five copies fill the top
    diverse = [h.path for h in index.search(QUERY, k=3, mode="dense", diverse=True)]
    assert diverse[0] == plain[0] and sum(p.startswith("copy") for p in diverse) == 1
    assert set(diverse[1:]) == {"ash.md", "seismic.md"}
    # relevance alone is the plain ranking; the pool is the best `candidates`
    assert [h.path for h in index.search(QUERY, k=3, mode="dense", diverse=True, mmr_lambda=1.0)] == plain
    assert len(index.search(QUERY, k=3, mode="hybrid", diverse=True, candidates=2)) == 3
    with pytest.raises(InvalidArgument, match="mmr_lambda"):
        index.search(QUERY, k=3, diverse=True, mmr_lambda=1.5)


def test_the_server_and_langchain_diversify_the_same_way(index: Index) -> None:
    import httpx
    from langchain_core.documents import Document as LCDocument

    from searchbert.integrations.langchain import SearchbertVectorStore
    from searchbert.server.app import create_app
    from searchbert.service import Service

    from .test_server import running

    expected = [h.path for h in index.search(QUERY, k=3, mode="dense", diverse=True)]
    path = index.path
    index.close()
    service = Service(path, encoder=FakeEncoder())
    with running(create_app(service)) as url, httpx.Client(base_url=url, timeout=30) as client:
        got = client.post("/search", json={"query": QUERY, "k": 3, "mode": "dense", "diverse": True}).json()
        assert [h["path"] for h in got] == expected
        assert client.post("/search", json={"query": QUERY, "mmr_lambda": 2}).status_code == 422
    service.close()
    store = SearchbertVectorStore(Index.open(path, encoder=FakeEncoder()))
    picked = store.max_marginal_relevance_search(QUERY, k=3, fetch_k=8)
    assert all(isinstance(d, LCDocument) for d in picked) and [d.id for d in picked] == expected


def test_every_adapter_takes_diverse(index: Index) -> None:
    import asyncio

    from haystack import component  # noqa: F401  (the extra is there)
    from llama_index.core.schema import QueryBundle

    from searchbert.integrations.haystack import SearchbertRetriever as HaystackRetriever
    from searchbert.integrations.langchain import SearchbertRetriever as LangChainRetriever
    from searchbert.integrations.llama_index import SearchbertRetriever as LlamaRetriever
    from searchbert.integrations.mcp import make_server

    expected = [h.path for h in index.search(QUERY, k=3, mode="dense", diverse=True)]
    lc = LangChainRetriever(index=index, k=3, mode="dense", diverse=True).invoke(QUERY)
    assert [d.metadata["source"] for d in lc] == expected
    llama = LlamaRetriever(index, similarity_top_k=3, mode="dense", diverse=True).retrieve(QueryBundle(QUERY))
    assert [n.node.metadata["source"] for n in llama] == expected
    hay = HaystackRetriever(index, top_k=3, mode="dense", diverse=True)
    assert [d.meta["source"] for d in hay.run(QUERY)["documents"]] == expected
    assert HaystackRetriever.from_dict(hay.to_dict()).diverse
    server = make_server(index)
    result = asyncio.run(server.call_tool("search", {"query": QUERY, "k": 3, "mode": "dense", "diverse": True}))
    assert not result.is_error and [h["id"] for h in result.structured_content["hits"]] == expected
