"""Chunking: every character covered, no chunk over the model's limit, cuts at natural breaks, right lines."""

from __future__ import annotations

import itertools
import random

import pytest

from searchbert.chunking import ChunkSettings, chunk_document, chunk_many, chunk_text, document_prefix
from searchbert.errors import InvalidArgument

from .conftest import FakeEncoder

SPECIALS = 2  # [CLS] and [SEP]


def _awkward_texts() -> list[str]:
    rng = random.Random(7)
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "lazy",
        "dogs",
        "naïve",
        "café",
        "Straße",
        "東京",
        "émigré",
        "antidisestablishmentarianism",
    ]
    prose = "\n\n".join(
        ". ".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 25))) for _ in range(rng.randint(1, 6)))
        for _ in range(40)
    )
    return [
        prose,
        "x" * 5000,  # one enormous word
        "word " * 3000,  # no sentence ends at all
        "\n".join(f"line {i}: value = {i * 7}" for i in range(800)),  # code-like lines
        "   \n\n  leading and trailing space  \n\n   " + "Sentence here. " * 400 + "\n\n\n   ",
        "# Title\n\nIntro.\n\n## Section A\n\n" + "Alpha beta gamma. " * 300 + "\n\n## Section B\n\n" + "Delta. " * 300,
        "🙂" * 700 + " emoji wall",
    ]


@pytest.mark.parametrize("size,overlap", [(254, 38), (128, 0), (61, 13), (510, 76)])
def test_real_tokenizer_chunks_cover_everything_and_fit(minilm_tokenizer_spans, size: int, overlap: int) -> None:
    spans = minilm_tokenizer_spans
    for text in _awkward_texts():
        chunks = chunk_text(text, spans, size, overlap)
        assert chunks, "a non-empty text gives at least one chunk"
        assert chunks[0].start_char == 0 and chunks[-1].end_char == len(text)
        for before, after in itertools.pairwise(chunks):
            assert after.start_char <= before.end_char, "a gap between chunks would drop text"
            assert after.start_char > before.start_char, "chunks advance"
        for c in chunks:
            assert c.text == text[c.start_char : c.end_char]
            # with [CLS] and [SEP] a chunk never exceeds what the model reads, so nothing is cut silently
            assert len(spans(c.text)) + SPECIALS <= size + SPECIALS <= 512
        assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_short_text_is_one_chunk_with_its_lines() -> None:
    enc = FakeEncoder(max_tokens=40)
    text = "\n\nFirst line\nSecond line\n\n"
    [chunk] = chunk_text(text, enc.token_spans, 40, 5)
    assert (chunk.start_char, chunk.end_char) == (0, len(text))
    assert (chunk.start_line, chunk.end_line) == (3, 4)


def test_cuts_prefer_paragraphs_and_headings_over_mid_sentence() -> None:
    enc = FakeEncoder()
    para = "one two three four five six seven eight nine ten. " * 2
    text = f"# Head\n\n{para}\n\n## Next part\n\n{para}\n\n{para}"
    chunks = chunk_text(text, enc.token_spans, 40, 0)
    for c in chunks[:-1]:
        tail = text[c.end_char - 3 : c.end_char + 3]
        assert "\n\n" in tail or text[c.end_char - 2] == "." or tail.strip().startswith("#"), tail


def test_line_spans_match_the_text() -> None:
    enc = FakeEncoder()
    text = "\n".join(f"line number {i} has some words in it" for i in range(1, 61))
    for c in chunk_text(text, enc.token_spans, 40, 8):
        first = text[: c.start_char + len(c.text) - len(c.text.lstrip())].count("\n") + 1
        assert c.start_line == first
        assert f"line number {c.start_line} " in text.splitlines()[c.start_line - 1] + " "
        assert c.text.rstrip().splitlines()[-1] in text.splitlines()[c.end_line - 1]


