"""searchbert as a Model Context Protocol server (extra `mcp`): `searchbert mcp --index PATH` serves one index over
stdio to an agent, with the official SDK:

- tool search(query, k, mode, filters, rerank, diverse, max_tokens, min_relevance): the k best passages that are
  likely enough to be relevant, with their record id, lines, score, relevance and metadata
- tool get_document(id, start_line, end_line): a record's whole text (or those lines of it), to read around a passage
- resources searchbert://doc/{id} and searchbert://doc/{id}/lines/{start}-{end} (the id percent-encoded): the same
  text, for clients that attach documents rather than call tools
- prompt answer_with_citations(question): asks for an answer that cites the ids (and lines) it read
- instructions written from the index itself: how many documents, what they are, which metadata keys filters can use

Bad input (an empty query, an unknown id, k out of range, a filter that cannot be applied) is a tool error whose
message says what was wrong; the server keeps serving. Logs go to stderr: stdout carries the protocol only.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from ..errors import SearchbertError
from .common import Shared, metadata_filters

if TYPE_CHECKING:
    from ..index import Index
    from ..records import Document

#: the most results one call may ask for: an agent's context is the limit, not the index
MAX_K = 50


class Passage(BaseModel):
    id: str = Field(description="the record id (a file's path): pass it to get_document")
    title: str
    section: str = Field("", description="the heading path the passage sits under")
    text: str
    start_line: int
    end_line: int
    score: float
    relevance: float | None = Field(description="the estimated chance the passage is relevant (0 to 1)")
    metadata: dict[str, Any]


class SearchResult(BaseModel):
    query: str
    hits: list[Passage]
    note: str = Field("", description="why there are no hits, when there are none")


class Record(BaseModel):
    id: str
    title: str
    text: str = Field(description="the whole text, or the lines asked for")
    start_line: int
    end_line: int | None
    metadata: dict[str, Any]


def make_server(index: Index | str | os.PathLike[str]) -> MCPServer:
    """An MCP server with the search and get_document tools, the documents as resources and a prompt, over one
    index."""
    shared = Shared(index)
    server: MCPServer = MCPServer("searchbert", instructions=shared.run(_instructions))

    @server.tool()
    def search(
        query: str,
        k: int = 5,
        mode: str | None = None,
        filters: dict[str, Any] | None = None,
        rerank: bool = False,
        diverse: bool = False,
        max_tokens: int | None = None,
        min_relevance: float | None = None,
        tokenizer: str | None = None,
    ) -> SearchResult:
        """The k best passages for the query, one per document, best first. mode: hybrid (meaning and words,
        the default), dense (meaning) or bm25 (words); filters: metadata conditions, {"key": value} or {"key":
        [any of these]}; rerank: re-score the candidates with a cross-encoder (slower, often better); diverse:
        no near-copies among the k (maximal marginal relevance); max_tokens: the passages fit in this many tokens
        together (the last cut where a sentence ends), counted by `tokenizer` (a Hugging Face id; default: the
        index's model); min_relevance: only passages at least this likely to be relevant (0 to 1; default: the
        index's threshold, so a search with no good match returns no hits)."""
        if not 1 <= k <= MAX_K:
            raise ToolError(f"k must be between 1 and {MAX_K}, not {k}")
        try:
            # the threshold of the index as it is now (a rebuild may have changed its model)
            floor = shared.run(lambda ix: ix.calibration.threshold) if min_relevance is None else min_relevance
            hits = shared.search(
                query, k=k, mode=mode, filters=metadata_filters(filters), rerank=rerank or None, diverse=diverse,
                max_tokens=max_tokens, min_relevance=floor,
                tokenizer=tokenizer,
            )  # fmt: skip
        except SearchbertError as exc:
            raise ToolError(str(exc)) from exc
        note = "" if hits else "no good match: nothing in the index is likely to answer this query"
        return SearchResult(
            query=query,
            hits=[
                Passage(
                    id=h.path,
                    title=h.title,
                    section=h.section,
                    text=h.text,
                    start_line=h.start_line,
                    end_line=h.end_line,
                    score=h.score,
                    relevance=h.relevance,
                    metadata=h.metadata,
                )
                for h in hits
            ],
            note=note,
        )

    def fetch(id: str, start: int | None = None, end: int | None = None) -> Document:
        """The record (or those lines of it) for the tool and the resources; what is wrong is a ToolError."""
        try:
            found = shared.run(lambda ix: ix.get([id], start_line=start, end_line=end))
        except SearchbertError as exc:
            raise ToolError(str(exc)) from exc
        if not found:
            raise ToolError(f"no document with id {id!r}: use an id from a search hit")
        return found[0]

    @server.tool()
    def get_document(id: str, start_line: int | None = None, end_line: int | None = None) -> Record:
        """A document by the id a search hit gave: its whole text, or lines start_line..end_line (1-based,
        inclusive) of it."""
        doc = fetch(id, start_line, end_line)
        return Record(
            id=doc.path,
            title=doc.title,
            text=doc.text,
            start_line=start_line or 1,
            end_line=end_line,
            metadata=doc.metadata,
        )

    @server.resource("searchbert://doc/{id}", mime_type="text/plain", description="A document's whole text.")
    def document(id: str) -> str:
        return fetch(unquote(id)).text

    @server.resource(
        "searchbert://doc/{id}/lines/{start}-{end}", mime_type="text/plain", description="Lines of a document."
    )
    def document_lines(id: str, start: str, end: str) -> str:
        return fetch(unquote(id), int(start), int(end)).text

    @server.prompt()
    def answer_with_citations(question: str) -> str:
        """Answer a question from the collection, citing what was read."""
        return (
            f"Answer this question from the documents of the collection: {question}\n\n"
            "Call search (more than once if the first query misses), read around the best passages with "
            "get_document, and answer only from what you read. Cite every claim with the id and lines it comes "
            "from, as [id:start-end]. If the documents do not answer the question, say so instead of guessing."
        )

    return server


def resource_uri(id: str, start: int | None = None, end: int | None = None) -> str:
    """The resource URI of a document (or of its lines start..end)."""
    base = f"searchbert://doc/{quote(id, safe='')}"
    return base if start is None or end is None else f"{base}/lines/{start}-{end}"


def _instructions(index: Index) -> str:
    """What an agent should know of this index before its first call, from the index itself."""
    counts, keys = index.count(), index.metadata_keys(12)
    fields = f" Metadata keys filters can use: {', '.join(keys)}." if keys else ""
    return (
        f"Search a local collection of {counts['documents']} documents ({counts['chunks']} passages, model "
        f"{index.manifest.model_id}). Call search to find passages (hybrid: meaning and exact words), then "
        "get_document with a hit's id (and start_line/end_line) to read more of it; the same text is the resource "
        f"searchbert://doc/{{id}} (id percent-encoded).{fields} The prompt answer_with_citations asks for an "
        "answer that cites the ids it read."
    )


def serve(index: str | os.PathLike[str]) -> None:
    """Serve the index over stdio until the client hangs up."""
    make_server(index).run("stdio")
