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


class IndexLocked(SearchbertError):
    """Another process is writing to the index and did not finish in time."""
