"""`searchbert finetune encoder`: training data read strictly, hard negatives that are never labelled relevant, and a
fine-tuned model folder that searchbert indexes with."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from searchbert.errors import DatasetError
from searchbert.finetune import Pair, TrainingData, load_training_data, mine_negatives, split_queries

from .conftest import TOPICS, write_topic_pairs

ROOT = Path(__file__).resolve().parent.parent


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "bad,says",
    [
        ("{not json", "not JSON"),
        ('["a list"]', "expected an object"),
        ('{"query": "", "positive": "p"}', "'query' must be a non-empty string"),
        ('{"query": "q"}', "'positive' must be a non-empty string"),
        ('{"query": "q", "positive": "p", "negatives": "n"}', "'negatives' must be a list of strings"),
    ],
)
def test_a_bad_line_is_reported_with_its_number(tmp_path: Path, bad: str, says: str) -> None:
    path = _jsonl(tmp_path / "pairs.jsonl", ['{"query": "q1", "positive": "p1"}', bad])
    with pytest.raises(DatasetError, match=re.escape(f"pairs.jsonl:2: {says}")):  # the file and the line
        load_training_data(path)


def test_jsonl_and_beir_folders_give_pairs_and_the_labels(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "pairs.jsonl",
        [
            '{"query": "q1", "positive": "p1", "negatives": ["n1"]}',
            "",
            '{"query": "q1", "positive": "p2"}',
            '{"query": "q2", "positive": "p1"}',
        ],
    )
    data = load_training_data(path)
    assert [(p.query, p.positive, p.negatives) for p in data.pairs] == [
        ("q1", "p1", ("n1",)),
        ("q1", "p2", ()),
        ("q2", "p1", ()),
    ]
    ids = {text: i for i, text in data.corpus.items()}
    assert data.relevant == {"q0": {ids["p1"], ids["p2"]}, "q1": {ids["p1"]}}

    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": f"d{i}", "title": f"T{i}", "text": f"text {i}"}) for i in range(3)) + "\n"
    )
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "a", "text": "question a"}) + "\n")
    (beir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\na\td2\t1\na\td0\t0\n")
    data = load_training_data(beir)
    assert [(p.query, p.positive) for p in data.pairs] == [("question a", "T2\n\ntext 2")]  # grade 0 is not relevant
    assert data.relevant == {"a": {"d2"}} and len(data.corpus) == 3
    with pytest.raises(DatasetError, match="missing file"):
        load_training_data(beir, split="dev")


class KeywordModel:
    """A deterministic stand-in for a SentenceTransformer: a text's vector counts the letters a-h in it."""

    def encode(self, texts, **_kwargs):
        out = np.array([[t.count(c) for c in "abcdefgh"] for t in texts], dtype=np.float32) + 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_mined_negatives_are_ranked_high_but_never_labelled_relevant() -> None:
    corpus = {"r1": "aaaa", "r2": "aaab", "u1": "aaac", "u2": "aabb", "u3": "aacc", "far": "hhhh"}
    data = TrainingData([Pair("aaaa", "aaaa", (), "q")], corpus, {"q": {"r1", "r2"}}, "test")
    (mined,) = mine_negatives(KeywordModel().encode, data.pairs, data, skip=1)
    # unlabelled by rank: u1 (aaac), then u2/u3; the first is skipped (often an unlabelled positive)
    assert mined.negatives[0] in {"aabb", "aacc"} and mined.negatives[0] not in {"aaaa", "aaab"}
    given = [Pair("aaaa", "aaaa", ("hhhh",), "q")]
    assert mine_negatives(KeywordModel().encode, given, data) == given  # given negatives are kept


def test_held_out_queries_are_never_trained_on() -> None:
    pairs = [Pair(f"q{i}", f"p{i}{j}", (), f"q{i}") for i in range(20) for j in range(2)]
    data = TrainingData(pairs, {}, {}, "test")
    train, dev = split_queries(data, 0.2, seed=1)
    assert len(dev) == 4 and not {p.query_id for p in train} & set(dev)
    assert split_queries(data, 0.2, seed=1) == (train, dev)  # the seed decides


def test_blending_mixes_floating_weights_and_keeps_the_rest() -> None:
    import torch

    from searchbert.blending import blend_weights
    from searchbert.errors import InvalidArgument

    base = {"w": torch.tensor([0.0, 2.0]), "ids": torch.tensor([0, 1])}
    tuned = {"w": torch.tensor([1.0, 4.0]), "ids": torch.tensor([0, 1])}
    assert torch.equal(blend_weights(base, tuned, 0.0)["w"], base["w"])
    assert torch.equal(blend_weights(base, tuned, 1.0)["w"], tuned["w"])
    half = blend_weights(base, tuned, 0.5)
    assert torch.allclose(half["w"], torch.tensor([0.5, 3.0])) and half["ids"].dtype == torch.int64
    with pytest.raises(InvalidArgument):
        blend_weights(base, {"w": tuned["w"]}, 0.5)


def test_auto_keeps_the_best_held_out_share_that_forgets_nothing_on_the_probe() -> None:
    from searchbert.blending import BlendPoint, choose

    points = [
        BlendPoint(0.0, 0.70, 0.600),
        BlendPoint(0.5, 0.80, 0.598),  # within the tolerance (0.005) of the base model on the probe
        BlendPoint(0.75, 0.84, 0.596),  # best of the safe ones
        BlendPoint(1.0, 0.85, 0.590),  # best on the held-out queries, but forgets
    ]
    assert choose(points) == 0.75
    assert choose(points, tolerance=0.02) == 1.0
    assert choose([BlendPoint(0.0, 0.7, 0.6), BlendPoint(0.5, 0.8, 0.6), BlendPoint(1.0, 0.8, 0.6)]) == 0.5  # a tie
    assert choose([BlendPoint(0.0, 0.7, 0.6), BlendPoint(1.0, 0.5, 0.7)]) == 0.0  # training hurt: the base is kept
    assert choose([BlendPoint(0.0, None, 0.6), BlendPoint(0.5, None, 0.6), BlendPoint(1.0, None, 0.5)]) == 0.5


