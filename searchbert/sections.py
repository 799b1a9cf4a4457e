"""The section a chunk sits in: the heading path of Markdown, reStructuredText and HTML documents.

A passage cut from "json > Basic Usage" says "dumps" without saying json: put in front of the text the model embeds
and BM25 counts (with the title), the heading path gives the chunk the context its document gives a reader, and a
hit can show where in the document it is. HTML reaches here as text with Markdown heading marks (html.py writes
them), so two outlines cover the three formats.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

from .chunking import PREFIX_MAX_TOKENS, ChunkSettings, TokenSpans, document_prefix

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
#: a reST adornment line: one punctuation character repeated
_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}[ \t]*$")
_ROLE = re.compile(r":[\w:+.-]+:`!?([^`<]*?)(?:\s*<[^`]*>)?`")
SEPARATOR = " > "
#: the heading path never takes more of a chunk's budget than this many word pieces (besides the title's)
SECTION_MAX_TOKENS = 32


def _clean(heading: str) -> str:
    """A heading as a reader sees it: roles and inline markup dropped."""
    heading = _ROLE.sub(r"\1", heading)
    return " ".join(heading.replace("`", "").replace("**", "").split())


def _markdown(text: str) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    fence, offset, previous = "", 0, None  # previous: (offset, line) of a paragraph line a setext mark may underline
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        opened = _FENCE.match(bare)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = ""
        elif opened:
            fence, previous = opened.group(1), None
        elif (atx := _ATX.match(bare)) is not None:
            found.append((offset, len(atx.group(1)), _clean(atx.group(2))))
            previous = None
        elif (mark := _SETEXT.match(bare)) is not None and previous is not None:
            found.append((previous[0], 1 if mark.group(1)[0] == "=" else 2, _clean(previous[1])))
            previous = None
        else:
            previous = (offset, bare) if bare.strip() and not bare.startswith(("    ", "\t")) else None
        offset += len(line)
    return found


def _rst(text: str) -> list[tuple[int, int, str]]:
    """Section titles (a line with an adornment under it at least as long, maybe one over it too); levels in the
    order the adornment styles first appear, as reST defines them."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    bare = [line.rstrip("\r\n") for line in lines]
    styles: list[tuple[str, bool]] = []
    found = []
    for i in range(len(bare) - 1):
        title, under = bare[i].strip(), bare[i + 1].strip()
        if not title or _ADORNMENT.match(title) or not _ADORNMENT.match(under) or len(under) < len(title):
            continue
        if bare[i][:1].isspace() and not (i > 0 and _ADORNMENT.match(bare[i - 1].strip())):
            continue  # an indented line is a block's text, unless an overline sets it off
        over = i > 0 and bare[i - 1].strip() == under
        style = (under[0], over)
        if style not in styles:
            styles.append(style)
        found.append((starts[i - 1] if over else starts[i], styles.index(style) + 1, _clean(title)))
    return found


def markup_of(format: str, path: str) -> str:
    """The markup a document is written in, as outline() names it: HTML by its format, text files by suffix."""
    if format == "html":
        return "html"
    if format != "text":
        return ""
    from .loaders import markup_of_name

    return markup_of_name(path)


def outline(text: str, markup: str) -> list[tuple[int, str]]:
    """(offset, heading path) at each heading of a text written in `markup` ("md", "rst" or "html"); [] for any
    other."""
    found = _markdown(text) if markup in ("md", "html") else _rst(text) if markup == "rst" else []
    out, stack = [], []  # stack: (level, heading) of the headings the current one sits under
    for offset, level, heading in found:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading))
        out.append((offset, SEPARATOR.join(h for _, h in stack if h)))
    return out


def section_at(found: Sequence[tuple[int, str]], offset: int) -> str:
    """The heading path in force at `offset` of the text `found` outlines ("" before the first heading)."""
    at = bisect.bisect_right([o for o, _ in found], offset) - 1
    return found[at][1] if at >= 0 else ""


def context_line(title: str, section: str, token_spans: TokenSpans, settings: ChunkSettings) -> str:
    """What goes in front of a chunk's text when it is embedded: the title (see chunking.document_prefix) and,
    with section_prefix on, the heading path under it (a path that starts with the title leaves it out), cut to
    SECTION_MAX_TOKENS word pieces."""
    line = document_prefix(title, token_spans, settings)
    if not (settings.section_prefix and section) or settings.strategy != "chunk":
        return line
    path = beneath(title, section)
    if not path:
        return line
    spans = token_spans(path)
    if len(spans) > SECTION_MAX_TOKENS:
        path = path[: spans[SECTION_MAX_TOKENS - 1][1]]
    return f"{line.rstrip()}{SEPARATOR if line else ''}{path}\n"


class Lines:
    """context_line for the chunks of one run, each (title, section) worked out once."""

    def __init__(self, token_spans: TokenSpans, settings: ChunkSettings) -> None:
        self.token_spans, self.settings = token_spans, settings
        self._seen: dict[tuple[str, str], str] = {}

    def __call__(self, title: str, section: str) -> str:
        key = (title, section)
        if key not in self._seen:
            self._seen[key] = context_line(title, section, self.token_spans, self.settings)
        return self._seen[key]

    def longest(self, title: str, found: Sequence[tuple[int, str]]) -> str:
        """The line of most word pieces a chunk of this document can get: what its chunks' budget must leave."""
        lines = (
            {self(title, section) for section in ["", *(s for _, s in found)]}
            if self.settings.section_prefix
            else {self(title, "")}
        )
        return max(lines, key=lambda line: len(self.token_spans(line)) if line else 0)


def beneath(title: str, section: str) -> str:
    """The heading path without a first heading that is the document's title (the usual top heading)."""
    parts = section.split(SEPARATOR) if section else []
    if parts and parts[0] == _clean(title):  # compared as headings are kept: markup dropped
        parts = parts[1:]
    return SEPARATOR.join(parts)


def lexical_line(title: str, section: str, settings: ChunkSettings) -> str:
    """The same for BM25 (which has no length limit): the title and the heading path as stored."""
    if not settings.title_prefix:
        return ""
    path = beneath(title, section) if settings.section_prefix else ""
    return SEPARATOR.join(p for p in (title, path) if p) + "\n" if title or path else ""


__all__ = ["PREFIX_MAX_TOKENS", "context_line", "lexical_line", "outline", "section_at"]
