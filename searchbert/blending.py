"""Blend a fine-tuned model back toward the one it started from, so that it specializes without forgetting.

Fine-tuning on one folder's queries moves every weight toward that folder; on text unlike it the model can end up
worse than where it began. Weight-space interpolation (WiSE-FT, model soups) keeps a share of the base weights:
`(1 - a) * base + a * tuned`. Which share is measured, not guessed: after training, the model is scored at each share
in BLENDS on two things, the user's held-out queries (what fine-tuning is for) and a general probe that stands for
everything else, and `--blend auto` keeps the share best on the first among those that lose at most
FORGET_TOLERANCE on the second against the base model, as does every smaller share (share 0, the base model itself,
always qualifies).

The general probe ships with searchbert (general_probe.json.gz, built by corpora/build_general_probe.py): passages
of two centuries of State of the Union addresses (public domain), and sentences taken out of them as queries, each
to find what is left of its passage (the inverse cloze task): a retrieval task about everything, answered without
labels. A user with a general collection of their own can give it instead (a BEIR folder, its test split).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidArgument

#: the shares of the fine-tuned weights measured after training (0: the base model, 1: as trained)
BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: how much nDCG@10 (0-1) on the general probe `auto` lets a blend lose against the base model: the bar searchbert
#: holds a fine-tuned model to on collections it never saw (half a point; the probe's noise is of that order)
FORGET_TOLERANCE = 0.005
PROBE = Path(__file__).with_name("general_probe.json.gz")


@dataclass(frozen=True)
class BlendPoint:
    """A share of the fine-tuned weights, and what the model blended at it scores (nDCG@10, 0-1)."""

    share: float
    held_out: float | None  # the user's held-out queries (None: none were held out)
    general: float  # the general probe


def blend_weights(base: dict[str, Any], tuned: dict[str, Any], share: float) -> dict[str, Any]:
    """(1 - share) * base + share * tuned, parameter by parameter. Tensors that are not floating point (position
    ids) are the tuned model's; both must have the same parameters."""
    if base.keys() != tuned.keys():
        raise InvalidArgument("the base and the fine-tuned model have different parameters: they cannot be blended")
    return {k: (1 - share) * base[k].to(v.dtype) + share * v if v.is_floating_point() else v for k, v in tuned.items()}


def choose(points: list[BlendPoint], tolerance: float = FORGET_TOLERANCE) -> float:
    """The share `auto` keeps: among the shares below the first whose general score falls more than `tolerance`
    under the base model's, the one best on the held-out queries (the smaller share on a tie); without held-out
    queries, the largest of them."""
    base = next((p for p in points if p.share == 0), None)
    if base is None:
        raise InvalidArgument("choosing a blend needs the base model (share 0) measured")
    safe = []
    for point in sorted(points, key=lambda p: p.share):
        if point.general < base.general - tolerance:
            break  # forgetting grows with the share: a larger one that passes after this passes by the probe's noise
        safe.append(point)
    if all(p.held_out is not None for p in safe):
        return max(safe, key=lambda p: (p.held_out, -p.share)).share
    return max(p.share for p in safe)


def general_data(general: str | Path | None = None) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """(corpus, queries, relevant passage ids) of the "everything else" measure: the shipped probe, or a BEIR
    folder's test split (all of its corpus)."""
    if general is None:
        with gzip.open(PROBE, "rt", encoding="utf-8") as fh:
            probe = json.load(fh)
        corpus = probe["corpus"]
        queries = {q: row["text"] for q, row in probe["queries"].items()}
        relevant = {q: {row["relevant"]} for q, row in probe["queries"].items()}
    else:  # read as fine-tuning reads a BEIR folder: title and text together, relevant when graded above 0
        from .finetune import load_training_data

        data = load_training_data(Path(general), "test")
        corpus, relevant = data.corpus, data.relevant
        queries = {p.query_id: p.query for p in data.pairs}
    return corpus, queries, relevant


def general_evaluator(general: str | Path | None = None) -> Any:
    """general_data as sentence-transformers' InformationRetrievalEvaluator (the bi-encoder's measure)."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    corpus, queries, relevant = general_data(general)
    return InformationRetrievalEvaluator(queries, corpus, relevant, name="general", write_csv=False)


def ndcg(evaluator: Any, model: Any) -> float:
    """nDCG@10 (0-1) of `model` on a sentence-transformers InformationRetrievalEvaluator."""
    return round(float(evaluator(model)[f"{evaluator.name}_cosine_ndcg@10"]), 4)


def measure(
    model: Any, base: dict[str, Any], shares: list[float], held_out: Any, general: Any
) -> tuple[list[BlendPoint], dict[str, Any]]:
    """Score `model` blended with `base` at each share; returns the points and the tuned weights (on the CPU), and
    leaves `model` as trained."""
    tuned = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    points = []
    for share in sorted(set(shares)):
        model.load_state_dict(blend_weights(base, tuned, share))
        points.append(BlendPoint(share, ndcg(held_out, model) if held_out else None, ndcg(general, model)))
    model.load_state_dict(tuned)
    return points, tuned


def parse_share(value: str | float | None) -> float | None:
    """A share in [0, 1], or None for "auto" (choose by measurement)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        share = float(value)
    except ValueError:
        raise InvalidArgument(f"--blend takes auto or a share between 0 and 1, not {value!r}") from None
    if not 0 <= share <= 1:
        raise InvalidArgument("the blend is the fine-tuned weights' share: between 0 and 1 (or auto)")
    return share
