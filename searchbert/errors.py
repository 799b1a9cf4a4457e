"""One exception hierarchy: every failure searchbert reports is a SearchbertError."""

from __future__ import annotations


class SearchbertError(Exception):
    """Base class for every error searchbert raises on purpose."""

    #: process exit code the CLI uses: 2 for a usage error, 1 for a failure
    exit_code = 1


class InvalidArgument(SearchbertError, ValueError):
    """A caller passed a value that can never work (empty query, k <= 0, ...)."""

    exit_code = 2


class IndexNotFound(SearchbertError):
    """No index exists at the given location."""


class IndexExists(SearchbertError):
    """An index already exists where a new one was to be created."""


class IndexCorrupt(SearchbertError):
    """The index on disk cannot be read."""


class IncompatibleIndex(SearchbertError):
    """The index was built with another model or chunk settings, or a newer format."""


class ModelNotAvailable(SearchbertError):
    """A model id or path cannot be loaded (offline, missing, or not a model)."""


class NoDocuments(SearchbertError):
    """A path held nothing that could be indexed."""


class DocumentError(SearchbertError):
    """One document could not be read; indexing reports it and goes on."""


class DatasetError(SearchbertError):
    """An evaluation collection is missing a file or holds a malformed line."""


class IndexReplaced(SearchbertError):
    """The index was rebuilt or replaced by another process while a write was under way: nothing of it was stored."""


class IndexLocked(SearchbertError):
    """Another process is writing to the index and did not finish in time."""


class StorageError(SearchbertError):
    """The index's folder or files cannot be read or written (permissions, a full disk, a broken file system)."""


class MissingExtra(SearchbertError):
    """An optional feature was asked for whose packages are not installed (the error names the extra)."""


class EmbeddingFailed(SearchbertError):
    """Chunks could not be embedded (on a Ray cluster: after the retries); what was committed before is kept."""


class VectorStoreError(SearchbertError):
    """A vector store cannot be reached or refused a request (Milvus), or none by that name is registered."""


def storage_error(exc: BaseException, path: object) -> StorageError:
    """A StorageError that says what went wrong with `path` in a person's words, and what to do."""
    import errno

    text = str(exc)
    number = getattr(exc, "errno", None)
    if number in (errno.EACCES, errno.EPERM, errno.EROFS) or "readonly" in text or "Permission denied" in text:
        return StorageError(
            f"searchbert cannot write to {path}: permission denied. Check the folder's owner and permissions, "
            "or pass --index to put the index somewhere writable"
        )
    if number in (errno.ENOSPC, errno.EDQUOT) or "disk is full" in text or "No space left" in text:
        return StorageError(
            f"the disk is full while writing {path}: free some space and run again "
            "(everything committed before this batch is kept)"
        )
    return StorageError(f"cannot use the index files at {path}: {text}")
