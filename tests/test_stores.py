"""Contract test for the VectorStore seam: every store (the FAISS file exact and approximate, Milvus Lite, the numpy
oracle, and a store this test registers from outside the package) answers through an Index as exact search over
SQLite's own vectors does, within a bitmap, under filters, after updates, deletes and a rebuild, and `status` finds it
consistent. The store of its own proves the seam: it is added without touching any module of searchbert."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from searchbert import Document, Filters, Index
from searchbert.expression import compile_filters, matches
from searchbert.health import status
from searchbert.stores import StoreContext, register_store, store_names
from searchbert.vectors import Selection

from .conftest import FakeEncoder

WORDS = "glacier violin orchid volcano satellite honeybee lighthouse harbour lantern meadow copper falcon".split()  # noqa: SIM905

#: what the in-memory store keeps, per index instance: chunk id -> vector (one process: enough for a test)
_MEMORY: dict[str, dict[int, np.ndarray]] = {}


class MemoryStore:
    """A store of the test's own: vectors in a dict, copied from SQLite as they are written, deletes caught up from
    SQLite's removal log. Exact; filters left to the search."""

    retypes = True
    approximate = False
    filters_inside = False

    def __init__(self, context: StoreContext) -> None:
        self.context = context
        self.data = _MEMORY.setdefault(context.instance, {})
        self.synced = -1

    @classmethod
    def settings(cls, options: Mapping[str, Any], index_type: str, instance: str) -> dict[str, Any]:
        return {"kind": "memory"}

    def __len__(self) -> int:
        return len(self.data)

    def nearest(self, queries, k, allowed=None, expression=None):  # type: ignore[no-untyped-def]
        ids = np.asarray(sorted(self.data), dtype=np.int64)
        if allowed is not None:
            ids = ids[allowed.contains(ids)]
        if not len(ids):
            return [[] for _ in queries]
        scores = queries @ np.stack([self.data[int(i)] for i in ids]).T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[(int(ids[j]), float(row[j])) for j in best] for row, best in zip(scores, order)]

    def refresh(self) -> None:
        self.save()

    def written(self, chunk_ids: Sequence[int]) -> None:
        ids, vectors = self.context.store.vectors_of(list(chunk_ids), self.context.dimension)
        self.data.update(zip(ids.tolist(), vectors.copy()))

    def save(self, final: bool = True, rebuild: bool = False) -> None:
        store = self.context.store
        if store.generation == self.synced and not rebuild:
            return
        gone = None if rebuild else store.removed_since(self.synced)
        if gone is None:  # the log does not reach back: SQLite's chunks are the truth
            self.data.clear()
            self.written(store.chunk_ids().tolist())
        else:
            for i in gone.tolist():
                self.data.pop(i, None)
        self.synced = store.generation

    def ids(self) -> np.ndarray:
        return np.asarray(sorted(self.data), dtype=np.int64)

    def vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        held = [int(i) for i in ids if int(i) in self.data]
        stacked = np.stack([self.data[i] for i in held]) if held else np.zeros((0, self.context.dimension))
        return np.asarray(held, dtype=np.int64), stacked.astype(np.float32)

    def describe(self) -> str:
        return f"in memory ({len(self.data)} vectors)"

    def create(self) -> None:
        self.data.clear()

    def drop(self) -> None:
        _MEMORY.pop(self.context.instance, None)

    def close(self) -> None:
        """Nothing held open."""


register_store("memory", MemoryStore)


def _docs(n: int, seed: int = 0) -> list[Document]:
    rng = np.random.default_rng(seed)
    return [
        Document(
            path=f"{WORDS[i % 4]}/d{i:03}.{'md' if i % 3 else 'txt'}",
            text=" ".join(rng.choice(WORDS, size=6)) + f" item{i}",
            title=f"doc {i}",
            mtime=1_000.0 + i,
            metadata={"team": ["red", "café", "blue"][i % 3], "rank": i % 4},
        )
        for i in range(n)
    ]


STORES = [
    pytest.param(("faiss", {}, "flat"), id="faiss-flat"),
    pytest.param(("faiss", {}, "hnsw"), id="faiss-hnsw"),
    pytest.param(("milvus", {"uri": "lite"}, "auto"), id="milvus-lite"),
    pytest.param(("numpy", {}, "auto"), id="numpy"),
    pytest.param(("memory", {}, "auto"), id="memory"),
]


@pytest.fixture(params=STORES)
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Index:
    kind, options, index_type = request.param
    if options.get("uri") == "lite":
        options = {"uri": str(tmp_path / "vectors.db")}
    ix = Index.create(tmp_path / "ix", encoder=FakeEncoder(), vector_store=kind, store_options=options,
                      index_type=index_type)  # fmt: skip
    ix.add_documents(_docs(120))
    yield ix
    ix.close()


