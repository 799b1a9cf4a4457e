"""The same bi-encoder exported to ONNX and run by onnxruntime + tokenizers + numpy: no torch on the query path.

The export (torch, once per model and machine) goes to a cache folder; it uses eager attention, which keeps the
exported graph numerically equal to sentence-transformers (cosine 1.0), and mean pooling and normalization are done
here in numpy exactly as sentence-transformers does them. `onnx-int8` is the same graph with dynamic per-channel int8
weights (onnxruntime's quantizer): faster, close but not equal, so the index records it. `openvino` runs the same
fp32 export with OpenVINO instead of onnxruntime (optional: `pip install 'searchbert[openvino]'`); its vectors equal
onnx's, so an index built with one is queried with the other.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import cache_dir
from .encoders import LocalBiEncoder, read_json
from .errors import ModelNotAvailable
from .vectors import atomic_write

if TYPE_CHECKING:
    import numpy as np

#: Transformer, Pooling and Normalize: the only modules this runner reproduces (a Dense layer would need torch)
_SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}


def onnx_file(base: LocalBiEncoder, quantized: bool = False) -> Path:
    """Where the export of this model lives: keyed by its id, folder and weights, so a changed model re-exports."""
    from .hub import weights_file

    stat = (weights_file(base.folder) or base.folder / "config.json").stat()
    key = hashlib.sha256(f"{base.model_id}|{base.folder}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_dir() / "onnx" / key[:16] / ("model-int8.onnx" if quantized else "model.onnx")


def supported(base: LocalBiEncoder) -> bool:
    """Whether the ONNX runner reproduces this model exactly (plain BERT-style encoder, mean or CLS pooling)."""
    modules = read_json(base.folder / "modules.json")
    kinds = {m.get("type", "").rsplit(".", 1)[-1] for m in modules} if isinstance(modules, list) else {"Transformer"}
    return kinds <= _SUPPORTED_MODULES and base.pooling in {"mean", "cls"}


def export(base: LocalBiEncoder, quantized: bool = False) -> Path:
    """Export the model to ONNX (and quantize it) in the cache; returns the file. Needs torch."""
    target = onnx_file(base, quantized)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fp32 = onnx_file(base, False)
    if not fp32.exists():
        _export_fp32(base, fp32)
    if quantized:
        with _root_logging_untouched():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            atomic_write(
                target,
                lambda tmp: quantize_dynamic(str(fp32), str(tmp), per_channel=True, weight_type=QuantType.QInt8),
            )
    return target


@contextmanager
def _root_logging_untouched() -> Iterator[None]:
    """Keep onnxruntime's quantizer from configuring the root logger: it logs through `logging.warning`, which
    installs a root handler when there is none, and from then on every library's log lines (and each of ours a
    second time) reach the user. Its advice on pre-processing is for image models and does not apply here."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _export_fp32(base: LocalBiEncoder, target: Path) -> None:
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # eager attention: the fused (sdpa) kernels export to a graph that drifts (cosine ~0.98)
    model = AutoModel.from_pretrained(str(base.folder), attn_implementation="eager").eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    dummy = tuple(torch.ones(2, 8, dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}

    def write(tmp: Path) -> None:
        with torch.no_grad():
            torch.onnx.export(
                LastHiddenState(),
                dummy,
                str(tmp),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atomic_write(target, write)


class OnnxEncoder(LocalBiEncoder):
    """The bi-encoder through onnxruntime; vectors equal sentence-transformers' (fp32) or close to them (int8)."""

    def __init__(
        self,
        model: str | None = None,
        *,
        quantized: bool = False,
        batch_size: int = 8,
        export_if_missing: bool = True,
        revision: str | None = None,
    ) -> None:
        super().__init__(model, revision=revision)
        if not supported(self):
            raise ModelNotAvailable(f"model {self.model_id!r} has layers the ONNX runner does not reproduce: use torch")
        self.quantized = quantized
        self.backend = "onnx-int8" if quantized else "onnx"
        self.batch_size = batch_size
        self.path = onnx_file(self, quantized)
        if not self.path.exists():
            if not export_if_missing:
                raise ModelNotAvailable(f"no ONNX export of {self.model_id!r} in {cache_dir()}")
            export(self, quantized)
        self._batcher = self.tokenizer.__class__.from_str(self.tokenizer.to_str())
        self._batcher.enable_truncation(self.max_seq_length)
        self._batcher.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]") or 0)

    @classmethod
    def reloaded(cls, model: str, revision: str | None, quantized: bool) -> OnnxEncoder:
        """The same model on the same runner, loaded again (what a pickled encoder becomes: see __reduce__)."""
        return cls(model, quantized=quantized, revision=revision)

    def fingerprint(self) -> dict[str, Any]:
        """int8 vectors differ a little from fp32 ones: an index records them as such and is queried with them."""
        return {**super().fingerprint(), "quantization": "int8"} if self.quantized else super().fingerprint()

    @cached_property
    def session(self) -> Any:
        return _ort_session(self.path)

    def _infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """last_hidden_state for one padded batch."""
        return self.session.run(None, feeds)[0]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Queries always run at full precision: one costs milliseconds either way, and on an int8 index only the
        documents' side is then approximate, and the query vectors are exactly sentence-transformers' (SciFact:
        benchmarks/results/quality_auto.md against quality.md)."""
        if self.query_session is None:
            return self.encode(texts)
        return self._embed(texts, self.batch_size, lambda feeds: self.query_session.run(None, feeds)[0])

    @cached_property
    def query_session(self) -> Any:
        """The fp32 export's session for an int8 encoder (made with the int8 file, so it is there); else None."""
        fp32 = onnx_file(self, False)
        return _ort_session(fp32) if self.quantized and fp32.exists() else None

    @cached_property
    def dimension(self) -> int:  # type: ignore[override]
        pooling, config = read_json(self.folder / "1_Pooling" / "config.json"), read_json(self.folder / "config.json")
        return int(pooling.get("word_embedding_dimension") or config.get("hidden_size") or config["dim"])

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Embed texts: sorted by length, padded per batch, mean-pooled over real tokens, L2-normalized."""
        return self._embed(texts, batch_size or self.batch_size, self._infer)

    def _embed(
        self, texts: Sequence[str], size: int, infer: Callable[[dict[str, np.ndarray]], np.ndarray]
    ) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            encodings = self._batcher.encode_batch([texts[i] for i in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            types = np.array([e.type_ids for e in encodings], dtype=np.int64)
            hidden = infer({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                weights = mask[:, :, None].astype(np.float32)
                pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[rows] = pooled / np.clip(norms, 1e-12, None)
        return out


def optimized_file(path: Path) -> Path:
    """Where onnxruntime's optimised graph of `path` is kept (per onnxruntime version: its fusions change)."""
    import onnxruntime as ort

    return path.with_name(f"{path.stem}.optimized-{ort.__version__}.onnx")


def _ort_session(path: Path) -> Any:
    """A session for the export at `path`. onnxruntime optimises a graph each time it loads one (a good part of a
    `query`'s start); the optimised graph is saved the first time and loaded as is after. Extended, not all,
    optimisations: those are the ones that do not tie the file to this CPU."""
    import onnxruntime as ort

    def options(level: Any) -> Any:
        made = ort.SessionOptions()
        # OMP_NUM_THREADS where set (as torch reads it): a Ray actor given one CPU gets 1, and does not fight the
        # other actors on its machine for cores
        made.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1
        made.log_severity_level = 3
        made.graph_optimization_level = level
        return made

    saved = optimized_file(path)
    if saved.exists():
        try:
            return ort.InferenceSession(str(saved), options(ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                                        providers=["CPUExecutionProvider"])  # fmt: skip
        except Exception:  # a broken or foreign file: optimise again, below
            saved.unlink(missing_ok=True)
    first = options(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    partial = saved.with_name(f".{saved.name}.{os.getpid()}")
    first.optimized_model_filepath = str(partial)
    session = ort.InferenceSession(str(path), first, providers=["CPUExecutionProvider"])
    try:
        os.replace(partial, saved)  # whole or not at all: another process may be loading it
    except OSError:
        partial.unlink(missing_ok=True)
    return session


class OpenVinoEncoder(OnnxEncoder):
    """The fp32 ONNX export run by OpenVINO: the same vectors as `onnx` (so the same fingerprint), another runtime."""

    def __init__(self, model: str | None = None, *, batch_size: int = 8) -> None:
        try:
            import openvino  # noqa: F401
        except ImportError as exc:
            raise ModelNotAvailable(
                "the openvino backend needs the openvino package: pip install 'searchbert[openvino]'"
            ) from exc
        super().__init__(model, batch_size=batch_size)
        self.backend = "openvino"

    @classmethod
    def reloaded(cls, model: str, revision: str | None, quantized: bool) -> OpenVinoEncoder:
        return cls(model)

    @cached_property
    def session(self) -> Any:
        import openvino as ov

        # LATENCY: one request using every core; on 2 cores it matched 2 streams of throughput mode
        compiled = ov.Core().compile_model(str(self.path), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        return compiled.create_infer_request()

    def _infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.infer(feeds)[0].copy()  # the request reuses its output buffer
