"""MCP beyond the tools: documents as resources (whole, or lines), instructions written from the index, and a prompt
that asks for cited answers. In process, through the SDK's own server calls."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from searchbert import Index
from searchbert.records import Document

from .conftest import FakeEncoder


def test_documents_are_resources_and_the_instructions_describe_the_index(tmp_path: Path) -> None:
    from searchbert.integrations.mcp import make_server, resource_uri

    docs = [
        Document("ops/backup.md", "Backups run at 02:00.\nThey keep 30 days.\nRestores take an hour.\n",
                 metadata={"team": "ops", "year": 2024}),
        Document("dev/build.md", "The build uses make.\n", metadata={"team": "dev"}),
    ]  # fmt: skip
    with Index.create(tmp_path / "ix", encoder=FakeEncoder()) as ix:
        ix.add_documents(docs)
        server = make_server(ix)
        assert "2 documents" in server.instructions and "team, year" in server.instructions

        async def talk():  # type: ignore[no-untyped-def]
            templates = await server.list_resource_templates()
            whole = await server.read_resource(resource_uri("ops/backup.md"))
            lines = await server.read_resource(resource_uri("ops/backup.md", 2, 3))
            prompt = await server.get_prompt("answer_with_citations", {"question": "when do backups run?"})
            return templates, whole, lines, prompt

        templates, whole, lines, prompt = asyncio.run(talk())
    assert {t.uri_template for t in templates} == {"searchbert://doc/{id}", "searchbert://doc/{id}/lines/{start}-{end}"}
    assert [c.content for c in whole] == [docs[0].text]
    assert [c.content for c in lines] == ["They keep 30 days.\nRestores take an hour.\n"]
    text = prompt.messages[0].content.text
    assert "when do backups run?" in text and "[id:start-end]" in text


def test_an_unknown_document_resource_is_an_error(tmp_path: Path) -> None:
    from searchbert.integrations.mcp import make_server, resource_uri

    with Index.create(tmp_path / "ix", encoder=FakeEncoder()) as ix:
        ix.add_documents([Document("a.md", "text")])
        server = make_server(ix)
        with pytest.raises(Exception, match=re.escape("searchbert://doc/nope.md")):  # the SDK's wording
            asyncio.run(server.read_resource(resource_uri("nope.md")))
