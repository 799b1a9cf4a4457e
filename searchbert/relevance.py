"""Calibrated relevance: the estimated probability that a hit is relevant, the same scale for every query and mode.

A hit's `score` ranks the hits of one query and means nothing across queries (min-max fusion gives every query's
best hit a high score, nonsense included). Its `relevance` is a logistic model over evidence that does carry across
queries: the dense cosine, and the BM25 score as a share of what the query could score at most (so a query whose
words the index never saw scores 0). The weights were learned from judged queries (benchmarks/relevance.py:
SciFact's train split and half of Cranfield's queries) and ship in relevance.json, one set per bi-encoder (cosines
differ from model to model) and one for words alone, which needs no model; with them, the default threshold: the
relevance that still keeps 97% of the fitting queries' first relevant documents.

A model searchbert has no weights for is still served by the words-only set in hybrid and BM25 search; its dense
search leaves relevance unknown (None), and a min_relevance filter keeps such hits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .index import Index
    from .manifest import Manifest

#: the evidence each kind of search weighs. Ranks (1/rank per retriever) are left out: they say how a hit compares
#: with the others found for the same query, not whether anything matches, and with them the best hit of a
#: nonsense query looked relevant (benchmarks/results/relevance.md measures both)
FEATURES: dict[str, tuple[str, ...]] = {
    "dense": ("cosine",),
    "bm25": ("bm25_fraction",),
    "hybrid": ("cosine", "bm25_fraction"),
}
WITH_RANKS: dict[str, tuple[str, ...]] = {
    "dense": ("cosine", "dense_rr"),
    "bm25": ("bm25_fraction", "bm25_rr"),
    "hybrid": ("cosine", "bm25_fraction", "dense_rr", "bm25_rr"),
}
#: the kind that needs no model: BM25 mode, and hybrid search with a model no weights were fitted for
WORDS = "bm25"
SHIPPED = Path(__file__).with_name("relevance.json")


@dataclass(frozen=True)
class Evidence:
    """What is known of one hit that carries across queries (None: that retriever did not run)."""

    cosine: float | None = None
    bm25_fraction: float | None = None
    dense_rank: int | None = None
    bm25_rank: int | None = None

    def values(self, names: Sequence[str]) -> list[float] | None:
        """These features' values (see FEATURES), or None when this hit lacks one."""
        known = {
            "cosine": self.cosine,
            "bm25_fraction": self.bm25_fraction,
            "dense_rr": 1.0 / self.dense_rank if self.dense_rank else 0.0,
            "bm25_rr": 1.0 / self.bm25_rank if self.bm25_rank else 0.0,
        }
        out = [known[name] for name in names]
        return None if any(v is None for v in out) else out  # type: ignore[misc]


@dataclass(frozen=True)
class Calibration:
    """Logistic weights per kind of search (intercept first, then one per name in `features[kind]`) for one
    bi-encoder; `threshold` is the default min_relevance fitted with them."""

    model: str
    weights: dict[str, tuple[float, ...]]
    threshold: float
    features: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(FEATURES))
    #: what the weights were fitted on, for the record
    fitted_on: str = ""
    #: the weights' fingerprint (Manifest.model["weights"]) they were fitted for, when known
    fingerprint: str = ""

    def relevance(self, kind: str, evidence: Evidence) -> float | None:
        """P(relevant) of one hit, by the weights of `kind`, falling back to words alone when the hit has no
        cosine (not embedded yet) or this model has no dense weights; None when neither applies."""
        for which in (kind, WORDS) if kind == "hybrid" else (kind,):
            weights = self.weights.get(which)
            values = evidence.values(self.features.get(which, FEATURES[which])) if weights is not None else None
            if weights is not None and values is not None:
                z = weights[0] + sum(w * v for w, v in zip(weights[1:], values))
                return 1.0 / (1.0 + math.exp(-z))
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "fingerprint": self.fingerprint,
            "threshold": self.threshold,
            "fitted_on": self.fitted_on,
            "features": {k: list(v) for k, v in self.features.items() if k in self.weights},
            "weights": {k: list(v) for k, v in self.weights.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            model=data["model"],
            weights={k: tuple(float(x) for x in v) for k, v in data["weights"].items()},
            threshold=float(data["threshold"]),
            features={k: tuple(v) for k, v in data["features"].items()},
            fitted_on=data.get("fitted_on", ""),
            fingerprint=data.get("fingerprint", ""),
        )


@lru_cache(maxsize=1)
def _shipped() -> tuple[Calibration, ...]:
    data = json.loads(SHIPPED.read_text())
    return tuple(Calibration.from_dict(c) for c in data["calibrations"])


def for_model(model_id: str, fingerprint: str = "") -> Calibration:
    """The shipped weights fitted for this bi-encoder (and these weights of it, where both are recorded); for any
    other model, the words-only weights alone."""
    found = _shipped()
    for c in found:
        if c.model == model_id and (not c.fingerprint or not fingerprint or c.fingerprint == fingerprint):
            return c
    return next(c for c in found if c.model == "")  # the words-only weights


