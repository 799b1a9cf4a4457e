"""`searchbert serve` and `searchbert watch` as users run them: real processes, the real bundled model. `query`
finds a running server through the index folder and prints what it would have printed alone; a stale announcement
is ignored; --watch and `watch` re-index an edited file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from searchbert.server.client import SERVER_FILE

from .conftest import write_tree

ROOT = Path(__file__).resolve().parent.parent
DOCS = {
    "light.md": "# Lighthouses\n\nLighthouses guide ships at night with a rotating beam.\n",
    "bread.md": "# Bread\n\nSourdough bread needs a starter, flour, water and time.\n",
    "notes/volcano.md": "# Volcanoes\n\nLava and ash pour from an erupting volcano.\n",
}


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SEARCHBERT_INDEX", None)
    return env


def searchbert(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "searchbert", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())  # fmt: skip


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "searchbert", *args], stderr=subprocess.PIPE, text=True,
                            env={**_env(), "PYTHONFAULTHANDLER": "1"})  # fmt: skip


def stop(process: subprocess.Popen[str]) -> int:
    """SIGTERM (SIGINT is ignored where the tests run in a background job), and its exit status within 30 s; else
    its threads' stacks (faulthandler, on SIGABRT) in the failure."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        _, stderr = process.communicate(timeout=30)
        raise AssertionError(f"still running 30 s after SIGTERM:\n{stderr[-6000:]}") from None


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.2)


def test_serving_beyond_loopback_needs_a_key(tmp_path: Path) -> None:
    run = searchbert("serve", "--index", str(tmp_path / "ix"), "--host", "0.0.0.0")
    assert run.returncode == 2 and "set an API key" in run.stderr and "Traceback" not in run.stderr


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("served")
    docs = write_tree(base / "docs", DOCS)
    assert searchbert("index", str(docs), "--index", str(base / "ix"), "-q").returncode == 0
    return docs, base / "ix"


@pytest.fixture
def server(indexed: tuple[Path, Path]) -> Iterator[subprocess.Popen[str]]:
    _, ix = indexed
    process = start("serve", "--index", str(ix), "--port", "0", "--exit-after", "240", "--watch")
    wait_for(lambda: (ix / SERVER_FILE).exists() or process.poll() is not None, 120, "the server to announce itself")
    assert process.poll() is None, process.stderr.read() if process.stderr else ""
    yield process
    assert stop(process) == 0


@pytest.mark.model
def test_query_asks_the_running_server_and_prints_the_same(indexed, server) -> None:  # type: ignore[no-untyped-def]
    _, ix = indexed
    url = json.loads((ix / SERVER_FILE).read_text())["url"]
    for args in (["ships at night"], ["volcano", "--json", "--explain"], ["bread", "--mode", "hybrid", "-k", "2"],
                 ["lava", "--path", "notes/*", "--jsonl"]):  # fmt: skip
        served = searchbert("-v", "query", *args, "--index", str(ix))
        alone = searchbert("-v", "query", *args, "--index", str(ix), "--no-server")
        assert served.returncode == 0 and alone.returncode == 0, served.stderr + alone.stderr
        assert f"answered by the server at {url}" in served.stderr
        assert "answered by the server" not in alone.stderr
        assert served.stdout == alone.stdout
    long = searchbert("-v", "query", "lighthouse " * 300, "--index", str(ix))  # past the server's limits
    assert long.returncode == 0 and "answered by the server" not in long.stderr, long.stderr
    import httpx  # a page whose name was pointed at 127.0.0.1 (DNS rebinding) is not answered

    port = url.rsplit(":", 1)[1]
    asked = [httpx.post(f"{url}/search", json={"query": "ships"}, headers={"Host": f"{name}:{port}"}).status_code
             for name in ("attacker.example", "localhost")]  # fmt: skip
    assert asked == [400, 200]


@pytest.mark.model
def test_a_copy_of_a_served_index_answers_for_itself(indexed, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    docs, ix = indexed
    copy = tmp_path / "copy"
    shutil.copytree(ix, copy)  # serve.json travels with it
    assert searchbert("remove", str(docs / "light.md"), "--index", str(copy)).returncode == 0
    run = searchbert("-v", "query", "ships at night", "--index", str(copy), "--json", "--min-relevance", "0")
    assert run.returncode == 0 and "answered by the server" not in run.stderr, run.stderr
    assert "light.md" not in run.stdout  # removed from the copy; the original's server still has it


@pytest.mark.model
def test_serve_watch_reindexes_an_edited_file(indexed, server) -> None:  # type: ignore[no-untyped-def]
    docs, ix = indexed
    time.sleep(1)  # the watcher starts with the server
    (docs / "bread.md").write_text("# Bread\n\nRye bread keeps for a week, wrapped in linen.\n")

    def found() -> bool:
        run = searchbert("query", "rye bread wrapped in linen", "--index", str(ix), "--json", "-k", "1")
        hits = json.loads(run.stdout or "[]")
        return bool(hits) and "linen" in hits[0]["text"]

    wait_for(found, 60, "the edit to be searchable")


@pytest.mark.model
def test_a_stopped_server_leaves_no_announcement_and_a_stale_one_is_ignored(indexed) -> None:  # type: ignore[no-untyped-def]
    _, ix = indexed
    process = start("serve", "--index", str(ix), "--port", "0")
    wait_for(lambda: (ix / SERVER_FILE).exists(), 120, "the server to announce itself")
    assert stop(process) == 0
    assert not (ix / SERVER_FILE).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"pid": int(dead.stdout), "url": "http://127.0.0.1:9", "rerank_model": None}  # its process is gone
    (ix / SERVER_FILE).write_text(json.dumps(stale))
    run = searchbert("-v", "query", "lighthouse", "--index", str(ix), "--json")
    assert run.returncode == 0 and json.loads(run.stdout)[0]["path"].endswith("light.md")
    assert "answered by the server" not in run.stderr
    here = [str(ix.resolve()), ix.stat().st_dev, ix.stat().st_ino]  # this folder's
    deaf = {"pid": os.getpid(), "url": "http://127.0.0.1:9", "rerank_model": None, "index": here}  # nothing listens
    (ix / SERVER_FILE).write_text(json.dumps(deaf))
    run = searchbert("-v", "query", "lighthouse", "--index", str(ix), "--json")
    assert run.returncode == 0 and "searching in this process" in run.stderr
    (ix / SERVER_FILE).unlink()


@pytest.mark.model
def test_watch_reindexes_a_new_file(tmp_path: Path) -> None:
    docs = write_tree(tmp_path / "docs", {"a.md": "Lighthouses guide ships at night."})
    ix = tmp_path / "ix"
    assert searchbert("index", str(docs), "--index", str(ix), "-q").returncode == 0
    watcher = start("watch", "--index", str(ix))
    try:
        time.sleep(3)  # let it start watching
        (docs / "b.md").write_text("Glaciers carve fjords into the coast.")

        def found() -> bool:
            run = searchbert("query", "fjords", "--index", str(ix), "--json", "-k", "1", "--mode", "bm25")
            return bool(json.loads(run.stdout or "[]"))

        wait_for(found, 60, "the new file to be searchable")
    finally:
        stop(watcher)