def test_auto_stops_at_the_first_share_that_forgets() -> None:
    """Forgetting grows with the share: a larger share that passes the probe after a smaller one failed it passed by
    the probe's noise, and is not kept however well it does on the held-out queries."""
    from searchbert.blending import BlendPoint, choose

    points = [
        BlendPoint(0.0, 0.80, 0.300),
        BlendPoint(0.25, 0.83, 0.303),
        BlendPoint(0.5, 0.85, 0.298),
        BlendPoint(0.75, 0.87, 0.294),  # loses 0.006 on the probe
        BlendPoint(1.0, 0.88, 0.299),  # within the tolerance again: noise
    ]
    assert choose(points) == 0.5
    assert choose(list(reversed(points))) == 0.5  # whatever order they come in
    assert choose([BlendPoint(0.0, None, 0.6), BlendPoint(0.5, None, 0.59), BlendPoint(1.0, None, 0.6)]) == 0.0


@pytest.mark.parametrize("value", ["1.5", "-0.1", "most"])
def test_a_blend_outside_0_to_1_is_refused_before_anything_loads(tmp_path: Path, value: str) -> None:
    from click.testing import CliRunner

    from searchbert.cli import main

    data = write_topic_pairs(tmp_path / "pairs.jsonl")
    result = CliRunner().invoke(main, ["finetune", "encoder", str(data), "-o", str(tmp_path / "m"), "--blend", value])
    assert result.exit_code != 0 and "between 0 and 1" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "m").exists()


def test_the_shipped_general_probe_is_an_inverse_cloze_task() -> None:
    import gzip

    from searchbert.blending import PROBE

    probe = json.loads(gzip.decompress(PROBE.read_bytes()))
    corpus, queries = probe["corpus"], probe["queries"]
    assert len(corpus) >= 1000 and len(queries) >= 250
    for row in queries.values():  # each sentence was taken out of the one passage it must find
        assert row["relevant"] in corpus and row["text"] not in corpus[row["relevant"]]
        assert len(row["text"].split()) >= 8


def _general(folder: Path) -> Path:
    """A small general collection (BEIR layout) the blend is checked against instead of the shipped probe."""
    (folder / "qrels").mkdir(parents=True)
    docs = {f"d{i}": f"The {t} has its own page, number {i}." for i, t in enumerate(["harbour", "violin", "orchard"])}
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in docs.items()))
    queries = {"q0": "a harbour", "q1": "playing the violin", "q2": "apple orchard"}
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\nq2\td2\t1\n")
    return folder


@pytest.mark.model
def test_finetune_writes_a_model_searchbert_indexes_with(tmp_path: Path) -> None:
    from searchbert.blending import BlendPoint, choose

    data = write_topic_pairs(tmp_path / "pairs.jsonl")
    topics = TOPICS
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "searchbert", "finetune", "encoder", str(data), "-o", str(tmp_path / "model"),
         "--epochs", "1", "--batch-size", "4", "--dev-share", "0.25", "--general", str(_general(tmp_path / "g"))],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "held-out nDCG@10" in run.stdout and "--model" in run.stdout
    model = tmp_path / "model"
    report = json.loads((model / "finetune.json").read_text())
    assert report["dev_queries"] == 4 and report["train_queries"] == 12 and "ndcg@10" in report["dev_after"]
    assert report["settings"]["loss"] == "MultipleNegativesRankingLoss" and report["settings"]["seed"] == 42
    assert (model / "finetune.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curve, general = report["blend_curve"], report["general_curve"]  # nDCG@10 at each share of the tuned weights
    assert list(curve) == list(general) == ["0", "0.25", "0.5", "0.75", "1"] and report["blend_chosen"] == "auto"
    assert curve["0"] == pytest.approx(report["dev_before"]["ndcg@10"], abs=1e-3)  # share 0: the base model
    kept = report["blend"]  # the share the measurements choose, and the model saved at it
    assert kept == choose([BlendPoint(float(a), curve[a], general[a]) for a in curve])
    assert curve[f"{kept:g}"] == pytest.approx(report["dev_after"]["ndcg@10"], abs=1e-3)
    assert f"kept {kept:g} of the fine-tuned weights (chosen by measurement)" in run.stdout
    docs = tmp_path / "docs"
    docs.mkdir()
    for t in topics:
        (docs / f"{t}.md").write_text(f"All about the {t}.")
    ix = str(tmp_path / "ix")
    index = subprocess.run(
        [sys.executable, "-m", "searchbert", "index", str(docs), "--index", ix, "--model", str(model)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert index.returncode == 0, index.stderr[-2000:]
    query = subprocess.run(
        [sys.executable, "-m", "searchbert", "query", "glacier", "--index", ix, "--json", "-k", "1"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert json.loads(query.stdout)[0]["path"].endswith("glacier.md")


def test_training_on_the_cpu_does_not_ask_for_pinned_memory(tmp_path: Path) -> None:
    """Pinned memory only speeds copies to a GPU: asked for on a CPU, torch warns at every epoch that it is unused."""
    import torch
    from sentence_transformers import SentenceTransformerTrainingArguments

    from searchbert.finetune import trainer_settings

    arguments = SentenceTransformerTrainingArguments(**trainer_settings(tmp_path, 100, 1, 16, 2e-5, 0, None, False))
    assert arguments.dataloader_pin_memory is torch.cuda.is_available()
