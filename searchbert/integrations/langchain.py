"""searchbert in LangChain (extra `langchain`): a retriever over any index, and a vector store of records.

from searchbert.integrations.langchain import SearchbertRetriever, SearchbertVectorStore

retriever = SearchbertRetriever(index="./.searchbert", k=5, mode="hybrid")
retriever.invoke("how do I rotate the logs?", k=3, filter={"team": "ops"})

store = SearchbertVectorStore("./notes-index")            # the bundled MiniLM, or embedding=any Embeddings
store.add_texts(["..."], metadatas=[{"team": "ops"}], ids=["note-1"])
store.similarity_search("rotate logs", k=2, filter={"team": "ops"})
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict, PrivateAttr

from ..errors import InvalidArgument
from ..records import Document, Hit, SearchOptions
from .common import Shared, metadata_filters, passage, record_id

if TYPE_CHECKING:
    from ..encoders import FunctionEncoder
    from ..index import Index


def hit_document(hit: Hit) -> LCDocument:
    """A hit as a LangChain Document: the passage, and the record's metadata plus where the passage is."""
    text, meta = passage(hit)
    return LCDocument(id=hit.path, page_content=text, metadata=meta)


class SearchbertRetriever(BaseRetriever):
    """The k best passages of a searchbert index for a query (a document's best chunk each).

    `index`: a folder (opened with the model it was built with) or an open `Index`. `mode`: hybrid, dense or bm25
    (hybrid if unset); `rerank`: a cross-encoder (id or path), or True for the default; `filter`:
    metadata conditions ({key: value}, {key: [any of]}, $eq, $in, $and); `context`: also give N chunks each side.
    `k` and `filter` can be given per call too, to `invoke` and `ainvoke` alike.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any
    k: int = 4
    mode: str | None = None
    rerank: bool | str | None = None
    filter: dict[str, Any] | None = None
    min_score: float | None = None
    #: only passages at least this likely to be relevant (Hit.relevance); none may be left
    min_relevance: float | None = None
    context: int = 0
    #: pick the k hits by maximal marginal relevance (no near-copies)
    diverse: bool = False
    #: the most tokens the passages take together (the best that fit; the last cut where a sentence ends)
    max_tokens: int | None = None
    #: what counts max_tokens (a tokenizer.json, its folder or a Hugging Face id); None: the index's model
    tokenizer: str | None = None
    _shared: Shared = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._shared = Shared(self.index)

    def _search(self, query: str, k: int | None, filter: dict[str, Any] | None) -> list[LCDocument]:
        hits = self._shared.search(
            query,
            k=self.k if k is None else k,
            mode=self.mode,
            rerank=self.rerank,
            filters=metadata_filters(self.filter if filter is None else filter),
            min_score=self.min_score,
            min_relevance=self.min_relevance,
            context=self.context,
            diverse=self.diverse,
            max_tokens=self.max_tokens,
            tokenizer=self.tokenizer,
        )
        return [hit_document(h) for h in hits]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: dict[str, Any] | None = None,
    ) -> list[LCDocument]:
        return self._search(query, k, filter)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: dict[str, Any] | None = None,
    ) -> list[LCDocument]:
        # LangChain's default async path calls the sync one without the per-call arguments: forward them
        return await run_in_executor(None, self._search, query, k, filter)


def embeddings_encoder(embedding: Embeddings) -> FunctionEncoder:
    """A LangChain Embeddings as a searchbert encoder, named by its class (and model, if it has one) so an index
    refuses another."""
    from ..encoders import FunctionEncoder

    kind = type(embedding)
    name = f"langchain:{kind.__module__}.{kind.__qualname__}"
    model = getattr(embedding, "model", None) or getattr(embedding, "model_name", None)
    if isinstance(model, str) and model:
        name += f"/{model}"
    return FunctionEncoder(
        embedding.embed_documents,
        name=name,
        dimension=len(embedding.embed_query("dimension")),
        embed_queries=lambda texts: [embedding.embed_query(t) for t in texts],
    )


class SearchbertVectorStore(VectorStore):
    """A LangChain vector store kept in a searchbert index folder: records with ids and metadata, upserted by id,
    searched by vector similarity (cosine), filtered by metadata inside the search.

    `index`: a folder (made if it holds no index yet) or an open `Index`; `embedding`: any LangChain Embeddings, or
    None for the index's own model (the bundled MiniLM for a new folder).
    """

    def __init__(self, index: Index | str | os.PathLike[str], embedding: Embeddings | None = None) -> None:
        self._embedding = embedding
        self._shared = Shared(index, embeddings_encoder(embedding) if embedding is not None else None, create=True)

    @property
    def embeddings(self) -> Embeddings | None:
        return self._embedding

    @property
    def index(self) -> Index:
        return self._shared.index

    def add_documents(self, documents: list[LCDocument], **kwargs: Any) -> list[str]:
        """Add or replace (by id) documents; those without an id get a new one. Returns the ids in order."""
        given = kwargs.get("ids")
        if given is not None and len(given) != len(documents):
            raise InvalidArgument(f"{len(given)} ids for {len(documents)} documents")
        ids = [
            record_id(given[i] if given is not None and given[i] else d.id or uuid.uuid4().hex)
            for i, d in enumerate(documents)
        ]
        records = [Document(path=i, text=d.page_content, metadata=dict(d.metadata)) for i, d in zip(ids, documents)]
        self._shared.run(lambda index: index.add_documents(records))
        return ids

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise InvalidArgument(f"{len(metadatas)} metadatas for {len(texts)} texts")
        metas = metadatas or [{} for _ in texts]
        return self.add_documents([LCDocument(page_content=t, metadata=m) for t, m in zip(texts, metas)], ids=ids)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Remove records by id (unknown ids are no error). Deleting everything takes the ids: ids=None is refused."""
        if ids is None:
            raise InvalidArgument("delete needs the ids to remove (searchbert does not delete everything at once)")
        self._shared.run(lambda index: index.delete([record_id(i) for i in ids]))
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[LCDocument]:
        records = self._shared.run(lambda index: index.get([str(i) for i in ids]))
        return [LCDocument(id=r.path, page_content=r.text, metadata=r.metadata) for r in records]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[LCDocument, float]]:
        """The k most similar records and their cosine similarity, best first."""
        return self._records(query, SearchOptions(k=k, mode="dense", filters=metadata_filters(filter)))

    def _similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[LCDocument, float]]:
        """The k most similar records with their calibrated relevance (Hit.relevance: the estimated chance each is
        relevant, the same scale for every query), which similarity_search_with_relevance_scores' score_threshold
        then filters on. An index whose model searchbert has no weights for gives the cosine mapped to [0, 1]."""
        options = SearchOptions(k=k, mode="dense", filters=metadata_filters(kwargs.get("filter")))
        return self._records(query, options, relevance=True)

    def _records(self, query: str, options: SearchOptions, relevance: bool = False) -> list[tuple[LCDocument, float]]:
        """The hits of a search as whole records with their scores (or relevance), in order."""

        def work(index: Index) -> tuple[list[Hit], list[Document]]:
            hits = index.search(query, options=options)
            return hits, index.get([h.path for h in hits])

        hits, records = self._shared.run(work)
        by_id = {r.path: r for r in records}

        def judged(h: Hit) -> float:
            if not relevance:
                return h.score
            return h.relevance if h.relevance is not None else self._select_relevance_score_fn()(h.score)

        return [
            (LCDocument(id=h.path, page_content=by_id[h.path].text, metadata=by_id[h.path].metadata), judged(h))
            for h in hits
            if h.path in by_id
        ]

    def similarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[LCDocument]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter)]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[LCDocument]:
        """k records of the fetch_k most similar, picked by maximal marginal relevance (searchbert's `diverse`)."""
        options = SearchOptions(k=k, mode="dense", filters=metadata_filters(filter), diverse=True,
                                mmr_lambda=lambda_mult, candidates=max(fetch_k, k))  # fmt: skip
        return [doc for doc, _ in self._records(query, options)]

    def _select_relevance_score_fn(self):  # type: ignore[no-untyped-def]
        return lambda score: (score + 1.0) / 2.0  # cosine similarity -> [0, 1]

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        index: Index | str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> SearchbertVectorStore:
        """A store at `index` (a folder) holding these texts."""
        if index is None:
            raise InvalidArgument("from_texts needs index=FOLDER: where the searchbert index is kept")
        store = cls(index, embedding)
        store.add_texts(texts, metadatas, ids=ids)
        return store
