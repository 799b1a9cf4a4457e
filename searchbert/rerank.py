"""The reranker seam: (query, passages) -> one relevance score per passage, higher is better.

CrossEncoderReranker reads query and passage together with a BERT cross-encoder (sentence-transformers
`CrossEncoder`). Passages are cut to fit the 512-token limit with the query; the query itself is never cut.
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


class Reranker(Protocol):
    """Scores passages against a query."""

    model_id: str

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray: ...


class CrossEncoderReranker:
    """A BERT cross-encoder run by sentence-transformers on the CPU."""

    def __init__(self, model: str | None = None, *, batch_size: int = 16, device: str = "cpu") -> None:
        self.model_id, self.folder = resolve_local(model or DEFAULT_RERANKER, option="--rerank-model")
        self.tokenizer = load_tokenizer(self.folder)
        self.batch_size = batch_size
        self.device = device
        specials = len(self.tokenizer.encode("a", "b", add_special_tokens=True).ids) - 2
        positions = int(read_json(self.folder / "config.json").get("max_position_embeddings", 512))
        self.max_length = min(positions, 512)
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
