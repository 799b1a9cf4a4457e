"""searchbert in Haystack (extra `haystack`): a retriever component over any index.

    from haystack import Pipeline
    from searchbert.integrations.haystack import SearchbertRetriever

    pipe = Pipeline()
    pipe.add_component("retriever", SearchbertRetriever(index="./.searchbert", top_k=5))
    pipe.run({"retriever": {"query": "rotate logs",
                            "filters": {"field": "meta.team", "operator": "==", "value": "ops"}}})

A pipeline saved with `pipe.dumps()` loads again with
`Pipeline.loads(text, allowed_modules=["searchbert.integrations.haystack"])` (Haystack 3 imports only modules it is
told to trust; or set HAYSTACK_DESERIALIZATION_ALLOWLIST).
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from haystack import Document as HDocument
from haystack import component, default_from_dict, default_to_dict

from ..errors import InvalidArgument
from ..records import Filters
from .common import Shared, metadata_filters, passage

if TYPE_CHECKING:
    from ..index import Index


def to_filters(filters: dict[str, Any] | None) -> Filters | None:
    """Haystack's filter syntax as searchbert Filters: `==` and `in` on `meta.*` fields, under AND (nested too).
    Anything else is an error that names it."""
    if not filters:
        return None
    return metadata_filters(_conditions(filters))


def _conditions(node: dict[str, Any]) -> dict[str, Any]:
    if "conditions" in node:
        if node.get("operator") != "AND":
            raise InvalidArgument(
                f"Haystack filter operator {node.get('operator')!r} is not supported (supported: AND)"
            )
        return {"$and": [_conditions(c) for c in node["conditions"]]}
    field, operator = node.get("field"), node.get("operator")
    if not isinstance(field, str) or not field.startswith("meta."):
        raise InvalidArgument(f"Haystack filter field {field!r}: only metadata fields (meta.KEY) can be filtered")
    key = field.removeprefix("meta.")
    if operator == "==":
        return {key: {"$eq": node.get("value")}}
    if operator == "in":
        if not isinstance(node.get("value"), list):
            raise InvalidArgument(f"Haystack filter on {field!r}: 'in' takes a list")
        return {key: {"$in": node["value"]}}
    raise InvalidArgument(f"Haystack filter operator {operator!r} on {field!r} is not supported (supported: ==, in)")


@component
class SearchbertRetriever:
    """The top_k best passages of a searchbert index for a query (a document's best chunk each), as Haystack
    Documents: the passage, its score, and the record's metadata plus where the passage is.

    `index`: the index folder (opened with the model it was built with) or an open `Index` (saved as its folder);
    `mode`: hybrid (default), dense or bm25; `filters`:
    Haystack filters (== and in on meta.* fields, under AND), replaced by those given to run(); `rerank`: a
    cross-encoder (id or path) or True; `min_relevance`: only passages at least this likely to be relevant (each
    Document's meta carries its `relevance`).
    """

    def __init__(
        self,
        index: Index | str | os.PathLike[str],
        top_k: int = 10,
        mode: str | None = None,
        filters: dict[str, Any] | None = None,
        rerank: bool | str | None = None,
        diverse: bool = False,
        max_tokens: int | None = None,
        min_relevance: float | None = None,
        tokenizer: str | None = None,
    ) -> None:
        self._shared = Shared(index)
        self.index, self.top_k, self.mode, self.filters, self.rerank = self._shared.path, top_k, mode, filters, rerank
        self.diverse, self.max_tokens, self.min_relevance = diverse, max_tokens, min_relevance
        self.tokenizer = tokenizer
        to_filters(filters)  # a filter that cannot be applied is refused when the pipeline is built

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, index=self.index, top_k=self.top_k, mode=self.mode, filters=self.filters, rerank=self.rerank,
            diverse=self.diverse, max_tokens=self.max_tokens, min_relevance=self.min_relevance,
            tokenizer=self.tokenizer,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchbertRetriever:
        return default_from_dict(cls, data)

    @component.output_types(documents=list[HDocument])
    def run(self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None) -> dict[str, Any]:
        hits = self._shared.search(
            query,
            k=self.top_k if top_k is None else top_k,
            mode=self.mode,
            filters=to_filters(self.filters if filters is None else filters),
            rerank=self.rerank,
            diverse=self.diverse,
            max_tokens=self.max_tokens,
            min_relevance=self.min_relevance,
            tokenizer=self.tokenizer,
        )
        documents = []
        for h in hits:
            text, meta = passage(h, score=False)  # a Haystack Document has its own score field
            documents.append(HDocument(id=f"{h.path}#{h.chunk_id}", content=text, meta=meta, score=h.score))
        return {"documents": documents}

    @component.output_types(documents=list[HDocument])
    async def run_async(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, Any]:
        return await asyncio.to_thread(self.run, query, filters, top_k)
