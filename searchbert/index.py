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
    IndexReplaced,
    InvalidArgument,
)
from .index_files import (  # noqa: F401 (DATABASE, LEXICAL, make_folder and wipe: imported from here too)
    DATABASE,
    LEXICAL,
    adopt_files,
    drop_store,
    lexical_settings,
    load_lexical,
    make_folder,
    previous_manifest,
    reusable_store,
    save_lexical,
    stored_manifest,
    wipe,
)
from .indexing import COMMIT_CHUNKS, Writer, add_documents, add_files
from .loaders import MAX_FILE_BYTES, Discovery, discover, existing_roots
from .locate import DEFAULT_INDEX, MANIFEST, locate_index  # noqa: F401 (imported from here too)
from .locking import WriteLock
from .manifest import Manifest, check_compatible, now_iso
from .records import Document, Fusion, Hit, IndexReport, SearchOptions
from .store import Store
from .stores import DEFAULT_STORE, StoreContext, VectorStore, kind_of, open_store, store_kind
from .stores.faiss import VECTORS, VECTORS_STATE  # noqa: F401 (imported from here too)

if TYPE_CHECKING:
    from .embedding import Embedder
    from .filtering import FilterCache
    from .relevance import Calibration
    from .rerank import Reranker
    from .search import Retrievers

log = logging.getLogger("searchbert")

#: a document whose text is larger is skipped unless asked for: one 10 MB log takes minutes to embed on a laptop,
#: and a folder of notes should not wait for it
MAX_DOC_BYTES = 2_000_000


