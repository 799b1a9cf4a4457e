"""What a user sees: only searchbert's own lines, warnings that say why, and errors without tracebacks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from searchbert import Document, Index
from searchbert.errors import IncompatibleIndex, StorageError
from searchbert.folders import index_paths
from searchbert.index import LEXICAL

from .conftest import DOCS, FakeEncoder, write_tree

EXE = str(Path(sys.executable).parent / "searchbert")


@pytest.mark.model
def test_a_first_index_run_prints_only_searchbert_lines(tmp_path: Path) -> None:
    docs = write_tree(tmp_path / "docs", DOCS)
    env = {**os.environ, "SEARCHBERT_CACHE": str(tmp_path / "fresh-cache")}  # the ONNX export and int8 run now
    run = subprocess.run(
        [EXE, "index", str(docs), "--index", str(tmp_path / "ix"), "-q"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert run.stdout.startswith(f"Indexed {len(DOCS)} documents")
    assert (tmp_path / "fresh-cache" / "onnx").is_dir()
    query = subprocess.run(
        [EXE, "query", "signing keys", "--index", str(tmp_path / "ix"), "-k", "1", "--mode", "hybrid"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert query.returncode == 0 and query.stderr == "" and "keys.md" in query.stdout


def test_the_test_suite_keeps_out_of_the_users_cache() -> None:
    from searchbert.cache import cache_dir

    assert not str(cache_dir()).startswith(str(Path.home() / ".cache"))


@pytest.fixture
def unwritable(tmp_path: Path):
    """A folder this process cannot write to: read-only for a user; immutable (chattr +i) for root, who writes
    through permissions."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("root on a file system without chattr +i: no folder is unwritable here")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_an_unwritable_index_folder_is_a_clear_error(tmp_path: Path, unwritable: Path) -> None:
    docs = write_tree(tmp_path / "docs", DOCS)
    run = subprocess.run([EXE, "index", str(docs), "--index", str(unwritable), "-q"], capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert "permission denied" in run.stderr and "--index" in run.stderr
    assert "Traceback" not in run.stderr
    with pytest.raises(StorageError, match="permission denied"):
        index_paths(unwritable / "ix", [docs], encoder=FakeEncoder())


def test_a_full_disk_on_commit_is_a_clear_error_and_keeps_what_was_committed(tmp_path: Path) -> None:
    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder())
    ix.add_documents([Document("kept", "lighthouse keepers")])
    pages = ix.store.execute("PRAGMA page_count").fetchone()[0]
    ix.store.execute(f"PRAGMA max_page_count = {pages + 1}")  # SQLite's own "database or disk is full"
    with pytest.raises(StorageError, match="disk is full"):
        ix.add_documents([Document(f"d{i}", "word " * 200) for i in range(50)])
    ix.close()
    with Index.open(tmp_path / "ix", encoder=FakeEncoder()) as again:
        assert [h.path for h in again.search("lighthouse", k=5)] == ["kept"]


class WrongDimension(FakeEncoder):
    """Claims the index's dimension but returns shorter vectors (a swapped model folder, say)."""

    def encode(self, texts, *, batch_size=None):  # type: ignore[override]
        return super().encode(texts)[:, :32]


def test_an_encoder_returning_the_wrong_dimension_is_a_clear_error(tmp_path: Path) -> None:
    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder())
    ix.add_documents([Document("a", "alpha")])
    ix.close()
    bad = Index.open(tmp_path / "ix", encoder=WrongDimension())
    with pytest.raises(IncompatibleIndex, match="shape"):
        bad.search("alpha")
    with pytest.raises(IncompatibleIndex, match="64-dimension"):
        bad.add_documents([Document("b", "bravo")])
    assert np.isfinite(Index.open(tmp_path / "ix", encoder=FakeEncoder()).search("alpha")[0].score)


def test_a_corrupt_bm25_index_is_a_warning_that_says_what_to_run(tmp_path: Path, caplog) -> None:
    docs = write_tree(tmp_path / "docs", DOCS)
    index_paths(tmp_path / "ix", [docs], encoder=FakeEncoder())
    (tmp_path / "ix" / LEXICAL / "state.json").write_text("{garbage")
    with caplog.at_level(logging.WARNING, logger="searchbert"):
        hits = Index.open(tmp_path / "ix", encoder=FakeEncoder()).search("signing key", mode="bm25", k=1)
    assert hits[0].path.endswith("keys.md")
    assert any("status --repair" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_corrupt_vector_file_is_a_warning_that_says_what_to_run(tmp_path: Path, caplog) -> None:
    from searchbert.index import VECTORS

    docs = write_tree(tmp_path / "docs", DOCS)
    index_paths(tmp_path / "ix", [docs], encoder=FakeEncoder())
    (tmp_path / "ix" / VECTORS).write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="searchbert"):
        hits = Index.open(tmp_path / "ix", encoder=FakeEncoder()).search("signing key", k=1)
    assert hits[0].path.endswith("keys.md")  # answered from the vectors in SQLite
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "cannot be read" in warning and "status --repair" in warning
