"""Records with ids and metadata (issue 11's core): stored, returned on hits and by get, upserted, deleted, filtered."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from searchbert import Document, Filters, Index
from searchbert.errors import InvalidArgument

from .conftest import FakeEncoder, write_tree
from .test_hardening import OverlapReranker

RECORDS = [
    Document("r1", "volcano lava flows downhill", title="Lava", metadata={"tag": "rare", "year": 2024}),
    Document("r2", "volcano ash clouds travel far", metadata={"tag": "common", "year": 2025, "ok": True}),
    Document("r3", "volcano eruption warning signs", metadata={"tag": "rare", "year": "2024", "tags": ["a", "b"]}),
    Document("r4", "glacier ice moves slowly", metadata={"year": 2024.5, "none": None}),
]


@pytest.fixture
def ix(tmp_path: Path) -> Index:
    index = Index.create(tmp_path / "ix", encoder=FakeEncoder())
    index.add_documents(RECORDS)
    return index


def test_metadata_comes_back_unchanged_on_hits_and_get(ix: Index) -> None:
    hits = {h.path: h for h in ix.search("volcano glacier", k=4)}
    assert {p: h.metadata for p, h in hits.items()} == {d.path: d.metadata for d in RECORDS}
    got = ix.get(["r3", "nope", "r1"])
    assert [(d.path, d.text, d.title, d.metadata) for d in got] == [
        ("r3", RECORDS[2].text, "", RECORDS[2].metadata),
        ("r1", RECORDS[0].text, "Lava", RECORDS[0].metadata),
    ]


def test_get_returns_the_whole_text_of_a_long_record(tmp_path: Path) -> None:
    text = "\n\n".join(f"Paragraph {i}: the quick brown fox jumps over the lazy dog." for i in range(60))
    index = Index.create(tmp_path / "ix", encoder=FakeEncoder(max_tokens=20))
    index.add_documents([Document("long", text)])
    assert index.count()["chunks"] > 10
    assert index.get(["long"])[0].text == text


def test_a_metadata_change_embeds_nothing_a_title_or_text_change_does(ix: Index) -> None:
    enc = ix.encoder
    enc.calls.clear()
    report = ix.add_documents([Document("r1", RECORDS[0].text, title="Lava", metadata={"tag": "moved"})])
    assert report.updated == 1 and enc.embedded == []
    assert ix.get(["r1"])[0].metadata == {"tag": "moved"}
    assert ix.search("lava", k=1, filters=Filters(metadata={"tag": "moved"}))[0].path == "r1"
    enc.calls.clear()
    ix.add_documents([Document("r1", RECORDS[0].text, title="Molten rock", metadata={"tag": "moved"})])
    assert enc.embedded == ["Molten rock\nvolcano lava flows downhill"]


def test_delete_removes_exact_ids_only(ix: Index, tmp_path: Path) -> None:
    assert ix.delete(["r2", "unknown", "r"]) == 1
    assert sorted(h.path for h in ix.search("volcano glacier", k=10)) == ["r1", "r3", "r4"]
    assert ix.delete([]) == 0


@pytest.mark.parametrize(
    "metadata, expected",
    [
        ({"tag": "rare"}, {"r1", "r3"}),
        ({"year": 2024}, {"r1"}),  # type-exact: not "2024", not 2024.5
        ({"year": "2024"}, {"r3"}),
        ({"year": 2024.5}, {"r4"}),
        ({"year": [2024, 2025]}, {"r1", "r2"}),
        ({"tag": "rare", "year": 2024}, {"r1"}),
        ({"ok": True}, {"r2"}),
        ({"none": None}, {"r4"}),
        ({"missing": "x"}, set()),
    ],
)
def test_metadata_filters_are_type_exact_lists_are_any_of_keys_are_anded(ix: Index, metadata, expected) -> None:
    f = Filters(metadata=metadata)
    for mode in ("dense", "bm25", "hybrid"):
        hits = ix.search("volcano glacier lava ash eruption ice", k=4, mode=mode, filters=f)
        assert {h.path for h in hits} == expected, mode
    rows = ix.store.execute("SELECT path, root, mtime, metadata FROM documents").fetchall()
    assert {p for p, r, m, md in rows if f.matches(p, r, m, json.loads(md))} == expected


def test_a_metadata_filter_returns_k_whenever_k_match_with_rerank_too(tmp_path: Path) -> None:
    docs = [Document(f"d{i}", f"volcano note {i}", metadata={"n": i % 50}) for i in range(500)]
    index = Index.create(tmp_path / "ix", encoder=FakeEncoder())
    index.add_documents(docs)
    f = Filters(metadata={"n": [7, 8]})  # 20 of 500 documents
    for mode in ("dense", "bm25", "hybrid"):
        hits = index.search("volcano", k=15, mode=mode, filters=f)
        assert len(hits) == 15 and all(h.metadata["n"] in (7, 8) for h in hits), mode
    hits = index.search("volcano", k=15, filters=f, rerank=OverlapReranker(), candidates=5)
    assert len(hits) == 15 and all(h.metadata["n"] in (7, 8) for h in hits)


def test_unsupported_metadata_is_a_clear_error(ix: Index) -> None:
    with pytest.raises(InvalidArgument, match="metadata 'nested'"):
        ix.add_documents([Document("x", "text", metadata={"nested": {"a": 1}})])
    with pytest.raises(InvalidArgument, match="only equality"):
        Filters(metadata={"year": {"$gt": 2020}})


def test_cli_where_and_json_metadata(ix: Index) -> None:
    from searchbert.cli import main

    ix.close()
    run = CliRunner().invoke(
        main,
        [
            "query",
            "volcano",
            "--index",
            str(ix.path),
            "--mode",
            "bm25",
            "--json",
            "--where",
            "year=2024",
            "--where",
            "year=2025",
        ],  # bm25: the CLI cannot load the test's fake model
    )
    assert run.exit_code == 0, run.output
    hits = json.loads(run.output)
    assert {h["path"]: h["metadata"]["year"] for h in hits} == {"r1": 2024, "r2": 2025}
    text = CliRunner().invoke(
        main, ["query", "volcano", "--index", str(ix.path), "--mode", "bm25", "--where", 'year="2024"']
    )
    assert "r3" in text.output and "r1" not in text.output
    bad = CliRunner().invoke(main, ["query", "volcano", "--index", str(ix.path), "--where", "year"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output


def test_an_index_of_the_previous_schema_gains_metadata_and_get(tmp_path: Path) -> None:
    index = Index.create(tmp_path / "ix", encoder=FakeEncoder(max_tokens=20))
    text = "\n\n".join(f"Line {i} about volcanoes and their ash." for i in range(30))
    index.add_documents([Document("old", text)])
    index.close()
    con = sqlite3.connect(tmp_path / "ix" / "index.db")  # back to schema 2, as the last landing wrote it
    con.executescript(
        "ALTER TABLE documents DROP COLUMN metadata; ALTER TABLE documents DROP COLUMN text;"
        "DROP INDEX chunks_embedded; ALTER TABLE chunks DROP COLUMN embedded; ALTER TABLE chunks DROP COLUMN section;"
        "UPDATE meta SET value = '2' WHERE key = 'schema_version';"
    )
    con.close()
    with Index.open(tmp_path / "ix", encoder=FakeEncoder(max_tokens=20)) as again:
        assert again.store.get_meta("schema_version") == "6"
        [doc] = again.get(["old"])
        assert doc.text == text and doc.metadata == {}  # pieced together from the chunks
        again.add_documents([Document("old", text, metadata={"tag": "kept"})])
        assert again.search("volcano", k=1)[0].metadata == {"tag": "kept"}
        assert np.isfinite(again.search("ash", k=1)[0].score)


def _bag_of_letters(texts: list[str]) -> list[list[float]]:
    """A stand-in for someone's embedding function: returns plain Python lists, not normalized."""
    return [[float(t.lower().count(c)) + 0.01 for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts]


def test_your_own_embedding_function_is_recorded_and_a_different_one_refused(tmp_path: Path) -> None:
    from searchbert import FunctionEncoder
    from searchbert.errors import IncompatibleIndex, ModelNotAvailable

    calls: list[list[str]] = []

    def embed(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        return _bag_of_letters(texts)

    enc = FunctionEncoder(embed, name="letters-v1", dimension=26, max_tokens=16)
    index = Index.create(tmp_path / "ix", encoder=enc)
    long = " ".join(f"word{i}" for i in range(40))  # 40 words: cut into chunks of at most 16
    index.add_documents([Document("zz", "zzz buzz fizz"), Document("aa", "banana salad"), Document("long", long)])
    assert index.count()["chunks"] >= 5 and all(len(t.split()) <= 16 for t in calls[0])
    hits = index.search("pizza jazz", k=1)
    assert hits[0].path == "zz"
    assert np.isclose(np.linalg.norm(enc.encode(["abc"])), 1.0)
    index.close()
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["model"]["id"] == "letters-v1" and manifest["model"]["dimension"] == 26
    assert Index.open(tmp_path / "ix", encoder=enc).search("banana", k=1)[0].path == "aa"
    with pytest.raises(IncompatibleIndex):
        Index.open(tmp_path / "ix", encoder=FunctionEncoder(embed, name="letters-v2", dimension=26, max_tokens=16))
    with pytest.raises(IncompatibleIndex):
        Index.open(tmp_path / "ix", encoder=FunctionEncoder(embed, name="letters-v1", dimension=25, max_tokens=16))
    bare = Index.open(tmp_path / "ix")
    assert bare.search("banana", k=1, mode="bm25")[0].path == "aa"  # BM25 needs no model
    with pytest.raises(ModelNotAvailable, match="FunctionEncoder"):
        bare.search("banana", k=1)
    wrong = FunctionEncoder(lambda texts: [[1.0, 2.0]] * len(texts), name="letters-v1", dimension=26, max_tokens=16)
    with pytest.raises(IncompatibleIndex, match="shape"):
        Index.open(tmp_path / "ix", encoder=wrong).search("banana", k=1)


def test_hits_carry_their_neighbours_and_get_cuts_a_line_range(tmp_path: Path) -> None:
    from searchbert import SearchOptions

    text = "\n".join(
        f"Line {i}: {'volcano ' if i == 20 else ''}notes about rocks and minerals, part {i}." for i in range(40)
    )
    index = Index.create(tmp_path / "ix", encoder=FakeEncoder(max_tokens=24))
    index.add_documents([Document("rocks", text)])
    plain = index.search("volcano", k=1, chunks=True, mode="bm25")[0]
    assert plain.context is None
    hit = index.search("volcano", options=SearchOptions(k=1, chunks=True, mode="bm25", context=1))[0]
    rows = index.store.execute("SELECT ordinal, start_char, end_char FROM chunks ORDER BY ordinal").fetchall()
    own = next(r for r in rows if r[1] == hit.start_char)
    neighbours = [r for r in rows if abs(r[0] - own[0]) <= 1]
    assert len(neighbours) == 3
    assert hit.context == text[neighbours[0][1] : neighbours[-1][2]]  # one passage: the overlaps appear once
    assert hit.text in hit.context and len(hit.context) > len(hit.text)
    assert hit.context_start_line < hit.start_line <= hit.end_line < hit.context_end_line
    [span] = index.get(["rocks"], start_line=hit.context_start_line, end_line=hit.context_end_line)
    assert span.text.strip() == "\n".join(text.split("\n")[hit.context_start_line - 1 : hit.context_end_line])
    assert index.get(["rocks"], start_line=3, end_line=3)[0].text == "Line 2: notes about rocks and minerals, part 2.\n"
    with pytest.raises(InvalidArgument):
        index.get(["rocks"], start_line=5, end_line=2)
    with pytest.raises(InvalidArgument):
        SearchOptions(context=-1)


def test_chunks_reranked_are_k_whatever_the_candidates(tmp_path: Path) -> None:
    docs = [Document(f"d{i}", f"volcano note {i}") for i in range(30)]
    with Index.create(tmp_path / "ix", encoder=FakeEncoder()) as index:
        index.add_documents(docs)
        hits = index.search("volcano", k=10, chunks=True, rerank=OverlapReranker(), candidates=5)
        assert len(hits) == 10 and all(h.rerank_score is not None for h in hits)


def test_a_folder_prefix_removes_files_never_records(tmp_path: Path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    """Records and file paths share one namespace: a record whose id looks like a path under a folder is not a file
    in it, neither for `remove FOLDER` nor when that folder is indexed again."""
    folder = write_tree(tmp_path / "etc", {"hosts.md": "the hosts file maps names"})
    ix = Index.create(tmp_path / "ix", encoder=fake_encoder)
    ix.add_documents([Document(str(folder / "passwd"), "a record that only looks like a file under the folder")])
    ix.add([folder])  # the folder's own pass: the record is not one of its deleted files
    assert ix.count()["documents"] == 2
    assert ix.remove([folder]) == 1
    assert [d.path for d in ix.get([str(folder / "passwd")])] == [str(folder / "passwd")]
