"""Approximate vector indexes: which type at which size, how they are built, and the calibration of their search
settings (nprobe, efSearch) to a recall target, unfiltered and under filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .vectors import FaissFlatIndex, Selection, _as_ids, _as_vectors

if TYPE_CHECKING:
    import numpy as np

#: below this many vectors exact search is fast enough (a few ms a query) and `auto` stays exact
EXACT_UP_TO = 200_000
INDEX_TYPES = ("auto", "flat", "hnsw", "ivf", "ivf-sq8", "ivf-pq")
_TRAINING_MINIMUM = {"hnsw": 1, "ivf": 39, "ivf-sq8": 39, "ivf-pq": 10_000}


def resolve_type(kind: str, n: int) -> str:
    """The concrete index type for `kind` at n vectors (auto: exact up to EXACT_UP_TO, then IVF)."""
    if kind not in INDEX_TYPES:
        from .errors import InvalidArgument

        raise InvalidArgument(f"unknown index type {kind!r}: use one of {', '.join(INDEX_TYPES)}")
    if kind == "auto":
        return "flat" if n <= EXACT_UP_TO else "ivf"
    # too few vectors to train the asked-for structure: exact search is right (and instant) anyway
    return kind if n >= _TRAINING_MINIMUM.get(kind, 0) else "flat"


def ann_settings(kind: str, n: int, dimension: int) -> dict[str, object]:
    """Build settings for an approximate index of n vectors; the search setting is calibrated when it is built."""
    # 4 sqrt(n) lists (the low end of FAISS's 4-16 sqrt(n) advice): on real embeddings more, smaller lists reached
    # the same recall scanning half as much as sqrt(n) did; FAISS wants >= 39 training points per list
    nlist = max(1, min(int(4 * n**0.5), n // 39 or 1))
    settings: dict[str, object] = {"type": kind}
    if kind == "hnsw":
        settings |= {"factory": "HNSW32,Flat", "ef_construction": 80, "ef_search": 128}
    elif kind.startswith("ivf"):
        code = {"ivf": "Flat", "ivf-sq8": "SQ8", "ivf-pq": f"PQ{dimension // 8}x8"}[kind]
        settings |= {"factory": f"IVF{nlist},{code}", "nlist": nlist, "nprobe": min(nlist, 16)}
    return settings


#: the share of exact search's top 10 an approximate index must find. It is calibrated on held-out stored vectors
#: used as queries, which on SciFact + Cranfield estimated the recall of the collections' real queries within 0.01
RECALL_TARGET = 0.95
_PROBES = 256
#: filter shares the search setting is calibrated for: a narrower filter leaves fewer allowed vectors near a query,
#: so an approximate index must visit more of itself to find k of them
FILTER_SHARES = (0.5, 0.1, 0.01)


def calibrate(
    index: FaissFlatIndex, ids: np.ndarray, vectors: np.ndarray, probes: np.ndarray, settings: dict[str, Any]
) -> None:
    """Set nprobe / ef_search to the smallest value whose recall@10 reaches RECALL_TARGET, and record both; then
    the same under filters that allow FILTER_SHARES of the vectors at random (recorded as settings["filtered"]).

    `probes` are vectors held out of the index (queries from the data's own distribution); the exact answer is a
    brute-force scan of `vectors` (a second or so at a million).
    """
    import numpy as np

    k = 10
    if len(ids) <= k or not len(probes):
        return
    knob = "nprobe" if "nprobe" in settings else "ef_search"
    order = np.argsort(ids)

    def lookup(wanted: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(wanted), vectors[order[np.searchsorted(ids, wanted, sorter=order)]]

    limit = int(settings["nlist"]) if knob == "nprobe" else 1024
    value, recall = _sweep(index, probes, lookup, ids, vectors, None, knob, 1 if knob == "nprobe" else 16, limit)
    settings[knob] = value
    settings["recall_estimate"] = round(recall, 3)
    index.tune({knob: value})
    filtered = {}
    rng = np.random.default_rng(2)
    for share in FILTER_SHARES:
        chosen = ids[rng.random(len(ids)) < share]
        if len(chosen) < 10 * k:
            break
        allowed = Selection.from_ids(chosen)
        limit = int(settings["nlist"]) if knob == "nprobe" else max(1024, int(4 * settings["ef_search"] / share))
        filtered[str(share)], _ = _sweep(index, probes, lookup, ids, vectors, allowed, knob, value, limit)
        value = filtered[str(share)]  # a narrower filter never needs less
    settings["filtered"] = filtered


def _sweep(
    index: FaissFlatIndex,
    probes: np.ndarray,
    lookup: Callable[[list[int]], tuple[np.ndarray, np.ndarray]],
    ids: np.ndarray,
    vectors: np.ndarray,
    allowed: Selection | None,
    knob: str,
    value: int,
    limit: int,
) -> tuple[int, float]:
    """The smallest knob value whose recall@10 reaches RECALL_TARGET (or where probing more stops paying), and its
    recall: doubling from `value`, then halving the gap back to the last value that fell short (the search costs
    in proportion to the knob, and a doubling can overshoot by nearly 2x)."""
    import faiss
    import numpy as np

    k = 10
    inside = allowed.contains(ids) if allowed is not None else slice(None)
    _, rows = faiss.knn(probes, vectors[inside], k, metric=faiss.METRIC_INNER_PRODUCT)
    truth = [set(ids[inside][row].tolist()) for row in rows]

    def recall_at(value: int) -> float:
        found = index.nearest(probes, k, lookup, allowed, probe=value)
        return float(np.mean([len({i for i, _ in f} & t) / k for f, t in zip(found, truth)]))

    previous = None
    while True:
        recall = recall_at(value)
        if previous is not None and recall - previous[1] < 0.002:
            return previous
        if recall >= RECALL_TARGET or value >= limit:
            break
        previous, value = (value, recall), min(2 * value, limit)
    if recall < RECALL_TARGET or previous is None:
        return value, recall
    low = previous[0]  # fell short; `value` reaches the target
    while value - low > max(1, low // 8):
        middle = (low + value) // 2
        reached = recall_at(middle)
        if reached >= RECALL_TARGET:
            value, recall = middle, reached
        else:
            low = middle
    return value, recall


def build(settings: dict[str, object], dimension: int, ids: np.ndarray, vectors: np.ndarray) -> FaissFlatIndex:
    """An approximate index over all the vectors at once (trained on a sample of them); the search setting in
    `settings` is calibrated to RECALL_TARGET and written back there, with the recall it measured."""
    import faiss
    import numpy as np

    inner = faiss.index_factory(dimension, str(settings["factory"]), faiss.METRIC_INNER_PRODUCT)
    if "ef_construction" in settings:
        faiss.downcast_index(inner).hnsw.efConstruction = int(settings["ef_construction"])  # type: ignore[arg-type]
    if not inner.is_trained:
        sample = vectors
        if len(vectors) > 64 * int(settings.get("nlist", 1)):  # type: ignore[arg-type]
            rows = np.random.default_rng(0).choice(len(vectors), 64 * int(settings["nlist"]), replace=False)  # type: ignore[arg-type]
            sample = vectors[np.sort(rows)]
        inner.train(_as_vectors(sample, dimension))
    # IVF lists store ids themselves: no id map, so a filter's bitmap is read straight against them (see FaissFlatIndex)
    index = FaissFlatIndex(dimension, inner if isinstance(inner, faiss.IndexIVF) else faiss.IndexIDMap2(inner))
    ids, vectors = _as_ids(ids), _as_vectors(vectors, dimension)
    held = np.zeros(len(ids), dtype=bool)  # probes for calibrate(): added only after it
    held[np.random.default_rng(1).choice(len(ids), min(_PROBES, len(ids) // 10), replace=False)] = True
    index.add(ids[~held], vectors[~held])
    calibrate(index, ids[~held], vectors[~held], vectors[held], settings)
    index.add(ids[held], vectors[held])
    index.tune(settings)
    return index
