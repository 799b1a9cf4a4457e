"""`searchbert eval`: metric wiring on hand-made collections with known scores, caching, and bad input."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from searchbert.cli import main
from searchbert.errors import DatasetError
from searchbert.evaluation import evaluate, load_collection, measure

from .conftest import FakeEncoder

CORPUS = [
    {"_id": "d1", "title": "Volcanoes", "text": "Lava erupts from volcanoes as molten rock."},
    {"_id": "d2", "title": "Glaciers", "text": "Glaciers are rivers of ice that carve valleys."},
    {"_id": "d3", "title": "Deserts", "text": "Deserts receive little rain and have sand dunes."},
    {"_id": "d4", "title": "Oceans", "text": "Oceans cover most of the planet with salt water."},
]
QUERIES = [
    {"_id": "q1", "text": "molten lava volcanoes"},
    {"_id": "q2", "text": "ice glaciers valleys"},
    {"_id": "q3", "text": "sand dunes rain"},
    {"_id": "q9", "text": "not judged"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq3\td3\t1\n"


def make_collection(root: Path, corpus=CORPUS, queries=QUERIES, qrels=QRELS, split="test") -> Path:
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / f"{split}.tsv").write_text(qrels)
    return root


def test_measure_matches_hand_computed_values() -> None:
    qrels = {"a": {"d1": 1}, "b": {"d1": 1, "d2": 1}, "c": {"d9": 1}}
    run = {
        "a": {"d2": 0.9, "d1": 0.5},  # relevant at rank 2
        "b": {"d1": 0.9, "d3": 0.8, "d2": 0.7},  # relevant at ranks 1 and 3
        # c: nothing retrieved, still counted as 0
    }
    m = measure(qrels, run)
    ndcg_a = 1 / math.log2(3)
    ndcg_b = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert m["nDCG@10"] == pytest.approx((ndcg_a + ndcg_b + 0) / 3)
    assert m["MRR@10"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["MAP"] == pytest.approx((0.5 + (1 + 2 / 3) / 2 + 0) / 3)
    assert m["R@100"] == pytest.approx((1 + 1 + 0) / 3)


def test_bm25_on_a_collection_it_answers_perfectly(tmp_path: Path) -> None:
    result = evaluate(make_collection(tmp_path / "c"), mode="bm25")
    assert result.queries == 3  # only judged queries count
    assert result.metrics == {"nDCG@10": 1.0, "R@100": 1.0, "MRR@10": 1.0, "MAP": 1.0}


def test_dense_eval_uses_the_index_and_caches_it(tmp_path: Path) -> None:
    folder = make_collection(tmp_path / "c")
    enc = FakeEncoder()
    first = evaluate(folder, encoder=enc, cache_dir=tmp_path / "cache")
    assert first.metrics["nDCG@10"] == 1.0
    assert len(enc.embedded) == len(CORPUS) + 3  # every document once, then the 3 judged queries
    assert "Volcanoes Lava erupts" in enc.embedded[0] or any("Volcanoes Lava" in t for t in enc.embedded)
    enc.calls.clear()
    second = evaluate(folder, encoder=enc, cache_dir=tmp_path / "cache")
    assert enc.embedded == [q["text"] for q in QUERIES[:3]], "a cached collection re-embeds nothing but the queries"
    assert second.metrics == first.metrics
    chunked = evaluate(folder, encoder=FakeEncoder(), cache_dir=tmp_path / "cache", protocol="chunked")
    assert chunked.protocol == "chunked" and len(list((tmp_path / "cache").iterdir())) == 2


def test_a_model_retrained_under_the_same_name_gets_an_index_of_its_own(tmp_path: Path) -> None:
    """The cache is keyed by the weights, not only the model's name: a folder fine-tuned again is embedded again
    (it found the old model's index, which refused it with advice `eval` has no option for: --rebuild)."""

    class Retrained(FakeEncoder):
        def __init__(self, weights: str) -> None:
            super().__init__()
            self.weights = weights

        def fingerprint(self) -> dict:
            return super().fingerprint() | {"weights": self.weights}

    folder = make_collection(tmp_path / "c")
    evaluate(folder, encoder=Retrained("aaa"), cache_dir=tmp_path / "cache")
    again = Retrained("bbb")
    evaluate(folder, encoder=again, cache_dir=tmp_path / "cache")
    assert len(again.embedded) == len(CORPUS) + 3
    same = Retrained("bbb")
    evaluate(folder, encoder=same, cache_dir=tmp_path / "cache")
    assert same.embedded == [q["text"] for q in QUERIES[:3]]


def test_a_collection_copied_anew_finds_its_cached_index(tmp_path: Path) -> None:
    """The same corpus written again (a fresh copy, a new mtime) is the same collection: nothing is embedded again;
    a corpus whose text changed is not."""
    folder = make_collection(tmp_path / "c")
    evaluate(folder, encoder=FakeEncoder(), cache_dir=tmp_path / "cache")
    corpus = folder / "corpus.jsonl"
    text = corpus.read_bytes()
    corpus.unlink()
    corpus.write_bytes(text)
    os.utime(corpus, (1_000_000_000, 1_000_000_000))
    enc = FakeEncoder()
    evaluate(folder, encoder=enc, cache_dir=tmp_path / "cache")
    assert enc.embedded == [q["text"] for q in QUERIES[:3]], "a copy of the same corpus re-embedded its documents"
    corpus.write_bytes(text.replace(b"Lava", b"Magma"))
    evaluate(folder, encoder=FakeEncoder(), cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 2


@pytest.mark.parametrize(
    "change,message",
    [
        ({"qrels": QRELS + "q1\tnope\t1\n"}, "test.tsv:5: corpus id 'nope' is not in corpus.jsonl"),
        ({"qrels": QRELS + "q7\td1\t1\n"}, "test.tsv:5: query id 'q7' is not in queries.jsonl"),
        ({"qrels": "query-id\tcorpus-id\tscore\n"}, "judges no queries"),
        ({"qrels": QRELS + "q1 d1 1\n"}, "test.tsv:5: expected"),
        ({"split": "dev"}, "missing file"),
    ],
)
def test_bad_collections_name_the_file_and_line(tmp_path: Path, change: dict, message: str) -> None:
    folder = make_collection(tmp_path / "c", **change)
    with pytest.raises(DatasetError, match=message.replace("'", ".")):
        load_collection(folder, "test")


def test_malformed_json_line_is_named(tmp_path: Path) -> None:
    folder = make_collection(tmp_path / "c")
    with (folder / "corpus.jsonl").open("a") as fh:
        fh.write('{"_id": "d5", "text": \n')
    with pytest.raises(DatasetError, match=r"corpus.jsonl:5: malformed JSON"):
        load_collection(folder)
    make_collection(folder)
    (folder / "queries.jsonl").unlink()
    with pytest.raises(DatasetError, match="missing file"):
        load_collection(folder)


def test_cli_eval_table_json_and_run_file(tmp_path: Path) -> None:
    folder = make_collection(tmp_path / "c")
    result = CliRunner().invoke(main, ["eval", str(folder), "--mode", "bm25"])
    assert result.exit_code == 0, result.output
    assert "nDCG@10 100.00" in result.output
    run_file = tmp_path / "run.trec"
    out = CliRunner().invoke(main, ["eval", str(folder), "--mode", "bm25", "--json", "--run-file", str(run_file)])
    data = json.loads(out.stdout)
    assert data["metrics"]["MRR@10"] == 1.0 and data["queries"] == 3
    first = run_file.read_text().splitlines()[0].split()
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "searchbert"


def test_cli_eval_bad_collection_is_a_clear_error(tmp_path: Path) -> None:
    folder = make_collection(tmp_path / "c", qrels=QRELS + "q1\tnope\t1\n")
    result = CliRunner().invoke(main, ["eval", str(folder), "--mode", "bm25"])
    assert result.exit_code == 1 and "corpus id 'nope'" in result.output and "Traceback" not in result.output


def test_compare_runs_every_mode_and_draws_them(tmp_path: Path) -> None:
    from xml.etree import ElementTree

    from searchbert.evaluation import compare
    from searchbert.plots import plot_modes

    compared = compare(make_collection(tmp_path / "c"), encoder=FakeEncoder(), cache_dir=tmp_path / "cache")
    assert [label for label, _, _ in compared] == ["dense", "bm25", "hybrid"]
    for _, result, recall in compared:
        assert len(recall) == 100 and recall == sorted(recall)  # recall@k never falls as k grows
        assert recall[-1] == pytest.approx(result.metrics["R@100"])
    import matplotlib.image

    png = plot_modes(compared, tmp_path / "modes.png")
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 800 and pixels.std() > 0.05  # a drawing, not a blank
    svg = ElementTree.parse(plot_modes(compared, tmp_path / "modes.svg"))
    words = " ".join(t.text or "" for t in svg.iter() if t.tag.endswith("text"))
    assert all(w in words for w in ("dense", "bm25", "hybrid", "recall@k", "nDCG@10", "100.0"))


def test_cli_compare_prints_one_table_and_refuses_an_unknown_chart_format(tmp_path: Path) -> None:
    folder = make_collection(tmp_path / "c")
    bad = CliRunner().invoke(main, ["eval", str(folder), "--plot", str(tmp_path / "chart.gif")])
    assert bad.exit_code == 2 and "--plot writes .png or .svg" in bad.output
    assert not (tmp_path / "chart.gif").exists()


@pytest.mark.model
def test_cli_eval_plot_writes_the_chart(tmp_path: Path) -> None:
    folder = make_collection(tmp_path / "c")
    chart = tmp_path / "modes.png"
    result = CliRunner().invoke(main, ["eval", str(folder), "--plot", str(chart), "--cache-dir", str(tmp_path / "x"),
                                       "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {line.split()[0] for line in result.stdout.splitlines()[2:]}
    assert rows == {"dense", "bm25", "hybrid"} and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
