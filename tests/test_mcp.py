"""`searchbert mcp`: a real server subprocess over stdio, driven by the official SDK's client."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from searchbert import Document, Index

from .test_langchain import NOTES

ROOT = Path(__file__).resolve().parent.parent


async def _session(index: Path, work) -> tuple[object, list[object]]:
    """Start `searchbert mcp --index` and run `work(session)`; also returns anything that arrived on stdout which
    was not a protocol message (the client hands such lines on as exceptions)."""
    stray: list[object] = []

    async def on_message(message: object) -> None:
        if isinstance(message, Exception):
            stray.append(message)

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "searchbert", "mcp", "--index", str(index)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=str(ROOT),
    )
    with open(os.devnull, "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, message_handler=on_message) as session,
        ):
            await session.initialize()
            return await work(session), stray


@pytest.mark.model
def test_an_agent_searches_and_reads_documents_and_bad_input_is_a_tool_error(tmp_path: Path, minilm) -> None:
    index = Index.create(tmp_path / "ix", encoder=minilm)
    index.add_documents(Document(path=i, text=t, title=i, metadata=m) for i, (t, m) in NOTES.items())
    index.close()

    async def work(session: ClientSession) -> dict:
        tools = {t.name for t in (await session.list_tools()).tools}
        out: dict = {"tools": tools}
        out["search"] = await session.call_tool("search", {"query": "when do backups run", "k": 2, "min_relevance": 0})
        out["likely"] = await session.call_tool("search", {"query": "when do backups run", "k": 2})
        out["filtered"] = await session.call_tool(
            "search", {"query": "money", "k": 3, "filters": {"team": "finance"}, "mode": "hybrid", "min_relevance": 0}
        )
        out["lines"] = await session.call_tool("get_document", {"id": "backup", "start_line": 1, "end_line": 1})
        out["empty"] = await session.call_tool("search", {"query": "  "})
        out["k"] = await session.call_tool("search", {"query": "logs", "k": 0})
        out["unknown"] = await session.call_tool("get_document", {"id": "no-such-note"})
        out["operator"] = await session.call_tool("search", {"query": "logs", "filters": {"year": {"$gt": 1}}})
        out["nonsense"] = await session.call_tool("search", {"query": "qwxzv blorfing zanthium"})
        out["after"] = await session.call_tool("search", {"query": "hiring interviews", "k": 1})  # still serving
        return out

    out, stray = anyio.run(_session, tmp_path / "ix", work)
    assert out["tools"] >= {"search", "get_document"}
    hits = out["search"].structured_content["hits"]
    assert not out["search"].is_error and len(hits) == 2 and hits[0]["id"] == "backup"
    assert [h["id"] for h in out["likely"].structured_content["hits"]] == ["backup"]  # the other is no match
    assert hits[0]["metadata"] == {"team": "ops", "year": 2023} and hits[0]["start_line"] == 1
    assert [h["id"] for h in out["filtered"].structured_content["hits"]] == ["budget"]
    record = out["lines"].structured_content
    assert record["id"] == "backup" and record["text"].startswith("Backups run at 2am")
    for name, says in [("empty", "empty"), ("k", "between 1 and"), ("unknown", "no-such-note"), ("operator", "$gt")]:
        result = out[name]
        assert result.is_error, name
        assert says in " ".join(getattr(c, "text", "") for c in result.content), name
    assert out["after"].structured_content["hits"][0]["id"] == "hiring"
    nonsense = out["nonsense"].structured_content  # by default only likely matches: here none
    assert nonsense["hits"] == [] and "no good match" in nonsense["note"]
    assert 0 < hits[0]["relevance"] <= 1
    assert stray == []  # nothing but protocol on stdout


def test_mcp_without_an_index_says_so(tmp_path: Path) -> None:
    import subprocess

    run = subprocess.run(
        [sys.executable, "-m", "searchbert", "mcp", "--index", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert run.returncode != 0 and "no searchbert index" in run.stderr and "Traceback" not in run.stderr
    assert run.stdout == ""
