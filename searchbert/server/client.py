"""Finding a running `searchbert serve` for an index, and asking it: what makes `searchbert query` instant.

A server announces itself in SERVER_FILE inside the index folder (its process id, address and reranker), written
once it listens and removed when it stops. A file whose process is gone, or whose server does not answer, is
ignored. Standard library only: this runs on the query path, where every import costs time.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument, SearchbertError

SERVER_FILE = "serve.json"
#: what one request may ask of a server: query characters, hits, reranked candidates
LIMITS = {"query": 2000, "k": 100, "candidates": 500}
#: how long `query` waits for a server before answering in-process
CONNECT_TIMEOUT = 2.0


class ServerUnavailable(SearchbertError):
    """No server answered; the caller answers in-process instead."""


@dataclass(frozen=True)
class Running:
    url: str
    pid: int
    rerank_model: str | None


def announce(index_path: str | os.PathLike[str], host: str, port: int, rerank_model: str | None) -> Path:
    """Write SERVER_FILE for this process (atomically: a reader never sees half of it)."""
    reach = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # where a local client connects
    reach = f"[{reach}]" if ":" in reach else reach
    data = {"pid": os.getpid(), "url": f"http://{reach}:{port}", "rerank_model": rerank_model}
    path = Path(index_path) / SERVER_FILE
    tmp = path.with_name(f".{SERVER_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    return path


def withdraw(index_path: str | os.PathLike[str]) -> None:
    """Remove SERVER_FILE if this process wrote it (another server may have replaced it since)."""
    path = Path(index_path) / SERVER_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def find(index_path: str | os.PathLike[str]) -> Running | None:
    """The server announced for this index, if its process is alive."""
    try:
        data = json.loads((Path(index_path) / SERVER_FILE).read_text())
        running = Running(str(data["url"]), int(data["pid"]), data.get("rerank_model"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(running.pid, 0)
    except ProcessLookupError:
        return None  # stale: the server died without removing it
    except PermissionError:
        pass  # alive, another user's
    return running


def post(running: Running, route: str, body: dict[str, Any], timeout: float = 600) -> Any:
    """POST JSON to the server; its 4xx answers become InvalidArgument with its message; no answer at all (refused,
    reset, timed out connecting) is ServerUnavailable."""
    request = urllib.request.Request(
        running.url + route,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **_key()},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = _detail(exc)
        if 400 <= exc.code < 500 and exc.code not in (401, 403):
            raise InvalidArgument(detail) from None
        raise ServerUnavailable(f"the server at {running.url} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ServerUnavailable(f"no answer from the server at {running.url}: {exc}") from None


def _key() -> dict[str, str]:
    key = os.environ.get("SEARCHBERT_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(exc.read()).get("detail")
    except (OSError, ValueError, AttributeError):
        return exc.reason or str(exc.code)
    if isinstance(detail, list):  # a validation error: where and what
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}" for d in detail)
    return str(detail)