def _oracle(ix: Index, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[list[float]]:
    """The scores of the exact top k over SQLite's vectors (ids in `allowed` only): scores, since the hashing
    encoder ties often and two engines order ties their own way."""
    ids, vectors = ix.store.vectors_of(ix.store.chunk_ids().tolist(), ix.manifest.dimension)
    if allowed is not None:
        keep = np.isin(ids, allowed)
        ids, vectors = ids[keep], vectors[keep]
    scores = queries @ vectors.T
    return [sorted(row.tolist(), reverse=True)[:k] for row in scores]


def _agree(got: list[list[tuple[int, float]]], want: list[list[float]], exact: bool) -> None:
    for g, w in zip(got, want):
        scores = [s for _, s in g]
        assert scores == sorted(scores, reverse=True) and len(set(i for i, _ in g)) == len(g)
        if exact:
            np.testing.assert_allclose(scores, w, atol=1e-5)
        else:  # an approximate index: most of what it returns is as near as the exact k-th
            assert len(g) == len(w) and sum(s >= w[-1] - 1e-5 for s in scores) >= 0.8 * len(w), (scores, w)


def _queries(ix: Index) -> np.ndarray:
    return FakeEncoder().encode(["glacier violin", "orchid lantern meadow", "copper falcon item7", "harbour"])


def test_the_registry_names_every_store() -> None:
    assert {"faiss", "milvus", "numpy", "memory"} <= set(store_names())


def test_a_store_answers_as_exact_search_over_the_database(index: Index) -> None:
    vectors, queries = index.vectors, _queries(index)
    exact = not vectors.approximate
    assert sorted(vectors.ids().tolist()) == index.store.chunk_ids().tolist() and len(vectors) == 120
    _agree(vectors.nearest(queries, 10), _oracle(index, queries, 10), exact)
    sample = index.store.chunk_ids()[::7].tolist()
    ids, held = vectors.vectors(sample)
    assert ids.tolist() == sample
    np.testing.assert_allclose(held, index.store.vectors_of(sample, index.manifest.dimension)[1], atol=1e-5)
    assert isinstance(vectors.describe(), str) and vectors.describe()


@pytest.mark.parametrize("share", [0.0, 0.05, 0.5])
def test_a_store_searches_within_a_bitmap(index: Index, share: float) -> None:
    ids = index.store.chunk_ids()
    allowed = ids[np.random.default_rng(3).random(len(ids)) < share]
    queries = _queries(index)
    got = index.vectors.nearest(queries, 10, Selection.from_ids(allowed))
    assert all(i in set(allowed.tolist()) for row in got for i, _ in row)
    _agree(got, _oracle(index, queries, 10, allowed), exact=not index.vectors.approximate)


def test_a_store_that_filters_inside_returns_only_what_passes(index: Index) -> None:
    filters = Filters(exts=("md",), metadata={"team": ["café", "red"]})
    expression = compile_filters(filters)
    got = index.vectors.nearest(_queries(index), 20, None, expression)
    if not index.vectors.filters_inside:
        return  # the search checks what it returns (below)
    rows = {r[0]: r for r in index.store.filter_fields()}
    import json

    for row in got:
        for i, _ in row:
            _, _, rel, ext, mtime, meta = rows[i]
            assert matches(expression, rel, ext, mtime, json.loads(meta))


def test_searches_through_a_store_keep_to_filters_updates_and_deletes(index: Index) -> None:
    docs = _docs(120)
    index.delete([d.path for d in docs[:30]])
    changed = [Document(path=d.path, text=f"{d.text} zeppelin", title=d.title, metadata={"team": "café"})
               for d in docs[30:40]]  # fmt: skip
    index.add_documents(changed)
    filters = Filters(metadata={"team": "café"}, exts=("md",))
    for mode in ("dense", "hybrid"):
        hits = index.search("zeppelin glacier", 15, mode=mode, filters=filters)
        assert hits and all(h.path.endswith(".md") and h.metadata["team"] == "café" for h in hits), mode
        assert not {h.path for h in hits} & {d.path for d in docs[:30]}
    top = index.search("zeppelin", 10, mode="dense")
    assert {h.path for h in top} <= {d.path for d in changed} | {d.path for d in docs[40:]}
    assert sorted(index.vectors.ids().tolist()) == index.store.chunk_ids().tolist()
    again = Index.open(index.path, encoder=FakeEncoder())  # another reader of the same store
    assert [h.path for h in again.search("zeppelin glacier", 5, mode="dense")] == [
        h.path for h in index.search("zeppelin glacier", 5, mode="dense")
    ]
    again.close()
    health = status(str(index.path))
    assert health.consistent and health.vectors == health.chunks, health.problems


def test_a_rebuilt_store_holds_only_the_new_index(index: Index) -> None:
    kind, spec = index.manifest.vector_store["kind"], dict(index.manifest.vector_store)
    options = {"uri": spec["uri"]} if kind == "milvus" else {}
    reader = Index.open(index.path, encoder=FakeEncoder())
    reader.search("glacier", 3)
    fresh = Index.create(index.path, encoder=FakeEncoder(), rebuild=True, vector_store=kind, store_options=options,
                         index_type=index.manifest.vector_index["type"])  # fmt: skip
    fresh.add_documents(_docs(20, seed=5))
    assert sorted(reader.vectors.ids().tolist()) == reader.store.chunk_ids().tolist()
    assert {h.path for h in reader.search("glacier violin", 30, mode="dense")} <= {d.path for d in _docs(20, 5)}
    fresh.close()
    reader.close()
