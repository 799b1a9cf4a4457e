"""The "numpy" store: exact search over SQLite's own copy of the vectors, filters run in Python. Slow (it reads every
vector at each search), obviously right, and always in step with SQLite: the oracle the contract test holds every
other store to."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..expression import matches

if TYPE_CHECKING:
    import numpy as np

    from ..expression import Expression
    from ..vectors import Selection
    from . import StoreContext


class NumpyStore:
    """Exact inner products in numpy over every stored vector; nothing kept beside SQLite."""

    retypes = True
    approximate = False
    filters_inside = True

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    @classmethod
    def settings(cls, options: Mapping[str, Any], index_type: str, instance: str) -> dict[str, Any]:
        if options:
            from ..errors import InvalidArgument

            raise InvalidArgument(f"the numpy store takes no options, got {', '.join(sorted(options))}")
        return {"kind": "numpy"}

    def __len__(self) -> int:
        return int(self.context.store.counts()["embedded"])

    def nearest(
        self, queries: np.ndarray, k: int, allowed: Selection | None = None, expression: Expression | None = None
    ) -> list[list[tuple[int, float]]]:
        import numpy as np

        rows = list(self.context.store.filter_fields())
        keep = [
            row
            for row in rows
            if (allowed is None or bool(allowed.contains(np.asarray([row[0]]))[0]))
            and (not expression or matches(expression, row[2], row[3], row[4], json.loads(row[5])))
        ]
        if not keep:
            return [[] for _ in queries]
        ids = np.asarray([r[0] for r in keep], dtype=np.int64)
        vectors = np.frombuffer(b"".join(r[1] for r in keep), dtype=np.float32).reshape(len(keep), -1)
        scores = np.asarray(queries, dtype=np.float32) @ vectors.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[(int(ids[j]), float(row[j])) for j in best] for row, best in zip(scores, order)]

    def refresh(self) -> None:
        """Every search reads SQLite as it is."""

    def written(self, chunk_ids: Sequence[int]) -> None:
        """SQLite holds the vectors already."""

    def save(self, final: bool = True, rebuild: bool = False) -> None:
        """Nothing is kept beside SQLite."""

    def ids(self) -> np.ndarray:
        return self.context.store.chunk_ids()

    def vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        return self.context.store.vectors_of(list(ids), self.context.dimension)

    def describe(self) -> str:
        return "exact search over the database's own vectors (numpy)"

    def create(self) -> None:
        """Nothing to make."""

    def drop(self) -> None:
        """Nothing kept elsewhere."""

    def close(self) -> None:
        """Nothing held open."""
