"""The ONNX query path: the same vectors as sentence-transformers, and a query that never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from searchbert.errors import IncompatibleIndex, ModelNotAvailable
from searchbert.folders import index_paths
from searchbert.index import Index
from searchbert.models import encoder_for, make_encoder
from searchbert.onnx_encoder import OnnxEncoder

from .conftest import write_tree
from .test_integration import CORPUS

pytestmark = pytest.mark.model

TEXTS = [
    "A short sentence.",
    "Straße und Café — ünïcödé, 東京, émigré.",
    "word " * 400,  # longer than the model reads: truncated the same way
    "Hematopoietic stem cells segregate their chromosomes randomly.",
    "def rotate_keys(store):\n    return store.rotate()",
    "x",
    *[f"Sentence number {i} about a topic of its own, {'with more words ' * (i % 7)}." for i in range(40)],
]


@pytest.fixture(scope="module")
def onnx_encoder() -> OnnxEncoder:
    return OnnxEncoder()  # exports once per machine into the cache


def test_onnx_fp32_matches_sentence_transformers(onnx_encoder: OnnxEncoder, minilm) -> None:
    ours, theirs = onnx_encoder.encode(TEXTS, batch_size=5), minilm.encode(TEXTS)
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine.min()
    assert onnx_encoder.fingerprint() == minilm.fingerprint()  # same vectors: one index serves both


def test_int8_is_close_and_recorded_as_such(minilm) -> None:
    int8 = make_encoder(None, "onnx-int8")
    cosine = (int8.encode(TEXTS) * minilm.encode(TEXTS)).sum(axis=1)
    assert cosine.mean() > 0.95
    assert int8.fingerprint()["quantization"] == "int8"
    assert encoder_for(int8.fingerprint()).fingerprint() == int8.fingerprint()


def test_query_never_imports_torch(tmp_path: Path, onnx_encoder: OnnxEncoder) -> None:
    docs = write_tree(tmp_path / "docs", CORPUS)
    index_paths(tmp_path / "ix", [docs])
    code = (
        "import sys, json\nfrom searchbert.cli import main\n"
        f"try: main(['query', 'office wifi password', '--index', {str(tmp_path / 'ix')!r}, '--json'])\n"
        "except SystemExit: pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "print(json.dumps(heavy), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
    assert json.loads(done.stdout)[0]["path"].endswith("it/wifi.md")


def test_int8_index_refuses_full_precision_and_back(tmp_path: Path) -> None:
    docs = write_tree(tmp_path / "docs", CORPUS)
    index_paths(tmp_path / "ix", [docs], backend="onnx-int8")
    with pytest.raises(IncompatibleIndex, match="int8"):
        index_paths(tmp_path / "ix", [docs], backend="onnx")
    assert index_paths(tmp_path / "ix", [docs]).unchanged == len(CORPUS)


def test_empty_batch(onnx_encoder: OnnxEncoder) -> None:
    assert onnx_encoder.encode([]).shape == (0, 384)
    assert np.isclose(np.linalg.norm(onnx_encoder.encode(["hello"])), 1.0)


def test_auto_backend_is_int8_for_the_bundled_model_with_full_precision_queries(minilm) -> None:
    auto = make_encoder(None)
    assert auto.backend == "onnx-int8" and auto.fingerprint()["quantization"] == "int8"
    queries = TEXTS[:8]
    exact = minilm.encode(queries)
    assert (auto.encode_queries(queries) * exact).sum(axis=1).min() >= 0.9999  # sentence-transformers' vectors
    assert (auto.encode(queries) * exact).sum(axis=1).min() < 0.9999  # the documents' side is int8


def test_auto_backend_for_another_model_keeps_torchs_vectors(minilm, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "my-model"
    shutil.copytree(minilm.folder, copy)  # the same weights as a local model: int8 was not measured for it
    auto = make_encoder(str(copy))
    assert auto.backend == "onnx" and "quantization" not in auto.fingerprint()
    assert (auto.encode(TEXTS[:8]) * minilm.encode(TEXTS[:8])).sum(axis=1).min() >= 0.9999


def test_an_int8_index_is_searched_with_full_precision_queries(tmp_path: Path, minilm) -> None:
    docs = write_tree(tmp_path / "docs", CORPUS)
    index_paths(tmp_path / "ix", [docs])  # auto: int8 documents
    with Index.open(tmp_path / "ix") as index:
        assert index.manifest.model["quantization"] == "int8"
        hit = index.search("office wifi password", k=1, mode="dense")[0]  # the score is the cosine
        vector = index.store.vectors_of([hit.chunk_id], index.manifest.dimension)[1][0]
        query = minilm.encode(["office wifi password"])[0]
        assert hit.path.endswith("it/wifi.md") and hit.score == pytest.approx(float(vector @ query), abs=1e-4)


def test_openvino_runs_the_same_vectors(minilm, tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    openvino = make_encoder(None, "openvino")
    cosine = (openvino.encode(TEXTS, batch_size=5) * minilm.encode(TEXTS)).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine.min()
    assert openvino.backend == "openvino" and openvino.fingerprint() == minilm.fingerprint()
    docs = write_tree(tmp_path / "docs", CORPUS)
    index_paths(tmp_path / "ix", [docs], backend="openvino")
    assert index_paths(tmp_path / "ix", [docs], backend="onnx").unchanged == len(CORPUS)  # one index, either runtime
    with Index.open(tmp_path / "ix", backend="openvino") as index:  # an existing index runs on the runtime asked for
        assert index.encoder.backend == "openvino"
        assert index.search("office wifi password", k=1)[0].path.endswith("it/wifi.md")


def test_openvino_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    with pytest.raises(ModelNotAvailable, match=r"searchbert\[openvino\]"):
        make_encoder(None, "openvino")


def test_the_optimised_graph_is_saved_once_and_gives_the_same_vectors(onnx_encoder: OnnxEncoder) -> None:
    from searchbert.onnx_encoder import optimized_file

    saved = optimized_file(onnx_encoder.path)
    saved.unlink(missing_ok=True)
    first = OnnxEncoder()
    fresh = first.encode(TEXTS[:6])  # optimised now, and saved
    assert saved.exists()
    again = OnnxEncoder().encode(TEXTS[:6])  # loaded as saved
    np.testing.assert_allclose(again, fresh, atol=1e-6)
    saved.write_bytes(b"not a model")  # a broken file is optimised again, never an error
    np.testing.assert_allclose(OnnxEncoder().encode(TEXTS[:6]), fresh, atol=1e-6)
    assert saved.stat().st_size > 1000
