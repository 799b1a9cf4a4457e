"""Adapt the bi-encoder to a folder with no labelled queries: `searchbert finetune encoder --unlabelled SOURCE`.

The documents supply their own queries. A heading (or a document's title) asks for the text under it; a sentence
taken out of a passage asks for what is left of it (the inverse cloze task of Lee et al., 2019). Each query is
trained against its passage with MultipleNegativesRankingLoss and a hard negative the base model ranks high from
another document, exactly as labelled pairs are (finetune.finetune_encoder), and the result goes through the same
guard: the share of the adapted weights kept is measured on held-out pseudo-queries and on the general probe
(blending), so a model that learned the folder at the cost of everything else is blended back or not kept at all.

What this leaves out: GPL's generated queries need a query-generation model (a T5 fetched from the hub) and a
cross-encoder to label them; neither ships with searchbert, so neither is used here.
"""

from __future__ import annotations

import random
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .blending import parse_share
from .errors import DatasetError
from .finetune import FinetuneReport, Pair, TrainingData, finetune_encoder, new_folder

if TYPE_CHECKING:
    from .index import Index

#: a sentence worth asking with: long enough to say something, short enough to be a question's length
SENTENCE_WORDS = (6, 40)
#: a heading shared by more documents than this ("Introduction", "See also") asks for none of them in particular
COMMON_HEADING = 3
#: held-out pseudo-queries that choose the epoch and the blend (more only cost time)
DEV_QUERIES = 200
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_HEADING_LINE = re.compile(r"^\s*(?:#{1,6}\s+)?(.+?)\s*$")


@dataclass(frozen=True)
class Passage:
    """A chunk as the index keeps it: the document it is from, the heading it sits under, its text."""

    id: str
    document: str
    title: str
    section: str
    ordinal: int
    text: str


def read_passages(source: str | Path, base: str | None = None, progress: bool = False) -> list[Passage]:
    """The chunks of a searchbert index, or of a folder (indexed first, with `base`, into a folder removed after)."""
    from .index import Index
    from .locate import MANIFEST

    path = Path(source)
    if (path / MANIFEST).exists():
        return _chunks(Index.open(path))
    if not path.exists():
        raise DatasetError(f"no index or folder at {path}: give the folder to adapt to, or its searchbert index")
    from .folders import index_paths

    with tempfile.TemporaryDirectory(prefix="searchbert-adapt-") as work:
        index_paths(Path(work) / "index", [path], model=base, progress=progress)
        return _chunks(Index.open(Path(work) / "index"))


def _chunks(index: Index) -> list[Passage]:
    with index:
        rows = index.store.chunks(int(i) for i in index.store.chunk_ids())  # the embedded ones: all, once indexed
    return [Passage(str(i), r.path, r.title, r.section, r.ordinal, r.text) for i, r in sorted(rows.items())]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def heading_of(passage: Passage) -> str:
    """The heading the passage sits under: its section's last heading, or the title for a document's first chunk."""
    if passage.section:
        return passage.section.rsplit(" > ", 1)[-1].strip()
    return passage.title.strip() if passage.ordinal == 0 else ""


def _without_heading(text: str, heading: str) -> str:
    """The passage with the line that states its heading taken out (else the query would be found by copying)."""
    lines = text.splitlines()
    for i, line in enumerate(lines[:3]):
        match = _HEADING_LINE.match(line)
        if match and match.group(1).strip("#= ").strip() == heading:
            return "\n".join(lines[:i] + lines[i + 1 :]).strip()
    return text


def pseudo_queries(passages: list[Passage], seed: int = 42, max_pairs: int | None = None) -> TrainingData:
    """Training data from the passages alone: heading -> the text under it, sentence -> the passage without it.
    Every passage of the query's own document counts as relevant (never mined as a negative, never a miss)."""
    rng = random.Random(seed)
    common = Counter(h for _, h in {(p.document, heading_of(p)) for p in passages})  # documents per heading
    by_document: dict[str, set[str]] = {}
    for p in passages:
        by_document.setdefault(p.document, set()).add(p.id)
    pairs: list[Pair] = []
    corpus: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    for p in passages:
        body, asks = p.text, []
        heading = heading_of(p)
        if len(heading.split()) >= 2 and common[heading] <= COMMON_HEADING:
            body = _without_heading(body, heading)
            asks.append(heading)
        said = sentences(body)
        candidates = [s for s in said if SENTENCE_WORDS[0] <= len(s.split()) <= SENTENCE_WORDS[1]]
        if len(said) >= 3 and candidates:  # what is left of the passage must still say something
            sentence = rng.choice(candidates)
            body = " ".join(" ".join(body.split()).replace(sentence, " ", 1).split())
            asks.append(sentence)
        corpus[p.id] = body
        for n, query in enumerate(asks):
            qid = f"{p.id}-{n}"
            pairs.append(Pair(query, body, (), qid))
            relevant[qid] = by_document[p.document]
    if not pairs:
        raise DatasetError("no heading or sentence in these documents to ask with: nothing to adapt to")
    rng.shuffle(pairs)
    if max_pairs is not None and len(pairs) > max_pairs:
        pairs = pairs[:max_pairs]
    return TrainingData(pairs, corpus, relevant, f"{len(passages)} passages, no labels")


def dev_share_for(data: TrainingData) -> float:
    """A held-out share of about DEV_QUERIES pseudo-queries (a tenth of them when there are fewer than 2,000)."""
    return min(0.1, DEV_QUERIES / len(data.pairs))


def adapt_encoder(
    source: str | Path,
    output: str | Path,
    *,
    base: str | None = None,
    max_pairs: int | None = 10_000,
    epochs: int = 1,
    progress: bool = True,
    **options: Any,
) -> FinetuneReport:
    """Fine-tune `base` (default: the bundled model) on pseudo-queries of the index or folder `source`, with
    finetune_encoder's training, held-out choice of epoch and blend guard (`options`: its other settings)."""
    new_folder(output)
    parse_share(options.get("blend", "auto"))
    data = pseudo_queries(read_passages(source, base, progress), options.get("seed", 42), max_pairs)
    options.setdefault("dev_share", dev_share_for(data))
    return finetune_encoder(data, output, base=base, epochs=epochs, progress=progress, **options)
