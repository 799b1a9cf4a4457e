"""`searchbert index FOLDER...`: make the index if there is none (or refuse settings it was not built with), then
add the folders to it, all under the write lock."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .chunking import ChunkSettings
from .encoders import Encoder, resolve_model
from .errors import IncompatibleIndex, NoDocuments
from .index import MANIFEST, MAX_DOC_BYTES, Index, make_folder
from .indexing import COMMIT_CHUNKS
from .loaders import MAX_FILE_BYTES, discover, existing_roots
from .locking import WriteLock
from .manifest import check_compatible
from .records import Fusion, IndexReport
from .stores import kind_of, store_kind


def index_paths(
    index_path: str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]],
    *,
    model: str | None = None,
    encoder: Encoder | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    chunk_size: int | None = None,
    overlap: int | None = None,
    title_prefix: bool | None = None,
    section_prefix: bool | None = None,
    rebuild: bool = False,
    progress: bool = False,
    commit_chunks: int = COMMIT_CHUNKS,
    lock_timeout: float | None = None,
    backend: str | None = None,
    index_type: str | None = None,
    bm25_k1: float | None = None,
    bm25_b: float | None = None,
    max_doc_size: int = MAX_DOC_BYTES,
    fusion: Fusion | None = None,
    ray: str | None = None,
    workers: int | None = None,
    vector_store: str | None = None,
    store_options: dict[str, Any] | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> IndexReport:
    """Create the index if needed (or refuse to mix models and settings) and add paths to it. `device`: a GPU to
    embed on (see models.gpu_device); `threads`: the most CPU threads the model and tokenizer use (all by default).

    The write lock is taken before the folder is looked at, so two first runs (or a run and a --rebuild) never
    both create an index: the second waits, then opens what the first made.
    """
    index_path = Path(index_path)
    from .embedding import check_workers

    check_workers(ray, workers)  # refused before anything is made
    from .models import limit_threads

    limit_threads(threads)  # before any model or tokenizer starts its threads
    roots = existing_roots(paths)
    # walked once, here, and handed to add()
    found = discover(roots, include, exclude, max_file_bytes=MAX_FILE_BYTES if max_doc_size else None)
    if not found.files and (rebuild or not (index_path / MANIFEST).exists()):
        raise _none_readable(roots, found.errors)
    make_folder(index_path)
    lock = WriteLock(index_path)
    with lock.held(lock_timeout):
        if (index_path / MANIFEST).exists() and not rebuild:
            index = Index.open(index_path, encoder=encoder, backend=backend, lock=lock, device=device)
            _check_settings(index, model, index_type, chunk_size, overlap, title_prefix, section_prefix)
            _check_store(index, vector_store, store_options or {})
            index.set_lexical(bm25_k1, bm25_b)
        else:
            index = Index.create(
                index_path,
                model,
                encoder=encoder,
                chunk_size=chunk_size,
                overlap=overlap,
                title_prefix=True if title_prefix is None else title_prefix,
                section_prefix=bool(section_prefix),
                rebuild=rebuild,
                backend=backend or "auto",
                index_type=index_type or "auto",
                lock=lock,
                bm25={k: v for k, v in (("k1", bm25_k1), ("b", bm25_b)) if v is not None},
                vector_store=vector_store or "faiss",
                store_options=store_options,
                device=device,
            )
        with index:
            if fusion is not None:  # the index's own from now on; nothing to rebuild
                index.set_fusion(fusion)
            report = index.add(
                roots,
                include=include,
                exclude=exclude,
                progress=progress,
                commit_chunks=commit_chunks,
                lock_timeout=lock_timeout,
                found=found,
                max_doc_size=max_doc_size,
                ray=ray,
                workers=workers,
            )
    if report.indexed == 0 and report.removed == 0:
        raise _none_readable(roots, report.errors)
    from .models import prepare_query_encoder

    prepare_query_encoder(index.loaded_encoder)  # export the model once, so `query` runs without torch
    return report


def _check_store(index: Index, vector_store: str | None, options: dict[str, Any]) -> None:
    """Refuse to move an existing index's vectors by a flag: where they are is fixed when the index is made."""
    spec = index.manifest.vector_store
    kind = kind_of(spec)
    if vector_store is not None and vector_store != kind:
        raise IncompatibleIndex(
            f"{index.path} keeps its vectors in {kind}, not {vector_store}: leave out --vector-store, or pass "
            "--rebuild to start the index over there"
        )
    if options:
        asked = store_kind(kind).settings(options, index.manifest.vector_index.get("type", "auto"), index.instance)
        differ = sorted(key for key in options if asked.get(key) != spec.get(key))
        if differ:
            raise IncompatibleIndex(
                f"{index.path} keeps its vectors in {kind} with other settings ({', '.join(differ)}): leave them "
                "out, or pass --rebuild to start over"
            )


def _check_settings(
    index: Index,
    model: str | None,
    index_type: str | None,
    chunk_size: int | None,
    overlap: int | None,
    title_prefix: bool | None,
    section_prefix: bool | None = None,
) -> None:
    """Refuse settings an existing index was not built with (what is not asked for is the index's own); a new
    vector index type is taken up."""
    m = index.manifest
    if model is not None and resolve_model(model)[0] != m.model_id:
        raise IncompatibleIndex(
            f"{index.path} was built with model {m.model_id}, not {model}: "
            "leave out --model, or pass --rebuild to start the index over with the new model"
        )
    if index_type is not None and index_type != m.vector_index.get("type"):
        index.set_index_type(index_type)
    asked = ChunkSettings.for_model(
        m.model["max_tokens"],
        chunk_size or m.chunking.max_tokens,
        m.chunking.overlap if overlap is None else overlap,
        strategy=m.chunking.strategy,
        title_prefix=m.chunking.title_prefix if title_prefix is None else title_prefix,
        section_prefix=m.chunking.section_prefix if section_prefix is None else section_prefix,
    )
    check_compatible(m, m.model, asked)


def _none_readable(roots: list[Path], errors: Sequence[tuple[str, str]]) -> NoDocuments:
    """No document to index, with why the files that were tried could not be read (the first three)."""
    why = "; ".join(f"{path}: {reason}" for path, reason in errors[:3])
    more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
    return NoDocuments(
        f"found no documents searchbert can read in {', '.join(map(str, roots))}" + (f" ({why}{more})" if why else "")
    )