def for_manifest(manifest: Manifest) -> Calibration:
    """The weights an index judges relevance by: its own (`searchbert calibrate`), else those for its model (see
    for_model)."""
    if manifest.relevance:
        return Calibration.from_dict(manifest.relevance)
    return for_model(manifest.model_id, str(manifest.model.get("weights", "")))


@dataclass(frozen=True)
class Sample:
    """One judged hit to fit on: the kind of search that found it, its evidence, whether it is relevant, its
    weight (so that each collection counts the same), and whether it is its query's first relevant hit."""

    kind: str
    evidence: Evidence
    relevant: bool
    weight: float = 1.0
    first: bool = False


def fit(
    samples: Sequence[Sample],
    model: str,
    keep: float = 0.97,
    fitted_on: str = "",
    features: dict[str, tuple[str, ...]] = FEATURES,
) -> Calibration:
    """Logistic weights per kind, and the default threshold: the highest that still keeps `keep` of the first
    relevant hits of the fitting queries in hybrid search (the default; else in every kind fitted). Fitting needs
    scikit-learn (installed with sentence-transformers); searching never does."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    weights: dict[str, tuple[float, ...]] = {}
    for kind, names in features.items():
        rows = [(s.evidence.values(names), s) for s in samples if s.kind == kind]
        rows = [(v, s) for v, s in rows if v is not None]
        if len({s.relevant for _, s in rows}) < 2:
            continue
        x = np.asarray([v for v, _ in rows])
        y = np.asarray([int(s.relevant) for _, s in rows])
        found = LogisticRegression(max_iter=1000).fit(x, y, sample_weight=[s.weight for _, s in rows])
        weights[kind] = (float(found.intercept_[0]), *(float(c) for c in found.coef_[0]))
    calibration = Calibration(model, weights, 0.0, {k: v for k, v in features.items() if k in weights}, fitted_on)
    kinds = {"hybrid"} if "hybrid" in weights else set(weights)  # the default search's, where it was fitted
    firsts = sorted(
        r
        for s in samples
        if s.first and s.kind in kinds
        if (r := calibration.relevance(s.kind, s.evidence)) is not None
    )
    threshold = firsts[math.floor((1 - keep) * len(firsts))] if firsts else 0.0
    return replace(calibration, threshold=math.floor(threshold * 10_000) / 10_000)  # never above the quantile


def expected_calibration_error(pairs: Sequence[tuple[float, bool]], bins: int = 10) -> float:
    """ECE: the mean over equal-width bins of |share relevant - mean relevance|, weighted by the bin's size."""
    if not pairs:
        return 0.0
    total, error = len(pairs), 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [(p, y) for p, y in pairs if low <= p < high or (b == bins - 1 and p == 1.0)]
        if inside:
            error += (
                len(inside)
                / total
                * abs(sum(y for _, y in inside) / len(inside) - sum(p for p, _ in inside) / len(inside))
            )
    return error


def judged_samples(
    hits_per_query: Sequence[Sequence[Any]], relevant: Sequence[set[str]], kind: str, weight: float = 1.0
) -> list[Sample]:
    """Fitting rows from the hits of judged queries (Hit objects, best first) and each query's relevant document
    ids; a hit is relevant when its path is one of them, or ends with "/" and one (ids relative to the folder)."""
    out = []
    for hits, wanted in zip(hits_per_query, relevant, strict=True):
        flags = [h.path in wanted or any(h.path.endswith("/" + w) for w in wanted) for h in hits]
        first = flags.index(True) if True in flags else None
        for n, (h, rel) in enumerate(zip(hits, flags)):
            evidence = Evidence(h.dense_score, h.bm25_fraction, h.dense_rank, h.bm25_rank)
            out.append(Sample(kind, evidence, rel, weight, n == first))
    return out


def calibrate(index: Index, queries: dict[str, str], qrels: dict[str, dict[str, int]], k: int = 10) -> Calibration:
    """Weights fitted on an index's own judged queries (query id -> text, query id -> {document id: grade > 0 for
    relevant}), from the top k of each kind of search; the threshold as the shipped one is chosen. Set them with
    Index.set_calibration."""
    from .errors import InvalidArgument

    judged = [q for q in queries if any(g > 0 for g in qrels.get(q, {}).values())]
    if len(judged) < 10:
        raise InvalidArgument(f"{len(judged)} judged queries: calibrating needs at least 10 with a relevant document")
    relevant = [{d for d, g in qrels[q].items() if g > 0} for q in judged]
    rows: list[Sample] = []
    for kind in FEATURES:
        hits = index.search_many([queries[q] for q in judged], k, mode=kind)
        rows += judged_samples(hits, relevant, kind)
    found = fit(rows, index.manifest.model_id, fitted_on=f"{len(judged)} judged queries of this index")
    if "hybrid" not in found.weights:
        raise InvalidArgument("no judged query found a relevant document in its top hits: nothing to fit on")
    return replace(found, fingerprint=str(index.manifest.model.get("weights", "")))