class Index:
    """A searchable collection of documents, stored in one folder.

    An Index kept open (a notebook, a service, `watch`, an adapter) checks on each call which index its folder holds
    (one read of SQLite, with the generation): after another process rebuilt it, reads reopen it, and a write that
    was already under way is refused (IndexReplaced) before it stores anything.
    """

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        encoder: Encoder | None = None,
        *,
        lock: WriteLock | None = None,
        store: Store | None = None,
    ) -> None:
        self.path = path
        self.lock = lock or WriteLock(path)
        self.store = store or Store(path / DATABASE)
        self.manifest = stored_manifest(self.store) or manifest
        #: which index this object reads and writes: SQLite's record of it ("" for one made before it was kept)
        self.instance = self.store.instance
        self._encoder = encoder
        self._vector_store: VectorStore | None = None
        self._filter_cache: FilterCache | None = None  # made with the first Retrievers
        self._lexical: BM25Retriever[int] | None = None
        self._lexical_generation = -1
        self.settings_changed = False

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
        section_prefix: bool = False,
        rebuild: bool = False,
        backend: str = "auto",
        index_type: str = "auto",
        lock: WriteLock | None = None,
        lock_timeout: float | None = None,
        bm25: dict[str, float] | None = None,
        vector_store: str = DEFAULT_STORE,
        store_options: dict[str, Any] | None = None,
        device: str | None = None,
    ) -> Index:
        """Make a new, empty index at path (rebuild=True replaces one that is there, in place: processes that have
        it open see the new one on their next call).

        backend runs the model: torch (sentence-transformers), onnx or openvino (the same vectors, no torch), or
        onnx-int8 (int8 document vectors: faster, slightly different, recorded in the index; queries stay fp32).
        auto: onnx-int8 for the bundled model (measured within 0.5 nDCG@10 of fp32), onnx for other models.
        device: a GPU for the model (cuda, cuda:1, mps; auto: one if torch sees it), run by torch in full precision.

        vector_store names the store the vectors go to (see searchbert.stores): "faiss" (a file in the folder, the
        default), "milvus" (store_options {"uri": a Milvus Lite *.db file, or a server's http(s):// URI, its token
        from MILVUS_TOKEN}), or one registered with register_store; `store_options` are the store's own settings.
        """
        path = Path(path)
        instance = uuid.uuid4().hex
        options = dict(store_options or {})
        spec = store_kind(vector_store).settings(options, index_type, instance)  # checked before anything is written
        if encoder is None:
            from .models import make_encoder

            encoder = make_encoder(model, backend, device)
        enc = encoder
        chunking = ChunkSettings.for_model(
            enc.max_tokens, chunk_size, overlap, strategy=strategy, title_prefix=title_prefix,
            section_prefix=section_prefix,
        )  # fmt: skip
        make_folder(path)
        lock = lock or WriteLock(path)
        with lock.held(lock_timeout):  # a second creator waits, then finds this index and refuses to replace it
            if (path / MANIFEST).exists() and not rebuild:
                raise IndexExists(f"an index already exists at {path}: open it, or pass --rebuild to start over")
            manifest = Manifest(
                model=enc.fingerprint(),
                vector_index={"type": index_type},
                lexical=lexical_settings(bm25),
                chunking=chunking,
                searchbert_version=__version__,
                created=now_iso(),
                updated=now_iso(),
                instance=instance,
                vector_store=spec,
            )
            return cls._new(path, enc, manifest, lock)

    @classmethod
    def _new(cls, path: Path, enc: Encoder, manifest: Manifest, lock: WriteLock) -> Index:
        """The new index's manifest and empty tables commit in one transaction, in the database file already there
        if there is one: a rebuild never unlinks a file other processes have open (see Store.reset)."""
        store = reusable_store(path)
        old = stored_manifest(store) or previous_manifest(path)
        store.create_schema()
        store.reset(manifest.instance, manifest.text())
        if old is not None:
            drop_store(path, store, old)
        index = cls(path, manifest, enc, lock=lock, store=store)
        index.vector_store.create()
        index.save_lexical()
        # the manifest file goes last: a folder without one is not an index yet, whatever else is in it
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
        device: str | None = None,
    ) -> Index:
        """Open an existing index; the encoder, if given, must be the one it was built with.

        backend (without encoder) runs the index's model on that runtime, which must give the index's vectors:
        torch, onnx and openvino are interchangeable; onnx-int8 only goes with an index built with it. device (a
        GPU, or auto) embeds with torch on it: an index of full-precision vectors only.
        """
        path = Path(path)
        if not (path / MANIFEST).exists():
            raise IndexNotFound(f"no searchbert index at {path}: create one with `searchbert index FOLDER`")
        store = Store(path / DATABASE)
        try:
            manifest = stored_manifest(store) or Manifest.load(path / MANIFEST)
        except BaseException:
            store.close()
            raise
        if encoder is None and backend not in (None, "auto"):
            built_int8 = manifest.model.get("quantization") == "int8"
            if (backend == "onnx-int8") != built_int8:
                raise IncompatibleIndex(
                    f"{path} holds {'int8' if built_int8 else 'full-precision'} vectors, not {backend} ones: "
                    "leave out --backend, or pass --rebuild to start the index over"
                )
            from .models import make_encoder

            encoder = make_encoder(manifest.model_id, backend, device)
        elif encoder is None and device not in (None, "cpu"):
            encoder = _gpu_encoder(manifest, device)
        if encoder is not None:
            check_compatible(manifest, encoder.fingerprint(), None)
        return cls(path, manifest, encoder, lock=lock, store=store)

    def close(self) -> None:
        self._forget()
        self.store.close()

    def _forget(self) -> None:
        """Drop what was read of the index (its vector store, BM25, filter bitmaps): read again on next use."""
        if self._vector_store is not None:
            self._vector_store.close()
            self._vector_store = None
        self._lexical, self._lexical_generation, self._filter_cache = None, -1, None

    def current(self) -> None:
        """Reopen the index if another process replaced it since this object last looked (one read of SQLite)."""
        instance, _ = self.store.state()
        if instance == self.instance:
            return
        manifest = stored_manifest(self.store)
        if manifest is None or manifest.instance != instance:  # never: reset() writes both in one transaction
            raise IndexReplaced(f"{self.path} is being replaced by another process: try again in a moment")
        log.info("%s was rebuilt by another process: reopened", self.path)
        self._forget()
        self.manifest, self.instance = manifest, instance
        if self._encoder is not None:
            try:
                check_compatible(manifest, self._encoder.fingerprint(), None)
            except IncompatibleIndex:  # rebuilt with another model: that one is loaded when needed
                self._encoder = None

    @contextmanager
    def committing(self) -> Iterator[None]:
        """One SQLite transaction of a write, refused (IndexReplaced, nothing stored) if the index it started on was
        replaced meanwhile: a writer never puts one index's chunks into another."""
        with self.store.transaction():
            if self.store.instance != self.instance:
                raise IndexReplaced(
                    f"{self.path} was rebuilt by another process while this write was under way: nothing of its last "
                    "batch was stored. Run it again"
                )
            yield

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
            from .models import encoder_for

            enc = encoder_for(self.manifest.model)
            check_compatible(self.manifest, enc.fingerprint(), None)  # the same weights, not just the same name
            self._encoder = enc
        return self._encoder

    # -- what searches read ----------------------------------------------------------------------------------------

    @property
    def vector_store(self) -> VectorStore:
        """Where this index's vectors are (see searchbert.stores), opened on first use."""
        if self._vector_store is None:
            m = self.manifest
            context = StoreContext(
                self.path, self.store, m.dimension, m.vector_index.get("type", "auto"), m.vector_store, self.instance
            )
            self._vector_store = open_store(context)
        return self._vector_store

    @property
    def vectors(self) -> VectorStore:
        """The vector store as of SQLite's last commit (caught up on each access; reopened after a rebuild)."""
        self.current()
        return self._caught_up()

    def _caught_up(self) -> VectorStore:
        store = self.vector_store
        store.refresh()
        return store

    @property
    def lexical(self) -> BM25Retriever[int]:
        """The BM25 index over the chunks: the saved one if it is as new as SQLite, else rebuilt from SQLite."""
        if self._lexical is None or self._lexical_generation != self.store.generation:
            self._load_lexical()
        return self._lexical  # type: ignore[return-value]

    def _load_lexical(self) -> None:
        generation = self.store.generation
        self._lexical, self._lexical_generation = load_lexical(self.path, self.store, self.manifest), generation

    def refresh(self) -> None:
        """Catch up with what other processes committed since the last search (one read when nothing did)."""
        self.current()
        if self._vector_store is not None:
            self._vector_store.refresh()

    @property
    def fusion(self) -> Fusion:
        """How hybrid search fuses here unless a search says otherwise (set_fusion; else searchbert's default)."""
        from .search import DEFAULT_FUSION

        return Fusion(**self.manifest.fusion) if self.manifest.fusion else DEFAULT_FUSION

    def set_fusion(self, fusion: Fusion | None) -> None:
        """Make `fusion` this index's default (None: searchbert's own); nothing is rebuilt."""
        self._set_setting("fusion", fusion.to_dict() if fusion is not None else {})

    def _set_setting(self, name: str, wanted: dict[str, Any]) -> None:
        """Record one of the manifest's search settings (nothing to rebuild), under the write lock."""
        if wanted == getattr(self.manifest, name):
            return
        with self.writing():
            self.manifest = replace(self.manifest, **{name: wanted}, updated=now_iso())  # type: ignore[arg-type]
            self._save_manifest()

    def set_lexical(self, k1: float | None = None, b: float | None = None) -> None:
        """Change BM25's k1 and b: the BM25 index is rebuilt from SQLite and saved (nothing is embedded)."""
        wanted = lexical_settings({k: v for k, v in (("k1", k1), ("b", b)) if v is not None}, self.manifest.lexical)
        if wanted == self.manifest.lexical:
            return
        with self.writing():
            self.manifest = replace(self.manifest, lexical=wanted, updated=now_iso())
            self.save_lexical()
            self._save_manifest()

    def set_index_type(self, index_type: str) -> None:
        """Take up another vector index type: the vectors are rebuilt from SQLite at the end of the next write."""
        if not store_kind(kind_of(self.manifest.vector_store)).retypes:
            raise IncompatibleIndex(
                f"{self.path} keeps its vectors in {kind_of(self.manifest.vector_store)} with a "
                f"{self.manifest.vector_index.get('type')} index: pass --rebuild to build another"
            )
        resolve_type(index_type, 0)
        self.manifest = replace(self.manifest, vector_index={"type": index_type})
        self.settings_changed = True  # the store is rebuilt at the end of the run, changes or not
        self._forget()  # the store is opened again with the new type

    def _save_manifest(self) -> None:
        """The manifest in SQLite (where it commits with the data, and readers look) and in manifest.json."""
        self.store.save_manifest(self.manifest.text())
        self.manifest.save(self.path / MANIFEST)

    def save_vectors(self, final: bool = True, rebuild: bool = False) -> None:
        """Bring the vector store up to SQLite (see VectorStore.save); rebuild: from SQLite's vectors, whatever state
        the store is in."""
        self.vector_store.save(final=final, rebuild=rebuild or (final and self.settings_changed))

    def save_lexical(self) -> None:
        """Rebuild the BM25 index from SQLite and save it with the instance and generation it holds."""
        self._lexical, self._lexical_generation = save_lexical(self.path, self.store, self.manifest)

    # -- writing ---------------------------------------------------------------------------------------------------

    @contextmanager
    def writing(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the index's write lock: one writer at a time; readers are never blocked."""
        with self.lock.held(timeout):
            for stale in self.path.glob(f".{VECTORS}.*.tmp"):  # left by a writer that was killed mid-save
                stale.unlink(missing_ok=True)
            self.current()  # rebuilt by another process since this object last looked: write to the new index
            if not self.instance:  # an index made before SQLite recorded which one it is: it does from now on
                self.instance = self.manifest.instance or uuid.uuid4().hex
                self.manifest = replace(self.manifest, instance=self.instance)
                with self.store.transaction():
                    self.store.set_meta("instance", self.instance)
                    adopt_files(self.path, self.instance)  # its saved files are this index's: no rebuild of them
                self._forget()
            generation = self.store.generation
            yield
            self.save_vectors()  # nothing to do when the store is current
            if self.store.generation != generation or self.settings_changed:
                self.save_lexical()  # bm25s cannot update in place; rebuilding from SQLite takes seconds
                self.manifest = replace(self.manifest, updated=now_iso())
                self._save_manifest()

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
        with self.writing(lock_timeout):
            writer = Writer(self, progress=_bars if progress else None, commit_chunks=commit_chunks,
                            max_doc_bytes=max_doc_size)  # fmt: skip
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
        with self.writing():
            writer = Writer(self, progress=_bars if progress else None)
            writer.embedder = self._embedder(ray, workers, writer.commit_chunks)
            add_documents(writer, documents, total)
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
        self.current()
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

    def metadata_keys(self, limit: int = 50) -> list[str]:
        """The metadata keys the documents have (what filters can use), most used first."""
        self.current()
        return self.store.metadata_keys(limit)

    def count(self) -> dict[str, int]:
        """Documents, chunks, and chunks embedded in the index (fewer while a write is embedding: the others are
        found by their words only)."""
        self.current()
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

        self.current()
        if self._filter_cache is None:
            self._filter_cache = FilterCache()
        return Retrievers(
            store=self.store,
            vectors=self._caught_up,  # this search's instance check was made above
            lexical=lambda: self.lexical,
            encoder=lambda: self.encoder,
            dimension=self.manifest.dimension,
            model_id=self.manifest.model_id,
            filter_cache=self._filter_cache,
            fusion=self.fusion,
            calibration=self.calibration,
        )

    @property
    def calibration(self) -> Calibration:
        """The weights that estimate this index's hits' relevance (relevance.for_manifest)."""
        from .relevance import for_manifest

        return for_manifest(self.manifest)

    def set_calibration(self, calibration: Calibration | None) -> None:
        """Estimate relevance here with `calibration` (fitted on this index's judged queries: relevance.calibrate);
        None goes back to the weights shipped for the model. Nothing is rebuilt."""
        self._set_setting("relevance", calibration.to_dict() if calibration is not None else {})

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


def _gpu_encoder(manifest: Manifest, device: str) -> Encoder | None:
    """The index's model by torch on the GPU `device` names (None: no GPU for auto, so the usual runner)."""
    from .models import gpu_device

    gpu = gpu_device(device)
    if gpu is None:
        return None
    if manifest.model.get("quantization") == "int8":
        if device == "auto":
            return None  # int8 vectors are the CPU runner's own: it goes on embedding them
        raise IncompatibleIndex(
            "this index holds int8 vectors (made on the CPU): a GPU gives full-precision ones. Leave out --device, "
            "or pass --rebuild to embed it all on the GPU"
        )
    from .encoders import SentenceTransformerEncoder

    return SentenceTransformerEncoder(manifest.model_id, device=gpu, revision=manifest.model.get("revision"))


def _bars(phase: str, total: int | None, unit: str) -> Any:
    """A progress bar for one pass of a write (see indexing.Progress): its rate, and the time left where the total
    is known (the embedding pass, the long one, counts chunks: the time left is the run's)."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=phase, dynamic_ncols=True, mininterval=0.5, smoothing=0.05)
