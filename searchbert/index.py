"""The Index: one folder holding manifest.json, index.db (SQLite) and vectors.faiss; add, remove and search."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .ann import resolve_type
from .bm25 import BM25Retriever
from .chunking import ChunkSettings
from .encoders import Encoder
from .errors import (
    IncompatibleIndex,
    IndexExists,
    IndexNotFound,
    InvalidArgument,
    SearchbertError,
    storage_error,
)
from .indexing import COMMIT_CHUNKS, Writer, add_documents, add_files
from .live import VECTORS, VECTORS_STATE, LiveVectors, save_vectors, standing
from .loaders import MAX_FILE_BYTES, Discovery, discover, existing_roots
from .locate import DEFAULT_INDEX, MANIFEST, locate_index  # noqa: F401 (imported from here too)
from .locking import WriteLock
from .manifest import Manifest, check_compatible, now_iso
from .records import Document, Fusion, Hit, IndexReport, SearchOptions
from .store import Store

if TYPE_CHECKING:
    from .embedding import Embedder
    from .filtering import FilterCache
    from .milvus import MilvusVectors
    from .rerank import Reranker
    from .search import Retrievers

log = logging.getLogger("searchbert")

DATABASE, LEXICAL = "index.db", "bm25"
#: below this many chunks a reader whose saved BM25 index is behind the store rebuilds it in memory (seconds);
#: above, it keeps the saved one until the writer saves the next (new chunks are found by the dense side till then)
BM25_REBUILD_MAX = 200_000
#: a document whose text is larger is skipped unless asked for: one 10 MB log takes minutes to embed on a laptop,
#: and a folder of notes should not wait for it
MAX_DOC_BYTES = 2_000_000
# the lock file is never deleted: a writer waiting on it would then hold a lock on a file nobody else sees
_OWN_FILES = (MANIFEST, DATABASE, DATABASE + "-wal", DATABASE + "-shm", VECTORS, VECTORS_STATE)


class Index:
    """A searchable collection of documents, stored in one folder."""

    def __init__(
        self, path: Path, manifest: Manifest, encoder: Encoder | None = None, *, lock: WriteLock | None = None
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.lock = lock or WriteLock(path)
        self.store = Store(path / DATABASE)
        self._encoder = encoder
        self._vectors: LiveVectors | None = None
        self._filter_cache: FilterCache | None = None  # made with the first Retrievers
        self._lexical: BM25Retriever[int] | None = None
        self._lexical_generation = -1
        self.settings_changed = False
        self._external: MilvusVectors | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        model: str | None = None,
        *,
        encoder: Encoder | None = None,
        chunk_size: int | None = None,
        overlap: int | None = None,
        strategy: str = "chunk",
        title_prefix: bool = True,
        rebuild: bool = False,
        backend: str = "auto",
        index_type: str = "auto",
        lock: WriteLock | None = None,
        lock_timeout: float | None = None,
        bm25: dict[str, float] | None = None,
        vector_store: str = "faiss",
        milvus_uri: str | None = None,
    ) -> Index:
        """Make a new, empty index at path (rebuild=True replaces one that is there).

        backend runs the model: torch (sentence-transformers), onnx or openvino (the same vectors, no torch), or
        onnx-int8 (int8 document vectors: faster, slightly different, recorded in the index; queries stay fp32).
        auto: onnx-int8 for the bundled model (measured within 0.5 nDCG@10 of fp32), onnx for other models.

        vector_store "milvus" keeps the vectors in Milvus at `milvus_uri` (a Milvus Lite *.db file, or a server's
        http(s):// URI, its token from MILVUS_TOKEN) instead of a FAISS file in the folder; see milvus.py.
        """
        path = Path(path)
        external = _vector_store(vector_store, milvus_uri, index_type)
        if encoder is None:
            from .onnx_encoder import make_encoder

            encoder = make_encoder(model, backend)
        enc = encoder
        chunking = ChunkSettings.for_model(
            enc.max_tokens, chunk_size, overlap, strategy=strategy, title_prefix=title_prefix
        )
        resolve_type(index_type, 0)  # reject an unknown type before anything is written
        make_folder(path)
        lock = lock or WriteLock(path)
        with lock.held(lock_timeout):  # a second creator waits, then finds this index and refuses to replace it
            if (path / MANIFEST).exists():
                if not rebuild:
                    raise IndexExists(f"an index already exists at {path}: open it, or pass --rebuild to start over")
                _drop_external(path)
                wipe(path)
            return cls._new(path, enc, chunking, index_type, lock, _lexical_settings(bm25), external)

    @classmethod
    def _new(
        cls,
        path: Path,
        enc: Encoder,
        chunking: ChunkSettings,
        index_type: str,
        lock: WriteLock,
        lexical: dict[str, float],
        external: dict[str, Any] | None = None,
    ) -> Index:
        instance = uuid.uuid4().hex
        if external:  # one collection per index (a rebuild is another index): many can share a server
            external = {**external, "collection": f"searchbert_{instance}"}
        manifest = Manifest(
            model=enc.fingerprint(),
            vector_index={"type": index_type},
            lexical=lexical,
            chunking=chunking,
            searchbert_version=__version__,
            created=now_iso(),
            updated=now_iso(),
            instance=instance,
            vector_store=external or {},
        )
        index = cls(path, manifest, enc, lock=lock)
        index.store.create_schema()
        if index.external_vectors is not None:
            index.external_vectors.create()
        index.save_vectors()
        # the manifest goes last: a folder without one is not an index yet, whatever else is in it
        manifest.save(path / MANIFEST)
        return index

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        encoder: Encoder | None = None,
        backend: str | None = None,
        lock: WriteLock | None = None,
    ) -> Index:
        """Open an existing index; the encoder, if given, must be the one it was built with.

        backend (without encoder) runs the index's model on that runtime, which must give the index's vectors:
        torch, onnx and openvino are interchangeable; onnx-int8 only goes with an index built with it.
        """
        path = Path(path)
        if not (path / MANIFEST).exists():
            raise IndexNotFound(f"no searchbert index at {path}: create one with `searchbert index FOLDER`")
        manifest = Manifest.load(path / MANIFEST)
        if encoder is None and backend not in (None, "auto"):
            built_int8 = manifest.model.get("quantization") == "int8"
            if (backend == "onnx-int8") != built_int8:
                raise IncompatibleIndex(
                    f"{path} holds {'int8' if built_int8 else 'full-precision'} vectors, not {backend} ones: "
                    "leave out --backend, or pass --rebuild to start the index over"
                )
            from .onnx_encoder import make_encoder

            encoder = make_encoder(manifest.model_id, backend)
        if encoder is not None:
            check_compatible(manifest, encoder.fingerprint(), None)
        return cls(path, manifest, encoder, lock=lock)

    def close(self) -> None:
        if self._external is not None:
            self._external.close()
            self._external = None
        self.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def loaded_encoder(self) -> Encoder | None:
        """The encoder if this index has loaded (or was given) one, else None: asking never loads a model."""
        return self._encoder

    @property
    def encoder(self) -> Encoder:
        """The index's own model, loaded on first use."""
        if self._encoder is None:
            if self.manifest.model.get("pooling") == "function":
                from .errors import ModelNotAvailable

                raise ModelNotAvailable(
                    f"{self.path} was built with your embedding function {self.manifest.model_id!r}: open it with "
                    "Index.open(path, encoder=FunctionEncoder(...)) (or search it with mode='bm25')"
                )
            from .onnx_encoder import encoder_for

            enc = encoder_for(self.manifest.model)
            check_compatible(self.manifest, enc.fingerprint(), None)  # the same weights, not just the same name
            self._encoder = enc
        return self._encoder

    # -- what searches read ----------------------------------------------------------------------------------------

    @property
    def external_vectors(self) -> MilvusVectors | None:
        """The Milvus collection holding this index's vectors, or None when they are in the FAISS file."""
        if self._external is None and self.manifest.vector_store.get("kind") == "milvus":
            from .milvus import MilvusVectors

            spec = self.manifest.vector_store
            kind = self.manifest.vector_index.get("type", "auto")
            self._external = MilvusVectors(spec["uri"], spec["collection"], self.manifest.dimension, self.store, kind)
        return self._external

    @property
    def vectors(self) -> LiveVectors | MilvusVectors:
        """The vectors as of now: the saved FAISS file plus what was committed since (caught up on each access),
        or the Milvus collection."""
        if self.external_vectors is not None:
            return self.external_vectors
        if self._vectors is None:
            self._vectors = LiveVectors(self.path, self.store, self.manifest.dimension)
        else:
            self._vectors.refresh()
        return self._vectors

    @property
    def lexical(self) -> BM25Retriever[int]:
        """The BM25 index over the chunks: the saved one if it is as new as SQLite, else rebuilt from SQLite."""
        if self._lexical is None or self._lexical_generation != self.store.generation:
            self._load_lexical()
        return self._lexical  # type: ignore[return-value]

    def _load_lexical(self) -> None:
        generation = self.store.generation
        try:
            retriever, state = BM25Retriever.load(self.path / LEXICAL)
            saved = int(state.get("generation", -1))
        except (OSError, ValueError):
            retriever, saved = None, -1
        if retriever is not None and standing(saved, self.store) == "current":
            self._lexical, self._lexical_generation = retriever, generation
            return
        chunks = self.store.counts()["chunks"]
        if retriever is not None and chunks > BM25_REBUILD_MAX:
            # a long write is under way: rebuilding here would cost minutes per commit; chunks removed since are
            # dropped from its results by search, new ones wait for the writer's save
            self._lexical, self._lexical_generation = retriever, generation
        else:
            if retriever is None and generation > 0 and chunks:
                log.warning(
                    "the BM25 index of %s is missing or unreadable: rebuilt in memory; "
                    "run `searchbert status --repair` to save it",
                    self.path,
                )
            self._lexical, self._lexical_generation = self._build_lexical(), generation

    def refresh(self) -> None:
        """Catch up with what other processes committed since the last search (one read when nothing did)."""
        if self._vectors is not None:
            self._vectors.refresh()

    def _build_lexical(self) -> BM25Retriever[int]:
        prefix = self.manifest.chunking.title_prefix
        rows = self.store.execute(
            "SELECT c.id, d.title, c.text FROM chunks c JOIN documents d ON d.id = c.document_id ORDER BY c.id"
        )  # a cursor: the texts stream through the tokenizer, never all held at once
        texts = ((i, f"{title}\n{text}" if prefix else text) for i, title, text in rows)
        return BM25Retriever.from_rows(texts, k1=self.manifest.lexical["k1"], b=self.manifest.lexical["b"])

    @property
    def fusion(self) -> Fusion:
        """How hybrid search fuses here unless a search says otherwise (set_fusion; else searchbert's default)."""
        from .search import DEFAULT_FUSION

        return Fusion(**self.manifest.fusion) if self.manifest.fusion else DEFAULT_FUSION

    def set_fusion(self, fusion: Fusion | None) -> None:
        """Make `fusion` this index's default (None: searchbert's own); nothing is rebuilt."""
        wanted = fusion.to_dict() if fusion is not None else {}
        if wanted == self.manifest.fusion:
            return
        with self.writing():
            self.manifest = replace(self.manifest, fusion=wanted, updated=now_iso())
            self.manifest.save(self.path / MANIFEST)

    def set_lexical(self, k1: float | None = None, b: float | None = None) -> None:
        """Change BM25's k1 and b: the BM25 index is rebuilt from SQLite and saved (nothing is embedded)."""
        wanted = _lexical_settings({k: v for k, v in (("k1", k1), ("b", b)) if v is not None}, self.manifest.lexical)
        if wanted == self.manifest.lexical:
            return
        with self.writing():
            self.manifest = replace(self.manifest, lexical=wanted, updated=now_iso())
            self.save_lexical()
            self.manifest.save(self.path / MANIFEST)

    def save_vectors(self, final: bool = True, rebuild: bool = False) -> None:
        """Bring the saved FAISS file up to the store (see live.save_vectors); with Milvus, delete there what SQLite
        removed (rebuild: make the collection hold exactly SQLite's chunks)."""
        external = self.external_vectors
        if external is not None:
            if rebuild:
                external.create()  # a collection dropped by hand comes back, filled from SQLite
                external.reconcile()
            external.sync_removed()
            return
        save_vectors(
            self.path,
            self.store,
            self.manifest.dimension,
            self.manifest.vector_index.get("type", "auto"),
            final=final,
            rebuild=rebuild or (final and self.settings_changed),
        )

    def save_lexical(self) -> None:
        """Rebuild the BM25 index from SQLite and save it with the generation it holds."""
        generation = self.store.generation
        self._lexical, self._lexical_generation = self._build_lexical(), generation
        self._lexical.save(self.path / LEXICAL, {"generation": generation})

    # -- writing ---------------------------------------------------------------------------------------------------

    @contextmanager
    def writing(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the index's write lock: one writer at a time; readers are never blocked."""
        with self.lock.held(timeout):
            for stale in self.path.glob(f".{VECTORS}.*.tmp"):  # left by a writer that was killed mid-save
                stale.unlink(missing_ok=True)
            generation = self.store.generation
            yield
            missing = self.external_vectors is None and not (self.path / VECTORS).exists()
            if self.store.generation != generation or self.settings_changed or missing:
                self.save_vectors()
                self.save_lexical()  # bm25s cannot update in place; rebuilding from SQLite takes seconds
                self.manifest = replace(self.manifest, updated=now_iso())
                self.manifest.save(self.path / MANIFEST)

    def add(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        progress: bool = False,
        commit_chunks: int = COMMIT_CHUNKS,
        lock_timeout: float | None = None,
        found: Discovery | None = None,
        max_doc_size: int = MAX_DOC_BYTES,
        ray: str | None = None,
        workers: int | None = None,
    ) -> IndexReport:
        """Index files and folders: new and changed files are embedded, unchanged ones skipped, deleted ones dropped.

        Work is committed every `commit_chunks` chunks: a crash or kill loses at most the batch in flight.
        `found` is the discovery of these paths when the caller has already walked them. A file whose text is
        larger than `max_doc_size` bytes is skipped (0: no limit). `ray` (local, auto or a cluster's address)
        embeds on a Ray cluster, with `workers` encoder actors (default: one per CPU, or per GPU, of the cluster).
        """
        roots = existing_roots(paths)
        if found is None:
            found = discover(roots, include, exclude, max_file_bytes=MAX_FILE_BYTES if max_doc_size else None)
        started = time.monotonic()
        with self.writing(lock_timeout), _progress(len(found.files), progress) as bar:
            writer = Writer(self, progress=bar, commit_chunks=commit_chunks, max_doc_bytes=max_doc_size)
            writer.embedder = self._embedder(ray, workers, commit_chunks)
            add_files(writer, found, roots)
        return writer.report(started)

    def add_documents(
        self,
        documents: Iterable[Document],
        *,
        progress: bool = False,
        total: int | None = None,
        ray: str | None = None,
        workers: int | None = None,
    ) -> IndexReport:
        """Index documents given as data; a document is identified by its `path` (any unique id). `ray` and
        `workers` as for add()."""
        started = time.monotonic()
        with self.writing(), _progress(total, progress) as bar:
            writer = Writer(self, progress=bar)
            writer.embedder = self._embedder(ray, workers, writer.commit_chunks)
            add_documents(writer, documents)
        return writer.report(started)

    def _embedder(self, ray: str | None, workers: int | None, batch: int) -> Embedder | None:
        """Where a write's batches are embedded: the local thread (None: made when needed) or Ray actors."""
        if ray is None and workers is None:
            return None
        from .embedding import make_embedder

        return make_embedder(self.encoder, self.manifest.dimension, self.manifest.model_id, ray, workers, batch)

    def get(self, ids: Iterable[str], *, start_line: int | None = None, end_line: int | None = None) -> list[Document]:
        """The stored documents with these ids (a record's id or a file's path), whole text and metadata included, in
        the order asked; unknown ids are left out. start_line / end_line (1-based, inclusive) cut each text to those
        lines, as hits number them."""
        if isinstance(ids, str):
            raise InvalidArgument("get takes a list of ids")
        docs = self.store.records([str(i) for i in ids])
        if start_line is None and end_line is None:
            return docs
        first, last = (start_line or 1) - 1, end_line
        if first < 0 or (last is not None and last < first + 1):
            raise InvalidArgument(f"no such line range: {start_line}-{end_line}")
        # lines end at "\n" only, as chunking counts them
        return [replace(d, text="".join(_lines(d.text)[first:last])) for d in docs]

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents by their exact ids (no path resolution); unknown ids are no error. Returns how many went."""
        with self.writing():
            found = [d.id for d in (self.store.document(str(i)) for i in ids) if d is not None]
            writer = Writer(self)
            writer.remove(found)
        return writer.counts["removed"]

    def remove(self, paths: Iterable[str | os.PathLike[str]]) -> int:
        """Drop documents by id or path (a record, a file, or everything under a folder); returns how many went."""
        with self.writing():
            writer = Writer(self)
            ids: set[int] = set()
            for p in paths:
                record = self.store.document(str(p))  # a record's id (or a file's exact path)
                if record is not None:
                    ids.add(record.id)
                else:
                    ids.update(d.id for d in self.store.documents_under(str(Path(p).expanduser().resolve())))
            writer.remove(sorted(ids))
        return writer.counts["removed"]

    # -- reading ---------------------------------------------------------------------------------------------------

    def count(self) -> dict[str, int]:
        """Documents and chunks in the index."""
        return self.store.counts()

    def search(
        self, query: str, k: int | None = None, *, options: SearchOptions | None = None, **fields: Any
    ) -> list[Hit]:
        """The k best documents for query (their best chunk each), or the k best chunks with chunks=True.

        `options` (a SearchOptions) or its fields as keywords: mode ("dense", "bm25", "hybrid"), chunks, rerank (a
        Reranker, a cross-encoder id or path, or True), candidates, filters, min_score.
        """
        return self.search_many([query], k, options=options, **fields)[0]

    def search_many(
        self, queries: Sequence[str], k: int | None = None, *, options: SearchOptions | None = None, **fields: Any
    ) -> list[list[Hit]]:
        """search() for many queries at once (embedded in one batch)."""
        from .search import search

        if isinstance(queries, str):
            raise InvalidArgument("search_many takes a list of queries")
        if k is not None:
            fields["k"] = k
        opts = replace(options or SearchOptions(), **fields)
        if any(not q or not q.strip() for q in queries):
            raise InvalidArgument("the query is empty: say what to search for")
        if not queries:
            return []
        return search(self.retrievers(), list(queries), opts, reranker=_reranker(opts.rerank))

    def retrievers(self) -> Retrievers:
        """What a search reads of this index (see search.Retrievers)."""
        from .filtering import FilterCache
        from .search import Retrievers

        if self._filter_cache is None:
            self._filter_cache = FilterCache()
        return Retrievers(
            store=self.store,
            vectors=lambda: self.vectors,
            lexical=lambda: self.lexical,
            encoder=lambda: self.encoder,
            dimension=self.manifest.dimension,
            model_id=self.manifest.model_id,
            filter_cache=self._filter_cache,
            fusion=self.fusion,
        )

    def __repr__(self) -> str:
        return f"Index({str(self.path)!r}, model={self.manifest.model_id!r})"


def _reranker(rerank: Reranker | str | bool | None) -> Reranker | None:
    if rerank is None or rerank is False:
        return None
    from .rerank import CrossEncoderReranker

    if rerank is True:
        return CrossEncoderReranker()
    if isinstance(rerank, str):
        return CrossEncoderReranker(rerank)
    return rerank


def _lines(text: str) -> list[str]:
    """text's lines, each with its "\n": lines end there only, as chunking numbers them."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _lexical_settings(asked: dict[str, float] | None, base: dict[str, float] | None = None) -> dict[str, float]:
    """BM25's k1 and b: those asked for, else `base`'s, else the defaults; checked."""
    from .bm25 import K1, B

    settings = {"k1": K1, "b": B, **(base or {}), **(asked or {})}
    if settings["k1"] < 0 or not 0 <= settings["b"] <= 1:
        raise InvalidArgument(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={settings['k1']} b={settings['b']}")
    return {"k1": float(settings["k1"]), "b": float(settings["b"])}


def _vector_store(kind: str, uri: str | None, index_type: str = "auto") -> dict[str, Any] | None:
    """The manifest's vector_store for what was asked (None: the FAISS file), checked before anything is written."""
    if kind == "faiss":
        if uri is not None:
            raise InvalidArgument("--milvus-uri goes with --vector-store milvus")
        return None
    if kind != "milvus":
        raise InvalidArgument(f"unknown vector store {kind!r}: use faiss or milvus")
    if not uri:
        raise InvalidArgument("--vector-store milvus needs --milvus-uri (a Milvus Lite file *.db, or http://host:19530)")
    from .milvus import index_kind, normalize_uri

    uri = normalize_uri(uri)
    index_kind(index_type, uri)  # refused before anything is written
    return {"kind": "milvus", "uri": uri}


def _drop_external(path: Path) -> None:
    """Drop the Milvus collection of the index a rebuild replaces (best effort: a server gone keeps it)."""
    try:
        old = Manifest.load(path / MANIFEST)
    except SearchbertError:
        return
    spec = old.vector_store
    if spec.get("kind") == "milvus":
        from .milvus import MilvusIndex

        try:
            kind = old.vector_index.get("type", "auto")
            collection = MilvusIndex(old.dimension, spec["uri"], spec["collection"], kind)
            try:
                collection.drop()
            finally:
                collection.close()
        except SearchbertError as exc:  # the new index must not wait on the old one's server
            log.warning("could not drop the old Milvus collection %s: %s", spec["collection"], exc)


def make_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, path) from exc


def wipe(path: Path) -> None:
    """Delete an index's own files (and nothing else a user may have put in the folder)."""
    import shutil

    for name in _OWN_FILES:
        (path / name).unlink(missing_ok=True)
    shutil.rmtree(path / LEXICAL, ignore_errors=True)


@contextmanager
def _progress(total: int | None, enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="doc", desc="indexing", dynamic_ncols=True, mininterval=0.5) as bar:
        yield bar
