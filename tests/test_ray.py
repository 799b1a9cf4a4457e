"""index --ray: batches embedded by encoder actors on a Ray cluster (a local one, on loopback) come back to the same
crash-safe writer: the same vectors as a local run, failures retried a bounded number of times, commits kept."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import ray

from searchbert import Index
from searchbert.errors import EmbeddingFailed
from searchbert.records import Document

from .conftest import FakeEncoder

pytestmark = pytest.mark.netns  # a Ray instance listens on every interface


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance for the module (starting one costs seconds), on loopback, two CPUs."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, logging_level="ERROR")  # fmt: skip
    # the test encoders live in this test package, which Ray's workers cannot import: they travel by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[FakeEncoder.__module__])
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


def _docs(n: int, poison: int | None = None) -> list[Document]:
    return [
        Document(path=f"doc{i:04}", text=f"document {i} on topic {i % 7}" + (" poison" if i == poison else ""))
        for i in range(n)
    ]


def _vectors(index: Index) -> dict[tuple[str, int], bytes]:
    sql = "SELECT d.path, c.ordinal, c.vector FROM chunks c JOIN documents d ON d.id = c.document_id"
    rows = index.store.execute(sql)
    return {(p, o): v for p, o, v in rows}


class Poisoned(FakeEncoder):
    """Fails on any block holding the word "poison", every time."""

    def encode(self, texts, *, batch_size=None):  # type: ignore[override]
        if any("poison" in t for t in texts):
            raise RuntimeError("cannot embed this block")
        return super().encode(texts)


class FailsOnce(FakeEncoder):
    """The first block any actor gets fails (or kills its process), once: a marker file is the shared memory."""

    def __init__(self, marker: Path, how: str) -> None:
        super().__init__()
        self.marker, self.how = marker, how

    def encode(self, texts, *, batch_size=None):  # type: ignore[override]
        try:
            self.marker.unlink()
        except FileNotFoundError:
            return super().encode(texts)
        if self.how == "die":
            os._exit(1)  # the actor's process dies: Ray restarts it
        raise RuntimeError("a passing failure")


def test_vectors_from_ray_actors_equal_a_local_run(cluster, tmp_path: Path) -> None:
    docs = _docs(300)
    with Index.create(tmp_path / "local", encoder=FakeEncoder()) as local:
        local.add_documents(docs)
        want, top = _vectors(local), local.search("topic 3", 3, mode="dense")
    with Index.create(tmp_path / "ray", encoder=FakeEncoder()) as remote:
        report = remote.add_documents(docs, ray="auto", workers=2)  # joins the module's cluster
        assert report.added == 300 and report.chunks_embedded == 300
        assert _vectors(remote) == want
        assert [h.path for h in remote.search("topic 3", 3, mode="dense")] == [h.path for h in top]


def test_a_block_that_keeps_failing_stops_the_run_after_bounded_retries_keeping_commits(cluster, tmp_path) -> None:
    from searchbert.embedding import RAY_RETRIES

    docs = _docs(1200, poison=1199)  # the last of three batches holds it: the two before it are committed
    with Index.create(tmp_path / "ix", encoder=Poisoned()) as index:
        with pytest.raises(EmbeddingFailed, match=f"{RAY_RETRIES + 1} times.*cannot embed this block") as failed:
            index.add_documents(docs, ray="auto", workers=2)
        assert "Not stored: the vectors of doc1024, doc1025, doc1026 and 173 more" in str(failed.value)
        # every document is in by its words; two batches of vectors are committed, the third is not
        kept = index.count()["embedded"]
        assert kept == 1024 and index.count()["documents"] == 1200
    # the next run, without Ray, embeds only what was not committed (and the document whose text changed)
    clean = FakeEncoder()
    with Index.open(tmp_path / "ix", encoder=clean) as index:
        docs[-1] = Document(path="doc1199", text="document 1199 on topic 0")
        report = index.add_documents(docs)
        assert report.unchanged == 1199 and report.updated == 1 and report.chunks_embedded == 1200 - kept
        assert len(clean.embedded) == 1200 - kept and index.count()["embedded"] == 1200


@pytest.mark.parametrize("how", ["raise", "die"])
def test_a_passing_failure_of_an_actor_is_retried(cluster, tmp_path: Path, how: str) -> None:
    marker = tmp_path / "fail-once"
    marker.touch()
    with Index.create(tmp_path / "ix", encoder=FailsOnce(marker, how)) as index:
        report = index.add_documents(_docs(200), ray="auto", workers=2)
        assert report.added == 200 and index.count()["chunks"] == 200
    assert not marker.exists()


def test_workers_without_ray_is_refused(tmp_path: Path) -> None:
    from searchbert.errors import InvalidArgument

    with Index.create(tmp_path / "ix", encoder=FakeEncoder()) as index, pytest.raises(InvalidArgument, match="--ray"):
        index.add_documents(_docs(3), workers=2)


def test_ray_is_not_imported_without_ray(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys\nfrom searchbert import Index\nfrom searchbert.records import Document\n"
        "sys.path.insert(0, sys.argv[2])\nfrom conftest import FakeEncoder\n"
        "ix = Index.create(sys.argv[1], encoder=FakeEncoder())\nix.add_documents([Document(path='a', text='hello')])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'pymilvus')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "ix"), str(Path(__file__).parent)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "[]"


def _kill_tagged(tag: str) -> None:
    """Kill what a SIGKILLed driver left of its Ray instance (Ray's agents outlive it), found by an env marker."""
    import signal

    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"SEARCHBERT_TEST_TAG={tag}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, PermissionError):
            continue


@pytest.mark.model
def test_a_killed_ray_run_resumes_without_ray_embedding_only_what_was_not_committed(tmp_path: Path) -> None:
    import signal
    import sqlite3
    import subprocess
    import time
    import uuid

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(1500):
        (docs / f"d{i:04}.md").write_text(f"Note {i} is about topic {i % 11}, written down for the test number {i}.\n")
    tag = uuid.uuid4().hex
    env = {**os.environ, "SEARCHBERT_TEST_TAG": tag}
    cmd = [sys.executable, "-m", "searchbert", "index", str(docs), "--index", str(tmp_path / "ix"), "-q"]
    proc = subprocess.Popen([*cmd, "--ray", "local", "--workers", "2", "--batch-size", "16"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    committed = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not committed:
            time.sleep(0.2)
            try:
                with sqlite3.connect(tmp_path / "ix" / "index.db") as db:
                    committed = db.execute("SELECT count(*) FROM chunks WHERE length(vector) > 0").fetchone()[0]
            except sqlite3.Error:
                continue
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
        _kill_tagged(tag)
    with sqlite3.connect(tmp_path / "ix" / "index.db") as db:
        kept = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        embedded = db.execute("SELECT count(*) FROM chunks WHERE length(vector) > 0").fetchone()[0]
    assert 0 < embedded < 1500 and embedded <= kept
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, check=True)
    import json

    report = json.loads(out.stdout)
    assert report["unchanged"] == kept and report["added"] == 1500 - kept
    assert report["chunks_embedded"] == 1500 - embedded
