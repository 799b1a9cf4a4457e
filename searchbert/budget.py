"""A token budget for the context a prompt is given: the best hits whose text fits it, the last one cut where a
sentence (else a word) ends, never inside a word."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from .records import Hit

#: where a sentence ends: its closing punctuation (and quotes or brackets), before whitespace or the end
_SENTENCE_END = re.compile(r"[.!?:;][\"')\]]*(?=\s|$)|\n\s*\n")
_WORD_END = re.compile(r"\S(?=\s|$)")


def fit(hits: list[Hit], max_tokens: int, count: Callable[[str], int]) -> list[Hit]:
    """The hits, best first, whose text (their context, where the search asked for it) fits `max_tokens` tokens
    together as `count` counts them; the first that does not fit whole is cut to what is left, and ends the list."""
    out: list[Hit] = []
    left = max_tokens
    for hit in hits:
        text = hit.context if hit.context is not None else hit.text
        used = count(text)
        if used <= left:
            out.append(hit)
            left -= used
            continue
        cut = _cut(text, left, count)
        if cut:
            out.append(_shortened(hit, cut))
        break
    return out


def _cut(text: str, budget: int, count: Callable[[str], int]) -> str:
    """The longest start of text that fits the budget and ends a sentence; failing that, one that ends a word."""
    for pattern in (_SENTENCE_END, _WORD_END):
        ends = [m.end() for m in pattern.finditer(text)]
        lo, hi, best = 0, len(ends) - 1, 0
        while lo <= hi:  # a longer start never has fewer tokens: the last end that fits, by halves
            mid = (lo + hi) // 2
            if count(text[: ends[mid]]) <= budget:
                best, lo = ends[mid], mid + 1
            else:
                hi = mid - 1
        if best:
            return text[:best].rstrip()
    return ""


def _shortened(hit: Hit, cut: str) -> Hit:
    """The hit with its text (or context) cut, its last line and character following."""
    lead = len(cut) - len(cut.lstrip())
    lines = cut[lead:].count("\n")
    if hit.context is not None:
        return replace(hit, context=cut, context_end_line=(hit.context_start_line or hit.start_line) + lines)
    return replace(hit, text=cut, end_char=hit.start_char + len(cut), end_line=hit.start_line + lines)


@lru_cache(maxsize=8)
def named_counter(name: str) -> Callable[[str], int]:
    """A token counter for another model than the index's own (the LLM a prompt is for): a tokenizer.json file, a
    folder holding one, or a Hugging Face model id whose tokenizer.json is fetched alone (from the cache when
    offline). Loaded once per name."""
    from tokenizers import Tokenizer

    from .errors import InvalidArgument

    path = Path(name).expanduser()
    try:
        if path.is_dir() or path.is_file():
            file = path / "tokenizer.json" if path.is_dir() else path
        else:
            from huggingface_hub import hf_hub_download

            from .hub import HUB_TIMEOUT, offline

            file = Path(hf_hub_download(name, "tokenizer.json", etag_timeout=HUB_TIMEOUT, local_files_only=offline()))
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as exc:  # a missing file, a bad id, no network: all mean this name cannot count tokens
        raise InvalidArgument(
            f"cannot load the tokenizer {name!r} ({type(exc).__name__}: {exc}); name a tokenizer.json, a folder "
            "holding one, or a Hugging Face model id"
        ) from exc

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count
