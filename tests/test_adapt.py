"""searchbert.adapt (measured, not offered by the CLI: see the README's Fine-tuning): queries made from the documents
themselves, never found by copying, and a model trained on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from searchbert.adapt import Passage, heading_of, pseudo_queries, read_passages
from searchbert.errors import DatasetError

ROOT = Path(__file__).resolve().parent.parent
BODY = (
    "Glaciers carve valleys over thousands of years. The ice moves slowly downhill under its own weight. "
    "Meltwater at the base lets the glacier slide faster in summer. Moraines mark where the ice once stood."
)


def _passage(pid: str, doc: str, section: str, text: str, ordinal: int = 0, title: str = "") -> Passage:
    return Passage(pid, doc, title, section, ordinal, text)


def test_a_heading_asks_for_the_text_under_it_without_stating_it() -> None:
    data = pseudo_queries([_passage("1", "a.md", "How glaciers move", f"# How glaciers move\n\n{BODY}")], seed=0)
    by_kind = {p.query_id.rsplit("-", 1)[1]: p for p in data.pairs}
    heading, sentence = by_kind["0"], by_kind["1"]
    assert heading.query == "How glaciers move" and "How glaciers move" not in heading.positive
    assert sentence.query in BODY and sentence.query not in sentence.positive  # taken out: the inverse cloze task
    assert heading.positive == sentence.positive == data.corpus["1"]  # one passage, both asks answered by it


def test_the_whole_document_is_relevant_and_generic_headings_ask_nothing() -> None:
    passages = [_passage(f"{d}{n}", f"{d}.md", "See also", BODY, n) for d in "abcd" for n in range(2)]
    passages.append(_passage("e0", "e.md", "Overview", BODY))  # one word: not a question anyone asks
    data = pseudo_queries(passages, seed=0)
    assert all(p.query not in ("See also", "Overview") for p in data.pairs)  # in 4 documents; one word
    first = next(p for p in data.pairs if p.query_id.startswith("a0"))
    assert data.relevant[first.query_id] == {"a0", "a1"}  # never mined as a negative of its own document


def test_the_title_asks_for_a_documents_first_passage_only() -> None:
    assert heading_of(_passage("1", "a.md", "", BODY, 0, title="Glacier field guide")) == "Glacier field guide"
    assert heading_of(_passage("2", "a.md", "", BODY, 1, title="Glacier field guide")) == ""
    assert heading_of(_passage("3", "a.md", "Guide > Ice > Moraines", BODY, 3)) == "Moraines"


def test_short_passages_without_headings_give_nothing_to_train_on() -> None:
    with pytest.raises(DatasetError, match="nothing to adapt to"):
        pseudo_queries([_passage("1", "a.md", "", "Too short. Really.", 2)])


TOPICS = {
    "glacier": "Glaciers and the ice ages",
    "volcano": "Volcanoes and their eruptions",
    "harbour": "Harbours and the ships in them",
    "orchard": "Orchards and the fruit they bear",
    "violin": "Violins and how they are made",
    "comet": "Comets and their long tails",
}


def _folder(root: Path) -> Path:
    root.mkdir()
    for name, title in TOPICS.items():
        sentences = [
            f"This is sentence number {k} about the {name}, which says something of its own." for k in range(5)
        ]
        (root / f"{name}.md").write_text(f"# {title}\n\n{' '.join(sentences)}\n")
    return root


@pytest.mark.model
def test_adapt_trains_a_model_on_a_folders_own_text(tmp_path: Path) -> None:
    docs = _folder(tmp_path / "docs")
    general = tmp_path / "general"
    (general / "qrels").mkdir(parents=True)
    (general / "corpus.jsonl").write_text(json.dumps({"_id": "d", "text": "Apples grow in orchards."}) + "\n")
    (general / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "where apples grow"}) + "\n")
    (general / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\td\t1\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    from searchbert.adapt import adapt_encoder

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(scratch))
        patch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
        assert tempfile.gettempdir() == str(scratch)
        adapt_encoder(docs, tmp_path / "model", batch_size=4, general=general, progress=False)
    report = json.loads((tmp_path / "model" / "finetune.json").read_text())
    assert report["settings"]["data"] == f"{len(TOPICS)} passages, no labels" and report["epochs"] == 1
    assert report["pairs"] + report["dev_queries"] == 2 * len(TOPICS)  # a title and a sentence from each
    assert report["blend_chosen"] == "auto" and set(report["general_curve"]) == {"0", "0.25", "0.5", "0.75", "1"}
    assert not list(scratch.glob("searchbert-adapt-*"))  # the folder's own index was a temporary one
    index = tmp_path / "ix"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    built = subprocess.run(
        [sys.executable, "-m", "searchbert", "index", str(docs), "--index", str(index), "--model",
         str(tmp_path / "model")],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    passages = read_passages(index)  # an index is read as it is, not indexed again
    assert {Path(p.document).stem for p in passages} == set(TOPICS) and all(p.title for p in passages)
