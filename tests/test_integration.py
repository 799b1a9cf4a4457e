"""The real bundled MiniLM end to end: real semantic retrieval, faithful embeddings, model errors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from searchbert import Index
from searchbert.encoders import DEFAULT_MODEL, SentenceTransformerEncoder, resolve_model
from searchbert.errors import ModelNotAvailable

from .conftest import write_tree

pytestmark = pytest.mark.model

# queries share (almost) no words with their answers: only meaning connects them
CORPUS = {
    "security/key-rotation.md": "# Key management\n\nEvery ninety days the cryptographic material used to sign "
    "release artifacts is replaced. Generate the new pair offline, publish the public half, and revoke the "
    "previous certificate once all clients trust the successor.",
    "ops/database-backup.md": "# Backups\n\nPostgreSQL snapshots are taken at 02:00 UTC and shipped to cold "
    "storage. Restoring means fetching the latest dump and replaying the write-ahead log.",
    "hr/vacation.md": "# Time off\n\nStaff accrue twenty-five paid leave days per year. Requests go to your "
    "manager at least two weeks ahead.",
    "kitchen/coffee.md": "# The espresso machine\n\nDescale the boiler monthly with citric acid. Grind beans "
    "fine and tamp firmly for a rich crema.",
    "garden/tomatoes.md": "# Growing tomatoes\n\nSow seeds indoors in March, transplant after the last frost, "
    "and water deeply at the roots.",
    "travel/visa.md": "# Visas\n\nCitizens of many countries need an entry permit. Apply at the consulate with "
    "your passport and proof of funds.",
    "finance/expenses.md": "# Expense claims\n\nSubmit receipts within thirty days through the reimbursement "
    "portal; the finance team pays claims at the end of the month.",
    "it/wifi.md": "# Wireless network\n\nThe office wireless network is called Meadow. Ask the front desk for "
    "the password printed on the weekly card.",
}
QUERIES = {
    "how do I rotate the signing keys": "security/key-rotation.md",
    "how can I get my data back after losing the db": "ops/database-backup.md",
    "how many holidays do employees get": "hr/vacation.md",
    "cleaning the coffee maker": "kitchen/coffee.md",
    "when should I plant vegetables outside": "garden/tomatoes.md",
    "getting reimbursed for a business trip purchase": "finance/expenses.md",
    "what is the internet password": "it/wifi.md",
}


@pytest.fixture(scope="module")
def real_index(tmp_path_factory: pytest.TempPathFactory, minilm: SentenceTransformerEncoder) -> Index:
    root = write_tree(tmp_path_factory.mktemp("docs"), CORPUS)
    ix = Index.create(tmp_path_factory.mktemp("ix") / "ix", encoder=minilm)
    ix.add([root])
    return ix


def test_paraphrased_questions_find_the_right_document(real_index: Index) -> None:
    results = real_index.search_many(list(QUERIES), k=3)
    assert len(results) == len(QUERIES) and all(len(hits) == 3 for hits in results)
    for (query, want), hits in zip(QUERIES.items(), results, strict=True):
        assert hits[0].path.endswith(want), (query, [h.path for h in hits])


def test_embeddings_equal_plain_sentence_transformers(minilm: SentenceTransformerEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    texts = ["A short sentence.", "Straße und Café — ünïcödé.", "word " * 400]
    plain = SentenceTransformer(str(resolve_model(None)[1]), device="cpu").encode(texts, normalize_embeddings=True)
    ours = minilm.encode(texts)
    assert ours.dtype == np.float32 and ours.shape == (3, 384)
    np.testing.assert_allclose(ours, plain, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_default_model_resolves_offline_and_describes_itself(minilm: SentenceTransformerEncoder) -> None:
    assert minilm.model_id == DEFAULT_MODEL
    assert minilm.max_tokens == 254  # 256 positions less [CLS] and [SEP]
    fingerprint = minilm.fingerprint()
    weights = fingerprint.pop("weights")  # a hash of the weights file: the bundled model is no hub snapshot
    assert len(weights) == 16 and int(weights, 16) >= 0
    assert fingerprint == {
        "id": DEFAULT_MODEL,
        "dimension": 384,
        "pooling": "mean",
        "normalized": True,
        "max_tokens": 254,
    }


def test_uncached_hub_id_fails_fast_and_says_how_to_pass_a_path() -> None:
    started = time.monotonic()
    with pytest.raises(ModelNotAvailable, match="--model /path/to/DIR"):
        SentenceTransformerEncoder("sentence-transformers/some-model-not-here")
    assert time.monotonic() - started < 10


def test_local_model_folder_and_bad_folders(tmp_path: Path) -> None:
    folder = resolve_model(None)[1]
    enc = SentenceTransformerEncoder(str(folder))
    assert enc.model_id == str(folder) and enc.max_tokens == 254
    with pytest.raises(ModelNotAvailable, match="does not exist"):
        SentenceTransformerEncoder(str(tmp_path / "missing"))
    with pytest.raises(ModelNotAvailable, match="not a model folder"):
        SentenceTransformerEncoder(str(tmp_path))
