"""Contract test for the vector index seam: every implementation equals exact numpy search on random vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from searchbert.vectors import FaissFlatIndex, NumpyIndex, nearest

DIM = 48


def IvfEveryList(dimension: int) -> FaissFlatIndex:
    """An IVF index (its lists keep the ids, no id map) probing every list: exact, so it meets the same contract."""
    import faiss

    inner = faiss.index_factory(dimension, "IVF4,Flat", faiss.METRIC_INNER_PRODUCT)
    inner.train(np.random.default_rng(99).standard_normal((200, dimension)).astype(np.float32))
    index = FaissFlatIndex(dimension, inner)
    index.tune({"nprobe": 4})
    return index


IvfEveryList.load = FaissFlatIndex.load  # type: ignore[attr-defined]


_lite: list[str] = []


def MilvusLite(dimension: int):
    """A fresh collection in one Milvus Lite file for the whole module (a Lite file is a server process of its own)."""
    import tempfile
    import uuid

    from searchbert.stores.milvus import MilvusIndex

    if not _lite:
        _lite.append(str(Path(tempfile.mkdtemp(prefix="searchbert-milvus-")) / "contract.db"))
    index = MilvusIndex(dimension, _lite[0], f"contract_{uuid.uuid4().hex}")
    index.create()
    return index


def _milvus_load(path: Path, dimension: int):
    from searchbert.stores.milvus import MilvusIndex

    return MilvusIndex.load(path, dimension)


MilvusLite.load = _milvus_load  # type: ignore[attr-defined]


IMPLEMENTATIONS = [FaissFlatIndex, NumpyIndex, IvfEveryList, MilvusLite]


def _random(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _exact(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("n,k", [(1, 1), (7, 3), (500, 10), (1000, 1000), (333, 50)])
def test_search_equals_exact(impl, n: int, k: int) -> None:
    ids = np.arange(n, dtype=np.int64) * 3 + 11  # ids are not positions
    vectors, queries = _random(n, 1), _random(5, 2)
    index = impl(DIM)
    for part in range(0, n, 128):  # awkward batch sizes
        index.add(ids[part : part + 128], vectors[part : part + 128])
    scores, found = index.search(queries, k)
    want_scores, want_ids = _exact(ids, vectors, queries, min(k, n))
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(found, want_ids)
    assert len(index) == n and sorted(index.ids()) == sorted(ids)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_remove_then_search(impl) -> None:
    ids, vectors = np.arange(200, dtype=np.int64), _random(200, 3)
    index = impl(DIM)
    index.add(ids, vectors)
    gone = ids[::2]
    assert index.remove(gone) == 100
    assert index.remove(np.array([10_000])) == 0
    _scores, found = index.search(_random(4, 4), 20)
    keep = ids[1::2]
    _want_scores, want_ids = _exact(keep, vectors[1::2], _random(4, 4), 20)
    np.testing.assert_array_equal(found, want_ids)
    assert not set(found.ravel()) & set(gone)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_save_and_load_round_trip(impl, tmp_path: Path) -> None:
    ids, vectors = np.arange(50, dtype=np.int64) + 100, _random(50, 5)
    index = impl(DIM)
    index.add(ids, vectors)
    index.save(tmp_path / "v.idx")
    again = impl.load(tmp_path / "v.idx", DIM)
    q = _random(3, 6)
    np.testing.assert_array_equal(index.search(q, 5)[1], again.search(q, 5)[1])
    assert not list(tmp_path.glob(".*tmp")), "no temp file is left behind"


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_wrong_dimension_is_refused(impl) -> None:
    with pytest.raises(ValueError):
        impl(DIM).add(np.arange(2), np.zeros((2, DIM + 1), dtype=np.float32))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_empty_index_returns_no_ids(impl) -> None:
    _, found = impl(DIM).search(_random(2, 1), 5)
    assert (found < 0).all()


def test_mmap_load_searches_the_same_without_reading_the_file_whole(tmp_path: Path) -> None:
    import subprocess
    import sys

    ids, vectors = np.arange(300_000, dtype=np.int64), _random(300_000, 8)
    index = FaissFlatIndex(DIM)
    index.add(ids, vectors)
    index.save(tmp_path / "v.faiss")
    mapped = FaissFlatIndex.load(tmp_path / "v.faiss", DIM, mmap=True)
    q = _random(3, 9)
    np.testing.assert_array_equal(mapped.search(q, 5)[1], index.search(q, 5)[1])
    code = (
        "import sys, re\nfrom pathlib import Path\nimport faiss, numpy\nfrom searchbert.vectors import FaissFlatIndex\n"
        "rss = lambda: int(re.search(r'VmRSS:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1))\n"
        "before = rss()\nkept = FaissFlatIndex.load(Path(sys.argv[1]), int(sys.argv[2]), mmap=sys.argv[3] == '1')\n"
        "print(rss() - before)\n"
    )
    grow = {
        m: int(
            subprocess.run(
                [sys.executable, "-c", code, str(tmp_path / "v.faiss"), str(DIM), m],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for m in "01"
    }
    size_kb = (tmp_path / "v.faiss").stat().st_size // 1024
    assert grow["0"] > size_kb * 0.8  # a plain read copies the vectors into memory
    assert grow["1"] < size_kb * 0.3  # a mapped one does not (only the id map is read)


def _clustered(n: int, seed: int, centres: np.ndarray) -> np.ndarray:
    """Points around shared centres with enough noise that neighbours spread over several IVF cells."""
    rng = np.random.default_rng(seed)
    v = centres[rng.integers(0, len(centres), n)] + 0.8 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _recall(found: list[list[tuple[int, float]]], truth: np.ndarray) -> float:
    return float(np.mean([len({i for i, _ in f} & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


@pytest.mark.parametrize("kind", ["ivf", "ivf-pq", "hnsw"])
def test_built_indexes_are_calibrated_to_the_recall_target_on_unseen_queries(kind: str) -> None:
    from searchbert.ann import RECALL_TARGET, ann_settings, build

    centres = np.random.default_rng(0).standard_normal((200, DIM)).astype(np.float32)
    n = 20_000
    ids, vectors = np.arange(n, dtype=np.int64) * 2 + 5, _clustered(n, 1, centres)
    queries = _clustered(300, 2, centres)  # not in the index, not among the calibration probes
    settings = ann_settings(kind, n, DIM)
    index = build(settings, DIM, ids, vectors)
    assert len(index) == n  # the held-out probes were added back
    knob = "nprobe" if kind.startswith("ivf") else "ef_search"
    assert settings["recall_estimate"] >= RECALL_TARGET
    if kind == "ivf":
        assert 1 < settings["nprobe"] < settings["nlist"]  # neither the first guess nor a full scan

    _, truth = _exact(ids, vectors, queries, 10)
    order = np.argsort(ids)

    def stored(wanted: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(wanted), vectors[order[np.searchsorted(ids, wanted, sorter=order)]]

    found = index.nearest(queries, 10, stored)
    assert _recall(found, truth) >= RECALL_TARGET - 0.03  # the estimate holds for other queries too
    if kind == "ivf-pq":  # the shortlist is re-scored: exact scores, and better than the codes alone
        assert index.compressed
        q, (chunk, score) = queries[0], found[0][0]
        assert score == pytest.approx(float(vectors[(chunk - 5) // 2] @ q), abs=1e-5)
        raw = nearest(index, queries, 10)
        assert _recall(found, truth) > _recall(raw, truth) + 0.05
    index.tune({knob: 1})  # the calibrated setting is what makes the difference
    assert _recall(index.nearest(queries, 10, stored), truth) < _recall(found, truth)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("share", [0.0, 0.02, 0.5, 1.0])
def test_search_within_a_selection_equals_exact_search_of_it(impl, share: float) -> None:
    from searchbert.vectors import Selection

    n = 600
    ids, vectors, queries = np.arange(n, dtype=np.int64) * 5 + 3, _random(n, 11), _random(4, 12)
    index = impl(DIM)
    index.add(ids, vectors)
    keep = np.random.default_rng(13).random(n) < share
    allowed = Selection.from_ids(ids[keep])
    found = index.nearest(queries, 10, None, allowed)
    if not keep.any():
        assert found == [[], [], [], []]
        return
    want_scores, want_ids = _exact(ids[keep], vectors[keep], queries, min(10, int(keep.sum())))
    assert [[i for i, _ in row] for row in found] == want_ids.tolist()
    np.testing.assert_allclose([[s for _, s in row] for row in found], want_scores, rtol=1e-5, atol=1e-5)


def test_calibration_finds_the_smallest_setting_not_the_next_power_of_two() -> None:
    """Search costs in proportion to nprobe: doubling alone would settle on 64 where 37 reaches the target."""
    from searchbert.ann import _sweep

    ids, vectors, probes = np.arange(300, dtype=np.int64), _random(300, 21), _random(20, 22)
    exact = NumpyIndex(DIM)
    exact.add(ids, vectors)

    needs = np.linspace(2, 40, len(probes)).astype(int)  # query i is answered from nprobe needs[i] on

    class GradualIndex:
        def nearest(self, queries, k, vectors_of=None, allowed=None, *, probe):
            answers = exact.nearest(queries, k)
            return [a if probe >= need else [] for a, need in zip(answers, needs)]

    value, recall = _sweep(GradualIndex(), probes, None, ids, vectors, None, "nprobe", 1, 1000)  # type: ignore[arg-type]
    smallest = int(np.sort(needs)[-2])  # 19 of 20 answered: recall 0.95
    assert recall >= 0.95 and smallest <= value <= smallest + smallest // 8
