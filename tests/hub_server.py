"""A stand-in for the Hugging Face hub on 127.0.0.1, serving model folders the tests save, for huggingface_hub's
real download code (pointed at it with HF_ENDPOINT). It answers what snapshot_download asks: the model's info, its
file tree, and each file (HEAD for the metadata, GET for the bytes, a Range for the rest of a broken download);
`broken` files drop their connection half way the first time."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


class FakeHub:
    def __init__(self, models: dict[str, Path]) -> None:
        self.models = models
        self.sha = {name: hashlib.sha1(name.encode()).hexdigest() for name in models}
        self.requests: list[str] = []
        self.broken: set[str] = set()  # files whose first download drops half way (a resume gets the rest)
        self.corrupt: set[str] = set()  # files served with their bytes changed (the same length)
        self.lfs = {"model.safetensors"}  # files the hub keeps in LFS: listed with their sha256
        self.server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def files(self, name: str) -> dict[str, Path]:
        root = self.models[name]
        return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}

    def downloads(self) -> list[str]:
        return [r for r in self.requests if r.startswith("GET") and "/resolve/" in r]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _json(self, data: object, status: int = 200) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            if status == 404:
                self.send_header("X-Error-Code", "RepoNotFound")  # as the hub says it
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _model(self, parts: list[str]) -> str | None:
            name = "/".join(parts[:2])
            return name if name in hub.models else None

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            hub.requests.append(f"{self.command} {self.path}")
            path = unquote(urlparse(self.path).path).strip("/")
            parts = path.split("/")
            if parts[:2] == ["api", "models"]:
                name = self._model(parts[2:])
                if name is None:
                    return self._json({"error": "Repository not found"}, 404)
                rest = parts[4:]
                files = hub.files(name)
                if rest and rest[0] == "tree":
                    tree = []
                    for f, p in files.items():
                        entry = {"type": "file", "path": f, "size": p.stat().st_size, "oid": _oid(p)}
                        if f in hub.lfs:
                            entry["lfs"] = {"oid": _sha256(p), "size": p.stat().st_size, "pointerSize": 134}
                        tree.append(entry)
                    return self._json(tree)
                siblings = []
                for f, p in files.items():
                    sibling: dict[str, object] = {"rfilename": f, "size": p.stat().st_size, "blobId": _oid(p)}
                    if f in hub.lfs:
                        sibling["lfs"] = {"sha256": _sha256(p), "size": p.stat().st_size, "pointerSize": 134}
                    siblings.append(sibling)
                return self._json({"id": name, "modelId": name, "sha": hub.sha[name], "siblings": siblings})
            name = self._model(parts)
            if name is None or len(parts) < 5 or parts[2] != "resolve":
                return self._json({"error": "Repository not found"}, 404)
            rel = "/".join(parts[4:])
            files = hub.files(name)
            if rel not in files:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            data = files[rel].read_bytes()
            if rel in hub.corrupt:
                data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
            start = 0
            wanted = self.headers.get("Range", "")
            if wanted.startswith("bytes=") and wanted.endswith("-"):  # a resumed download: the rest of the file
                start = int(wanted[len("bytes=") : -1])
                hub.requests.append(f"RANGE {rel} {start}")
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", hub.sha[name])
            if rel in hub.lfs:  # the hub names an LFS file by its sha256
                self.send_header("X-Linked-Etag", f'"{_sha256(files[rel])}"')
                self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", f'"{_oid(files[rel])}"')
            self.send_header("Content-Length", str(len(data) - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if body:
                if rel in hub.broken and not start:  # the connection drops half way, once
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                else:
                    self.wfile.write(data[start:])
            return None

    return Handler


def _oid(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def serving(models: dict[str, Path]) -> Iterator[FakeHub]:
    """The stand-in hub on a free port, stopped on exit."""
    hub = FakeHub(models)
    hub.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    thread = threading.Thread(target=hub.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        hub.server.shutdown()
        hub.server.server_close()


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """An address that accepts connections and never answers: a hub that hangs."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
