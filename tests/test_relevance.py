"""Calibrated relevance: every hit says how likely it is to be relevant, on one scale for every query, and a query
with nothing to find says "No good match" (CLI), gets no hits (API, adapters, MCP) and says so on the page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from searchbert.bm25 import BM25Retriever
from searchbert.cli import main
from searchbert.errors import InvalidArgument
from searchbert.index import Index
from searchbert.records import Document, SearchOptions
from searchbert.relevance import (
    SHIPPED,
    Calibration,
    Evidence,
    Sample,
    expected_calibration_error,
    fit,
    for_model,
)

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "corpora" / "scifact-sample"
#: the two queries issue 23 found answered as confidently as a good match on the demo index
NONSENSE, OFF_TOPIC = "qwxzv blorfing zanthium", "best pizza recipe with mozzarella"
GOOD = "GATA-3 regulates hematopoietic stem cell maintenance"


def test_bm25_share_of_best_is_zero_without_the_words_and_comparable_across_queries() -> None:
    bm25 = BM25Retriever([1, 2, 3], ["a lighthouse keeper", "glacier melt water", "lighthouse lighthouse lighthouse"])
    assert bm25.share_of_best("qwxzv blorfing", [1, 2, 3]) == [0.0, 0.0, 0.0]
    assert bm25.share_of_best("the of", [1]) == [0.0]  # stopwords only: nothing to match
    one, _, many = bm25.share_of_best("lighthouse", [1, 2, 3])
    assert 0 < one < many < 1
    # a word the index never saw counts against the query: half of it found scores less
    assert bm25.share_of_best("lighthouse zanthium", [3])[0] < many
    assert bm25.share_of_best("lighthouse", [99]) == [0.0]
    for ids in ([3, 1], ["b", "a"]):  # ids out of order, or not numbers: found all the same
        other = BM25Retriever(ids, ["lighthouse", "glacier"])
        assert [s > 0 for s in other.share_of_best("lighthouse", [ids[1], ids[0]])] == [False, True]


def test_relevance_grows_with_the_evidence_and_falls_back_to_words() -> None:
    shipped = for_model("sentence-transformers/all-MiniLM-L6-v2")
    assert {"dense", "bm25", "hybrid"} <= set(shipped.weights) and 0 < shipped.threshold < 1
    low = shipped.relevance("hybrid", Evidence(cosine=0.1, bm25_fraction=0.0))
    high = shipped.relevance("hybrid", Evidence(cosine=0.7, bm25_fraction=0.5))
    assert low is not None and high is not None and low < shipped.threshold < high
    # a chunk without a vector yet is judged by its words alone, as hybrid search ranks it
    assert shipped.relevance("hybrid", Evidence(None, 0.5)) == shipped.relevance("bm25", Evidence(None, 0.5))
    other = for_model("someone/else")  # no weights for its cosines: words alone, and dense search cannot tell
    assert other.model == "" and other.relevance("dense", Evidence(0.9, None)) is None
    assert other.relevance("hybrid", Evidence(0.9, 0.5)) == other.relevance("bm25", Evidence(None, 0.5))
    again = Calibration.from_dict(json.loads(json.dumps(shipped.to_dict())))
    assert again == shipped
    data = json.loads(SHIPPED.read_text())  # the shipped file says what it was fitted on
    assert all(c["fitted_on"] for c in data["calibrations"])


def test_fit_learns_a_rising_curve_and_a_threshold_that_keeps_the_first_relevant() -> None:
    rows = []
    for n in range(200):
        cosine = n / 200
        first = n % 10 == 0
        rows.append(Sample("dense", Evidence(cosine, None), relevant=cosine > 0.6 or first, first=first))
    calibration = fit(rows, "m", keep=0.9)
    assert calibration.weights["dense"][1] > 0  # more cosine, more likely relevant
    firsts = sorted(calibration.relevance("dense", s.evidence) for s in rows if s.first)
    kept = sum(r >= calibration.threshold for r in firsts)  # type: ignore[operator]
    assert kept >= 0.9 * len(firsts) and calibration.threshold > 0


def test_expected_calibration_error() -> None:
    assert expected_calibration_error([(0.25, True), (0.25, False), (0.25, False), (0.25, False)]) == 0.0
    assert expected_calibration_error([(0.9, False), (0.9, False)]) == pytest.approx(0.9)
    assert expected_calibration_error([(1.0, True)]) == 0.0


def test_min_relevance_is_a_probability() -> None:
    with pytest.raises(InvalidArgument, match="probability"):
        SearchOptions(min_relevance=1.5)


def test_words_only_index_drops_what_has_none_of_the_query_words(tmp_path: Path, fake_encoder) -> None:
    with Index.create(tmp_path / "ix", encoder=fake_encoder) as index:
        index.add_documents([Document(path=f"d{i}", text=f"lighthouse keeper number {i} logbook") for i in range(5)])
        everything = index.search("qwxzv blorfing", mode="hybrid")
        assert everything and all(h.relevance is not None for h in everything)  # found, but on no evidence
        assert index.search("qwxzv blorfing", mode="hybrid", min_relevance=index.calibration.threshold) == []
        kept = index.search("lighthouse keeper logbook", mode="bm25", min_relevance=index.calibration.threshold)
        assert kept and [h.rank for h in kept] == list(range(1, len(kept) + 1))


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory, minilm) -> Path:  # type: ignore[no-untyped-def]
    """The demo's own documents (the first 60 of corpora/scifact-sample), indexed with the real model."""
    docs = tmp_path_factory.mktemp("docs")
    for path in sorted(SAMPLE.glob("*.md"))[:60]:
        shutil.copy(path, docs)
    shutil.copy(next(SAMPLE.glob("10165258-*.md")), docs)  # the GATA-3 abstract
    ix = tmp_path_factory.mktemp("ix") / "ix"
    with Index.create(ix, encoder=minilm) as index:
        index.add([docs])
    return ix


