"""Document text -> Chunks that fit the model, cut where the text itself breaks.

Pure functions over a `TokenSpans` callable (the model's own tokenizer: text -> char span of every word piece),
so chunking is tested without a model and never drifts from what the encoder will see.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import InvalidArgument
from .records import Chunk

TokenSpans = Callable[[str], list[tuple[int, int]]]
#: the same for many texts at once (a fast tokenizer's batch call runs on every core)
ManySpans = Callable[[list[str]], list[list[tuple[int, int]]]]

#: BERT's position limit is 512 tokens; two are [CLS] and [SEP]
BERT_MAX_BODY_TOKENS = 510
_SENTENCE_END = re.compile(r"[.!?:;][\"')\]]*$")
_NEWLINE = re.compile("\n")
_HEADING_START = re.compile(r"\s*(#{1,6}\s|[=\-~^*]{3,}\s*$)", re.MULTILINE)


@dataclass(frozen=True)
class ChunkSettings:
    """How documents are cut: `chunk` (windows of `max_tokens` with `overlap`) or `truncate` (one per document)."""

    max_tokens: int
    overlap: int
    strategy: str = "chunk"
    # measured with `searchbert eval` (chunked): +0.8 nDCG@10 on SciFact, +0.5 on Cranfield, so on by default
    title_prefix: bool = True
    #: the heading path a chunk sits in, after the title (sections.py). Off by default: on the Python docs it made
    #: 30 questions' answers no easier to find, and some a rank or two harder (benchmarks/results/sections.md)
    section_prefix: bool = False

    def __post_init__(self) -> None:
        if self.strategy not in {"chunk", "truncate"}:
            raise InvalidArgument(f"unknown chunk strategy {self.strategy!r}: use 'chunk' or 'truncate'")
        if not 16 <= self.max_tokens <= BERT_MAX_BODY_TOKENS:
            raise InvalidArgument(f"chunk size must be between 16 and {BERT_MAX_BODY_TOKENS} tokens")
        if not 0 <= self.overlap <= self.max_tokens // 2:
            raise InvalidArgument("overlap must be between 0 and half the chunk size")

    @classmethod
    def for_model(
        cls, model_max_tokens: int, max_tokens: int | None = None, overlap: int | None = None, **kwargs: object
    ) -> ChunkSettings:
        """Defaults from the model's limit: the whole limit, and ~15% of it as overlap."""
        size = min(max_tokens or model_max_tokens, model_max_tokens, BERT_MAX_BODY_TOKENS)
        if max_tokens and max_tokens > model_max_tokens:
            raise InvalidArgument(f"chunk size {max_tokens} exceeds the model's limit of {model_max_tokens} tokens")
        return cls(max_tokens=size, overlap=round(size * 0.15) if overlap is None else overlap, **kwargs)  # type: ignore[arg-type]


#: the score of the best cut there is (before a heading)
_BEST_GAP = 5.0


def _gap_score(text: str, prev_end: int, next_start: int) -> float:
    """How good a cut is between two tokens: heading > paragraph > sentence > line > word > inside a word."""
    gap = text[prev_end:next_start]
    if "\n\n" in gap or "\n\r\n" in gap:
        line_end = text.find("\n", next_start)
        next_line = text[next_start : line_end if line_end != -1 else len(text)]
        heading = _HEADING_START.match(next_line) or _HEADING_START.match(text[line_end + 1 : line_end + 80])
        return _BEST_GAP if heading else 4.0
    if _SENTENCE_END.search(text[max(0, prev_end - 3) : prev_end]) and gap:
        return 3.0 if "\n" not in gap else 3.5
    if "\n" in gap:
        return 2.0
    return 1.0 if gap else 0.0


def _best_cut(text: str, spans: list[tuple[int, int]], lo: int, hi: int, prefer_late: bool) -> int:
    """The token index in [lo, hi] where a cut falls best (a cut at i starts the next piece at token i)."""
    best, best_score = hi if prefer_late else lo, -1.0
    positions = range(hi, lo - 1, -1) if prefer_late else range(lo, hi + 1)
    for i in positions:
        prev_end, next_start = spans[i - 1][1], spans[i][0]
        # no gap (inside a word, or against punctuation) is the worst cut: most boundaries, so decided here
        score = _gap_score(text, prev_end, next_start) if prev_end != next_start else 0.0
        if score > best_score:
            best, best_score = i, score
            if score >= _BEST_GAP:  # nothing beats a heading: the first found wins a tie anyway
                break
    return best


class _Lines:
    def __init__(self, text: str) -> None:
        self.text = text
        self.newlines = [m.start() for m in _NEWLINE.finditer(text)]

    def line_of(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def span(self, start: int, end: int) -> tuple[int, int]:
        """1-based first and last line of text[start:end], ignoring whitespace at its edges."""
        piece = self.text[start:end]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece.rstrip())
        if trail <= lead:  # all whitespace
            return self.line_of(start), self.line_of(start)
        return self.line_of(start + lead), self.line_of(start + trail - 1)


