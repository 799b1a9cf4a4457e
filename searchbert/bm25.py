"""BM25 with bm25s: English stopwords, Snowball stemming and Lucene's formula; k1 and b are an index's settings."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import numpy as np

    from .vectors import Selection

#: the default (k1, b): bm25s' own, the best of the usual settings on SciFact and Cranfield together
#: (benchmarks/bm25_params.py: mean nDCG@10 60.89 against Lucene's 60.33 and Anserini's 58.82)
K1, B = 1.5, 0.75
#: what indexes made before k1 and b were recorded were built with (Anserini's MS MARCO setting)
LEGACY_K1, LEGACY_B = 0.9, 0.4


def _bm25s() -> Any:
    """bm25s, with its logger put back to WARNING: it sets itself to DEBUG on import."""
    import logging

    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


Id = TypeVar("Id", int, str)


def _tokenize_corpus(texts: Iterable[str]) -> Any:
    """Token ids of every text, held as compact int32 arrays: the corpus is read as a stream and never held as
    lists of token strings (which cost ~50 bytes a token). The same splitting, stopwords and stemming as
    `_tokenize`, so queries tokenized by it match."""
    import numpy as np
    import Stemmer

    _bm25s()
    from bm25s.tokenization import Tokenized, Tokenizer

    tokenizer = Tokenizer(stopwords="en", stemmer=Stemmer.Stemmer("english"))
    stream = tokenizer.tokenize(texts, update_vocab=True, return_as="stream", allow_empty=True)  # type: ignore[arg-type]
    ids = [np.asarray(doc, dtype=np.int32) for doc in stream]
    return Tokenized(ids=ids, vocab=tokenizer.get_vocab_dict())


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    import Stemmer

    bm25s = _bm25s()

    return bm25s.tokenize(
        list(texts), stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False, return_ids=False
    )


class BM25Retriever(Generic[Id]):
    """A lexical index over (id, text) pairs; `search_many` returns (id, score) lists, best first."""

    def __init__(
        self,
        ids: Sequence[Id],
        texts: Iterable[str] | None = None,
        *,
        k1: float = K1,
        b: float = B,
        _bm25: Any = None,
        _tokens: Any = None,
    ) -> None:
        bm25s = _bm25s()
        self.ids = list(ids)
        self._id_array: np.ndarray | None = None
        self._row_of: dict[Id, int] | None = None
        if _bm25 is not None:
            self._bm25 = _bm25
        else:
            self._bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
            if self.ids:
                tokens = _tokens if _tokens is not None else _tokenize_corpus(texts or [])
                self._bm25.index(tokens, show_progress=False)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[Id, str]], *, k1: float = K1, b: float = B) -> BM25Retriever[Id]:
        """Build from a stream of (id, text), e.g. a database cursor: texts are tokenized as they are read."""
        ids: list[Id] = []

        def texts() -> Iterator[str]:
            for id_, text in rows:
                ids.append(id_)
                yield text

        tokens = _tokenize_corpus(texts())
        return cls(ids, k1=k1, b=b, _tokens=tokens)

    def __len__(self) -> int:
        return len(self.ids)

    def search_many(
        self, queries: Sequence[str], k: int, allowed: Selection | None = None
    ) -> list[list[tuple[Id, float]]]:
        """Best k ids per query, restricted to `allowed` ids when given (filtering inside the search)."""
        mask = self._mask(allowed)
        k = min(k, len(self.ids) if mask is None else int(mask.sum()))
        if not queries or k <= 0:
            return [[] for _ in queries]
        rows, scores = self._bm25.retrieve(_tokenize(queries), k=k, show_progress=False, n_threads=0, weight_mask=mask)
        # a score of 0 means no query term occurs in the text: not a match
        return [
            [(self.ids[int(i)], float(s)) for i, s in zip(row, score_row) if s > 0]
            for row, score_row in zip(rows, scores)
        ]

    def share_of_best(self, query: str, ids: Sequence[Id]) -> list[float]:
        """Each id's BM25 score for `query` as a share of the most any text could score for it: the sum of the
        query words' idf, the limit of Lucene's BM25 as a word's count grows, a word the index never saw counting
        at the idf of a word in no text. So 1 is every word found many times over, and 0 is none of them found, a
        scale that carries across queries (calibrated relevance needs one). Ids not in the index share 0."""
        import numpy as np

        tokens = _tokenize([query])[0]
        if not tokens or not self.ids:
            return [0.0] * len(ids)
        bm25 = self._bm25
        indptr, n = bm25.scores["indptr"], bm25.scores["num_docs"]
        known = [bm25.vocab_dict[t] for t in tokens if t in bm25.vocab_dict]
        frequencies = [int(indptr[t + 1] - indptr[t]) for t in known] + [0] * (len(tokens) - len(known))
        best = sum(math.log(1 + (n - df + 0.5) / (df + 0.5)) for df in frequencies)
        scores = bm25.get_scores_from_ids(known) if known else np.zeros(n)
        rows = [self._row(id_) for id_ in ids]
        return [float(scores[row]) / best if row is not None else 0.0 for row in rows]

    def _row(self, id_: Id) -> int | None:
        """Where an id sits: chunk ids come in ascending order (found by halves, no map of a million entries);
        other ids through a map, made once."""
        import numpy as np

        if self._row_of is None:
            ints = all(isinstance(i, int) for i in self.ids[:1])
            if ints and self._id_array is None:
                self._id_array = np.asarray(self.ids, dtype=np.int64)
            if ints and bool(np.all(self._id_array[1:] > self._id_array[:-1])):  # type: ignore[index]
                self._row_of = {}  # no map needed
            else:
                self._row_of = {i: row for row, i in enumerate(self.ids)}
        if self._row_of or self._id_array is None:
            return self._row_of.get(id_)
        at = int(np.searchsorted(self._id_array, id_))
        return at if at < len(self.ids) and self._id_array[at] == id_ else None

    def _mask(self, allowed: Selection | None) -> np.ndarray | None:
        """bm25s' weight mask (1 for a text that may be returned) from a selection of integer ids."""
        if allowed is None:
            return None
        import numpy as np

        if self._id_array is None:
            self._id_array = np.asarray(self.ids, dtype=np.int64)
        return allowed.contains(self._id_array).astype(np.float32)

    def save(self, folder: Path, state: dict[str, Any]) -> None:
        """Write to a temp folder, then swap it in: a reader sees the old folder, the new one, or none (rebuild)."""
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            if self.ids:  # bm25s cannot save an index of no text; load() makes an empty one from the empty ids
                self._bm25.save(str(tmp))
            (tmp / "ids.json").write_text(json.dumps(self.ids))
            (tmp / "state.json").write_text(json.dumps(state))
            if folder.exists():
                os.replace(folder, old)
            os.replace(tmp, folder)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            from .errors import storage_error

            raise storage_error(exc, folder) from exc
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> tuple[BM25Retriever[Any], dict[str, Any]]:
        """The saved retriever and the state saved with it; OSError/ValueError if there is none."""
        bm25s = _bm25s()

        state = json.loads((folder / "state.json").read_text())
        ids = json.loads((folder / "ids.json").read_text())
        return cls(ids, _bm25=bm25s.BM25.load(str(folder)) if ids else None), state
