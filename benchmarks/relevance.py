"""Calibrated relevance: fit the weights that ship in searchbert/relevance.json, and measure what they are worth.

Fitting queries: SciFact's train split and Cranfield's odd-numbered queries. Testing queries: SciFact's test split
and Cranfield's even-numbered ones, never seen in fitting. Relevant: any judged grade above 0. Each search returns
10 documents per query, in each mode (hybrid, dense, bm25), as `searchbert query` would.

Measured: calibration error (ECE over 10 bins) on each collection's test queries, with weights fitted on that
collection alone, on the other collection alone (the transfer a user's own folder asks for), and on both (what
ships); and at the shipped default threshold, the share of nonsense and off-topic queries (benchmarks/queries/,
written before any score was seen) that get no hit at all, against the share of real test queries whose first
relevant document is still returned.

    .venv/bin/python benchmarks/relevance.py [--write]    (--write: store the fitted weights in the package)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATASETS, REPO, Report

from searchbert.relevance import (
    FEATURES,
    SHIPPED,
    WITH_RANKS,
    WORDS,
    Calibration,
    Sample,
    expected_calibration_error,
    fit,
    judged_samples,
)

MODES = tuple(FEATURES)
K = 10
FITTED_ON = "scifact train + cranfield odd-numbered queries, top 10 of dense, bm25 and hybrid search"


def own_queries(name: str) -> list[str]:
    lines = (REPO / "benchmarks" / "queries" / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def judged_hits(index, queries: dict[str, str], qrels: dict[str, dict[str, int]], mode: str) -> list[list[Sample]]:
    """Per query: each hit as a fitting row (relevance.judged_samples), best first."""
    qids = list(queries)
    found = index.search_many([queries[q] for q in qids], K, mode=mode)
    wanted = [{d for d, grade in qrels[q].items() if grade > 0} for q in qids]
    return [judged_samples([hits], [relevant], mode) for hits, relevant in zip(found, wanted)]


def samples(runs: dict[str, list[list[Sample]]]) -> list[Sample]:
    """Fitting rows from per-mode runs of one collection, weighted so that the collection counts as one."""
    out = []
    for per_query in runs.values():
        rows = sum(len(r) for r in per_query)
        out += [replace(s, weight=1000.0 / rows) for hits in per_query for s in hits]
    return out


def ece(calibration: Calibration, runs: dict[str, list[list[Sample]]], mode: str) -> float:
    pairs = [(calibration.relevance(mode, s.evidence), s.relevant) for hits in runs[mode] for s in hits]
    return expected_calibration_error([(p, rel) for p, rel in pairs if p is not None])


def kept_first(calibration: Calibration, runs: dict[str, list[list[Sample]]], mode: str) -> tuple[int, int]:
    """(queries whose first relevant hit passes the threshold, queries with a relevant hit in the top K)."""
    firsts = [s.evidence for hits in runs[mode] for s in hits if s.first]
    kept = sum((calibration.relevance(mode, ev) or 0.0) >= calibration.threshold for ev in firsts)
    return kept, len(firsts)


def no_match(calibration: Calibration, runs: dict[str, list[list[Sample]]], mode: str) -> tuple[int, int]:
    """(queries none of whose hits passes the threshold, queries)."""
    best = [max((calibration.relevance(mode, s.evidence) or 0.0 for s in hits), default=0.0) for hits in runs[mode]]
    return sum(b < calibration.threshold for b in best), len(best)


def share(counts: tuple[int, int]) -> str:
    return f"{counts[0]}/{counts[1]} ({counts[0] / max(1, counts[1]):.1%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="store the weights fitted on both in relevance.json")
    args = parser.parse_args()

    from searchbert.evaluation import collection_index, load_collection
    from searchbert.models import make_encoder

    encoder = make_encoder(None, "onnx")
    cache = REPO / "indexes" / "eval"
    # collection -> (fitting split, which of its queries), (testing split, which of its queries)
    plan = {
        "scifact": (("train", lambda q: True), ("test", lambda q: True)),
        "cranfield": (("test", lambda q: int(q) % 2 == 1), ("test", lambda q: int(q) % 2 == 0)),
    }
    runs: dict[tuple[str, str], dict[str, list[list]]] = {}
    fingerprint = ""
    junk = {"nonsense": own_queries("nonsense.txt"), "off-topic": own_queries("offtopic.txt")}
    for name, splits in plan.items():
        folder = DATASETS / name
        test = load_collection(folder, "test")
        index, _ = collection_index(test, folder / "corpus.jsonl", "chunked", encoder, cache, True)
        with index:
            fingerprint = str(index.manifest.model.get("weights", ""))
            for role, (split, keep) in zip(("fit", "test"), splits):
                c = load_collection(folder, split)
                queries = {q: t for q, t in c.queries.items() if keep(q)}
                runs[name, role] = {mode: judged_hits(index, queries, c.qrels, mode) for mode in MODES}
            for kind, texts in junk.items():
                queries = {str(n): t for n, t in enumerate(texts)}
                runs[name, kind] = {m: judged_hits(index, queries, {q: {} for q in queries}, m) for m in MODES}

    model = encoder.model_id
    fitting = {name: samples(runs[name, "fit"]) for name in plan}
    both = fitting["scifact"] + fitting["cranfield"]
    alone = {name: fit(rows, model) for name, rows in fitting.items()}
    shipped = replace(fit(both, model, fitted_on=FITTED_ON), fingerprint=fingerprint)
    words = fit([s for s in both if s.kind == WORDS], "", fitted_on=FITTED_ON + ", bm25 only")

    report = Report("relevance", "Calibrated relevance")
    report.line(
        "Hits: the top 10 documents per query. Fitting queries: SciFact train (809), Cranfield odd-numbered (113); "
        "testing: SciFact test (300), Cranfield even-numbered (112). Relevant: judged grade > 0. ECE: 10 equal-width "
        "bins, over every hit of the testing queries (lower is better). Nonsense and off-topic: "
        f"{len(junk['nonsense'])} and {len(junk['off-topic'])} queries written before any score was seen "
        "(benchmarks/queries/)."
    )
    report.line()
    report.line("## Calibration error")
    report.line()
    report.line(
        "| tested on | mode | fitted on the same collection | fitted on the other | fitted on both (shipped) "
        "| share relevant |"
    )
    report.line("|---|---|---|---|---|---|")
    other = {"scifact": "cranfield", "cranfield": "scifact"}
    for name in plan:
        for mode in MODES:
            test = runs[name, "test"]
            relevant = sum(s.relevant for hits in test[mode] for s in hits) / max(1, sum(len(h) for h in test[mode]))
            report.line(
                f"| {name} | {mode} | {ece(alone[name], test, mode):.3f} | {ece(alone[other[name]], test, mode):.3f} "
                f"| {ece(shipped, test, mode):.3f} | {relevant:.3f} |"
            )
    report.line()
    report.line("## No good match")
    report.line()
    report.line(
        "Each row: weights fitted on both fitting sets, the threshold the highest that keeps `keep` of the fitting "
        "queries' first relevant documents in hybrid search; then, on the testing side, the share of queries that "
        "get no hit at or above it (nonsense and off-topic together, both indexes) and the share of test queries "
        "whose first relevant document in the top 10 is still returned. With ranks: 1/rank of each retriever added "
        "to the features."
    )
    report.line()
    report.line(
        "| features | keep | threshold | mode | scifact: junk without a match | scifact: first relevant kept "
        "| cranfield: junk without a match | cranfield: first relevant kept |"
    )
    report.line("|---|---|---|---|---|---|---|---|")
    for label, features in (("cosine, bm25 share", FEATURES), ("with ranks", WITH_RANKS)):
        for keep in (0.95, 0.97, 0.99):
            calibration = fit(both, model, keep=keep, features=features)
            for mode in MODES:
                cells = []
                for name in plan:
                    lost = [no_match(calibration, runs[name, kind], mode) for kind in junk]
                    cells += [
                        share((sum(a for a, _ in lost), sum(b for _, b in lost))),
                        share(kept_first(calibration, runs[name, "test"], mode)),
                    ]
                report.line(f"| {label} | {keep} | {calibration.threshold} | {mode} | " + " | ".join(cells) + " |")
    report.line()
    report.line(
        f"Shipped: features cosine and BM25 share, keep 0.97, threshold **{shipped.threshold}**. Both were chosen "
        "after seeing the table above, so its test side is not blind to them: keep 0.97 as the lowest level whose "
        "hybrid rows keep 95% of the test queries' first relevant documents on both collections, and no ranks for "
        "what they did to the junk queries. At it, per kind of junk:"
    )
    report.line()
    report.line(
        "| index | mode | nonsense: no good match | off-topic: no good match | test queries: first relevant kept |"
    )
    report.line("|---|---|---|---|---|")
    for name in plan:
        for mode in MODES:
            cells = [share(no_match(shipped, runs[name, kind], mode)) for kind in junk]
            report.line(
                f"| {name} | {mode} | "
                + " | ".join(cells)
                + f" | {share(kept_first(shipped, runs[name, 'test'], mode))} |"
            )
    report.line()
    report.line("Weights shipped (intercept first, then per feature):")
    report.line()
    report.line("```json")
    report.line(json.dumps({"features": shipped.features, "weights": shipped.weights}))
    report.line("```")
    report.save()
    if args.write:
        SHIPPED.write_text(json.dumps({"calibrations": [shipped.to_dict(), words.to_dict()]}, indent=1) + "\n")
        print(f"wrote {SHIPPED}")


if __name__ == "__main__":
    main()
