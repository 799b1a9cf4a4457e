"""The "milvus" store (`index --vector-store milvus`): chunk vectors in Milvus Lite (a local file), or a Milvus server
or cluster at an http(s) URI, the token from MILVUS_TOKEN. SQLite stays the source of truth for documents, chunks,
BM25 and settings (it keeps a copy of each vector too, which `status --repair` restores Milvus from); Milvus holds
the vectors keyed by chunk id, with the fields filters need, and runs dense search and its filters.

Order across the two stores: vectors are upserted inside the SQLite transaction, before the commit that makes
them visible (a crash between leaves vectors no chunk points to: never returned, since every hit is looked up
in SQLite, and removed by the next writer or by repair); deletes go the other way, replayed from SQLite's removal
log after its commit. Reads ask Milvus for the timestamp of searchbert's last write (kept in SQLite), so a search
after `index` returns sees what it committed, without paying for "Strong" consistency on every query.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument, MissingExtra, VectorStoreError
from ..expression import Expression, ExtIn, MetadataIs, ModifiedSince, PathGlob, compile_filters

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from ..records import Filters
    from ..vectors import Selection
    from . import StoreContext

log = logging.getLogger("searchbert")

#: Milvus refuses a larger limit (topk) in one search
MAX_LIMIT = 16_384
#: --index-type -> what a Milvus server builds (build parameters, search parameters). auto is HNSW there; a Milvus
#: Lite file is always FLAT (exact): its HNSW does not fall back to brute force under selective filters (measured
#: recall 0.17-0.23 with 0.5-1% filters)
SERVER_INDEXES: dict[str, tuple[str, dict[str, int], dict[str, int]]] = {
    "flat": ("FLAT", {}, {}),
    "hnsw": ("HNSW", {"M": 16, "efConstruction": 200}, {"ef": 128}),
    "ivf": ("IVF_FLAT", {"nlist": 1024}, {"nprobe": 128}),
    "ivf-sq8": ("IVF_SQ8", {"nlist": 1024}, {"nprobe": 128}),
}
#: chunks upserted per request (Milvus caps a request's size; 1,000 x 384-d floats is ~1.5 MB)
UPSERT_ROWS = 1_000
#: a filter Milvus returned too few of (an approximate index under a selective filter) is searched exactly over
#: SQLite's copy of its vectors when it allows at most this many chunks
EXACT_FALLBACK_MAX = 50_000
_CLIENTS: dict[str, list[Any]] = {}  # uri -> [client, how many hold it]
_CLIENTS_LOCK = threading.Lock()


def is_lite(uri: str) -> bool:
    """Whether the URI is a Milvus Lite file (a server, Lite's own included, is reached at a URL)."""
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


def serves_lite(uri: str) -> bool:
    """Whether Milvus Lite answers at `uri`: a file, or `milvus-lite server` (which says so in its version)."""
    if is_lite(uri):
        return True
    connection = client(uri)
    try:
        return str(connection.get_server_version()).startswith("milvus_lite")
    except Exception as exc:  # pymilvus's and gRPC's own errors
        raise _unreachable(uri, exc) from exc
    finally:
        release(uri)


def normalize_uri(uri: str) -> str:
    """A Lite file as an absolute path (so `query` from another folder finds it); a server URI as given."""
    if not is_lite(uri):
        return uri
    if not uri.endswith(".db"):
        raise VectorStoreError(f"a Milvus Lite URI is a file ending in .db, got {uri!r}; a server is http://host:19530")
    return str(Path(uri).expanduser().resolve())


def client(uri: str) -> Any:
    """The process's MilvusClient for a URI, shared (a Lite file is served once per process); each call is matched
    by a release()."""
    with _CLIENTS_LOCK:
        found = _CLIENTS.get(uri)
        if found is not None:
            found[1] += 1
            return found[0]
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC's notes on fork() are not the user's business
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:
            raise MissingExtra("--vector-store milvus needs pymilvus: pip install 'searchbert[milvus]'") from exc
        try:
            if is_lite(uri):
                # a file held by another process is logged with a traceback by milvus_lite (the error below says
                # it); Lite has no MVCC timestamp to give an iterator, which pymilvus and Lite's in-process server
                # report on every ids(): nothing is wrong in either case
                logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)
                logging.getLogger("pymilvus").setLevel(logging.ERROR)
                logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
                made = MilvusClient(uri)
            else:
                made = MilvusClient(uri=uri, token=os.environ.get("MILVUS_TOKEN", ""), timeout=10)
        except Exception as exc:  # pymilvus raises its own and gRPC's errors
            raise _unreachable(uri, exc) from exc
        _CLIENTS[uri] = [made, 1]
        return made


