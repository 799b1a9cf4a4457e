"""The vector index seam: ids + float32 vectors in, (scores, ids) by inner product out.

FaissFlatIndex is what searchbert uses; NumpyIndex is the exact oracle the contract test compares it with.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np


class Selection:
    """A set of ids as a bitmap (id i is in it when bit i is set): built once per query from SQL, and read by FAISS
    in C++ (IDSelectorBitmap) and by BM25 as a weight mask, with no Python set of ids in between."""

    def __init__(self, bits: np.ndarray, count: int | None = None) -> None:
        self.bits = bits
        self.count = int(bits.sum()) if count is None else int(count)
        self._packed: np.ndarray | None = None

    @classmethod
    def from_ids(cls, ids: object) -> Selection:
        import numpy as np

        array = _as_ids(ids)
        bits = np.zeros(int(array.max()) + 1 if len(array) else 0, dtype=bool)
        bits[array] = True
        return cls(bits)

    @classmethod
    def from_ranges(cls, starts: np.ndarray, counts: np.ndarray) -> Selection:
        """The ids start <= id < start + count of every range (ranges do not overlap)."""
        import numpy as np

        if not len(starts):
            return cls(np.zeros(0, dtype=bool), 0)
        ends = starts + counts
        size, total = int(ends.max()), int(counts.sum())
        if total * 7 < size:  # a narrow selection: set its bits one by one (a sweep over every id costs more)
            bits = np.zeros(size, dtype=bool)
            bits[np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(total)] = True
            return cls(bits, total)
        edges = np.zeros(size + 1, dtype=np.int8)
        edges[starts] += 1  # no two ranges start (or end) at the same id, so each index appears once
        edges[ends] -= 1
        return cls(np.cumsum(edges, dtype=np.int8)[:-1] > 0, total)

    @classmethod
    def excluding(cls, ids: np.ndarray, last: int) -> Selection:
        """Every id from 0 to `last` but these."""
        import numpy as np

        bits = np.ones(last + 1, dtype=bool)
        bits[ids[ids <= last]] = False
        return cls(bits)

    def __len__(self) -> int:
        return self.count

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """A boolean mask: which of these ids are in the selection."""
        import numpy as np

        ids = _as_ids(ids)
        inside = (ids >= 0) & (ids < len(self.bits))
        out = np.zeros(len(ids), dtype=bool)
        out[inside] = self.bits[ids[inside]]
        return out

    def selector(self) -> Any:
        """A FAISS IDSelectorBitmap over this selection (valid while the selection lives)."""
        import faiss
        import numpy as np

        if self._packed is None:
            self._packed = np.packbits(self.bits, bitorder="little")
        return faiss.IDSelectorBitmap(len(self._packed), faiss.swig_ptr(self._packed))


class VectorIndex(Protocol):
    """Inner-product search over vectors that carry int64 ids."""

    dimension: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> int: ...

    def search(self, queries: np.ndarray, k: int, allowed: Selection | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k nearest per query, among `allowed` ids if given; id -1 pads a short row."""
        ...

    def nearest(
        self,
        queries: np.ndarray,
        k: int,
        vectors_of: Callable[[list[int]], tuple[np.ndarray, np.ndarray]] | None = None,
        allowed: Selection | None = None,
    ) -> list[list[tuple[int, float]]]:
        """search() as (id, score) lists, padding dropped; `vectors_of` (ids -> exact vectors) lets an index whose
        codes are lossy re-score its shortlist."""
        ...

    def ids(self) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def save(self, path: Path) -> None: ...


def atomic_write(path: Path, write: object) -> None:
    """Write through a temp file, fsync, then rename over `path`: readers see the old file or the new, never half."""
    from .errors import storage_error

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        try:
            write(tmp)  # type: ignore[operator]
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except (OSError, RuntimeError) as exc:  # FAISS reports a failed write as a RuntimeError
        raise storage_error(exc, path) from exc


def nearest(
    index: VectorIndex, queries: np.ndarray, k: int, allowed: Selection | None = None
) -> list[list[tuple[int, float]]]:
    """search() as lists of (id, score) per query, padding dropped."""
    return _pairs(*index.search(queries, k, allowed))


def _pairs(scores: np.ndarray, ids: np.ndarray) -> list[list[tuple[int, float]]]:
    """(scores, ids) rows as (id, score) lists, the -1 padding dropped."""
    return [[(int(i), float(s)) for i, s in zip(id_row, score_row) if i >= 0] for id_row, score_row in zip(ids, scores)]


def _as_ids(ids: object) -> np.ndarray:
    import numpy as np

    return np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)


def _as_vectors(vectors: object, dimension: int) -> np.ndarray:
    import numpy as np

    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != dimension:
        raise ValueError(f"expected vectors of shape (n, {dimension}), got {array.shape}")
    return array


#: PQ codes only shortlist: this many times k candidates are re-scored with the exact vectors
RESCORE = 10


