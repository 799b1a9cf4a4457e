"""The HTTP API and the search page (FastAPI): each route parses, calls one Service method, presents.

Safe by default: the CLI binds to loopback; writes always need the API key, and reads do too when one is set for a
non-loopback bind. Loopback reads need no key, so on loopback only loopback host names are answered: a web page that
points a name of its own at 127.0.0.1 (DNS rebinding) gets 400, not the index. A request that writes or searches
from a browser page must come from the server's own origin (or one --cors names). Bodies, queries, k and candidates
are bounded, every error is a JSON 4xx/5xx with a `detail`, and no request names a file: document ids are looked up
in the index, the page's files are the package's own.
"""

from __future__ import annotations

import hmac
from importlib.resources import files
from typing import Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers

from ..errors import IndexLocked, InvalidArgument, MissingExtra, ModelNotAvailable, SearchbertError
from ..records import FUSIONS, NORMS, Document, Filters, Fusion, SearchOptions
from ..service import DocumentNotFound, IndexBusy, Service
from .client import LIMITS

MAX_QUERY, MAX_K, MAX_CANDIDATES = LIMITS["query"], LIMITS["k"], LIMITS["candidates"]
MAX_SEARCH_BODY = 64 * 1024
MAX_WRITE_BODY = 16 * 1024 * 1024
STATIC = files("searchbert.server") / "static"
#: the names a loopback bind answers to (RFC 6761: every *.localhost name is loopback), besides its own address
LOOPBACK_HOSTS = ("localhost", "*.localhost", "127.0.0.1", "[::1]")


class FilterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paths: list[str] = Field(default_factory=list, max_length=50)
    exts: list[str] = Field(default_factory=list, max_length=50)
    since: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


_FUSION = Fusion()  # the defaults, defined once (records.Fusion)


class FusionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal[FUSIONS] = _FUSION.method  # type: ignore[valid-type]
    k: int = Field(_FUSION.k, ge=0, le=10_000)
    alpha: float = Field(_FUSION.alpha, ge=0, le=1)
    norm: Literal[NORMS] = _FUSION.norm  # type: ignore[valid-type]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=MAX_QUERY)
    k: int = Field(10, ge=1, le=MAX_K)
    mode: Literal["dense", "bm25", "hybrid"] | None = Field(None, description="Default: the library's default mode.")
    rerank: bool = Field(False, description="Rerank with the server's cross-encoder (serve --rerank-model).")
    candidates: int = Field(50, ge=1, le=MAX_CANDIDATES)
    chunks: bool = False
    min_score: float | None = None
    min_relevance: float | None = Field(
        None, ge=0, le=1, description="Only hits at least this likely to be relevant (see /status for the default)."
    )
    context: int = Field(0, ge=0, le=10, description="Chunks either side of each hit to return with it.")
    filters: FilterSpec | None = None
    fusion: FusionSpec | None = Field(None, description="How hybrid mode fuses. Default: the index's own.")
    diverse: bool = Field(False, description="Pick the k hits by maximal marginal relevance among the candidates.")
    mmr_lambda: float = Field(0.5, ge=0, le=1, description="diverse: relevance's weight against novelty.")
    max_tokens: int | None = Field(None, ge=1, description="The most word pieces the hits' texts take together.")
    tokenizer: str | None = Field(
        None, max_length=300, description="What counts max_tokens: a Hugging Face id (default: the index's model)."
    )


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=1000)
    text: str
    title: str = Field("", max_length=1000)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Records(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[Record] = Field(min_length=1, max_length=10_000)


def create_app(
    service: Service,
    *,
    api_key: str | None = None,
    open_reads: bool = True,
    cors: tuple[str, ...] = (),
    hosts: tuple[str, ...] = (),
) -> FastAPI:
    """The app over `service`. open_reads: searches and reads need no key (a loopback bind), and then only the
    loopback names and `hosts` (the bound address, names the user trusts) are answered."""
    app = FastAPI(title="searchbert", summary="Semantic search over your own documents", version=_version())
    app.add_middleware(SameOrigin, allowed=cors)
    if cors:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])  # fmt: skip
    app.add_middleware(BodyLimit)
    if open_reads:  # added last: the outermost, so a foreign name is refused before anything else runs
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=[*LOOPBACK_HOSTS, *hosts], www_redirect=False)

    def key_checked(request: Request) -> None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if api_key is None:
            raise _Refused(403, "writes are off: start the server with --api-key (or SEARCHBERT_API_KEY)")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise _Refused(401, "missing or wrong API key: send 'Authorization: Bearer KEY'")

    def read_checked(request: Request) -> None:
        if not open_reads:
            key_checked(request)

    @app.exception_handler(_Refused)
    async def refused(_: Request, exc: _Refused) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(SearchbertError)
    async def failed(_: Request, exc: SearchbertError) -> JSONResponse:
        # a model or an extra the request asks for (rerank: true, a tokenizer) that this machine lacks is the
        # request's to change: 400 with what to do, never a 500
        asked = {InvalidArgument: 400, ModelNotAvailable: 400, MissingExtra: 400, DocumentNotFound: 404}
        status = {**asked, IndexBusy: 503, IndexLocked: 503}.get(type(exc), 500)
        headers = {"Retry-After": "2"} if status == 503 else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/health", summary="Is the server up")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/status", summary="What the index holds", dependencies=[Depends(read_checked)])
    def status() -> dict[str, Any]:
        return service.status()

    @app.post("/search", summary="The best hits for a query", dependencies=[Depends(read_checked)])
    def search(body: SearchRequest) -> list[dict[str, Any]]:
        fields = body.model_dump(exclude={"query", "filters", "mode", "fusion"})
        filters = Filters(**body.filters.model_dump()) if body.filters else None
        mode = {"mode": body.mode} if body.mode else {}
        fusion = Fusion(**body.fusion.model_dump()) if body.fusion else None
        options = SearchOptions(**fields, **mode, filters=filters or None, fusion=fusion)
        return [h.to_dict() for h in service.search(body.query, options)]

    @app.get("/documents/{doc_id:path}", summary="A stored document, whole or some lines",
             dependencies=[Depends(read_checked)])  # fmt: skip
    def document(
        doc_id: str, start_line: int | None = Query(None, ge=1), end_line: int | None = Query(None, ge=1)
    ) -> dict[str, Any]:
        d = service.document(doc_id, start_line, end_line)
        lines = {"start_line": start_line or 1, "end_line": end_line}
        return {"id": d.path, "title": d.title, "format": d.format, "metadata": d.metadata, "text": d.text, **lines}

    @app.post("/documents", summary="Add or replace records (by id)", dependencies=[Depends(key_checked)])
    def upsert(body: Records) -> dict[str, Any]:
        docs = [Document(path=r.id, text=r.text, title=r.title, metadata=r.metadata) for r in body.documents]
        return service.upsert(docs)

    @app.delete("/documents/{doc_id:path}", summary="Remove a record", dependencies=[Depends(key_checked)])
    def delete(doc_id: str) -> dict[str, int]:
        return {"removed": service.delete(doc_id)}

    return app


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail


