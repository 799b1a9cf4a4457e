"""Past one machine, end to end with the real model: corpora/ embedded by two local Ray workers into Milvus answers
as the default index does; the same against a real Milvus server (read-after-write included), and a cluster made by
`ray start --head` joined with `--ray auto`. Run in a network namespace of their own (see conftest)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .milvus_server import milvus_server

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.model]

CORPUS = Path(__file__).parent.parent / "corpora" / "scifact-sample"
QUERIES = [
    "which transcription factor keeps blood stem cells dormant",
    "vitamin D and bone fractures in older people",
    "how do statins affect cholesterol",
]


def sb(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "searchbert", *args], capture_output=True, text=True, timeout=600,
                         env=env or dict(os.environ))  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def top(index: Path, query: str, k: int = 5, *extra: str) -> list[str]:
    # every hit, weak ones too: what is compared is the ranking, not whether it is a good match
    out = sb(
        "query", query, "--index", str(index), "--json", "-k", str(k), "--no-server", "--min-relevance", "0", *extra
    )
    return [Path(h["path"]).name for h in json.loads(out.stdout)]


def vectors(index: Path) -> dict[tuple[str, int], bytes]:
    with sqlite3.connect(index / "index.db") as db:
        sql = "SELECT d.path, c.ordinal, c.vector FROM chunks c JOIN documents d ON d.id = c.document_id"
        return {(Path(p).name, o): v for p, o, v in db.execute(sql)}


@pytest.fixture(scope="module")
def default_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("default") / "ix"
    sb("index", str(CORPUS), "--index", str(index), "-q")
    return index


def test_two_ray_workers_into_milvus_lite_give_the_default_index(default_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "ix"
    sb("index", str(CORPUS), "--index", str(index), "-q", "--ray", "local", "--workers", "2",
       "--vector-store", "milvus", "--milvus-uri", str(tmp_path / "vectors.db"))  # fmt: skip
    assert vectors(index) == vectors(default_index)  # bit-identical: the same slices through the same runner
    for query in QUERIES:
        for mode in ("dense", "hybrid"):
            assert top(index, query, 5, "--mode", mode) == top(default_index, query, 5, "--mode", mode)
    status = json.loads(sb("status", "--index", str(index), "--json").stdout)
    assert status["consistent"] and status["vectors"] == status["chunks"]


def test_a_real_milvus_server_reads_after_writes_and_filters_inside(default_index: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs)
    index = tmp_path / "ix"
    with milvus_server(tmp_path) as uri:
        sb("index", str(docs), "--index", str(index), "-q", "--vector-store", "milvus", "--milvus-uri", uri)
        with sqlite3.connect(index / "index.db") as db:  # what readers ask Milvus to have applied
            assert int(db.execute("SELECT value FROM meta WHERE key = 'milvus_ts'").fetchone()[0]) > 0
        for query in QUERIES:  # HNSW on the server: approximate, yet the best hits are the exact ones here
            assert top(index, query, 3, "--mode", "dense") == top(default_index, query, 3, "--mode", "dense")
        # read-after-write: a query right after `index` returns sees what it committed, and not what it removed
        gone = sorted(docs.glob("*.md"))[0]
        gone.unlink()
        (docs / "new-note.md").write_text("# Axolotl limb regeneration\n\nAxolotls regrow whole limbs after injury.\n")
        sb("index", str(docs), "--index", str(index), "-q")
        assert top(index, "axolotl limb regeneration", 1, "--mode", "dense") == ["new-note.md"]
        assert gone.name not in top(index, gone.stem.split("-", 1)[1].replace("-", " "), 10, "--mode", "dense")
        # a filter letting one document through runs inside Milvus and still finds it ("k whenever k match")
        one = sorted(docs.glob("*.md"))[5].name
        assert top(index, "cancer", 5, "--mode", "dense", "--path", one) == [one]
        status = json.loads(sb("status", "--index", str(index), "--json").stdout)
        assert status["consistent"] and status["vectors"] == status["chunks"]


def test_ray_start_head_joined_with_ray_auto(default_index: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_bin = Path(sys.executable).parent / "ray"
    # "auto" is this cluster, not any other; the head and its clients agree on token authentication
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}", "RAY_AUTH_MODE": "token"}
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
         "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([str(ray_bin), "status"], env=env, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline and head.poll() is None, "ray start --head did not come up"
            time.sleep(1)
        index = tmp_path / "ix"
        out = sb("index", str(CORPUS), "--index", str(index), "--ray", "auto", "--json", env=env)
        assert json.loads(out.stdout)["added"] == len(list(CORPUS.glob("*.md")))
        assert vectors(index) == vectors(default_index)
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # --block stops the cluster it started on SIGTERM
        head.wait(timeout=60)
