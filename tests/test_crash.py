"""Real processes: SIGKILL `searchbert index` at several moments, and two writers plus a reader at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from searchbert import Index

from .conftest import write_tree

pytestmark = pytest.mark.model

EXE = str(Path(sys.executable).parent / "searchbert")
TOPICS = ["volcano lava", "glacier ice", "desert sand", "ocean salt", "forest trees", "river delta", "mountain snow"]


def corpus(root: Path, n: int = 200) -> Path:
    files = {
        f"part{i % 5}/note{i:04}.md": f"# Note {i}\n\nField note {i} on {TOPICS[i % 7]}: observed at station {i * 13}."
        for i in range(n)
    }
    return write_tree(root, files)


def _ask(ix: Path, sql: str) -> int:
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{ix / 'index.db'}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute(sql).fetchone()[0])
        finally:
            con.close()
    except (sqlite3.Error, TypeError):
        return 0


def generation(ix: Path) -> int:
    return _ask(ix, "SELECT value FROM meta WHERE key = 'generation'")


def embedded(ix: Path) -> int:
    return _ask(ix, "SELECT count(*) FROM chunks WHERE length(vector) > 0")


def start_index(docs: Path, ix: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [EXE, "index", str(docs), "--index", str(ix), "--batch-size", "8", "--quiet", "--json", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> bool:
    """SIGKILL proc as soon as ready() is true; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
    proc.kill()
    raise AssertionError("the moment to kill at never came")


def check_consistent_and_searchable(ix: Path) -> tuple[int, int]:
    """(documents, chunks embedded), once every embedded chunk is seen to have one vector and every vector a chunk."""
    with Index.open(ix) as index:
        stored = sorted(r[0] for r in index.store.db.execute("SELECT id FROM chunks WHERE length(vector) > 0"))
        assert sorted(index.vectors.ids().tolist()) == stored, "every chunk has one vector and every vector a chunk"
        counts = index.store.counts()
    if counts["documents"]:
        out = subprocess.run(
            [EXE, "query", "glacier ice", "--index", str(ix), "--json", "-k", "3"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert len(json.loads(out.stdout)) == 3  # by words alone where nothing is embedded yet
    return counts["documents"], counts["embedded"]


def test_sigkill_at_any_moment_leaves_a_consistent_index_and_resume_finishes(tmp_path: Path) -> None:
    docs, ix = corpus(tmp_path / "docs"), tmp_path / "ix"
    moments = {
        # before anything is committed (the process is still starting up)
        "early": lambda g0: (ix / "manifest.json").exists(),
        # while the documents are committed by their words (64 a transaction)
        "words": lambda g0: generation(ix) >= g0 + 2,
        # between and inside batches of vectors, a few commits into the embedding pass
        "mid-batch": lambda g0: embedded(ix) >= 24,
    }
    killed = []
    for name, ready in moments.items():
        g0 = generation(ix)
        proc = start_index(docs, ix)
        if kill_when(proc, lambda ready=ready, g0=g0: ready(g0)):
            killed.append(name)
        check_consistent_and_searchable(ix)
    # a kill in the middle of writing the FAISS file: test_a_vector_file_write_cut_short_leaves_nothing_wrong
    assert killed == ["early", "words", "mid-batch"]
    before_docs, before_chunks = check_consistent_and_searchable(ix)

    proc = start_index(docs, ix)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    report = json.loads(out)
    final_docs, final_chunks = check_consistent_and_searchable(ix)
    assert final_docs == 200
    # work committed before the kills is never embedded again
    assert report["unchanged"] == before_docs and report["added"] == 200 - before_docs
    assert report["chunks_embedded"] == final_chunks - before_chunks


def test_two_writers_wait_for_each_other_and_queries_keep_working(tmp_path: Path) -> None:
    docs, ix = corpus(tmp_path / "docs", 400), tmp_path / "ix"
    seed = write_tree(tmp_path / "seed", {"seed.md": "Glacier ice flows slowly downhill."})
    assert subprocess.run([EXE, "index", str(seed), "--index", str(ix), "--quiet"], timeout=300).returncode == 0

    first = start_index(docs, ix)
    deadline = time.monotonic() + 120
    # the first writer holds the lock: its words are in and it has begun on the vectors (50 batches of 8)
    while embedded(ix) < 9 and time.monotonic() < deadline:
        time.sleep(0.05)
    second = start_index(seed, ix, "--lock-timeout", "300")
    reader = subprocess.run(
        [EXE, "query", "glacier ice", "--index", str(ix), "--json"], capture_output=True, text=True, timeout=120
    )
    assert reader.returncode == 0, reader.stderr  # a reader is never blocked by a writer
    assert json.loads(reader.stdout), "the reader sees the last committed state"
    _out1, err1 = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "another searchbert process is writing" in err2
    assert json.loads(out2)["unchanged"] == 1
    assert check_consistent_and_searchable(ix)[0] == 401


def test_lock_timeout_is_a_clear_failure(tmp_path: Path) -> None:
    from filelock import FileLock

    docs, ix = corpus(tmp_path / "docs", 5), tmp_path / "ix"
    assert subprocess.run([EXE, "index", str(docs), "--index", str(ix), "--quiet"], timeout=300).returncode == 0
    with FileLock(str(ix / "write.lock")):
        out = subprocess.run(
            [EXE, "index", str(docs), "--index", str(ix), "--lock-timeout", "0.5"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ},
        )
    assert out.returncode == 1 and "another process is still writing" in out.stderr
