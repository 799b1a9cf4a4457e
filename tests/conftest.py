"""Shared fixtures: a deterministic fake encoder that records what it embeds, and small corpora on disk."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

_TOKEN = re.compile(r"\w+|[^\w\s]")


class FakeEncoder:
    """Bag-of-words hashing encoder: texts sharing words get similar vectors; every call is recorded."""

    def __init__(self, dimension: int = 64, max_tokens: int = 40, model_id: str = "fake/hashing") -> None:
        self.model_id = model_id
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.calls: list[list[str]] = []

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]

    def fingerprint(self) -> dict[str, Any]:
        return {
            "id": self.model_id,
            "dimension": self.dimension,
            "pooling": "sum",
            "normalized": True,
            "max_tokens": self.max_tokens,
        }

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _TOKEN.finditer(text)]

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dimension] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked netns start servers that listen on every interface whatever they are told (Ray's, a Milvus
    server's): they run only where nothing but loopback exists, as `make test` runs them (unshare -rn)."""
    import os

    from .milvus_server import only_loopback

    if item.get_closest_marker("netns") is None or only_loopback():
        return
    if os.environ.get("SEARCHBERT_IN_NETNS"):
        pytest.fail("SEARCHBERT_IN_NETNS is set but this process shares the machine's network")
    pytest.skip("starts Ray or a Milvus server: run in a network namespace of its own, as `make test` does")


@pytest.fixture(scope="session", autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The ONNX exports of this test run go to a temporary folder, never to the user's cache (subprocesses too)."""
    import os

    os.environ["SEARCHBERT_CACHE"] = str(tmp_path_factory.mktemp("searchbert-cache"))


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


DOCS = {
    "cooking/pasta.md": "# Cooking pasta\n\nBoil salted water. Add the pasta and stir. Drain after nine minutes.\n",
    "cooking/bread.md": "# Baking bread\n\nMix flour, water, yeast and salt. Knead the dough, let it rise, bake.\n",
    "ops/keys.md": "# Rotating signing keys\n\nGenerate a new signing key, publish it, then retire the old key.\n",
    "ops/backup.txt": "Backups run nightly. Restore a backup with the restore command and check the checksum.\n",
    "notes/café.md": "# Café notes\n\nThe café serves crème brûlée and smørrebrød. Ünïcödé everywhere.\n",
}


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "docs", DOCS)


@pytest.fixture(scope="session")
def minilm():
    """The real bundled all-MiniLM-L6-v2 encoder, loaded once per test session."""
    from searchbert.encoders import SentenceTransformerEncoder

    return SentenceTransformerEncoder()


@pytest.fixture(scope="session")
def minilm_tokenizer_spans():
    """The real MiniLM tokenizer's span function, without loading torch."""
    from searchbert.encoders import load_tokenizer, resolve_model

    tok = load_tokenizer(resolve_model(None)[1])
    return lambda text: tok.encode(text, add_special_tokens=False).offsets


TOPICS = ["lighthouse", "sourdough", "glacier", "violin", "orchid", "volcano", "satellite", "honeybee"]


def write_topic_pairs(path: Path) -> Path:
    """Training pairs for the small fine-tuning tests: two questions per topic, each with its passage."""
    import json

    lines = [
        json.dumps({"query": f"tell me about the {t} {k}", "positive": f"The {t} is a subject; fact {k} of the {t}."})
        for t in TOPICS
        for k in range(2)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def listening(pid: int) -> set[str]:
    """The addresses a process and its children listen on (TCP)."""
    import psutil

    parent = psutil.Process(pid)
    found = set()
    for process in [parent, *parent.children(recursive=True)]:
        for c in process.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN:
                found.add(c.laddr.ip.removeprefix("::ffff:"))  # IPv4 mapped into IPv6: the same address
    return found
