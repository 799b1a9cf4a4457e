"""The frozen records that travel through the pipeline: Document -> Chunk -> Hit."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def relpath(path: str, root: str) -> str:
    """The path relative to the folder it was indexed from (a record's id as it is)."""
    base = root.rstrip("/") + "/"
    return path[len(base) :] if root and path.startswith(base) else path


def extension(path: str) -> str:
    """The file extension, lower case, without the dot."""
    import os

    return os.path.splitext(path)[1].lower().lstrip(".")


@dataclass(frozen=True)
class Document:
    """A readable document: its identity (`path`), its text and what is known of its file."""

    path: str
    text: str
    title: str = ""
    root: str = ""
    size: int = 0
    mtime: float = 0.0
    format: str = "text"
    #: a JSON object (str, int, float, bool, None, lists of those), stored and returned unchanged on every hit
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def relpath(self) -> str:
        """The path relative to the folder it was indexed from (the path itself if none)."""
        return relpath(self.path, self.root)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document that fits the model; spans are 0-based chars and 1-based lines."""

    ordinal: int
    text: str
    start_char: int
    end_char: int
    start_line: int
    end_line: int
    #: the heading path the chunk starts under ("Library reference > json > Basic Usage"; see sections.py)
    section: str = ""


@dataclass(frozen=True)
class Hit:
    """One search result: the best chunk of a document (or one chunk, in chunk mode)."""

    rank: int
    #: the ranking score: it orders the hits of one query and means nothing across queries (see `relevance`)
    score: float
    path: str
    title: str
    text: str
    start_line: int
    end_line: int
    chunk_id: int
    start_char: int = 0
    end_char: int = 0
    #: the heading path of the document the hit sits under ("" where it has none)
    section: str = ""
    #: the score the hit had before reranking (equal to `score` without a reranker)
    retrieval_score: float | None = None
    rerank_score: float | None = None
    # how each retriever saw the hit (for --explain): a rank is None where the retriever did not rank the hit; the
    # dense score (the cosine) is measured for every hit when dense search ran, BM25's where BM25 ranked it
    dense_score: float | None = None
    dense_rank: int | None = None
    bm25_score: float | None = None
    bm25_rank: int | None = None
    fused_score: float | None = None
    #: the hit's BM25 score as a share of the most the query could score (0: none of its words found)
    bm25_fraction: float | None = None
    #: the estimated probability that the hit is relevant, the same scale for every query and mode (see
    #: relevance.py); None where it cannot be estimated (dense search with a model no weights were fitted for)
    relevance: float | None = None
    #: the document's metadata, as it was stored
    metadata: dict[str, Any] = field(default_factory=dict)
    #: False while the chunk waits for its vector (an index being built, or stopped half way): it was found by its
    #: words alone, and hybrid search ranked it by BM25 alone
    embedded: bool = True
    #: with SearchOptions.context = N: the passage from N chunks before this one to N after, each character once
    context: str | None = None
    context_start_line: int | None = None
    context_end_line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The hit as plain JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class Filters:
    """Restrict a search to part of the index. Empty filters match everything.

    `paths`: shell globs matched against a document's path relative to the folder it was indexed from (`*` crosses
    folders, as in fnmatch); `exts`: file extensions without the dot; `since`: modified at or after this Unix time.
    """

    paths: tuple[str, ...] = ()
    exts: tuple[str, ...] = ()
    since: float | None = None
    #: key -> value (equal, type-exact: 3 is not "3") or list of values (any of); keys are ANDed
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a plain string is one pattern, never a sequence of one-letter patterns
        for name in ("paths", "exts"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        for key, value in self.metadata.items():
            if not _plain_or_list(value):
                from .errors import InvalidArgument

                raise InvalidArgument(
                    f"metadata filter {key!r}: {value!r} is not a string, number, boolean or null, or a list of those "
                    "(only equality and 'any of' a list are supported)"
                )

    def __bool__(self) -> bool:
        return bool(self.paths or self.exts or self.since is not None or self.metadata)

    def matches(self, path: str, root: str, mtime: float, metadata: dict[str, Any] | None = None) -> bool:
        """Whether a document passes every filter given (the Python translation of the compiled expression)."""
        from .expression import compile_filters, matches

        return matches(compile_filters(self), relpath(path, root), extension(path), mtime, metadata or {})


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _plain_or_list(value: Any) -> bool:
    """What metadata values may be, stored or filtered on: a JSON scalar, or a list of them."""
    return _plain(value) or (isinstance(value, list) and all(_plain(v) for v in value))


def check_metadata(doc: Document) -> None:
    """A record's metadata must be a JSON object of strings, numbers, booleans, nulls and lists of those."""
    from .errors import InvalidArgument

    if not isinstance(doc.metadata, dict) or not all(isinstance(k, str) for k in doc.metadata):
        raise InvalidArgument(f"metadata of {doc.path!r} must be a dict with string keys")
    for key, value in doc.metadata.items():
        if not _plain_or_list(value):
            raise InvalidArgument(
                f"metadata {key!r} of {doc.path!r} is {type(value).__name__}: use a string, number, boolean, null "
                "or a list of those"
            )


