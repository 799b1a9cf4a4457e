"""The "faiss" store, the default: a FAISS file in the index folder, plus what SQLite committed after it was saved.

A saved vector file records the store generation it holds. A reader maps it (a large file is never read whole) and
catches up with later commits cheaply, whatever the index type: chunks added since are those with larger ids (ids only
grow), held in a small exact index beside the file; chunks removed since are read from the store's removal log and
masked out. Each search first compares the store's generation (one read) and catches up when it moved, so a process
that keeps an index open for hours sees what other processes index.

The one rule for trusting a saved file, vectors or BM25, is `Store.standing`: a file that names another index
instance, or a generation ahead of the store's, is not this index's; a file at the store's generation is current; an
older one the removal log still reaches back to can be caught up with (vectors) or must be rebuilt (BM25); a missing,
unreadable or older one is not trusted: every vector is then read from SQLite (with a warning).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..ann import ann_settings, build, resolve_type
from ..vectors import FaissFlatIndex, Selection, VectorIndex, atomic_write

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np

    from ..expression import Expression
    from ..store import Store
    from . import StoreContext

log = logging.getLogger("searchbert")

VECTORS, VECTORS_STATE = "vectors.faiss", "vectors.json"
#: an approximate index is trained again once the collection has grown or shrunk this many times over
RETRAIN_FACTOR = 2.0
#: a FAISS file smaller than this is saved after every commit of a write (cheap, and a kill then costs no rebuild) ...
SAVE_ALWAYS_BYTES = 32 * 1024 * 1024
#: ... a larger one at most this often (seconds); it can always be rebuilt from SQLite anyway
SAVE_EVERY_S = 60.0
#: a reader that finds the vector file and its state from two different saves looks again this many times
SAVE_RACE_TRIES = 3


def read_state(folder: Path) -> dict[str, Any] | None:
    """What the saved vector file holds (instance, generation, count, build settings), or None if there is none."""
    try:
        state = json.loads((folder / VECTORS_STATE).read_text())
        return state if isinstance(state, dict) and "generation" in state else None
    except (OSError, ValueError):
        return None


def _file_key(folder: Path) -> tuple[int, int, int] | None:
    try:
        st = (folder / VECTORS_STATE).stat()
        return st.st_ino, st.st_mtime_ns, st.st_size
    except OSError:
        return None


class LiveVectors:
    """The saved index (`base`) minus the chunks removed since, plus the chunks added since (`delta`)."""

    def __init__(self, folder: Path, store: Store, dimension: int) -> None:
        self.folder, self.store, self.dimension = folder, store, dimension
        self._key: tuple[int, int, int] | None = None
        self._seen = -1  # the store generation caught up with
        self.built: dict[str, Any] = {"type": "flat"}
        self.trusted = True
        #: why the saved file is not used (None when it is), and the generation it holds
        self.problem: str | None = None
        self.saved_generation = -1
        self._reset(FaissFlatIndex(dimension), -1)
        self.refresh()

    def _reset(self, base: VectorIndex, log_from: int) -> None:
        import numpy as np

        self.base: VectorIndex = base
        self.base_ids = np.sort(base.ids())
        self._last_id = int(self.base_ids[-1]) if len(self.base_ids) else -1
        self._log_from = log_from
        self.delta: VectorIndex = FaissFlatIndex(self.dimension)
        self.removed = np.zeros(0, dtype=np.int64)
        self._not_removed: Selection | None = None

    def _load_base(self) -> None:
        """Map the saved file if it can be trusted; else start empty, so every vector comes from SQLite."""
        for attempt in range(SAVE_RACE_TRIES):
            state, self._key = read_state(self.folder), _file_key(self.folder)
            reason, self.problem = "", "missing or unreadable"
            found = self.store.standing(state)
            if state is None:
                reason = "the vector file is missing or unreadable"
            elif found == "stale":
                reason, self.problem = "the vector file is older than the database's change log", "too old to catch up"
            elif found == "foreign":
                reason, self.problem = "the vector file belongs to another index", "of another index"
            else:
                try:
                    base = FaissFlatIndex.load(self.folder / VECTORS, self.dimension, mmap=True)
                except (OSError, RuntimeError, ValueError) as exc:
                    reason = f"the vector file cannot be read ({str(exc).strip().splitlines()[-1][:200]})"
                else:
                    if len(base) == int(state.get("count", len(base))):
                        base.tune(state.get("built", {}))
                        self.built, self.saved_generation = (
                            state.get("built", {"type": "flat"}),
                            int(state["generation"]),
                        )
                        self.trusted, self.problem = True, None
                        self._reset(base, self.saved_generation)
                        return
                    # the file and its state are two files: a writer replaced one and not yet the other
                    reason = f"the vector file holds {len(base)} vectors, its state says {state['count']}"
                    if attempt + 1 < SAVE_RACE_TRIES:
                        time.sleep(0.05)
                        continue
            break
        if self.store.counts()["embedded"]:
            log.warning(
                "%s of %s: searching vectors read from the database instead (slower to open); "
                "run `searchbert status --repair` to rewrite it",
                reason,
                self.folder,
            )
        self.built, self.trusted = {"type": "flat"}, False
        self._reset(FaissFlatIndex(self.dimension), self.store.generation)

    def refresh(self) -> None:
        """Catch up with commits made since the last look: one read when nothing changed."""
        import numpy as np

        generation = self.store.generation
        if _file_key(self.folder) != self._key:
            self._load_base()
        elif generation == self._seen:
            return
        gone = self.store.removed_since(self._log_from)
        if gone is None:  # the log was cut past this base: only a newer file (or the database) can help
            self._load_base()
            gone = self.store.removed_since(self._log_from)
            gone = np.zeros(0, dtype=np.int64) if gone is None else gone
        if len(gone):
            self.delta.remove(gone)
            in_base = gone[np.isin(gone, self.base_ids)]
            self.removed = np.union1d(self.removed, in_base)
            self._not_removed = None
        ids, vectors = self.store.vectors_after(self._last_id, self.dimension)
        if len(ids):
            self.delta.add(ids, vectors)
            self._last_id = int(ids[-1])
        self._log_from = self._seen = generation

    def __len__(self) -> int:
        return len(self.base_ids) - len(self.removed) + len(self.delta)

    @property
    def approximate(self) -> bool:
        """Whether the saved index is approximate: its search costs about the same for any k (exact search scans
        every vector it is allowed, so a filter's bitmap makes it cheaper)."""
        return self.built.get("type", "flat") != "flat"

    def ids(self) -> np.ndarray:
        import numpy as np

        kept = self.base_ids[~np.isin(self.base_ids, self.removed)]
        return np.concatenate([kept, self.delta.ids()])

    def nearest(
        self,
        queries: np.ndarray,
        k: int,
        allowed: Selection | None = None,
        vectors_of: Callable[[list[int]], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> list[list[tuple[int, float]]]:
        """The k nearest chunks per query as (id, score), among `allowed` if given; `vectors_of` re-scores a
        compressed index's shortlist."""
        selection = allowed
        if selection is None and len(self.removed):
            if self._not_removed is None:
                self._not_removed = Selection.excluding(self.removed, self._last_id)
            selection = self._not_removed
        # removed chunks belong to no stored document, so a selection built from SQL never holds them
        found = self.base.nearest(queries, k, vectors_of, selection)
        if not len(self.delta):
            return found
        extra = self.delta.nearest(queries, k, None, allowed)
        return [sorted(a + b, key=lambda hit: -hit[1])[:k] for a, b in zip(found, extra)]


def save_vectors(
    folder: Path, store: Store, dimension: int, index_type: str, *, final: bool = True, rebuild: bool = False
) -> bool:
    """Bring the saved vector file up to the store's generation; returns whether a file was written.

    An update starts from the saved file and applies what was committed since (no copy of the vectors beyond the
    index itself). The file is built anew from SQLite when it cannot be trusted, when the index type changes, or when
    an approximate index has grown or shrunk RETRAIN_FACTOR times since it was trained. An approximate build reads
    every vector, so it happens only at the end of a run (final=True).
    """
    (instance, generation), count = store.state(), store.counts()["embedded"]
    kind = resolve_type(index_type, count)
    state = read_state(folder)
    if store.standing(state) == "foreign":
        state = None  # another index's: never started from, and its removal log means nothing here
    built = (state or {}).get("built", {"type": "flat"})
    if not final and kind != "flat":
        return False
    index = None if rebuild else _updated(folder, store, dimension, state, kind, count)
    if index is None:
        built = {"type": "flat"} if kind == "flat" else ann_settings(kind, count, dimension)
        started = time.monotonic()
        index = _built(store, dimension, built)
        if kind != "flat":
            built["trained_on"] = count
            log.info("built a %s vector index of %d vectors in %.1f s", kind, count, time.monotonic() - started)
    index.save(folder / VECTORS)
    text = json.dumps({"instance": instance, "generation": generation, "count": len(index), "built": built})
    atomic_write(folder / VECTORS_STATE, lambda tmp: tmp.write_text(text))
    if state is not None:  # readers still on the previous file may need the log since it; older entries can go
        store.forget_removed(int(state["generation"]))
    return True


def _updated(
    folder: Path, store: Store, dimension: int, state: dict[str, Any] | None, kind: str, count: int
) -> FaissFlatIndex | None:
    """The saved index with the commits since applied, or None when it has to be built anew."""
    if state is None:
        return None
    built = state.get("built", {"type": "flat"})
    if built.get("type", "flat") != kind:
        return None
    trained = int(built.get("trained_on", count) or 1)
    if kind != "flat" and not trained / RETRAIN_FACTOR <= count <= trained * RETRAIN_FACTOR:
        return None
    gone = store.removed_since(int(state["generation"]))
    if gone is None or (kind == "hnsw" and len(gone)):  # FAISS cannot delete from an HNSW graph
        return None
    try:
        index = FaissFlatIndex.load(folder / VECTORS, dimension)
    except (OSError, RuntimeError, ValueError):
        return None
    index.remove(gone)
    ids, vectors = store.vectors_after(int(index.ids().max()) if len(index) else -1, dimension)
    index.add(ids, vectors)
    return index


def _built(store: Store, dimension: int, built: dict[str, Any]) -> FaissFlatIndex:
    """A new index over every stored vector."""
    import numpy as np

    if built["type"] == "flat":
        index = FaissFlatIndex(dimension)
        for ids, vectors in store.all_vectors(dimension):
            index.add(ids, vectors)
        return index
    # filled in place: a list of parts stacked afterwards would hold every vector twice
    count = store.counts()["embedded"]
    ids, matrix = np.empty(count, dtype=np.int64), np.empty((count, dimension), dtype=np.float32)
    filled = 0
    for part_ids, part in store.all_vectors(dimension):
        ids[filled : filled + len(part_ids)], matrix[filled : filled + len(part_ids)] = part_ids, part
        filled += len(part_ids)
    return build(built, dimension, ids[:filled], matrix[:filled])


class FaissStore:
    """The "faiss" store (see the module): what a search reads is a LiveVectors, caught up at each access."""

    retypes = True
    filters_inside = False

    def __init__(self, context: StoreContext) -> None:
        self.context = context
        self._live: LiveVectors | None = None
        self._last_save = time.monotonic()

    @classmethod
    def settings(cls, options: Mapping[str, Any], index_type: str, instance: str) -> dict[str, Any]:
        if options:
            from ..errors import InvalidArgument

            raise InvalidArgument(f"the faiss store takes no options, got {', '.join(sorted(options))}")
        resolve_type(index_type, 0)  # an unknown type is refused before anything is written
        return {"kind": "faiss"}

    @property
    def live(self) -> LiveVectors:
        """The vectors as of SQLite's last commit (read on first use, caught up on each access after)."""
        c = self.context
        if self._live is None:
            self._live = LiveVectors(c.folder, c.store, c.dimension)
        else:
            self._live.refresh()
        return self._live

    @property
    def approximate(self) -> bool:
        return self.live.approximate

    def __len__(self) -> int:
        return len(self.live)

    def refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def nearest(
        self, queries: np.ndarray, k: int, allowed: Selection | None = None, expression: Expression | None = None
    ) -> list[list[tuple[int, float]]]:
        store, dimension = self.context.store, self.context.dimension
        return self.live.nearest(queries, k, allowed, lambda ids: store.vectors_of(ids, dimension))

    def written(self, chunk_ids: Sequence[int]) -> None:
        """Nothing to do before the commit: readers catch up from SQLite, and the file is saved after."""

    def save(self, final: bool = True, rebuild: bool = False) -> None:
        c = self.context
        if not final and not rebuild:
            # readers catch up from the saved file by reading what was committed since: keep that short, but a
            # large file is not rewritten after every batch
            size = c.store.counts()["embedded"] * c.dimension * 4
            if size >= SAVE_ALWAYS_BYTES and time.monotonic() - self._last_save < SAVE_EVERY_S:
                return
        elif not rebuild and c.store.standing(read_state(c.folder)) == "current":
            return  # nothing committed since the file was saved
        save_vectors(c.folder, c.store, c.dimension, c.index_type, final=final, rebuild=rebuild)
        self._last_save = time.monotonic()

    def ids(self) -> np.ndarray:
        return self.live.ids()

    def vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """What the saved file (or, for chunks committed since, SQLite) holds for these ids."""
        import numpy as np

        live = self.live
        wanted = np.asarray(ids, dtype=np.int64)
        in_base = wanted[np.isin(wanted, live.base_ids) & ~np.isin(wanted, live.removed)]
        parts = [(in_base, live.base.vectors(in_base))] if len(in_base) else []
        in_delta = wanted[np.isin(wanted, live.delta.ids())]
        if len(in_delta):
            parts.append((in_delta, live.delta.vectors(in_delta)))
        if not parts:
            return np.zeros(0, np.int64), np.zeros((0, self.context.dimension), np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def describe(self) -> str:
        live, store = self.live, self.context.store
        if not live.trusted:
            return f"{live.problem}: read from the database on open (--repair rewrites it)"
        built = live.built
        kind = built["type"] + (f" ({built['factory']})" if "factory" in built else "")
        knob = next((k for k in ("nprobe", "ef_search") if k in built), None)
        if knob and "recall_estimate" in built:
            kind += f", {knob} {built[knob]}: estimated recall@10 {built['recall_estimate']}"
        behind = store.generation - live.saved_generation
        return f"{kind}, " + ("current" if not behind else f"{behind} commits behind (caught up on open)")

    def create(self) -> None:
        self.save(rebuild=True)

    def drop(self) -> None:
        """The files are in the index folder: the new index's replace them, and name their own instance."""

    def close(self) -> None:
        self._live = None
