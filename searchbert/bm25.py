"""BM25 with bm25s: English stopwords and Snowball stemming; Lucene's formula with Anserini's k1=0.9, b=0.4."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

K1, B = 0.9, 0.4


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    import bm25s
    import Stemmer

    return bm25s.tokenize(
        list(texts), stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False, return_ids=False
    )


class BM25Retriever:
    """A lexical index over (id, text) pairs; `search_many` returns (id, score) lists, best first."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        import bm25s

        self.ids = list(ids)
        self._bm25: Any = bm25s.BM25(k1=K1, b=B, method="lucene")
        self._bm25.index(_tokenize(texts), show_progress=False)

    def search_many(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        k = min(k, len(self.ids))
        if not queries or k == 0:
            return [[] for _ in queries]
        rows, scores = self._bm25.retrieve(_tokenize(queries), k=k, show_progress=False, n_threads=0)
        # a score of 0 means no query term occurs in the document: not a match
        return [
            [(self.ids[int(i)], float(s)) for i, s in zip(row, score_row) if s > 0]
            for row, score_row in zip(rows, scores)
        ]