class BodyLimit:
    """Refuse a body larger than the route allows (413) before reading it whole: by its Content-Length, or, when
    it has none (chunked), as its bytes arrive."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = MAX_WRITE_BODY if scope["path"].startswith("/documents") else MAX_SEARCH_BODY
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await _too_large(send, limit)
        seen, answered = 0, False

        async def counted() -> dict:
            # past the limit: answer 413 here, and tell the app the client is gone (it stops reading)
            nonlocal seen, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                answered = True
                await _too_large(send, limit)
                return {"type": "http.disconnect"}
            return message

        async def unless_answered(message: dict) -> None:
            if not answered:
                await send(message)

        await self.app(scope, counted, unless_answered)


class SameOrigin:
    """Refuse (403) a POST or DELETE that a browser sends from another site's page: its Origin must be the server's
    own (the Host it was sent to) or one CORS allows. Programs send no Origin and pass; a page elsewhere cannot make
    a visitor's browser search (or, with a key it should not have, write) in the background."""

    def __init__(self, app: Any, allowed: tuple[str, ...] = ()) -> None:
        self.app, self.allowed = app, {o.rstrip("/").lower() for o in allowed}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and not self._same(origin.lower(), headers.get("host", "").lower()):
                body = JSONResponse({"detail": f"requests from pages at {origin} are not accepted"}, status_code=403)
                return await body(scope, receive, send)
        await self.app(scope, receive, send)

    def _same(self, origin: str, host: str) -> bool:
        from urllib.parse import urlsplit

        return origin in self.allowed or (origin != "null" and bool(host) and urlsplit(origin).netloc == host)


async def _too_large(send: Any, limit: int) -> None:
    body = JSONResponse({"detail": f"the request body is over {limit} bytes"}, status_code=413)
    await send({"type": "http.response.start", "status": 413, "headers": body.raw_headers})
    await send({"type": "http.response.body", "body": body.body})


def _version() -> str:
    from .. import __version__

    return __version__