def query(ix: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["query", *args, "--index", str(ix), "--no-server"])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.model
def test_nonsense_and_off_topic_queries_say_no_good_match(demo_index: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    for text in (NONSENSE, OFF_TOPIC):
        out = query(demo_index, text)
        assert out.startswith("No good match") and "--show-weak" in out
        weak = query(demo_index, text, "--show-weak", "-k", "2")
        assert " 1. " in weak and "relevance " in weak
        assert json.loads(query(demo_index, text, "--json")) == []
    out = query(demo_index, GOOD, "-k", "3")
    assert out.startswith(" 1. ") and "10165258-gata-3" in out.splitlines()[0]
    assert "No good match" not in out
    assert query(demo_index, GOOD, "-k", "3", "--show-weak") == out  # weak hits are shown only when none is good
    with Index.open(demo_index, encoder=minilm) as index:
        for mode in ("hybrid", "dense"):  # the API: an empty list when asked for relevant hits only
            floor = index.calibration.threshold
            assert index.search(NONSENSE, mode=mode, min_relevance=floor) == []
            best = index.search(GOOD, mode=mode, min_relevance=floor)
            assert best and "10165258" in best[0].path and best[0].relevance > floor
            # the ranking score says nothing across queries; relevance does
            junk = index.search(OFF_TOPIC, mode=mode)[0]
            assert junk.relevance < best[0].relevance
    assert "relevance 0" not in query(demo_index, GOOD, "--min-relevance", "0", "-k", "1")
    status = CliRunner().invoke(main, ["status", "--index", str(demo_index)])
    assert "relevance:  this model's weights; hits under 7% are no good match" in status.stdout


@pytest.mark.model
def test_langchain_score_threshold_filters_on_relevance(demo_index: Path) -> None:
    pytest.importorskip("langchain_core")
    from searchbert.integrations.langchain import SearchbertRetriever, SearchbertVectorStore

    store = SearchbertVectorStore(demo_index)
    floor = store.index.calibration.threshold
    assert store.similarity_search_with_relevance_scores(NONSENSE, k=3, score_threshold=floor) == []
    found = store.similarity_search_with_relevance_scores(GOOD, k=3, score_threshold=floor)
    assert found and "10165258" in found[0][0].id and 0 < found[0][1] <= 1
    retriever = SearchbertRetriever(index=demo_index, k=3, min_relevance=floor)
    assert retriever.invoke(OFF_TOPIC) == []
    docs = retriever.invoke(GOOD)
    assert docs and docs[0].metadata["relevance"] >= floor


def write_judged(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    """(query id, text, relevant document id) rows as a BEIR-style folder of judged queries."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": x}) + "\n" for q, x, _ in rows))
    lines = "".join(f"{q}\t{d}\t1\n" for q, _, d in rows)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + lines)
    return folder


def test_calibrate_fits_an_index_on_its_own_judged_queries(tmp_path: Path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    """A model searchbert ships no weights for: dense relevance is unknown until the index is calibrated on judged
    queries of its own; it stays so after a reopen, until reset."""
    from searchbert.evaluation import load_judgements
    from searchbert.relevance import calibrate

    from .conftest import TOPICS, write_tree

    docs = write_tree(tmp_path / "docs", {f"{t}.md": f"# {t}\n\nAll about the {t}, the {t} again." for t in TOPICS})
    rows = [(f"q{n}-{t}", f"tell me about the {t}" if n else f"{t} facts", f"{t}.md") for t in TOPICS for n in (0, 1)]
    queries, qrels = load_judgements(write_judged(tmp_path / "judged", rows))
    with Index.create(tmp_path / "ix", encoder=fake_encoder) as index:
        index.add([docs])
        assert index.search("lighthouse", mode="dense")[0].relevance is None
        index.set_calibration(calibrate(index, queries, qrels))
    with Index.open(tmp_path / "ix", encoder=fake_encoder) as index:
        assert index.calibration.model == "fake/hashing" and index.calibration.threshold > 0
        assert index.search("lighthouse", mode="dense")[0].relevance is not None
        with pytest.raises(InvalidArgument, match="at least 10"):
            calibrate(index, dict(list(queries.items())[:4]), qrels)
        index.set_calibration(None)
        assert index.calibration.model == "" and index.search("lighthouse", mode="dense")[0].relevance is None


@pytest.mark.model
def test_calibrate_command_on_the_demo_documents(demo_index: Path, tmp_path: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    """Each document's title as a judged query (ids relative to the folder, as a user writes them)."""
    with Index.open(demo_index, encoder=minilm) as index:
        titles = {Path(h.path).name: h.title for h in index.search("stem cells", k=30, mode="bm25")}
    judged = write_judged(tmp_path / "judged", [(f"q{n}", t, name) for n, (name, t) in enumerate(titles.items())])
    runner = CliRunner()
    try:
        out = runner.invoke(main, ["calibrate", str(judged), "--index", str(demo_index)])
        assert out.exit_code == 0, out.output
        assert f"fitted on {len(titles)} judged queries of this index" in out.stdout
        status = runner.invoke(main, ["status", "--index", str(demo_index), "--json"]).stdout
        assert json.loads(status)["relevance_model"] == "sentence-transformers/all-MiniLM-L6-v2"
        bad = runner.invoke(main, ["calibrate", str(tmp_path), "--index", str(demo_index)])
        assert bad.exit_code != 0 and "queries.jsonl" in bad.output and "Traceback" not in bad.output
    finally:
        assert runner.invoke(main, ["calibrate", "--reset", "--index", str(demo_index)]).exit_code == 0
    with Index.open(demo_index, encoder=minilm) as index:
        assert index.manifest.relevance == {}


def test_an_index_calibrated_on_its_own_queries_is_judged_by_them_from_its_manifest_alone(tmp_path: Path) -> None:
    """What reads the manifest without opening the index (the CLI, when a server answered) sees its own weights."""
    from searchbert.manifest import Manifest
    from searchbert.relevance import for_manifest

    own = Calibration("fake/hashing", {"bm25": (-1.0, 2.0)}, 0.25, {"bm25": ("bm25_fraction",)}, "12 judged queries")
    shipped = for_model("sentence-transformers/all-MiniLM-L6-v2")
    data = {
        "model": {"id": "sentence-transformers/all-MiniLM-L6-v2", "dimension": 384},
        "chunking": {"max_tokens": 254, "overlap": 38},
        "relevance": own.to_dict(),
    }
    assert for_manifest(Manifest.parse(json.dumps(data), tmp_path)) == own
    del data["relevance"]
    assert for_manifest(Manifest.parse(json.dumps(data), tmp_path)) == shipped