def release(uri: str) -> None:
    """Let go of a client(); the last holder closes it, and a Lite file is then free for other processes."""
    with _CLIENTS_LOCK:
        found = _CLIENTS.get(uri)
        if found is None:
            return
        found[1] -= 1
        if found[1] > 0:
            return
        del _CLIENTS[uri]
    with contextlib.suppress(Exception):
        found[0].close()
    if is_lite(uri):
        with contextlib.suppress(ImportError):
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(uri)


def index_kind(asked: str, uri: str, lite: bool | None = None) -> str:
    """The vector index a collection gets for --index-type `asked`: Milvus Lite's (a file, or `milvus-lite server`)
    is always flat (exact); a server's auto is HNSW."""
    if is_lite(uri) if lite is None else lite:
        if asked not in ("auto", "flat"):
            raise InvalidArgument(
                f"a Milvus Lite file searches exactly (flat), not {asked}: its approximate indexes lose recall "
                "under filters. Use a Milvus server for hnsw or ivf"
            )
        return "flat"
    kind = "hnsw" if asked == "auto" else asked
    if kind not in SERVER_INDEXES:
        offered = ", ".join(["auto", *SERVER_INDEXES])
        raise InvalidArgument(f"--index-type {asked} is not offered on Milvus: use one of {offered}")
    return kind


def _unreachable(uri: str, exc: BaseException) -> VectorStoreError:
    text = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
    if is_lite(uri):
        return VectorStoreError(
            f"cannot open the Milvus Lite file {uri} ({text}). A Lite file can be open in one process at a time: "
            "if `searchbert index` is writing to it, wait for it to finish, or keep the vectors on a Milvus server "
            "and pass its http:// URI"
        )
    return VectorStoreError(f"cannot reach the Milvus server at {uri} ({text}); its token is read from MILVUS_TOKEN")


