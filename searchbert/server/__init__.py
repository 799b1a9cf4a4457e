"""`searchbert serve`: the index as an HTTP service (app.py) that `query` finds and asks (client.py).

Importing this package loads no web framework: `serve` imports FastAPI and uvicorn (extra `serve`) when it runs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import InvalidArgument, SearchbertError

log = logging.getLogger("searchbert")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    index_path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    api_key: str | None = None,
    cors: tuple[str, ...] = (),
    trusted_hosts: tuple[str, ...] = (),
    rerank_model: str | None = None,
    watch: bool = False,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    exit_after: float | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the index until interrupted (or for `exit_after` seconds). A non-loopback `host` needs `api_key`; a
    loopback one answers requests sent to loopback names, its own address and `trusted_hosts` only."""
    if not is_loopback(host) and not api_key:
        raise InvalidArgument(
            f"serving on {host} opens the index to the network: set an API key (--api-key or SEARCHBERT_API_KEY), "
            "or bind to 127.0.0.1"
        )
    try:
        import uvicorn

        from .app import create_app
    except ImportError as exc:
        raise SearchbertError(f"serve needs the serve extra: pip install 'searchbert[serve]' ({exc})") from exc
    from ..records import SearchOptions
    from ..service import Service
    from .client import announce, withdraw

    path = Path(index_path)
    service = Service(path, rerank_model=rerank_model)
    service.search("warm up", SearchOptions(k=1))  # load the model (and BM25) before the first caller waits
    own = f"[{host}]" if ":" in host else host
    app = create_app(service, api_key=api_key, open_reads=is_loopback(host), cors=cors, hosts=(own, *trusted_hosts))
    sock = _bind(host, port)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    stop = threading.Event()
    url = f"http://{host if ':' not in host else f'[{host}]'}:{sock.getsockname()[1]}"

    def when_listening() -> None:
        while not server.started and not stop.is_set():
            time.sleep(0.02)
        if server.started:
            announce(path, host, sock.getsockname()[1], rerank_model)
            if on_ready:
                on_ready(url)

    threading.Thread(target=when_listening, daemon=True).start()
    if watch:
        threading.Thread(target=_watch, args=(service, path, include, exclude, stop), daemon=True).start()
    if exit_after:
        timer = threading.Timer(exit_after, lambda: setattr(server, "should_exit", True))
        timer.daemon = True  # never what keeps a stopped server's process alive
        timer.start()
    try:
        with _stopped_by_signals():
            server.run(sockets=[sock])
    finally:
        stop.set()
        withdraw(path)
        service.close()


class _Stop(Exception):
    pass


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again for whatever handled it before:
    here, a quiet return (so the announcement is withdrawn), never a kill or a KeyboardInterrupt's traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise _Stop

    before = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except _Stop:
        pass
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SearchbertError(f"cannot listen on {host}:{port}: {exc.strerror} (another server? try --port)") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _watch(service: object, path: Path, include: tuple[str, ...], exclude: tuple[str, ...], stop: threading.Event):
    from ..watch import summary, watch, watched_roots

    roots = watched_roots(path)
    if not roots:
        log.warning("--watch: the index holds no folders to watch (only records)")
        return

    def said(report: object, changes: int) -> None:
        log.info("re-indexed: %s", summary(report, changes))  # type: ignore[arg-type]

    watch(lambda: service.reindex(roots, include, exclude), roots, path, stop=stop, on_report=said)  # type: ignore[attr-defined]