def test_overlap_repeats_context_but_never_more_than_asked() -> None:
    enc = FakeEncoder()
    text = " ".join(f"w{i}." for i in range(400))
    chunks = chunk_text(text, enc.token_spans, 40, 10)
    for before, after in itertools.pairwise(chunks):
        shared = len(enc.token_spans(text[after.start_char : before.end_char]))
        assert 0 < shared <= 10


def test_title_prefix_comes_out_of_the_budget() -> None:
    enc = FakeEncoder(max_tokens=40)
    settings = ChunkSettings(max_tokens=40, overlap=4, title_prefix=True)
    prefix = document_prefix("A fairly long title about things", enc.token_spans, settings)
    assert prefix == "A fairly long title about things\n"
    text = "word " * 300
    for c in chunk_document(text, enc.token_spans, settings, prefix):
        assert len(enc.token_spans(prefix + c.text)) <= 40
    assert document_prefix("Title", enc.token_spans, ChunkSettings(max_tokens=40, overlap=4, title_prefix=False)) == ""
    # a whole truncated document (the standard protocol) already starts with its title: no second copy
    assert document_prefix("Title", enc.token_spans, ChunkSettings(max_tokens=40, overlap=0, strategy="truncate")) == ""


def test_truncate_strategy_keeps_one_chunk_per_document() -> None:
    enc = FakeEncoder()
    settings = ChunkSettings(max_tokens=40, overlap=0, strategy="truncate")
    [chunk] = chunk_document("word " * 500, enc.token_spans, settings)
    assert chunk.start_char == 0


def test_empty_text_has_no_chunks() -> None:
    assert chunk_document("  \n\t ", FakeEncoder().token_spans, ChunkSettings(max_tokens=40, overlap=0)) == []


def test_settings_defaults_and_limits() -> None:
    s = ChunkSettings.for_model(254)
    assert (s.max_tokens, s.overlap) == (254, 38)
    assert ChunkSettings.for_model(510, 600 // 2).max_tokens == 300
    with pytest.raises(InvalidArgument):
        ChunkSettings.for_model(254, 300)
    with pytest.raises(InvalidArgument):
        ChunkSettings(max_tokens=600, overlap=0)
    with pytest.raises(InvalidArgument):
        ChunkSettings(max_tokens=100, overlap=80)


@pytest.mark.parametrize("whole_words", [True, False])
def test_many_texts_chunked_at_once_give_the_same_chunks(whole_words: bool) -> None:
    from searchbert.encoders import load_tokenizer, resolve_model

    tok = load_tokenizer(resolve_model(None)[1])
    spans = lambda text: tok.encode(text, add_special_tokens=False).offsets  # noqa: E731
    calls = []

    def many(texts: list[str]) -> list[list[tuple[int, int]]]:
        calls.append(len(texts))
        return [e.offsets for e in tok.encode_batch(texts, add_special_tokens=False)]

    settings = ChunkSettings(max_tokens=61, overlap=13)
    texts = [*_awkward_texts(), "", "   "]
    prefixes = ["A title\n" if i % 2 else "" for i in range(len(texts))]
    got = chunk_many(texts, prefixes, spans, settings, many, whole_words)
    assert got == [chunk_document(t, spans, settings, p) for t, p in zip(texts, prefixes, strict=True)]
    assert len(calls) == 2  # every text in one call, the pieces to check in another


def test_a_piece_the_tokenizer_reads_longer_than_in_the_whole_is_cut_again() -> None:
    def spans(text: str) -> list[tuple[int, int]]:
        """A character a token, but a text starting with "b" reads its first one as three tokens."""
        out = [(i, i + 1) for i, ch in enumerate(text) if not ch.isspace()]
        return ([(0, 0), (0, 0)] if text.startswith("b") else []) + out

    text = "ab" * 300
    settings = ChunkSettings(max_tokens=17, overlap=0, title_prefix=False)
    got = chunk_many([text], [""], spans, settings, lambda texts: [spans(t) for t in texts])[0]
    assert got == chunk_document(text, spans, settings)
    assert all(len(spans(c.text)) <= 17 for c in got)
    assert any(c.text.startswith("b") for c in got)  # such pieces exist, and were cut to fit
