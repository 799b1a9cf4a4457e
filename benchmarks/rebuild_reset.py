"""What `index --rebuild` costs before anything is embedded: emptying the tables of the database in place, in one
transaction (what searchbert does: processes that have the file open see the new index on their next call), against
deleting the files and making a new database (what it did: processes that had it open went on with a deleted file).

    .venv/bin/python benchmarks/rebuild_reset.py      # writes benchmarks/results/rebuild_reset.md
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report

from searchbert.records import Chunk, Document
from searchbert.store import Store

DIMENSION, CHUNKS_PER_DOCUMENT = 384, 4


def fill(path: Path, chunks: int) -> Store:
    """A database of `chunks` chunks of about 1,000 characters with 384-d vectors, as searchbert writes them."""
    store = Store(path)
    store.create_schema()
    rng = np.random.default_rng(0)
    text = "word " * 200
    with store.transaction():
        for d in range(chunks // CHUNKS_PER_DOCUMENT):
            doc = Document(path=f"/docs/d{d}.md", text=text * CHUNKS_PER_DOCUMENT, root="/docs")
            parts = [Chunk(i, text, i * 1000, (i + 1) * 1000, i + 1, i + 1) for i in range(CHUNKS_PER_DOCUMENT)]
            vectors = rng.standard_normal((CHUNKS_PER_DOCUMENT, DIMENSION)).astype(np.float32)
            store.insert_document(doc, "0" * 64, parts, vectors, "now")
        store.bump_generation()
    return store


def main() -> None:
    report = Report("rebuild_reset", "What a rebuild costs before it embeds: reset in place against new files")
    report.line("| chunks | database | reset in place (one transaction) | delete + new database | ratio |")
    report.line("|---|---|---|---|---|")
    for chunks in (10_000, 100_000):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "index.db"
            fill(path, chunks).close()
            size = path.stat().st_size
            store = Store(path)
            started = time.perf_counter()
            store.reset("new-instance", "{}")
            in_place = time.perf_counter() - started
            store.close()
            fill(Path(tmp) / "other.db", chunks).close()
            started = time.perf_counter()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{tmp}/other.db{suffix}").unlink(missing_ok=True)
            fresh = Store(Path(tmp) / "other.db")
            fresh.create_schema()
            anew = time.perf_counter() - started
            fresh.close()
        report.line(f"| {chunks:,} | {size / 1e6:.0f} MB | {in_place * 1000:.0f} ms | {anew * 1000:.0f} ms | "
                    f"{in_place / anew:.1f}x |")  # fmt: skip
    report.line()
    report.line("Either way the rebuild then embeds every chunk again, which costs far more (backend_speed.md: tens")
    report.line("of chunks a second on this CPU); the database file keeps its pages for the new index.")
    report.save()


if __name__ == "__main__":
    main()