def _make(text: str, lines: _Lines, ordinal: int, start: int, end: int) -> Chunk:
    first, last = lines.span(start, end)
    return Chunk(ordinal, text[start:end], start, end, first, last)


def chunk_text(
    text: str,
    token_spans: TokenSpans,
    max_tokens: int,
    overlap: int,
    spans: list[tuple[int, int]] | None = None,
    check: bool = True,
) -> list[Chunk]:
    """Cut text into chunks of at most max_tokens word pieces that together cover every character.

    A chunk's span runs from its first token (the document start for the first chunk) to the next chunk's first
    body token (the document end for the last), so no text between tokens is ever dropped. Overlapping chunks
    start `overlap` tokens or fewer before the previous cut, at the best boundary found there. `spans`: the text's
    token spans if already known; `check=False` leaves the re-read check to the caller (see chunk_many).
    """
    spans = token_spans(text) if spans is None else spans
    if not spans:
        return []
    lines = _Lines(text)
    n = len(spans)
    chunks: list[Chunk] = []
    start_tok = 0
    while True:
        start_char = 0 if start_tok == 0 else spans[start_tok][0]
        limit = start_tok + max_tokens
        if limit >= n:
            chunks.append(_make(text, lines, len(chunks), start_char, len(text)))
            return chunks
        cut = _best_cut(text, spans, start_tok + max(1, max_tokens // 2), limit, prefer_late=True)
        # the tokenizer may split a re-read piece differently from the whole (rare, at odd cuts): check and shrink
        while check and cut > start_tok + 1 and len(token_spans(text[start_char : spans[cut][0]])) > max_tokens:
            cut -= 1
        chunks.append(_make(text, lines, len(chunks), start_char, spans[cut][0]))
        if overlap:
            lo = max(start_tok + 1, cut - overlap)
            start_tok = _best_cut(text, spans, lo, cut, prefer_late=False) if lo < cut else cut
        else:
            start_tok = cut


#: a title prefix never takes more than this many word pieces of a chunk's budget
PREFIX_MAX_TOKENS = 32


def document_prefix(title: str, token_spans: TokenSpans, settings: ChunkSettings) -> str:
    """The context line put before each chunk of a document when embedding ("" unless title_prefix is on)."""
    title = " ".join(title.split())
    if not (settings.title_prefix and title) or settings.strategy != "chunk":
        return ""  # a truncated whole document (the standard protocol) already starts with its title
    spans = token_spans(title)
    if len(spans) > PREFIX_MAX_TOKENS:
        title = title[: spans[PREFIX_MAX_TOKENS - 1][1]]
    return title + "\n"


def chunk_document(text: str, token_spans: TokenSpans, settings: ChunkSettings, prefix: str = "") -> list[Chunk]:
    """Chunks of one document under the settings; the prefix's tokens come out of each chunk's budget."""
    if not text.strip():
        return []
    if settings.strategy == "truncate":
        lines = _Lines(text)
        return [_make(text, lines, 0, 0, len(text))]
    budget = settings.max_tokens - (len(token_spans(prefix)) if prefix else 0)
    return chunk_text(text, token_spans, budget, min(settings.overlap, budget // 2))


def _at_spaces(text: str, chunk: Chunk) -> bool:
    """Whether a chunk starts and ends at whitespace (or the text's start)."""
    return (chunk.start_char == 0 or text[chunk.start_char - 1].isspace()) and text[chunk.end_char - 1].isspace()


def chunk_many(
    texts: list[str],
    prefixes: list[str],
    token_spans: TokenSpans,
    settings: ChunkSettings,
    many: ManySpans | None = None,
    whole_words: bool = False,
) -> list[list[Chunk]]:
    """chunk_document for each text (with its prefix), the same chunks, in two calls of the tokenizer's batch
    `many` when there is one: every text, then every chunk but the last of each (a piece cut from a text may be
    split differently from the whole: a text with a piece over budget is cut again one piece at a time). With
    `whole_words` (the tokenizer keeps a piece cut at whitespace as it was: see encoders.BatchTokenizer), only
    pieces cut elsewhere are checked."""
    if many is None or settings.strategy != "chunk":
        return [chunk_document(t, token_spans, settings, p) for t, p in zip(texts, prefixes, strict=True)]
    cost = {p: len(token_spans(p)) if p else 0 for p in set(prefixes)}
    budgets = [settings.max_tokens - cost[p] for p in prefixes]
    live = [i for i, t in enumerate(texts) if t.strip()]
    out: list[list[Chunk]] = [[] for _ in texts]
    for i, spans in zip(live, many([texts[i] for i in live]), strict=True):
        out[i] = chunk_text(texts[i], token_spans, budgets[i], min(settings.overlap, budgets[i] // 2), spans, False)
    cut = [(i, c.text) for i in live for c in out[i][:-1] if not (whole_words and _at_spaces(texts[i], c))]
    over = {i for (i, _), spans in zip(cut, many([t for _, t in cut]), strict=True) if len(spans) > budgets[i]}
    for i in over:
        out[i] = chunk_document(texts[i], token_spans, settings, prefixes[i])
    return out
