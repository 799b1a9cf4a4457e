"""`index --rebuild` from a shell under the long-running processes users keep open: `watch` goes on indexing into the
new index, and `serve` and `mcp` answer from it (never from the documents the rebuild dropped). Real processes, the
real bundled model."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import ClientSession

from searchbert.server.client import SERVER_FILE

from .conftest import write_tree
from .test_mcp import _session
from .test_serve_cli import searchbert, start, wait_for

OLD = {"light.md": "# Lighthouses\n\nLighthouses guide ships at night with a rotating beam.\n",
       "bread.md": "# Bread\n\nSourdough bread needs a starter, flour, water and time.\n"}  # fmt: skip
NEW = {"volcano.md": "# Volcanoes\n\nLava and ash pour from an erupting volcano.\n",
       "glacier.md": "# Glaciers\n\nGlaciers carve fjords into the northern coast.\n"}  # fmt: skip


def _found(ix: Path, query: str) -> list[str]:
    run = searchbert("query", query, "--index", str(ix), "--json", "-k", "5", "--mode", "bm25", "--no-server")
    assert run.returncode == 0, run.stderr
    return [Path(h["path"]).name for h in json.loads(run.stdout)]


@pytest.mark.model
def test_watch_goes_on_into_the_rebuilt_index(tmp_path: Path) -> None:
    docs = write_tree(tmp_path / "docs", OLD)
    ix = tmp_path / "ix"
    assert searchbert("index", str(docs), "--index", str(ix), "-q").returncode == 0
    watcher = start("watch", "--index", str(ix))
    try:
        time.sleep(3)  # let it start watching
        assert searchbert("index", str(docs), "--index", str(ix), "--rebuild", "-q").returncode == 0
        (docs / "fjord.md").write_text("Fjords are long narrow inlets carved by glaciers.")
        wait_for(lambda: "fjord.md" in _found(ix, "fjords inlets"), 60, "the new file to be searchable")
        health = json.loads(searchbert("status", "--index", str(ix), "--deep", "--json").stdout)
        assert health["consistent"] and health["documents"] == 3 and health["vectors"] == health["chunks"], health
    finally:
        watcher.send_signal(signal.SIGTERM)
        _, errors = watcher.communicate(timeout=30)
    assert "Traceback" not in errors


@pytest.mark.model
def test_serve_and_mcp_answer_from_the_rebuilt_index(tmp_path: Path) -> None:
    old, new = write_tree(tmp_path / "old", OLD), write_tree(tmp_path / "new", NEW)
    ix = tmp_path / "ix"
    assert searchbert("index", str(old), "--index", str(ix), "-q").returncode == 0
    server = start("serve", "--index", str(ix), "--port", "0", "--exit-after", "240")
    try:
        wait_for(lambda: (ix / SERVER_FILE).exists() or server.poll() is not None, 120, "the server to announce itself")
        url = json.loads((ix / SERVER_FILE).read_text())["url"]

        def http(query: str) -> list[str]:
            answer = httpx.post(f"{url}/search", json={"query": query, "k": 5}, timeout=60)
            assert answer.status_code == 200, answer.text
            return [Path(h["path"]).name for h in answer.json()]

        async def work(session: ClientSession) -> dict:
            out = {
                "before": await session.call_tool("search", {"query": "lighthouse bread", "k": 5, "min_relevance": 0})
            }
            out["http before"] = http("lighthouse bread")
            rebuilt = await anyio.to_thread.run_sync(
                lambda: searchbert("index", str(new), "--index", str(ix), "--rebuild", "-q")
            )
            assert rebuilt.returncode == 0, rebuilt.stderr
            out["after"] = await session.call_tool(
                "search", {"query": "lighthouse bread volcano glaciers", "k": 5, "min_relevance": 0}
            )
            out["gone"] = await session.call_tool("get_document", {"id": str((old / "light.md").resolve())})
            out["http after"] = http("lighthouse bread volcano glaciers")
            return out

        out, _ = anyio.run(_session, ix, work)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)

    def names(result) -> set[str]:  # type: ignore[no-untyped-def]
        return {Path(h["id"]).name for h in result.structured_content["hits"]}

    assert names(out["before"]) == set(OLD) and set(out["http before"]) == set(OLD)
    assert names(out["after"]) == set(NEW), out["after"]
    assert set(out["http after"]) == set(NEW)
    assert out["gone"].is_error
