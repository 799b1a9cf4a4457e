"""`searchbert serve`'s API over real sockets: a uvicorn server on a free loopback port, in a thread, over an index
made with the fake encoder. Bad input of every kind gets a JSON 4xx and the server keeps answering; writes need
the key; a write never stops searches and is seen when it commits; a rebuild by another writer is survived."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from searchbert import Index
from searchbert.records import Document
from searchbert.server.app import MAX_SEARCH_BODY, create_app
from searchbert.service import Service

KEY = "test-key"
DOCS = {
    "volcano.md": "Volcano eruptions send lava and ash over the valley.\nLava cools into basalt.\nThe end.",
    "bread.md": "Sourdough bread rises slowly with a wild yeast starter.",
    "ships.md": "Lighthouses guide ships at night with a rotating beam.",
}


@contextmanager
def running(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """`app` served by uvicorn on a free 127.0.0.1 port in a thread, stopped on exit."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def _index(path: Path, encoder) -> Path:  # type: ignore[no-untyped-def]
    with Index.create(path, encoder=encoder) as index:
        index.add_documents(Document(path=name, text=text, title=name) for name, text in DOCS.items())
    return path


@pytest.fixture
def api(tmp_path: Path, fake_encoder) -> Iterator[tuple[httpx.Client, Service]]:  # type: ignore[no-untyped-def]
    service = Service(_index(tmp_path / "ix", fake_encoder), encoder=fake_encoder)
    with running(create_app(service, api_key=KEY)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, service
    service.close()


def _alive(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.post("/search", json={"query": "lava"}).status_code == 200


def test_search_returns_the_hits_query_json_prints(api) -> None:  # type: ignore[no-untyped-def]
    client, service = api
    got = client.post("/search", json={"query": "lava basalt", "k": 2, "mode": "hybrid"})
    assert got.status_code == 200
    hits = got.json()
    assert hits[0]["path"] == "volcano.md" and len(hits) == 2
    from searchbert.records import SearchOptions

    assert hits == [h.to_dict() for h in service.search("lava basalt", SearchOptions(k=2, mode="hybrid"))]
    narrowed = client.post("/search", json={"query": "lava", "filters": {"paths": ["bread*"]}, "mode": "dense"})
    assert [h["path"] for h in narrowed.json()] == ["bread.md"]
    status = client.get("/status").json()
    assert status["documents"] == 3 and 0 < status["min_relevance"] < 1
    assert all(0 <= h["relevance"] <= 1 for h in hits)
    # relevance filters: words none of the texts has leave no hit to return
    floor = status["min_relevance"]
    assert client.post("/search", json={"query": "qwxzv blorf", "mode": "hybrid", "min_relevance": floor}).json() == []
    assert client.post("/search", json={"query": "lava", "min_relevance": 2}).status_code == 422


def test_documents_are_read_by_id_and_lines_never_from_the_file_system(api) -> None:  # type: ignore[no-untyped-def]
    client, _ = api
    doc = client.get("/documents/volcano.md", params={"start_line": 2, "end_line": 2}).json()
    assert doc["text"] == "Lava cools into basalt.\n" and doc["title"] == "volcano.md"
    for missing in ("/etc/passwd", "../../etc/passwd", "nope.md"):
        answer = client.get(f"/documents/{quote(missing, safe='')}")  # an id, looked up: never a file opened
        assert answer.status_code == 404 and f"no document with id {missing!r}" in answer.json()["detail"]
    assert client.get("/documents/volcano.md", params={"start_line": 0}).status_code == 422


def test_writes_need_the_key_and_are_seen_by_the_next_search(api) -> None:  # type: ignore[no-untyped-def]
    client, _ = api
    record = {"documents": [{"id": "r1", "text": "Glaciers carve fjords.", "metadata": {"year": 2024}}]}
    assert client.post("/documents", json=record).status_code == 401
    wrong = client.post("/documents", json=record, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "API key" in wrong.json()["detail"]
    done = client.post("/documents", json=record, headers={"Authorization": f"Bearer {KEY}"})
    assert done.status_code == 200 and done.json()["added"] == 1
    found = client.post("/search", json={"query": "fjords", "mode": "bm25", "filters": {"metadata": {"year": 2024}}})
    assert [h["path"] for h in found.json()] == ["r1"] and found.json()[0]["metadata"] == {"year": 2024}
    assert client.delete("/documents/r1").status_code == 401
    assert client.delete("/documents/r1", headers={"Authorization": f"Bearer {KEY}"}).json() == {"removed": 1}
    assert client.delete("/documents/r1", headers={"Authorization": f"Bearer {KEY}"}).status_code == 404
    assert client.post("/search", json={"query": "fjords", "mode": "bm25"}).json() == []


def test_without_a_key_writes_are_off(tmp_path: Path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    service = Service(_index(tmp_path / "ix", fake_encoder), encoder=fake_encoder)
    with running(create_app(service)) as url:
        answer = httpx.post(f"{url}/documents", json={"documents": [{"id": "a", "text": "b"}]})
        assert answer.status_code == 403 and "--api-key" in answer.json()["detail"]
        assert "access-control-allow-origin" not in httpx.get(f"{url}/health", headers={"Origin": "http://x"}).headers
    service.close()


@pytest.mark.parametrize(
    "body,status,says",
    [
        (b"{not json", 422, "JSON"),
        (b"[1, 2]", 422, "valid dictionary"),
        (json.dumps({"query": 42}).encode(), 422, "string"),
        (json.dumps({"query": "lava", "k": 0}).encode(), 422, "greater than or equal to 1"),
        (json.dumps({"query": "lava", "k": 10_000}).encode(), 422, "less than or equal to 100"),
        (json.dumps({"query": "lava", "candidates": 10**9}).encode(), 422, "less than or equal to 500"),
        (json.dumps({"query": "x" * 5000}).encode(), 422, "at most 2000 characters"),
        (json.dumps({"query": "lava", "mode": "psychic"}).encode(), 422, "'dense', 'bm25' or 'hybrid'"),
        (json.dumps({"query": "lava", "path": "/etc"}).encode(), 422, "Extra inputs"),
        (json.dumps({"query": "lava", "filters": {"metadata": {"a": {"$gt": 1}}}}).encode(), 400, "metadata filter"),
        (json.dumps({"query": "   "}).encode(), 400, "empty"),
        (json.dumps({"query": "lava", "pad": "x" * (MAX_SEARCH_BODY + 10)}).encode(), 413, "over"),
    ],
)
def test_bad_input_is_a_json_4xx_and_the_server_goes_on(api, body: bytes, status: int, says: str) -> None:  # type: ignore[no-untyped-def]
    client, _ = api
    answer = client.post("/search", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert says in json.dumps(answer.json()), answer.json()
    _alive(client)


def test_a_chunked_body_past_the_limit_is_cut_off(api) -> None:  # type: ignore[no-untyped-def]
    client, _ = api

    def body() -> Iterator[bytes]:  # no Content-Length: the limit counts the bytes as they come
        yield b'{"query": "lava", "pad": "'
        for _ in range(200):
            yield b"x" * 1024
        yield b'"}'

    answer = client.post("/search", content=body(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    _alive(client)


def test_searches_go_on_while_a_write_runs_and_see_it_when_it_commits(api) -> None:  # type: ignore[no-untyped-def]
    client, _ = api
    records = {"documents": [{"id": f"n{i}", "text": f"note {i} about quartz crystals " * 30} for i in range(300)]}
    answers: list[int] = []
    writer = threading.Thread(
        target=lambda: answers.append(
            client.post("/documents", json=records, headers={"Authorization": f"Bearer {KEY}"}).status_code
        )
    )
    writer.start()
    during = 0
    while writer.is_alive():
        assert client.post("/search", json={"query": "lava", "mode": "bm25"}).status_code == 200
        during += 1
    writer.join()
    assert answers == [200] and during > 0
    hits = client.post("/search", json={"query": "quartz crystals", "mode": "bm25", "k": 5}).json()
    assert len(hits) == 5 and all(h["path"].startswith("n") for h in hits)


def test_a_rebuild_by_another_writer_is_busy_then_served(tmp_path: Path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    path = _index(tmp_path / "ix", fake_encoder)
    service = Service(path, encoder=fake_encoder)
    with running(create_app(service)) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/search", json={"query": "lava", "mode": "bm25"}).json()[0]["path"] == "volcano.md"
        statuses: set[int] = set()
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                answer = client.post("/search", json={"query": "lava", "mode": "bm25"})
                statuses.add(answer.status_code)
                assert "detail" in answer.json() if answer.status_code != 200 else True

        thread = threading.Thread(target=hammer)
        thread.start()
        with Index.create(path, encoder=fake_encoder, rebuild=True) as index:  # what `index --rebuild` does
            index.add_documents([Document(path="granite.md", text="Granite is an igneous rock with lava origins.")])
        time.sleep(0.3)
        stop.set()
        thread.join()
        assert statuses <= {200, 503}, statuses
        hits = client.post("/search", json={"query": "lava", "mode": "bm25"}).json()
        assert [h["path"] for h in hits] == ["granite.md"]  # the new index, without a restart
    service.close()


def test_openapi_docs_and_cors_only_when_asked(tmp_path: Path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    service = Service(_index(tmp_path / "ix", fake_encoder), encoder=fake_encoder)
    with running(create_app(service, cors=("http://notes.example",))) as url:
        spec = httpx.get(f"{url}/openapi.json").json()
        assert {"/search", "/documents", "/documents/{doc_id}", "/status", "/health"} <= set(spec["paths"])
        assert httpx.get(f"{url}/docs").status_code == 200
        allowed = httpx.options(f"{url}/search", headers={"Origin": "http://notes.example",
                                                         "Access-Control-Request-Method": "POST"})  # fmt: skip
        assert allowed.headers["access-control-allow-origin"] == "http://notes.example"
        other = httpx.get(f"{url}/health", headers={"Origin": "http://elsewhere.example"})
        assert "access-control-allow-origin" not in other.headers
        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and '<form id="search"' in page.text
        assert httpx.get(f"{url}/static/../app.py").status_code == 404  # the page's own files only
    service.close()


def test_on_loopback_only_loopback_names_are_answered(tmp_path: Path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    """DNS rebinding: a page at attacker.example whose name now resolves to 127.0.0.1 sends Host: attacker.example.
    Loopback reads need no key, so such a request must not be answered."""
    service = Service(_index(tmp_path / "ix", fake_encoder), encoder=fake_encoder)
    with running(create_app(service, api_key=KEY, hosts=("search.internal",))) as url, httpx.Client(timeout=30) as c:
        port = url.rsplit(":", 1)[1]

        def sent_to(name: str) -> int:
            return c.post(f"{url}/search", json={"query": "lava"}, headers={"Host": f"{name}:{port}"}).status_code

        assert [sent_to(n) for n in ("attacker.example", "localhost.attacker.example", "127.0.0.1.nip.io")] == [400] * 3
        assert c.get(f"{url}/status", headers={"Host": "attacker.example"}).status_code == 400
        trusted = ("localhost", "127.0.0.1", "docs.localhost", "[::1]", "search.internal")
        assert [sent_to(n) for n in trusted] == [200] * len(trusted)
    with running(create_app(service, api_key=KEY, open_reads=False)) as url:  # off loopback the key guards reads
        keyed = {"Host": "search.example.org", "Authorization": f"Bearer {KEY}"}
        assert httpx.post(f"{url}/search", json={"query": "lava"}, headers=keyed).status_code == 200
    service.close()


def test_pages_elsewhere_cannot_post(api) -> None:  # type: ignore[no-untyped-def]
    client, _ = api
    key = {"Authorization": f"Bearer {KEY}"}
    record = {"documents": [{"id": "x.md", "text": "basalt"}]}
    elsewhere = {"Origin": "http://attacker.example"}
    assert client.post("/search", json={"query": "lava"}, headers=elsewhere).status_code == 403
    assert client.post("/documents", json=record, headers={**key, **elsewhere}).status_code == 403
    assert client.delete("/documents/lava.md", headers={**key, **elsewhere}).status_code == 403
    assert client.post("/search", json={"query": "lava"}, headers={"Origin": "null"}).status_code == 403
    own = {"Origin": str(client.base_url).rstrip("/")}  # the search page's own requests
    assert client.post("/search", json={"query": "lava"}, headers=own).status_code == 200
    assert client.post("/documents", json=record, headers={**key, **own}).status_code == 200
    assert client.get("/status", headers=elsewhere).status_code == 200  # reads by GET: CORS keeps the answer from it


def test_an_announcement_copied_with_its_folder_is_not_trusted(tmp_path: Path) -> None:
    import shutil

    from searchbert.server.client import announce, find

    original = tmp_path / "ix"
    original.mkdir()
    announce(original, "127.0.0.1", 8765, None)  # this process stands for the server: alive
    assert find(original) is not None
    shutil.copytree(original, tmp_path / "copy")  # `cp -r ix copy`: serve.json travels with it
    assert find(tmp_path / "copy") is None
    original.rename(tmp_path / "ix.old")
    shutil.copytree(tmp_path / "ix.old", original)  # a copy put where the served folder was
    assert find(original) is None


def test_rerank_without_a_cross_encoder_is_the_requests_problem(tmp_path: Path, fake_encoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the default cross-encoder cannot be fetched, as on this machine
    ix = _index(tmp_path / "ix", fake_encoder)
    for model in (None, str(tmp_path / "no-such-model")):
        service = Service(ix, encoder=fake_encoder, rerank_model=model)
        with running(create_app(service)) as url:
            answer = httpx.post(f"{url}/search", json={"query": "lava", "rerank": True}, timeout=60)
            assert answer.status_code == 400, answer.text
            assert "cannot rerank" in answer.json()["detail"] and "--rerank-model" in answer.json()["detail"]
            assert httpx.post(f"{url}/search", json={"query": "lava"}).status_code == 200  # and it goes on
        service.close()
