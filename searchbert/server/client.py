"""Finding a running `searchbert serve` for an index, and asking it: what makes `searchbert query` instant.

A server announces itself in SERVER_FILE inside the index folder (its process id, address and reranker, and which
folder it serves: absolute path, device and inode), written once it listens and removed when it stops. A file whose
process is gone, whose server does not answer, or that names another folder (it travelled with `cp -r`) is ignored.
Standard library only: this runs on the query path, where every import costs time.
"""

from __future__ import annotations

import json
import os
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
    data = {"pid": os.getpid(), "url": f"http://{reach}:{port}", "rerank_model": rerank_model,
            "index": _identity(index_path)}  # fmt: skip
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


def _identity(index_path: str | os.PathLike[str]) -> list[Any]:
    """Which folder this is: its absolute path, and its device and inode (a copy put where the original was has the
    path, not the inode)."""
    folder = Path(index_path).resolve()
    stat = folder.stat()
    return [str(folder), stat.st_dev, stat.st_ino]


def find(index_path: str | os.PathLike[str]) -> Running | None:
    """The server announced for this index, if its process is alive and it serves this very folder."""
    try:
        data = json.loads((Path(index_path) / SERVER_FILE).read_text())
        running = Running(str(data["url"]), int(data["pid"]), data.get("rerank_model"))
        if data.get("index") != _identity(index_path):
            return None  # announced for the folder this one was copied from (or by a server too old to say)
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
    """POST JSON to the server and read its answer. Connecting may take CONNECT_TIMEOUT (a server that is not there
    answers at once; a hung one must not hold `query` up), the answer `timeout` (a reranked search takes seconds).
    Its 4xx answers become InvalidArgument with its message; no answer is ServerUnavailable."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(running.url)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port or 80, timeout=CONNECT_TIMEOUT)
    try:
        connection.connect()
        connection.sock.settimeout(timeout)
        headers = {"Content-Type": "application/json", **_key()}
        connection.request("POST", route, body=json.dumps(body).encode(), headers=headers)
        response = connection.getresponse()
        status, data = response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise ServerUnavailable(f"no answer from the server at {running.url}: {exc}") from None
    finally:
        connection.close()
    if status == 200:
        try:
            return json.loads(data)
        except ValueError:
            raise ServerUnavailable(f"the server at {running.url} answered something else than JSON") from None
    detail = _detail(data) or str(status)
    if 400 <= status < 500 and status not in (401, 403):
        raise InvalidArgument(detail)
    raise ServerUnavailable(f"the server at {running.url} answered {status}: {detail}")


def _key() -> dict[str, str]:
    key = os.environ.get("SEARCHBERT_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _detail(data: bytes) -> str:
    try:
        detail = json.loads(data).get("detail")
    except (ValueError, AttributeError):
        return ""
    if isinstance(detail, list):  # a validation error: where and what
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}" for d in detail)
    return str(detail)
