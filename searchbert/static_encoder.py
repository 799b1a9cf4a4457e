"""Static embedding models (model2vec: a vector per token, averaged): tens of times faster than a transformer on a CPU,
at a cost in quality that benchmarks/static_model.py measures. A model2vec folder or hub id (minishlab/potion-*), or
one distilled from the bundled MiniLM with `searchbert models distill` (offline, in seconds).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .encoders import LocalBiEncoder, read_json
from .errors import MissingExtra, ModelNotAvailable

if TYPE_CHECKING:
    import numpy as np

#: texts per call to the model: it is a lookup and a mean, so large batches cost nothing
STATIC_BATCH = 1024


def is_static(folder: Path) -> bool:
    """Whether a model folder holds a model2vec static model: its config says so, or (as model2vec saves them) its
    one sentence-transformers module is a StaticEmbedding kept at the top of the folder."""
    if read_json(folder / "config.json").get("model_type") == "model2vec":
        return True
    try:
        modules = json.loads((folder / "modules.json").read_text())
        first = modules[0]
    except (OSError, ValueError, LookupError, TypeError):
        return False
    return str(first.get("type", "")).endswith("StaticEmbedding") and first.get("path") in (".", "")


class StaticEncoder(LocalBiEncoder):
    """A model2vec model: each text's word pieces looked up and averaged, then normalized; no position limit but
    the `max_length` it was saved with (512 word pieces by default), which chunks keep to."""

    backend = "static"

    def __init__(self, model: str | None = None, *, revision: str | None = None) -> None:
        super().__init__(model, revision=revision)
        if not is_static(self.folder):
            raise ModelNotAvailable(f"{self.model_id} is not a model2vec static model")
        config = read_json(self.folder / "config.json")
        self.max_seq_length = int(config.get("max_length") or 512)
        self.max_tokens = self.max_seq_length  # the model reads word pieces alone, no [CLS] or [SEP]
        self.pooling = "static-mean"

    @classmethod
    def reloaded(cls, model: str, revision: str | None, quantized: bool) -> StaticEncoder:
        return cls(model, revision=revision)

    @cached_property
    def model(self) -> Any:
        try:
            from model2vec import StaticModel
        except ImportError as exc:
            raise MissingExtra("static models need model2vec: pip install 'searchbert[static]'") from exc
        try:
            return StaticModel.from_pretrained(str(self.folder), force_download=False, normalize=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelNotAvailable(f"cannot load static model {self.model_id!r}: {exc}") from exc

    @cached_property
    def dimension(self) -> int:  # type: ignore[override]
        return int(self.model.dim)

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            max_length=self.max_seq_length,
            batch_size=batch_size or STATIC_BATCH,
            use_multiprocessing=False,  # the writer's batches are small; a process pool costs more than it saves
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)  # normalized by the model (loaded with normalize)


def distill(target: Path, model: str | None = None, dimensions: int = 256) -> Path:
    """A static model distilled from a sentence-transformers model (the bundled MiniLM by default): each word piece of
    its vocabulary embedded once by the model, reduced by PCA to `dimensions`. Offline; seconds on a CPU."""
    from .encoders import resolve_model

    try:
        from model2vec.distill import distill as m2v_distill
    except ImportError as exc:
        raise MissingExtra("distilling needs model2vec's distill extra: pip install 'searchbert[static]'") from exc
    _, folder = resolve_model(model)
    static = m2v_distill(model_name=str(folder), pca_dims=dimensions)
    static.save_pretrained(str(target))
    return target
