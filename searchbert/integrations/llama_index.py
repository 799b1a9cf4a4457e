"""searchbert in LlamaIndex (extra `llama-index`): a retriever over any index.

from searchbert.integrations.llama_index import SearchbertRetriever
from llama_index.core.vector_stores import MetadataFilter, MetadataFilters

retriever = SearchbertRetriever("./.searchbert", similarity_top_k=5,
                                filters=MetadataFilters(filters=[MetadataFilter(key="team", value="ops")]))
nodes = retriever.retrieve("how do I rotate the logs?")
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from ..errors import InvalidArgument
from ..records import Filters
from .common import Shared, metadata_filters, passage

if TYPE_CHECKING:
    from ..index import Index


def to_filters(filters: MetadataFilters | None) -> Filters | None:
    """LlamaIndex MetadataFilters as searchbert Filters: EQ and IN, under AND (nested too); OR of EQ on one key is
    IN. Any other operator or condition is an error that names it."""
    if filters is None:
        return None
    return metadata_filters(_conditions(filters))


def _conditions(filters: MetadataFilters) -> dict[str, Any]:
    condition = filters.condition or FilterCondition.AND
    parts = filters.filters
    if condition == FilterCondition.OR and parts and all(_is_eq(p) for p in parts):
        keys = {p.key for p in parts}  # type: ignore[union-attr]
        if len(keys) == 1:
            return {keys.pop(): {"$in": [p.value for p in parts]}}  # type: ignore[union-attr]
    if condition != FilterCondition.AND:
        raise InvalidArgument(
            f"LlamaIndex filter condition {condition.value!r} is not supported (supported: and; or of == on one key)"
        )
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, MetadataFilters):
            out.append(_conditions(part))
        elif part.operator == FilterOperator.EQ:
            out.append({part.key: {"$eq": part.value}})
        elif part.operator == FilterOperator.IN:
            out.append({part.key: {"$in": list(part.value or [])}})  # type: ignore[arg-type]
        else:
            raise InvalidArgument(
                f"LlamaIndex filter operator {part.operator.value!r} on {part.key!r} is not supported "
                "(supported: ==, in)"
            )
    return {"$and": out}


def _is_eq(part: MetadataFilter | MetadataFilters) -> bool:
    return isinstance(part, MetadataFilter) and part.operator == FilterOperator.EQ


class SearchbertRetriever(BaseRetriever):
    """The similarity_top_k best passages of a searchbert index (a document's best chunk each), as nodes that carry
    the chunk text, the score, the record's metadata plus where the passage is, and the record id as their source.

    `index`: a folder (opened with the model it was built with) or an open `Index`; `mode`: hybrid (default), dense
    or bm25; `rerank`: a cross-encoder (id or path) or True; `context`: N chunks each side of the hit in the node's
    text; `min_relevance`: only passages at least this likely to be relevant (each node's metadata carries its
    `relevance`).
    """

    def __init__(
        self,
        index: Index | str | os.PathLike[str],
        similarity_top_k: int = 4,
        filters: MetadataFilters | None = None,
        mode: str | None = None,
        rerank: bool | str | None = None,
        context: int = 0,
        callback_manager: CallbackManager | None = None,
        diverse: bool = False,
        max_tokens: int | None = None,
        min_relevance: float | None = None,
        tokenizer: str | None = None,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self._shared = Shared(index)
        self.similarity_top_k, self.filters, self.mode = similarity_top_k, filters, mode
        self.rerank, self.context, self.diverse, self.max_tokens = rerank, context, diverse, max_tokens
        self.min_relevance, self.tokenizer = min_relevance, tokenizer

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._shared.search(
            query_bundle.query_str,
            k=self.similarity_top_k,
            mode=self.mode,
            filters=to_filters(self.filters),
            rerank=self.rerank,
            context=self.context,
            diverse=self.diverse,
            max_tokens=self.max_tokens,
            min_relevance=self.min_relevance,
            tokenizer=self.tokenizer,
        )
        nodes = []
        for h in hits:
            text, meta = passage(h, score=False)  # a node's score has its own field
            node = TextNode(
                id_=f"{h.path}#{h.chunk_id}",
                text=text,
                metadata=meta,
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=h.path)},
            )
            nodes.append(NodeWithScore(node=node, score=h.score))
        return nodes

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # LlamaIndex's default runs the sync search on the event loop: run it in a worker thread instead
        return await asyncio.to_thread(self._retrieve, query_bundle)
