"""The files of an index folder, and how they are made, replaced in place and trusted: manifest.json (mirrored in the
database, where it commits with the data it describes), index.db (SQLite: the source of truth), the vector store's
own files, and bm25/ (the saved BM25 index, rebuilt from SQLite when it does not hold the database's generation)."""

from __future__ import annotations

import logging
from pathlib import Path

from .bm25 import BM25Retriever
from .errors import InvalidArgument, SearchbertError, storage_error
from .locate import MANIFEST
from .manifest import Manifest
from .store import Store
from .stores import StoreContext, kind_of, open_store
from .stores.faiss import VECTORS, VECTORS_STATE

log = logging.getLogger("searchbert")

DATABASE, LEXICAL = "index.db", "bm25"
#: below this many chunks a reader whose saved BM25 index is behind the store rebuilds it in memory (seconds);
#: above, it keeps the saved one until the writer saves the next (new chunks are found by the dense side till then)
BM25_REBUILD_MAX = 200_000
# the lock file is never deleted: a writer waiting on it would then hold a lock on a file nobody else sees
_OWN_FILES = (MANIFEST, DATABASE, DATABASE + "-wal", DATABASE + "-shm", VECTORS, VECTORS_STATE)


def lexical_settings(asked: dict[str, float] | None, base: dict[str, float] | None = None) -> dict[str, float]:
    """BM25's k1 and b: those asked for, else `base`'s, else the defaults; checked."""
    from .bm25 import K1, B

    settings = {"k1": K1, "b": B, **(base or {}), **(asked or {})}
    if settings["k1"] < 0 or not 0 <= settings["b"] <= 1:
        raise InvalidArgument(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={settings['k1']} b={settings['b']}")
    return {"k1": float(settings["k1"]), "b": float(settings["b"])}


def stored_manifest(store: Store) -> Manifest | None:
    """The manifest SQLite keeps (it commits with the data it describes), or None for an index made before."""
    text = store.get_meta("manifest") if store.has_schema() else ""
    return Manifest.parse(text, store.path) if text else None


def previous_manifest(path: Path) -> Manifest | None:
    """The manifest of the index a rebuild replaces (None: there is none, or it cannot be read)."""
    if not (path / MANIFEST).exists():
        return None
    try:
        return Manifest.load(path / MANIFEST)
    except SearchbertError:
        return None


def reusable_store(path: Path) -> Store:
    """The database file already at path, to be reset in place; a file SQLite cannot read is nobody's index and
    is replaced."""
    try:
        store = Store(path / DATABASE)
        store.has_schema()
        return store
    except SearchbertError as exc:
        log.warning("replacing %s, which cannot be read: %s", path / DATABASE, exc)
        wipe(path)
        return Store(path / DATABASE)


def drop_store(path: Path, store: Store, old: Manifest) -> None:
    """Drop what the replaced index kept outside the folder (a Milvus collection); best effort: a server that is gone
    keeps it, and the new index must not wait on it."""
    try:
        context = StoreContext(
            path, store, old.dimension, old.vector_index.get("type", "auto"), old.vector_store, old.instance
        )
        previous = open_store(context)
        try:
            previous.drop()
        finally:
            previous.close()
    except SearchbertError as exc:
        log.warning("could not drop the replaced index's vectors (%s): %s", kind_of(old.vector_store), exc)


def make_folder(path: Path) -> None:
    """The index folder, made if missing (a StorageError that says why if it cannot be)."""
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


def adopt_files(folder: Path, instance: str) -> None:
    """Write `instance` into the state of the saved vector and BM25 files that name none: an index made before
    files named their instance records one, and its files, whose generation still says whether they can be trusted,
    are kept (an approximate vector index would otherwise be trained again)."""
    import json

    from .vectors import atomic_write

    for state in (folder / VECTORS_STATE, folder / LEXICAL / "state.json"):
        try:
            saved = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(saved, dict) and not saved.get("instance"):
            text = json.dumps({**saved, "instance": instance})
            atomic_write(state, lambda tmp, text=text: tmp.write_text(text))


def build_lexical(store: Store, manifest: Manifest) -> BM25Retriever[int]:
    """A BM25 index over every stored chunk (with its document's title, as the model saw it)."""
    from .sections import lexical_line

    settings = manifest.chunking
    # the texts stream through the tokenizer, never all held at once
    texts = ((i, lexical_line(title, section, settings) + text) for i, title, section, text in store.lexical_rows())
    return BM25Retriever.from_rows(texts, k1=manifest.lexical["k1"], b=manifest.lexical["b"])


def save_lexical(folder: Path, store: Store, manifest: Manifest) -> tuple[BM25Retriever[int], int]:
    """Rebuild the BM25 index from SQLite and save it with the instance and generation it holds."""
    instance, generation = store.state()
    retriever = build_lexical(store, manifest)
    retriever.save(folder / LEXICAL, {"instance": instance, "generation": generation})
    return retriever, generation


def load_lexical(folder: Path, store: Store, manifest: Manifest) -> BM25Retriever[int]:
    """The saved BM25 index if it holds the database's generation of this index, else one rebuilt from SQLite (or,
    during a long write, the saved one: see BM25_REBUILD_MAX)."""
    try:
        retriever, state = BM25Retriever.load(folder / LEXICAL)
        found = store.standing(state)
    except (OSError, ValueError, KeyError):
        retriever, found = None, "stale"
    if found == "foreign":  # another index's words: never searched here
        retriever = None
    if retriever is not None and found == "current":
        return retriever
    chunks = store.counts()["chunks"]
    if retriever is not None and chunks > BM25_REBUILD_MAX:
        # a long write is under way: rebuilding here would cost minutes per commit; chunks removed since are
        # dropped from its results by search, new ones wait for the writer's save
        return retriever
    if retriever is None and store.generation > 0 and chunks:
        log.warning(
            "the BM25 index of %s is missing or unreadable: rebuilt in memory; run `searchbert status --repair` to "
            "save it",
            folder,
        )
    return build_lexical(store, manifest)
