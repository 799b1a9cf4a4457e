"""searchbert as a LlamaIndex retriever and a Haystack component: filters in each framework's own syntax, async
paths off the event loop, serialization, and a small pipeline over the real model."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from searchbert import Index, SearchbertError

from .test_langchain import NOTES, _notes_index


@pytest.fixture
def notes(tmp_path: Path) -> Index:
    return _notes_index(tmp_path / "ix")


# -- LlamaIndex ---------------------------------------------------------------------------------------------------


def test_llama_index_nodes_carry_text_score_metadata_and_source(notes: Index) -> None:
    from llama_index.core.vector_stores import MetadataFilter, MetadataFilters

    from searchbert.integrations.llama_index import SearchbertRetriever

    (top,) = SearchbertRetriever(notes, similarity_top_k=1, mode="bm25").retrieve("budget review in March")
    assert top.node.get_content().startswith("The budget review") and top.score > 0
    assert top.node.metadata["team"] == "finance" and top.node.metadata["year"] == 2025
    assert top.node.ref_doc_id == "budget" and top.node.metadata["start_line"] == 1

    ops = MetadataFilters(filters=[MetadataFilter(key="team", value="ops")])
    found = SearchbertRetriever(notes, similarity_top_k=5, filters=ops).retrieve("logs")
    assert {n.node.ref_doc_id for n in found} == {"rotate", "deploy", "backup"}
    years = MetadataFilters(
        filters=[
            MetadataFilter(key="year", value=[2023, 2024], operator="in"),
            MetadataFilters(filters=[MetadataFilter(key="team", value="ops")]),
        ]
    )
    found = SearchbertRetriever(notes, similarity_top_k=5, filters=years).retrieve("logs")
    assert {n.node.ref_doc_id for n in found} == {"rotate", "backup"}
    either = MetadataFilters(
        filters=[MetadataFilter(key="team", value="finance"), MetadataFilter(key="team", value="people")],
        condition="or",
    )
    found = SearchbertRetriever(notes, similarity_top_k=5, filters=either).retrieve("review")
    assert {n.node.ref_doc_id for n in found} == {"budget", "hiring"}


@pytest.mark.parametrize(
    "operator,value,condition", [(">", 2023, "and"), ("nin", ["ops"], "and"), ("==", "ops", "not")]
)
def test_llama_index_filters_searchbert_cannot_apply_are_errors(notes: Index, operator, value, condition) -> None:
    from llama_index.core.vector_stores import MetadataFilter, MetadataFilters

    from searchbert.integrations.llama_index import SearchbertRetriever

    f = MetadataFilters(filters=[MetadataFilter(key="year", value=value, operator=operator)], condition=condition)
    with pytest.raises(SearchbertError, match="not supported"):
        SearchbertRetriever(notes, filters=f).retrieve("logs")


def _loop_keeps_ticking(coro_factory) -> tuple[object, int]:
    """Run a coroutine while a ticker counts how often the event loop got to run it (a blocked loop counts ~0)."""

    async def main():
        ticks = 0
        done = False

        async def ticker():
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        result = await coro_factory()
        done = True
        await task
        return result, ticks

    return asyncio.run(main())


class SlowIndex:
    """An index whose search takes 0.3 s of blocking work, to see whether async callers block the loop."""

    def __init__(self, index: Index) -> None:
        self._index, self.threads = index, set()

    def __getattr__(self, name):
        return getattr(self._index, name)

    def search(self, *args, **kwargs):
        self.threads.add(threading.get_ident())
        time.sleep(0.3)
        return self._index.search(*args, **kwargs)


def test_llama_index_aretrieve_does_not_block_the_event_loop(notes: Index, monkeypatch) -> None:
    from searchbert.integrations import common
    from searchbert.integrations.llama_index import SearchbertRetriever

    slow = SlowIndex(notes)
    monkeypatch.setattr(common.Shared, "index", property(lambda self: slow))
    retriever = SearchbertRetriever(notes, similarity_top_k=1)
    nodes, ticks = _loop_keeps_ticking(lambda: retriever.aretrieve("logs"))
    assert len(nodes) == 1 and ticks > 30 and threading.get_ident() not in slow.threads


@pytest.mark.model
def test_llama_index_pipeline_over_the_bundled_model(tmp_path: Path, minilm) -> None:
    """Retrieve with the real MiniLM, then fill LlamaIndex's prompt template: a query engine's step before the LLM."""
    from llama_index.core import PromptTemplate

    from searchbert import Document
    from searchbert.integrations.llama_index import SearchbertRetriever

    index = Index.create(tmp_path / "ix", encoder=minilm)
    index.add_documents(Document(path=i, text=t, metadata=m) for i, (t, m) in NOTES.items())
    nodes = asyncio.run(SearchbertRetriever(index, similarity_top_k=2).aretrieve("when do the backups run?"))
    template = PromptTemplate("Context:\n{context_str}\n\nQuestion: {query_str}\nAnswer:")
    text = template.format(context_str="\n".join(n.node.get_content() for n in nodes), query_str="backups?")
    assert nodes[0].node.ref_doc_id == "backup" and "Backups run at 2am" in text


# -- Haystack ------------------------------------------------------------------------------------------------------


def test_haystack_component_filters_top_k_and_async(notes: Index, monkeypatch) -> None:
    from searchbert.integrations.haystack import SearchbertRetriever

    retriever = SearchbertRetriever(index=notes, top_k=5)
    docs = retriever.run("logs", filters={"field": "meta.team", "operator": "==", "value": "ops"})["documents"]
    assert {d.meta["source"] for d in docs} == {"rotate", "deploy", "backup"}
    assert all(d.score is not None and d.content for d in docs)
    both = {
        "operator": "AND",
        "conditions": [
            {"field": "meta.team", "operator": "in", "value": ["ops", "finance"]},
            {"field": "meta.year", "operator": "==", "value": 2025},
        ],
    }
    docs = retriever.run("review", filters=both, top_k=1)["documents"]
    assert len(docs) == 1 and docs[0].meta["year"] == 2025
    for bad in (
        {"field": "meta.year", "operator": ">", "value": 2023},
        {"operator": "OR", "conditions": [{"field": "meta.team", "operator": "==", "value": "ops"}]},
        {"field": "content", "operator": "==", "value": "x"},
    ):
        with pytest.raises(SearchbertError, match=r"not supported|only metadata"):
            retriever.run("logs", filters=bad)

    from searchbert.integrations import common

    slow = SlowIndex(Index.open(notes.path, encoder=notes.loaded_encoder))
    monkeypatch.setattr(common.Shared, "index", property(lambda self: slow))
    result, ticks = _loop_keeps_ticking(lambda: retriever.run_async("logs", top_k=2))
    assert len(result["documents"]) == 2 and ticks > 30


@pytest.mark.model
def test_haystack_pipeline_saved_to_yaml_loads_and_runs_over_the_bundled_model(tmp_path: Path, minilm) -> None:
    from haystack import Pipeline
    from haystack.components.builders import PromptBuilder
    from haystack.core.errors import DeserializationError

    from searchbert import Document
    from searchbert.integrations.haystack import SearchbertRetriever

    index = Index.create(tmp_path / "ix", encoder=minilm)
    index.add_documents(Document(path=i, text=t, metadata=m) for i, (t, m) in NOTES.items())
    index.close()
    pipe = Pipeline()
    pipe.add_component("retriever", SearchbertRetriever(index=tmp_path / "ix", top_k=2))
    template = "Context:\n{% for d in documents %}{{ d.content }}\n{% endfor %}\nQuestion: {{ question }}"
    pipe.add_component("prompt", PromptBuilder(template=template, required_variables=["question"]))
    pipe.connect("retriever.documents", "prompt.documents")
    text = pipe.dumps()
    with pytest.raises(DeserializationError):  # Haystack 3 imports only modules it is told to trust
        Pipeline.loads(text)
    again = Pipeline.loads(text, allowed_modules=["searchbert.integrations.haystack"])
    question = "when do the backups run?"
    out = again.run({"retriever": {"query": question}, "prompt": {"question": question}})
    assert "Backups run at 2am" in out["prompt"]["prompt"] and out["prompt"]["prompt"].endswith(question)


def test_langchain_async_calls_do_not_block_the_event_loop(notes: Index, tmp_path: Path, monkeypatch) -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from searchbert.integrations import common
    from searchbert.integrations.langchain import SearchbertRetriever, SearchbertVectorStore

    store = SearchbertVectorStore(tmp_path / "store", embedding=DeterministicFakeEmbedding(size=8))
    store.add_texts([t for t, _ in NOTES.values()], ids=list(NOTES))
    retriever = SearchbertRetriever(index=notes, k=2)
    slow = {id(store._shared): SlowIndex(store.index), id(retriever._shared): SlowIndex(notes)}
    monkeypatch.setattr(common.Shared, "index", property(lambda self: slow[id(self)]))
    docs, ticks = _loop_keeps_ticking(lambda: retriever.ainvoke("logs", k=1))
    assert len(docs) == 1 and ticks > 30
    found, ticks = _loop_keeps_ticking(lambda: store.asimilarity_search("budget", k=1))
    assert len(found) == 1 and ticks > 30