class MilvusIndex:
    """The vector index seam (vectors.VectorIndex) over one Milvus collection: chunk ids, vectors, and the fields
    filters read (relpath, ext, mtime, metadata), which `add` takes per row when it has them."""

    def __init__(self, dimension: int, uri: str, collection: str, kind: str = "auto") -> None:
        self.dimension, self.uri, self.collection = dimension, uri, collection
        self.kind = kind if kind in SERVER_INDEXES else index_kind(kind, uri)
        #: search parameters (ef, nprobe): the index type's defaults
        self.knobs = dict(SERVER_INDEXES[self.kind][2])
        self.client = client(uri)
        #: the write timestamp a read must see (see MilvusVectors); 0: Milvus's default consistency
        self.guarantee = 0
        self._loaded = False

    def create(self) -> None:
        """Make the collection if there is none."""
        from pymilvus import DataType

        c = self.client
        if c.has_collection(self.collection):
            return
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimension)
        schema.add_field("relpath", DataType.VARCHAR, max_length=65_535)
        schema.add_field("ext", DataType.VARCHAR, max_length=256)
        schema.add_field("mtime", DataType.DOUBLE)
        schema.add_field("metadata", DataType.JSON)
        params = c.prepare_index_params()
        name, build, _ = SERVER_INDEXES[self.kind]
        # build parameters nested under params: a flat dict is silently ignored (Milvus Lite builds its defaults)
        params.add_index("vector", index_type=name, metric_type="IP", params=dict(build))
        self._call(c.create_collection, self.collection, schema=schema, index_params=params)
        built = self._call(c.describe_index, self.collection, "vector")
        # never a silent default build: the type must be the one asked for, and each build parameter the server
        # reports must be ours (Milvus Lite reports none; it is only ever asked for FLAT, which has none)
        reported = {key: built[key] for key in build if key in built}
        if built.get("index_type") != name or any(str(v) != str(build[key]) for key, v in reported.items()):
            self.drop()
            raise VectorStoreError(f"Milvus at {self.uri} built {built} instead of {name} {build}")
        self._loaded = True

    def drop(self) -> None:
        if self.client.has_collection(self.collection):
            self._call(self.client.drop_collection, self.collection)
        self._loaded = False

    def close(self) -> None:
        if self.client is not None:
            self.client = None
            release(self.uri)

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except VectorStoreError:
            raise
        except Exception as exc:  # pymilvus's and gRPC's own errors
            raise VectorStoreError(f"Milvus ({self.uri}, collection {self.collection}) refused: {exc}") from exc

    def _load(self) -> None:
        if not self._loaded:
            if not self.client.has_collection(self.collection):
                raise VectorStoreError(
                    f"the Milvus collection {self.collection} at {self.uri} is gone: "
                    "run `searchbert status --repair` to put the vectors back from the index's database"
                )
            self._call(self.client.load_collection, self.collection)
            self._loaded = True

    def _read(self) -> dict[str, Any]:
        """Consistency for a read: at least up to `guarantee` (Milvus waits only if it has not applied it yet)."""
        if is_lite(self.uri) or not self.guarantee:
            return {}
        return {"consistency_level": "Customized", "guarantee_timestamp": self.guarantee}

    # -- VectorIndex -------------------------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray, fields: Sequence[dict[str, Any]] | None = None) -> int:
        """Upsert rows (an id already there is replaced); returns the timestamp Milvus gave the write (0 unknown)."""
        from ..vectors import _as_ids, _as_vectors

        ids, vectors = _as_ids(ids), _as_vectors(vectors, self.dimension)
        self._load()
        for start in range(0, len(ids), UPSERT_ROWS):
            rows = [
                {"id": int(i), "vector": v.tolist(), **(fields[start + j] if fields else _NO_FIELDS)}
                for j, (i, v) in enumerate(zip(ids[start : start + UPSERT_ROWS], vectors[start : start + UPSERT_ROWS]))
            ]
            self._call(self.client.upsert, self.collection, rows)
        return _last_write(self.collection)

    def remove(self, ids: np.ndarray) -> int:
        from ..vectors import _as_ids

        ids = _as_ids(ids)
        if not len(ids):
            return 0
        self._load()
        present = 0
        for start in range(0, len(ids), UPSERT_ROWS):
            part = [int(i) for i in ids[start : start + UPSERT_ROWS]]
            present += len(self._call(self.client.get, self.collection, ids=part, output_fields=["id"], **self._read()))
            self._call(self.client.delete, self.collection, ids=part)
        return present

    def search(
        self, queries: np.ndarray, k: int, allowed: Selection | None = None, expression: str = ""
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k nearest per query, padded with id -1; among `allowed` (as a list of ids: fine for
        the narrow filters it comes with) or what `expression` lets through."""
        import numpy as np

        from ..vectors import _as_vectors

        queries = _as_vectors(queries, self.dimension)
        k = max(1, min(k, MAX_LIMIT))
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        if allowed is not None:
            if not len(allowed):
                return scores, ids
            listed = f"id in {np.flatnonzero(allowed.bits).tolist()}"
            expression = f"({expression}) and {listed}" if expression else listed
        self._load()
        params: dict[str, Any] = {"metric_type": "IP"}
        knobs = dict(self.knobs)
        if "ef" in knobs:
            knobs["ef"] = max(knobs["ef"], k)  # HNSW needs ef >= k
        if knobs:
            params["params"] = knobs
        found = self._call(
            self.client.search, self.collection, data=queries.tolist(), limit=k, filter=expression,
            output_fields=[], search_params=params, **self._read(),
        )  # fmt: skip
        for q, row in enumerate(found):
            for j, hit in enumerate(row):
                ids[q, j], scores[q, j] = int(hit["id"]), float(hit["distance"])
        return scores, ids

    def nearest(
        self,
        queries: np.ndarray,
        k: int,
        vectors_of: Callable[[list[int]], tuple[np.ndarray, np.ndarray]] | None = None,
        allowed: Selection | None = None,
    ) -> list[list[tuple[int, float]]]:
        from ..vectors import nearest

        return nearest(self, queries, k, allowed)

    def vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) the collection holds for these ids."""
        import numpy as np

        self._load()
        rows = self._call(
            self.client.get, self.collection, ids=[int(i) for i in ids], output_fields=["id", "vector"], **self._read()
        )
        found = sorted((int(r["id"]), r["vector"]) for r in rows)
        return (
            np.asarray([i for i, _ in found], dtype=np.int64),
            np.asarray([v for _, v in found], dtype=np.float32).reshape(len(found), self.dimension),
        )

    def ids(self) -> np.ndarray:
        import numpy as np

        self._load()
        found: list[int] = []
        iterator = self._call(
            self.client.query_iterator, self.collection, batch_size=10_000, filter="id >= 0", output_fields=["id"],
            **self._read(),
        )  # fmt: skip
        while True:
            page = iterator.next()
            if not page:
                iterator.close()
                break
            found.extend(int(r["id"]) for r in page)
        return np.asarray(sorted(found), dtype=np.int64)

    def __len__(self) -> int:
        self._load()
        rows = self._call(self.client.query, self.collection, filter="", output_fields=["count(*)"], **self._read())
        return int(rows[0]["count(*)"])

    def save(self, path: Path) -> None:
        """Milvus keeps the vectors itself: what is saved is where they are."""
        from ..vectors import atomic_write

        text = json.dumps(
            {"uri": self.uri, "collection": self.collection, "dimension": self.dimension, "kind": self.kind}
        )
        atomic_write(path, lambda tmp: tmp.write_text(text))

    @classmethod
    def load(cls, path: Path, dimension: int) -> MilvusIndex:
        spec = json.loads(Path(path).read_text())
        if int(spec["dimension"]) != dimension:
            raise ValueError(f"{path} holds {spec['dimension']}-d vectors, expected {dimension}")
        return cls(dimension, spec["uri"], spec["collection"], spec.get("kind", "auto"))


_NO_FIELDS: dict[str, Any] = {"relpath": "", "ext": "", "mtime": 0.0, "metadata": {}}


class MilvusStore:
    """The "milvus" store: an index's vectors in one Milvus collection (named by the index instance), kept in step
    with the SQLite store (see the module)."""

    retypes = False  # a collection's index is built when it is made: another type is another index (--rebuild)
    filters_inside = True

    def __init__(self, context: StoreContext) -> None:
        spec = context.spec
        self.store, self.dimension = context.store, context.dimension
        self.index = MilvusIndex(
            context.dimension, spec["uri"], spec["collection"], spec.get("index", context.index_type)
        )
        self._count: tuple[int, int] = (-1, 0)  # (store generation, chunks then)
        #: as for FAISS: Lite's FLAT index is exact, so a search hands it every filter as a bitmap too (BM25
        #: searches within it); a server's HNSW is approximate, so a wide filter is checked on its results instead
        self.approximate = self.index.kind != "flat"

    @classmethod
    def settings(cls, options: Mapping[str, Any], index_type: str, instance: str) -> dict[str, Any]:
        """Where the collection goes (options["uri"]: a Lite file, or a server's URI) and which index it gets."""
        unknown = set(options) - {"uri"}
        if unknown:
            raise InvalidArgument(f"the milvus store takes a uri, not {', '.join(sorted(unknown))}")
        if not options.get("uri"):
            raise InvalidArgument(
                "--vector-store milvus needs --milvus-uri (a Milvus Lite file *.db, or http://host:19530)"
            )
        uri = normalize_uri(str(options["uri"]))
        # one collection per index (a rebuild is another index): many can share a server
        kind = index_kind(index_type, uri, serves_lite(uri))  # a Lite file answers without connecting
        return {"kind": "milvus", "uri": uri, "collection": f"searchbert_{instance}", "index": kind}

    def describe(self) -> str:
        where = "Milvus Lite file" if is_lite(self.index.uri) else "Milvus server"
        return f"{where} {self.index.uri}, collection {self.index.collection} ({self.index.kind})"

    def create(self) -> None:
        self.index.create()

    def drop(self) -> None:
        self.index.drop()

    def close(self) -> None:
        self.index.close()

    # -- writing ---------------------------------------------------------------------------------------------------

    def written(self, chunk_ids: Sequence[int]) -> None:
        """Copy these chunks (vector and filter fields, as the store holds them now, committed or not) to Milvus,
        and record the write's timestamp in the store for readers."""
        self._upsert(self.store.filter_fields(list(chunk_ids)))

    def _upsert(self, rows: Any) -> None:
        import numpy as np

        batch: list[tuple[int, bytes, str, str, float, str]] = []
        for row in [*rows, None]:
            if row is not None:
                batch.append(row)
            if batch and (row is None or len(batch) >= UPSERT_ROWS):
                ids = np.asarray([r[0] for r in batch], dtype=np.int64)
                vectors = np.frombuffer(b"".join(r[1] for r in batch), dtype=np.float32).reshape(len(batch), -1)
                fields = [
                    {"relpath": r[2], "ext": r[3], "mtime": float(r[4]), "metadata": json.loads(r[5])} for r in batch
                ]
                self._note_write(self.index.add(ids, vectors, fields))
                batch = []

    def save(self, final: bool = True, rebuild: bool = False) -> None:
        """Delete from Milvus what SQLite removed since the last sync (after SQLite's commit: see the module);
        rebuild: a collection dropped by hand comes back, and holds exactly SQLite's chunks."""
        if rebuild:
            self.create()
            self.reconcile()
        synced = int(self.store.get_meta("milvus_synced", "-1"))
        generation = self.store.generation
        if synced == generation:
            return
        gone = self.store.removed_since(synced)
        if gone is None:  # the log was cut: compare the two sides instead
            self.reconcile()
        elif len(gone):
            self.index.remove(gone)
            self._note_write(_last_write(self.index.collection))
        with self.store.transaction():
            self.store.set_meta("milvus_synced", str(generation))
        self.store.forget_removed(generation)

    def reconcile(self) -> tuple[int, int]:
        """Make Milvus hold exactly SQLite's chunks: orphan vectors deleted, missing ones upserted. Returns (deleted,
        upserted)."""
        import numpy as np

        held, stored = self.index.ids(), self.store.chunk_ids()
        orphans, missing = np.setdiff1d(held, stored), np.setdiff1d(stored, held)
        self.index.remove(orphans)
        self.written(missing.tolist())
        return len(orphans), len(missing)

    def _note_write(self, ts: int) -> None:
        """Keep the timestamp of this write where readers in other processes find it (see _read_from)."""
        if ts:
            self.store.set_meta("milvus_ts", str(ts))

    # -- reading ---------------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Nothing to catch up with: Milvus is asked at each search, as of searchbert's last write."""

    def __len__(self) -> int:
        """SQLite's count of chunks (what searches can return), counted once per commit: every search asks."""
        generation = self.store.generation
        if self._count[0] != generation:
            self._count = (generation, int(self.store.counts()["embedded"]))
        return self._count[1]

    def ids(self) -> np.ndarray:
        self._read_from()
        return self.index.ids()

    def vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        self._read_from()
        return self.index.vectors(ids)

    def _read_from(self) -> None:
        """Searches read at least up to searchbert's last write, whichever process made it (kept in SQLite); Lite
        applies each write before it answers."""
        if not is_lite(self.index.uri):
            self.index.guarantee = int(self.store.get_meta("milvus_ts", "0"))

    def nearest(
        self, queries: np.ndarray, k: int, allowed: Selection | None = None, expression: Expression | None = None
    ) -> list[list[tuple[int, float]]]:
        """The k nearest chunks per query, the filters run inside Milvus as an expression. What the expression
        cannot say exactly is checked here against `allowed` (SQLite's bitmap) when there is one, else by the search
        on what comes back; a filter Milvus found too few for is searched exactly over SQLite's vectors."""
        import numpy as np

        from ..vectors import rescore

        self._read_from()
        limit = min(k, MAX_LIMIT)
        scores, ids = self.index.search(queries, limit, None, to_expression(expression) if expression else "")
        out = []
        for query, score_row, id_row in zip(queries, scores, ids):
            pairs = [(int(i), float(s)) for i, s in zip(id_row, score_row) if i >= 0]
            if allowed is not None:
                inside = allowed.contains(np.asarray([i for i, _ in pairs], dtype=np.int64))
                pairs = [p for p, keep in zip(pairs, inside) if keep]
                if len(pairs) < min(limit, len(allowed)) and len(allowed) <= EXACT_FALLBACK_MAX:
                    exact = lambda some: self.store.vectors_of(some, self.dimension)  # noqa: E731
                    pairs = rescore(query[None, :], np.flatnonzero(allowed.bits)[None, :], exact, limit)[0]
            out.append(pairs)
        return out


def _last_write(collection: str) -> int:
    """The timestamp Milvus gave this process's last write to the collection (pymilvus keeps it for its "Session"
    consistency), or 0."""
    try:
        from pymilvus.client.cache import GlobalCache

        cached = GlobalCache.collection_ts
        stamps = [ts for key, ts in _entries(cached) if collection in key]
        return max(stamps, default=0)
    except Exception:  # a pymilvus without that cache: readers then use Milvus's default consistency
        return 0


def _entries(cache: Any) -> list[tuple[Any, int]]:
    data = getattr(cache, "_cache", None) or getattr(cache, "_data", None) or {}
    return [(key, int(value)) for key, value in dict(data).items() if isinstance(value, int)]


# -- filters as Milvus expressions ------------------------------------------------------------------------------------


def to_expression(expression: Expression | Filters) -> str:
    """The Milvus translation of a filter expression: exactly what SQLite selects where Milvus can say it, and a
    wider condition where it cannot (a glob with [classes], a literal % or _), which the search then narrows. Text is
    written as itself: Milvus reads no \\u escapes, so a JSON-escaped "café" would be refused."""
    parts = []
    for c in compile_filters(expression).conditions:
        if isinstance(c, ExtIn):
            parts.append(f"ext in [{', '.join(_text(e) for e in c.exts)}]")
        elif isinstance(c, ModifiedSince):
            parts.append(f"mtime >= {c.time!r}")
        elif isinstance(c, PathGlob):
            likes = [_like(p) for p in c.patterns]
            if all(like is not None for like in likes):
                parts.append("(" + " or ".join(f"relpath like {_text(like)}" for like in likes) + ")")  # type: ignore[arg-type]
        elif isinstance(c, MetadataIs):
            field = f"metadata[{_text(c.key)}]"
            # null (Milvus's JSON tests differ from SQLite's there): left to SQLite, which the search checks with
            tests = ["true" if v is None else f"{field} == {_literal(v)}" for v in c.values]
            parts.append("(" + " or ".join(tests or ["false"]) + ")")
    return " and ".join(parts)


def _text(value: str) -> str:
    """A string literal for a Milvus expression: double-quoted, with only the quote and backslash escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return _text(value)
    return json.dumps(value)  # numbers and booleans as JSON writes them


def _like(pattern: str) -> str | None:
    """An fnmatch glob (`*` crossing folders, as Filters match) as a LIKE pattern, or None if LIKE cannot say it."""
    if any(c in pattern for c in "[]%_\\"):
        return None
    return pattern.replace("*", "%").replace("?", "_")