def rescore(
    queries: np.ndarray,
    candidates: np.ndarray,
    vectors_of: Callable[[list[int]], tuple[np.ndarray, np.ndarray]],
    k: int,
) -> list[list[tuple[int, float]]]:
    """Exact inner products for each query's candidate ids (from a compressed index), best k first."""
    import numpy as np

    out = []
    for query, row in zip(queries, candidates):
        ids, vectors = vectors_of([int(i) for i in row if i >= 0])
        scores = vectors @ query
        best = np.argsort(-scores, kind="stable")[:k]
        out.append([(int(ids[j]), float(scores[j])) for j in best])
    return out


class FaissFlatIndex:
    """FAISS keeping our chunk ids: an IndexIDMap2 around an exact IndexFlatIP (or an HNSW graph), or an IVF index,
    which stores ids in its lists itself. A filter's bitmap is then checked against the ids as they are scanned; behind
    an IndexIDMap2 each check first looks the id up in a table of a million (a cache miss a vector: 2.4x the time
    of a 1%-filtered search at a million chunks)."""

    def __init__(self, dimension: int, index: object | None = None) -> None:
        import faiss

        self.dimension = dimension
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.settings: dict[str, Any] = {}

    @property
    def exact(self) -> bool:
        import faiss

        return isinstance(self._inner, faiss.IndexFlat)

    @property
    def compressed(self) -> bool:
        """Whether the index keeps codes too lossy to rank by (PQ: a byte per 8 dimensions), so its shortlist is
        re-scored. SQ8 (a byte per dimension) ranks almost exactly: on real vectors it lost 0.002 recall@10."""
        import faiss

        return isinstance(self._inner, faiss.IndexIVFPQ)

    @property
    def _inner(self) -> Any:
        """The index under the id map, if there is one."""
        import faiss

        mapped = getattr(self._index, "id_map", None) is not None
        return faiss.downcast_index(self._index.index if mapped else self._index)

    def nearest(
        self,
        queries: np.ndarray,
        k: int,
        vectors_of: Callable[[list[int]], tuple[np.ndarray, np.ndarray]] | None = None,
        allowed: Selection | None = None,
        *,
        probe: int | None = None,
    ) -> list[list[tuple[int, float]]]:
        """The k nearest per query as (id, score) lists; compressed codes shortlist RESCORE * k candidates, which
        `vectors_of` (ids -> (ids, exact vectors)) re-scores. `probe` overrides nprobe / efSearch (calibration)."""
        if not self.compressed or vectors_of is None:
            return _pairs(*self.search(queries, k, allowed, probe=probe))
        _, candidates = self.search(queries, k * RESCORE, allowed, probe=probe)
        return rescore(_as_vectors(queries, self.dimension), candidates, vectors_of, k)

    def tune(self, settings: dict[str, object]) -> None:
        """Apply search-time settings (nprobe, efSearch, the filtered table) recorded with the index."""
        import faiss

        if "filtered" in settings:
            self.settings = {**self.settings, "filtered": settings["filtered"]}

        inner = self._inner
        if "nprobe" in settings:
            faiss.extract_index_ivf(inner).nprobe = int(settings["nprobe"])  # type: ignore[arg-type]
        if "ef_search" in settings:
            inner.hnsw.efSearch = int(settings["ef_search"])  # type: ignore[arg-type]

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = _as_ids(ids)
        if len(ids):
            self._index.add_with_ids(_as_vectors(vectors, self.dimension), ids)

    def remove(self, ids: np.ndarray) -> int:
        import faiss

        ids = _as_ids(ids)
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids))) if len(ids) else 0

    def search(
        self, queries: np.ndarray, k: int, allowed: Selection | None = None, *, probe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        import faiss
        import numpy as np

        queries = _as_vectors(queries, self.dimension)
        k = min(k, max(len(self), 1))
        inner = self._inner
        if allowed is None:
            if probe is None or isinstance(inner, faiss.IndexFlat):
                return self._index.search(queries, k)
            params = (
                faiss.SearchParametersIVF(nprobe=probe)
                if isinstance(inner, faiss.IndexIVF)
                else faiss.SearchParametersHNSW(efSearch=probe)
            )
            return self._index.search(queries, k, params=params)
        if not len(allowed):
            return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        selector = allowed.selector()  # kept alive here: the parameters hold a bare pointer to it
        share = min(1.0, len(allowed) / max(len(self), 1))
        if isinstance(inner, faiss.IndexIVF):
            nprobe = probe or self._under_filter(share, inner.nprobe, inner.nlist)
            return self._index.search(queries, k, params=faiss.SearchParametersIVF(sel=selector, nprobe=nprobe))
        if isinstance(inner, faiss.IndexHNSW):
            ef = probe or self._under_filter(share, inner.hnsw.efSearch, None)
            if ef is None:  # narrower than any calibrated filter: the graph may not connect what it allows
                return self._exact_in_graph(inner, queries, k, selector)
            return self._index.search(queries, k, params=faiss.SearchParametersHNSW(sel=selector, efSearch=ef))
        return self._index.search(queries, k, params=faiss.SearchParameters(sel=selector))

    def _under_filter(self, share: float, plain: int, full: int | None) -> int | None:
        """nprobe / efSearch for a filter allowing `share` of the vectors: the value calibrated for the nearest
        narrower share recorded at build time (see calibrate); narrower than all of them, `full` (a scan of every
        list, each vector checked against the bitmap before any distance is computed). Indexes built before
        filtered calibration divide the plain value by the share."""
        import math

        table = {float(s): int(v) for s, v in self.settings.get("filtered", {}).items()}
        if not table:
            value = math.ceil(plain / share)
            return min(value, full) if full else value
        if share >= max(table):
            return table[max(table)]
        if share >= min(table):
            return table[max(s for s in table if s <= share)]
        return full

    def _exact_in_graph(self, inner: Any, queries: np.ndarray, k: int, selector: Any) -> tuple[np.ndarray, np.ndarray]:
        """An exact scan of the allowed vectors an HNSW index stores (its flat storage), mapped to our ids."""
        import faiss
        import numpy as np

        storage = faiss.downcast_index(inner.storage)
        id_map = faiss.vector_to_array(self._index.id_map)
        translated = faiss.IDSelectorTranslated(self._index.id_map, selector)
        scores, rows = storage.search(queries, k, params=faiss.SearchParameters(sel=translated))
        return scores, np.where(rows >= 0, id_map[np.clip(rows, 0, None)], -1)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The vectors the index keeps for these ids, decoded (an approximate code gives an approximation); every id
        must be in the index."""
        import faiss
        import numpy as np

        ids = _as_ids(ids)
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        if getattr(self._index, "id_map", None) is not None:  # IndexIDMap2 looks our ids up itself
            for row, i in enumerate(ids):
                out[row] = self._index.reconstruct(int(i))
            return out
        ivf = faiss.extract_index_ivf(self._index)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # our ids are not 0..n-1; in memory only
        for row, i in enumerate(ids):
            out[row] = ivf.reconstruct(int(i))
        return out

    def ids(self) -> np.ndarray:
        import faiss
        import numpy as np

        if getattr(self._index, "id_map", None) is not None:
            return faiss.vector_to_array(self._index.id_map).astype("int64")
        lists = faiss.extract_index_ivf(self._index).invlists
        sizes = [lists.list_size(i) for i in range(lists.nlist)]
        parts = [faiss.rev_swig_ptr(lists.get_ids(i), n).copy() for i, n in enumerate(sizes) if n]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def save(self, path: Path) -> None:
        import faiss

        atomic_write(path, lambda tmp: faiss.write_index(self._index, str(tmp)))

    @classmethod
    def load(cls, path: Path, dimension: int, mmap: bool = False) -> FaissFlatIndex:
        """Read an index file; mmap=True maps it instead of copying it into memory (for read-only use: pages are
        read on demand and shared with the page cache)."""
        import faiss

        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mmap else 0)
        except RuntimeError:
            if not mmap:
                raise
            index = faiss.read_index(str(path))  # an index type FAISS cannot map
        if index.d != dimension:
            raise ValueError(f"{path} holds {index.d}-d vectors, expected {dimension}")
        return cls(dimension, index)


class NumpyIndex:
    """Brute-force exact search in numpy: slow, obviously right, the oracle for tests."""

    def __init__(self, dimension: int) -> None:
        import numpy as np

        self.dimension = dimension
        self._ids = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, dimension), dtype=np.float32)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        import numpy as np

        self._ids = np.concatenate([self._ids, _as_ids(ids)])
        self._vectors = np.vstack([self._vectors, _as_vectors(vectors, self.dimension)])

    def remove(self, ids: np.ndarray) -> int:
        import numpy as np

        keep = ~np.isin(self._ids, _as_ids(ids))
        removed = int((~keep).sum())
        self._ids, self._vectors = self._ids[keep], self._vectors[keep]
        return removed

    def nearest(
        self,
        queries: np.ndarray,
        k: int,
        vectors_of: Callable[[list[int]], tuple[np.ndarray, np.ndarray]] | None = None,
        allowed: Selection | None = None,
    ) -> list[list[tuple[int, float]]]:
        return nearest(self, queries, k, allowed)  # exact already: nothing to re-score

    def search(self, queries: np.ndarray, k: int, allowed: Selection | None = None) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        scores = _as_vectors(queries, self.dimension) @ self._vectors.T
        if allowed is not None:
            scores[:, ~allowed.contains(self._ids)] = -np.inf
        k = min(k, max(len(self), 1))
        if not len(self):
            return np.full((len(scores), k), -np.inf, dtype=np.float32), np.full((len(scores), k), -1, dtype=np.int64)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top, ids = np.take_along_axis(scores, order, axis=1), self._ids[order]
        return top, np.where(np.isfinite(top), ids, -1)

    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def __len__(self) -> int:
        return len(self._ids)

    def save(self, path: Path) -> None:
        import numpy as np

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, ids=self._ids, vectors=self._vectors)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path, dimension: int) -> NumpyIndex:
        import numpy as np

        data = np.load(path)
        index = cls(dimension)
        index.add(data["ids"], data["vectors"])
        return index
