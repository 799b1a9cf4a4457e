"""Static embedding models (model2vec): indexed, searched and reopened with their own runner; distilled offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from searchbert import Index
from searchbert.errors import InvalidArgument
from searchbert.records import Document

from .conftest import TOPICS

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def static_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model2vec model over MiniLM's vocabulary, its vectors random but fixed (no torch, no distilling)."""
    from model2vec import StaticModel

    from searchbert.encoders import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(resolve_model(None)[1])
    vectors = np.random.default_rng(5).normal(size=(tokenizer.get_vocab_size(), 48)).astype(np.float32)
    folder = tmp_path_factory.mktemp("static") / "tiny-static"
    StaticModel(vectors, tokenizer, normalize=True).save_pretrained(str(folder))
    return folder


def test_a_static_model_indexes_searches_and_reopens_with_its_own_runner(tmp_path: Path, static_model: Path) -> None:
    from model2vec import StaticModel

    from searchbert.static_encoder import StaticEncoder

    docs = [Document(f"d{i}", f"A page about the {t}: {t} facts, {t} history.") for i, t in enumerate(TOPICS)]
    with Index.create(tmp_path / "ix", str(static_model)) as ix:
        assert isinstance(ix.encoder, StaticEncoder) and ix.manifest.dimension == 48
        report = ix.add_documents(docs)
        assert report.chunks_embedded == len(docs)
    with Index.open(tmp_path / "ix") as again:  # its runner chosen from what the index recorded
        hits = again.search("glacier", k=1, mode="dense")
        assert hits[0].path == f"d{TOPICS.index('glacier')}"
        assert isinstance(again.encoder, StaticEncoder)
        stored = again.vectors.vectors([hits[0].chunk_id])[1][0]
    # the vector stored is model2vec's own for the text as embedded (no title: no prefix)
    text = docs[TOPICS.index("glacier")].text
    own = StaticModel.from_pretrained(str(static_model), force_download=False).encode([text])[0]
    assert np.allclose(stored, own / np.linalg.norm(own), atol=1e-5)


def test_a_static_model_has_one_runner(static_model: Path) -> None:
    from searchbert.models import make_encoder

    with pytest.raises(InvalidArgument, match="static model"):
        make_encoder(str(static_model), "onnx")
    with pytest.raises(InvalidArgument, match="--backend static"):
        make_encoder(None, "static")


@pytest.mark.slow
@pytest.mark.model
def test_distill_the_bundled_model_then_index_and_query_with_it(tmp_path: Path) -> None:
    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "searchbert", *args], capture_output=True, text=True,
                              timeout=300, cwd=REPO)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    cli("distill", str(tmp_path / "m"), "--dimensions", "64")
    assert (tmp_path / "m" / "model.safetensors").exists()
    cli("index", str(REPO / "corpora" / "scifact-sample"), "--index", str(tmp_path / "ix"), "--model",
        str(tmp_path / "m"), "-q")  # fmt: skip
    out = cli("query", "which transcription factor keeps blood stem cells dormant", "--index", str(tmp_path / "ix"),
              "-k", "5", "--mode", "dense")  # fmt: skip
    assert "stem" in out.lower()


def test_a_static_model_named_by_hub_id_is_fetched_and_then_answers_offline(tmp_path: Path, static_model: Path) -> None:
    import json
    import os

    from .hub_server import serving

    def cli(args: list[str], endpoint: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "SEARCHBERT_OFFLINE")}
        env |= {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO)}
        return subprocess.run([sys.executable, "-m", "searchbert", *args], capture_output=True, text=True,
                              timeout=120, env=env)  # fmt: skip

    (tmp_path / "docs").mkdir()
    for i, topic in enumerate(TOPICS):
        (tmp_path / "docs" / f"{topic}.md").write_text(f"# {topic}\n\nAll about the {topic}, page {i}.\n")
    with serving({"test-org/potion-tiny": static_model}) as hub:
        made = cli(["index", str(tmp_path / "docs"), "--index", str(tmp_path / "ix"), "--model",
                    "test-org/potion-tiny", "-q"], hub.endpoint)  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert "fetching test-org/potion-tiny" in made.stderr
    asked = cli(["--offline", "query", "glacier", "--index", str(tmp_path / "ix"), "--json", "--mode", "dense"],
                "http://127.0.0.1:9")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)[0]["path"].endswith("glacier.md")
