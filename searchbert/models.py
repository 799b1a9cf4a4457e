"""Which runner for which model: the encoder factory. It sits above the encoders (encoders.py: torch;
onnx_encoder.py: onnxruntime and OpenVINO) and the hub client, which know nothing of it: no import circles.
"""

from __future__ import annotations

from typing import Any

from .encoders import DEFAULT_MODEL, LocalBiEncoder, SentenceTransformerEncoder, resolve_model
from .errors import ModelNotAvailable
from .onnx_encoder import OnnxEncoder, OpenVinoEncoder, export, supported

BACKENDS = ("auto", "torch", "onnx", "onnx-int8", "openvino", "static")


def gpu_device(device: str | None) -> str | None:
    """The torch device to embed on for --device: None for the CPU runners. auto: "cuda" when torch sees a GPU
    (asked only where an NVIDIA driver is there: importing torch costs seconds a CPU machine need not pay)."""
    import os

    if device in (None, "cpu"):
        return None
    if device == "auto":
        if not (os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidia0")):
            return None
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return None
        import torch

        return "cuda" if torch.cuda.is_available() else None
    import torch

    available = torch.cuda.is_available() if device.startswith("cuda") else device == "mps"
    if not available:
        from .errors import InvalidArgument

        raise InvalidArgument(f"--device {device}: torch sees no such device here (leave it out to use the CPU)")
    return device


def limit_threads(threads: int | None) -> None:
    """Use at most `threads` CPU threads for the model and the tokenizer (None: every core), so a laptop stays usable
    while it indexes. Read when they start: set before the model loads (torch, once loaded, is told directly)."""
    import os
    import sys

    if threads is None:
        return
    if threads < 1:
        from .errors import InvalidArgument

        raise InvalidArgument("--threads must be at least 1")
    for name in ("OMP_NUM_THREADS", "RAYON_NUM_THREADS", "MKL_NUM_THREADS"):  # onnxruntime and torch; tokenizers
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def make_encoder(model: str | None = None, backend: str = "auto", device: str | None = None) -> LocalBiEncoder:
    """The encoder for a model on a backend: torch (sentence-transformers), onnx, onnx-int8 or openvino.

    auto: the fastest backend whose SciFact nDCG@10 was measured within 0.5 pt of torch's. For the bundled model
    that is onnx-int8 (documents int8, queries fp32; benchmarks/results/quality_auto.md, backend_speed.md); others were
    not measured, so they get onnx (the same vectors as torch); torch where ONNX cannot run the model.

    device: a torch device (cuda, cuda:1, mps), or auto: a GPU when torch sees one (see gpu_device). A GPU runs the
    model with torch in full precision: with backend auto or torch only.
    """
    from .errors import InvalidArgument

    if backend not in BACKENDS:
        raise InvalidArgument(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    static = _static(model)  # before any GPU question: a static model has one runner, and needs no torch
    if static is not None:
        if backend not in ("auto", "static"):
            raise InvalidArgument(f"{static.model_id} is a static model: it has one runner, leave out --backend")
        return static
    if backend == "static":
        raise InvalidArgument("--backend static is for static (model2vec) models: pass one with --model")
    gpu = gpu_device(device)
    if gpu is not None and backend not in ("auto", "torch"):
        if device != "auto":
            raise InvalidArgument(f"--device {device} runs the model with torch: leave out --backend {backend}")
        gpu = None  # the runner asked for, on the CPU
    if gpu is not None:
        return SentenceTransformerEncoder(model, device=gpu)
    if backend == "auto":
        try:
            return OnnxEncoder(model, quantized=resolve_model(model)[0] == DEFAULT_MODEL)
        except (ModelNotAvailable, ImportError, RuntimeError, OSError) as exc:
            import logging

            logging.getLogger("searchbert").warning(
                "running the model with torch (slower): the ONNX runner is not available (%s). "
                "Pass --backend torch to choose it and silence this",
                exc,
            )
            return SentenceTransformerEncoder(model)
    if backend == "torch":
        return SentenceTransformerEncoder(model)
    if backend == "openvino":
        return OpenVinoEncoder(model)
    return OnnxEncoder(model, quantized=backend == "onnx-int8")


def _static(model: str | None, revision: str | None = None) -> LocalBiEncoder | None:
    """The model as a static one, if it is one."""
    if model is None:
        return None
    from .static_encoder import StaticEncoder, is_static

    _, folder = resolve_model(model, revision)
    return StaticEncoder(model, revision=revision) if is_static(folder) else None


def encoder_for(fingerprint: dict[str, Any]) -> LocalBiEncoder:
    """The fastest encoder that gives an index's vectors: its ONNX export when there is one, else torch."""
    quantized, revision = fingerprint.get("quantization") == "int8", fingerprint.get("revision")
    if fingerprint.get("pooling") == "static-mean":
        from .static_encoder import StaticEncoder

        return StaticEncoder(fingerprint["id"], revision=revision)
    try:
        return OnnxEncoder(fingerprint["id"], quantized=quantized, export_if_missing=quantized, revision=revision)
    except (ModelNotAvailable, ImportError, RuntimeError, OSError) as exc:
        torch = SentenceTransformerEncoder(fingerprint["id"], revision=revision)
        if supported(torch):  # torch is this model's only runner otherwise: nothing to say
            import logging

            logging.getLogger("searchbert").warning(
                "searching with torch (slower to start): %s. The next `searchbert index` run exports the model", exc
            )
        return torch


def prepare_query_encoder(encoder: Any) -> None:
    """Export a model run by torch to ONNX, when torch is loaded anyway and the model allows it (best effort)."""
    if not isinstance(encoder, LocalBiEncoder) or getattr(encoder, "backend", "") != "torch" or not supported(encoder):
        return
    try:
        import onnxruntime  # noqa: F401

        export(encoder)
    except Exception as exc:  # a failed export only costs query speed: say so, never fail the indexing
        import logging

        logging.getLogger("searchbert").warning("could not export the model to ONNX (queries will use torch): %s", exc)
