"""searchbert in LangChain: LangChain's own standard suites for retrievers and vector stores, unmodified, plus what
they do not cover (per-call k and filter through ainvoke, metadata on hits, errors, a pipeline over the real model)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from langchain_core.documents import Document as LCDocument
from langchain_core.prompts import PromptTemplate
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import RetrieversIntegrationTests, VectorStoreIntegrationTests

from searchbert import Document, Index, SearchbertError
from searchbert.integrations.langchain import SearchbertRetriever, SearchbertVectorStore

from .conftest import FakeEncoder

NOTES = {
    "rotate": ("Rotate the logs every night with logrotate and keep a week.", {"team": "ops", "year": 2024}),
    "deploy": ("Deploy with the blue-green script; roll back by switching the router.", {"team": "ops", "year": 2025}),
    "budget": ("The budget review happens in March with the finance team.", {"team": "finance", "year": 2025}),
    "hiring": ("Hiring needs two interviews and a written exercise.", {"team": "people", "year": 2023}),
    "backup": ("Backups run at 2am to the offsite bucket; test a restore monthly.", {"team": "ops", "year": 2023}),
}


def _notes_index(folder: Path) -> Index:
    index = Index.create(folder, encoder=FakeEncoder())
    index.add_documents(Document(path=i, text=t, title=i, metadata=m) for i, (t, m) in NOTES.items())
    return index


_SHARED = _notes_index(Path(tempfile.mkdtemp(prefix="searchbert-lc-")) / "ix")


class TestSearchbertRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[SearchbertRetriever]:
        return SearchbertRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"index": _SHARED}

    @property
    def retriever_query_example(self) -> str:
        return "how are the logs rotated"


class TestSearchbertVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path: Path) -> VectorStore:  # type: ignore[override]
        """An empty store in a new folder, with LangChain's deterministic fake embeddings."""
        return SearchbertVectorStore(tmp_path / "store", embedding=self.get_embeddings())


def test_k_and_filter_per_call_reach_the_search_sync_and_async(tmp_path: Path) -> None:
    retriever = SearchbertRetriever(index=_notes_index(tmp_path / "ix"), k=4)
    assert len(retriever.invoke("logs")) == 4
    ops = retriever.invoke("logs", k=2, filter={"team": "ops"})
    assert len(ops) == 2 and all(d.metadata["team"] == "ops" for d in ops)
    # the framework's default async path would drop k and filter: they must arrive
    later = asyncio.run(retriever.ainvoke("logs", k=2, filter={"team": "ops"}))
    assert [d.id for d in later] == [d.id for d in ops]
    either = retriever.invoke("review", k=5, filter={"year": [2024, 2025], "team": {"$in": ["ops", "finance"]}})
    assert {d.id for d in either} == {"rotate", "deploy", "budget"}


def test_a_hit_carries_the_record_metadata_and_where_the_passage_is(tmp_path: Path) -> None:
    retriever = SearchbertRetriever(index=_notes_index(tmp_path / "ix"), k=1, mode="bm25")
    (doc,) = retriever.invoke("budget review in March")
    assert doc.id == "budget" and doc.page_content.startswith("The budget review")
    assert doc.metadata["team"] == "finance" and doc.metadata["year"] == 2025
    assert doc.metadata["source"] == "budget" and doc.metadata["title"] == "budget"
    assert doc.metadata["start_line"] == 1 and doc.metadata["end_line"] == 1 and doc.metadata["score"] > 0


def test_a_filter_searchbert_cannot_apply_is_an_error_not_a_silent_drop(tmp_path: Path) -> None:
    retriever = SearchbertRetriever(index=_notes_index(tmp_path / "ix"))
    for bad in ({"year": {"$gt": 2023}}, {"$or": [{"team": "ops"}]}, {"team": {"$nin": ["ops"]}}):
        with pytest.raises(SearchbertError, match=r"\$gt|\$or|\$nin"):
            retriever.invoke("logs", filter=bad)
    store = SearchbertVectorStore(tmp_path / "store", embedding=TestSearchbertVectorStoreStandard.get_embeddings())
    with pytest.raises(SearchbertError, match="ids"):
        store.delete()
    with pytest.raises(SearchbertError, match=r"nested.*is dict"):
        store.add_texts(["x"], metadatas=[{"nested": {"a": 1}}])


def test_a_store_of_another_embedding_is_refused(tmp_path: Path) -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    SearchbertVectorStore(tmp_path / "store", embedding=DeterministicFakeEmbedding(size=8)).add_texts(["a"])
    with pytest.raises(SearchbertError, match=r"dimension|model"):
        SearchbertVectorStore(tmp_path / "store", embedding=DeterministicFakeEmbedding(size=16)).add_texts(["b"])


@pytest.mark.model
def test_a_rag_pipeline_over_the_bundled_model(tmp_path: Path, minilm) -> None:
    """Retrieve with the real MiniLM, then fill a prompt: what a RAG chain does before it calls a model."""
    store = SearchbertVectorStore(Index.create(tmp_path / "ix", encoder=minilm))
    store.add_texts([t for t, _ in NOTES.values()], metadatas=[m for _, m in NOTES.values()], ids=list(NOTES))
    retriever = store.as_retriever(search_kwargs={"k": 2})
    prompt = PromptTemplate.from_template("Answer from the context.\n\nContext:\n{context}\n\nQuestion: {question}")

    def fill(question: str) -> str:
        docs: list[LCDocument] = retriever.invoke(question)
        return prompt.format(context="\n---\n".join(d.page_content for d in docs), question=question)

    text = fill("when do the backups run?")
    assert "Backups run at 2am" in text and text.endswith("Question: when do the backups run?")
    assert store.similarity_search("restoring from backup", k=1, filter={"team": "ops"})[0].id == "backup"


def test_import_searchbert_loads_no_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, searchbert, searchbert.integrations, searchbert.integrations.common; from searchbert import Index;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'langchain_core', 'llama_index', 'haystack', 'mcp'}))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert run.stdout.strip() == "[]"


def test_a_retriever_over_a_folder_with_no_index_says_so(tmp_path: Path) -> None:
    with pytest.raises(SearchbertError, match="no searchbert index"):
        SearchbertRetriever(index=tmp_path / "typo").invoke("logs")
    assert not (tmp_path / "typo").exists()  # and made nothing there