MODES = ("dense", "bm25", "hybrid")
FUSIONS = ("rrf", "convex")
NORMS = ("minmax", "zscore")


@dataclass(frozen=True)
class Fusion:
    """How hybrid search merges the dense and BM25 rankings of one query.

    rrf: each document scores sum(1 / (k + rank)) over the retrievers that found it (Cormack et al., 2009).
    convex: alpha * dense + (1 - alpha) * bm25, each retriever's scores normalised over what it returned for the
    query (`norm`: min-max, or z-score); a document one retriever did not return gets that retriever's lowest.

    `Fusion()` is searchbert's default (convex, equal weights, min-max: the best mean over SciFact and Cranfield, see
    search.DEFAULT_FUSION); every layer (CLI, server, adapters) takes its defaults from here.
    """

    method: str = "convex"
    k: int = 60
    alpha: float = 0.5
    norm: str = "minmax"

    def __post_init__(self) -> None:
        from .errors import InvalidArgument

        if self.method not in FUSIONS:
            raise InvalidArgument(f"unknown fusion {self.method!r}: use one of {', '.join(FUSIONS)}")
        if self.norm not in NORMS:
            raise InvalidArgument(f"unknown normalisation {self.norm!r}: use one of {', '.join(NORMS)}")
        if not 0 <= self.alpha <= 1:
            raise InvalidArgument(f"alpha is the dense side's weight, in [0, 1]: not {self.alpha}")
        if not isinstance(self.k, int) or self.k < 0:
            raise InvalidArgument(f"the RRF constant k must be 0 or more, not {self.k}")

    def describe(self) -> str:
        if self.method == "rrf":
            return f"rrf k={self.k}"
        return f"convex alpha={self.alpha:g} ({self.norm})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchOptions:
    """How to search, in one place for every layer (CLI, API, adapters, evaluation).

    k: how many hits. mode: "hybrid" (both retrievers, fused as `fusion` says), "dense" (the bi-encoder) or "bm25".
    chunks: rank chunks instead
    of documents. rerank: a Reranker, a cross-encoder id or path, or True for the default one; it rescores the best
    `candidates` chunks. filters: search part of the index. min_score: drop hits scoring below it. diverse: pick
    the k hits by maximal marginal relevance among the best `candidates` (mmr_lambda: 1 is relevance alone, 0 is
    novelty alone), so that k hits are not k near-copies.
    """

    k: int = 10
    #: hybrid by default: better than either retriever alone on every collection measured (README, Evaluation)
    mode: str = "hybrid"
    chunks: bool = False
    rerank: Any = None
    candidates: int = 50
    filters: Filters | None = None
    min_score: float | None = None
    #: chunks each side of a hit's own to return with it as `Hit.context` (0: none)
    context: int = 0
    #: how hybrid mode merges its two rankings; None: the index's own (Index.fusion)
    fusion: Fusion | None = None
    diverse: bool = False
    #: LangChain's default lambda_mult
    mmr_lambda: float = 0.5
    #: drop hits whose relevance is under this (0 to 1; see Hit.relevance); none may be left
    min_relevance: float | None = None
    #: the most tokens (the model's word pieces) the hits' texts, or their contexts, may take together: the best
    #: that fit, the last cut where a sentence ends (see budget.py)
    max_tokens: int | None = None
    #: what counts max_tokens: None for the index's own model, else a tokenizer.json, a folder holding one, or a
    #: Hugging Face model id (the LLM the context is for)
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        from .errors import InvalidArgument

        if not isinstance(self.context, int) or self.context < 0:
            raise InvalidArgument(f"context must be 0 or more chunks, got {self.context}")
        if not isinstance(self.k, int) or self.k <= 0:
            raise InvalidArgument(f"k must be a positive number, got {self.k}")
        if self.mode not in MODES:
            raise InvalidArgument(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.candidates <= 0:
            raise InvalidArgument(f"candidates must be a positive number, got {self.candidates}")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise InvalidArgument(f"max_tokens must be a positive number, got {self.max_tokens}")
        if self.min_relevance is not None and not 0 <= self.min_relevance <= 1:
            raise InvalidArgument(f"min_relevance is a probability, in [0, 1]: not {self.min_relevance}")
        if not 0 <= self.mmr_lambda <= 1:
            raise InvalidArgument(f"mmr_lambda weighs relevance against novelty, in [0, 1]: not {self.mmr_lambda}")


@dataclass(frozen=True)
class IndexReport:
    """What one `add` did: counts of documents by fate, and why files were skipped."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks_embedded: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    errors: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0

    @property
    def indexed(self) -> int:
        """Documents now in the index from this run (new, changed or unchanged)."""
        return self.added + self.updated + self.unchanged

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        data = asdict(self)
        data["errors"] = [{"path": p, "error": e} for p, e in self.errors]
        return data
