"""The reranker seam: (query, passages) -> one relevance score per passage, higher is better.

CrossEncoderReranker reads query and passage together with a BERT cross-encoder (sentence-transformers
`CrossEncoder`). Passages are cut to fit the 512-token limit with the query; the query itself is never cut.

A reranker may keep part of the retrieval's say: `retrieval_weight` w gives each candidate
(1 - w) * reranker score + w * retrieval score, both min-max normalised over the query's candidates (a convex
combination, as Bruch et al. 2023 found best for fusing scores of different scales). A model `searchbert finetune
reranker` trained records its w, chosen on held-out queries, in RERANKER_SETTINGS beside the weights; w = 1 says the
model did not beat the retrieval there, and the candidates keep their retrieval order, never scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from .encoders import load_tokenizer, read_json, resolve_local
from .errors import InvalidArgument, ModelNotAvailable

if TYPE_CHECKING:
    import numpy as np

DEFAULT_RERANKER = "cross-encoder/ms-marco-MiniLM-L6-v2"
#: a passage keeps at least this many word pieces, or the query is too long to rerank with
MIN_PASSAGE_TOKENS = 32
#: what a fine-tuned reranker's folder says of how to use it: {"retrieval_weight": w, "max_length": n, ...}
RERANKER_SETTINGS = "searchbert-reranker.json"


class Reranker(Protocol):
    """Scores passages against a query."""

    model_id: str
    #: the retrieval score's share of the final one, in [0, 1]: 0 ranks by the reranker alone, 1 leaves the order
    retrieval_weight: float

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray: ...


def combine(rerank: np.ndarray, retrieval: np.ndarray, retrieval_weight: float) -> np.ndarray:
    """(1 - w) * rerank + w * retrieval, each min-max normalised over these candidates (all equal: all 0)."""
    import numpy as np

    if retrieval_weight <= 0:
        return np.asarray(rerank, dtype=np.float64)

    def scaled(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        span = x.max() - x.min() if len(x) else 0.0
        return (x - x.min()) / span if span > 0 else np.zeros_like(x)

    return (1 - retrieval_weight) * scaled(rerank) + retrieval_weight * scaled(retrieval)


class CrossEncoderReranker:
    """A BERT cross-encoder run by sentence-transformers on the CPU."""

    def __init__(
        self,
        model: str | None = None,
        *,
        batch_size: int = 16,
        device: str = "cpu",
        retrieval_weight: float | None = None,
    ) -> None:
        self.model_id, self.folder = resolve_local(model or DEFAULT_RERANKER, option="--rerank-model")
        self.tokenizer = load_tokenizer(self.folder)
        self.batch_size = batch_size
        self.device = device
        settings = read_json(self.folder / RERANKER_SETTINGS)
        weight = settings.get("retrieval_weight", 0.0) if retrieval_weight is None else retrieval_weight
        if not 0 <= weight <= 1:
            raise InvalidArgument(f"the retrieval weight must be in [0, 1], not {weight}")
        self.retrieval_weight = float(weight)
        specials = len(self.tokenizer.encode("a", "b", add_special_tokens=True).ids) - 2
        positions = int(read_json(self.folder / "config.json").get("max_position_embeddings", 512))
        # a fine-tuned reranker reads what it was trained to read
        self.max_length = min(positions, 512, int(settings.get("max_length", 512)))
        self._pair_specials = specials

    @cached_property
    def model(self) -> Any:
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            from sentence_transformers import CrossEncoder

            return CrossEncoder(str(self.folder), device=self.device, max_length=self.max_length, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotAvailable(f"cannot load cross-encoder {self.model_id!r}: {exc}") from exc

    def fit_passage(self, query: str, passage: str) -> str:
        """The passage cut (at a word piece) so that [CLS] query [SEP] passage [SEP] fits the model."""
        query_tokens = len(self.tokenizer.encode(query, add_special_tokens=False).ids)
        budget = self.max_length - self._pair_specials - query_tokens
        if budget < MIN_PASSAGE_TOKENS:
            raise InvalidArgument(
                f"the query is too long to rerank ({query_tokens} word pieces; the cross-encoder reads "
                f"{self.max_length} in all): shorten it or search without --rerank"
            )
        spans = self.tokenizer.encode(passage, add_special_tokens=False).offsets
        return passage if len(spans) <= budget else passage[: spans[budget - 1][1]]

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """One score per passage (the model's own activation: sigmoid for one-label rerankers)."""
        import numpy as np

        if not passages:
            return np.zeros(0, dtype=np.float32)
        pairs = [(query, self.fit_passage(query, p)) for p in passages]
        scores = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float32).reshape(len(passages), -1)[:, -1]
