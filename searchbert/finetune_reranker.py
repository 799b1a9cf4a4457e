"""Train a BERT cross-encoder reranker on your own pairs: `searchbert finetune reranker`.

A cross-encoder reads the query and a passage together ([CLS] query [SEP] passage [SEP]) and a linear head on [CLS]
scores the pair. A few hundred labelled queries are not enough to learn ranking from scratch (measured here: a
pointwise binary loss from MiniLM fell to 19 nDCG@10 on SciFact), so the recipe follows what the reranker will
really face (Gao et al., 2021, "Rethink Training of BERT Rerankers in Multi-Stage Retrieval Pipeline"):

- negatives come from the retrieval it will rerank: for each (query, relevant passage), `negatives` passages drawn
  at random from the query's top `candidates` that nobody labelled relevant;
- the loss is a softmax over the positive and its negatives (localized contrastive estimation), on the raw logits;
- the held-out queries are reranked after every epoch exactly as `query --rerank` does, over their top `candidates`,
  blending the cross-encoder's score with the retrieval's (rerank.combine) at every weight from 0 to 1. The epoch
  and weight best there are kept, and the weight is saved with the model (rerank.RERANKER_SETTINGS); when no blend
  beats the retrieval alone, the weight is 1 and `--rerank` leaves the order as it was.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .blending import BlendPoint
from .errors import DatasetError, InvalidArgument
from .finetune import Pair, TrainingData, load_training_data, needs_extra, plot, split_queries, trainer_settings

#: retrieval weights tried on the held-out queries
WEIGHTS = tuple(i / 10 for i in range(11))
#: the general probe's queries are reranked over this many passages each (the cross-encoder reads them all)
PROBE_CANDIDATES = 20


@dataclass(frozen=True)
class DevScores:
    """Held-out nDCG@10 of the retrieval alone, the cross-encoder alone, and the best blend (at `weight`)."""

    retrieval: float
    reranker: float
    combined: float
    weight: float


@dataclass(frozen=True)
class RerankerReport:
    output: str
    base: str
    retriever: str
    mode: str
    pairs: int
    train_queries: int
    dev_queries: int
    epochs: int
    best_epoch: int
    dev: DevScores
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    #: nDCG@10 at each retrieval weight (1: the search alone), on the held-out queries and on the general probe
    #: (searched by the retriever, reranked): the weight kept is the best of the first that costs nothing on the second
    weight_curve: dict[str, float] = field(default_factory=dict)
    general_curve: dict[str, float] = field(default_factory=dict)

    @property
    def used(self) -> bool:
        """Whether the reranker changes rankings: it beat the retrieval on the held-out queries."""
        return self.dev.weight < 1


Pools = dict[str, list[tuple[str, float]]]  # query id -> [(passage id, retrieval score)], best first


def retrieval_pools(
    data: str | Path, split: str, training: TrainingData, mode: str, retriever: str | None, depth: int, progress: bool
) -> Pools:
    """Every training query's top `depth` passages by the retrieval the reranker will rerank: searchbert's own
    index of the passages (cached like `searchbert eval`'s), searched in `mode` with the `retriever` model."""
    from .evaluation import Collection, load_collection, retrieve

    path = Path(data)
    if path.is_dir():
        collection, corpus_file = load_collection(path, split), path / "corpus.jsonl"
    else:
        queries = {p.query_id: p.query for p in training.pairs}
        qrels = {q: dict.fromkeys(ids, 1) for q, ids in training.relevant.items()}
        corpus = {i: ("", text) for i, text in training.corpus.items()}
        collection, corpus_file = Collection(path.stem, corpus, queries, qrels), path
    run = retrieve(collection, corpus_file, mode=mode, model=retriever, progress=progress)[0]
    return {q: sorted(docs.items(), key=lambda x: -x[1])[:depth] for q, docs in run.items()}


def training_rows(
    pairs: Sequence[Pair], data: TrainingData, pools: Pools, negatives: int, seed: int
) -> list[tuple[str, str, list[str]]]:
    """(query, positive, `negatives` passages) per pair: the pair's own negatives first, then passages drawn from
    its query's retrieval pool that are not labelled relevant to it, then (a small corpus) any unlabelled ones."""
    rng = random.Random(seed)
    ids = sorted(data.corpus)
    rows = []
    for pair in pairs:
        labelled = data.relevant.get(pair.query_id, set())
        chosen = list(pair.negatives[:negatives])
        pool = [i for i, _ in pools.get(pair.query_id, []) if i not in labelled and data.corpus[i] not in chosen]
        chosen += [data.corpus[i] for i in rng.sample(pool, min(len(pool), negatives - len(chosen)))]
        if len(chosen) < negatives:
            rest = [data.corpus[i] for i in ids if i not in labelled and data.corpus[i] not in chosen]
            chosen += rng.sample(rest, min(len(rest), negatives - len(chosen)))
        if len(chosen) == negatives:
            rows.append((pair.query, pair.positive, chosen))
    return rows


def dev_scores(
    predict: Callable[[list[tuple[str, str]]], Sequence[float]],
    queries: dict[str, str],
    pools: Pools,
    corpus: dict[str, str],
    relevant: dict[str, set[str]],
) -> DevScores:
    """Rerank each held-out query's pool with `predict` (pairs -> scores), blended with the retrieval at every
    weight in WEIGHTS, and score each by nDCG@10 (evaluation.measure; a relevant passage outside the pool counts
    as missed, as in real use). The blend chosen is the best one only if it beats the retrieval alone."""
    found = weight_curve(predict, queries, pools, corpus, relevant)
    weight = choose_weight(found)
    return DevScores(found[1.0], found[0.0], found[weight], weight)


def choose_weight(held: dict[float, float], general: dict[float, float] | None = None) -> float:
    """The retrieval weight kept: blending.choose's rule with the reranker's share of the score (1 - weight) as the
    share, the retrieval alone (weight 1) as the base: the best on the held-out queries (the retrieval's side on a
    tie, so a reranker no better than the search gets weight 1) among those, from weight 1 down, before the first
    that loses more than FORGET_TOLERANCE on the general probe."""
    from .blending import choose

    points = [BlendPoint(round(1 - w, 2), held[w], general[w] if general else 0.0) for w in WEIGHTS]
    return round(1 - choose(points), 2)


def general_pools(
    retriever: str | None, depth: int, general: str | Path | None = None
) -> tuple[dict[str, str], Pools, dict[str, str], dict[str, set[str]]]:
    """The general probe as a reranker meets it: each probe query's top `depth` passages by the `retriever`
    model (dense, cosine), with (queries, pools, corpus, relevant) as dev_scores takes them."""
    import numpy as np

    from .blending import general_data
    from .models import make_encoder

    corpus, queries, relevant = general_data(general)
    encode = make_encoder(retriever, "auto").encode
    ids, qids = list(corpus), list(queries)
    scores = np.asarray(encode([queries[q] for q in qids])) @ np.asarray(encode([corpus[i] for i in ids])).T
    top = np.argsort(-scores, axis=1)[:, :depth]
    pools = {q: [(ids[j], float(scores[n, j])) for j in top[n]] for n, q in enumerate(qids)}
    return queries, pools, corpus, relevant


def weight_curve(
    predict: Callable[[list[tuple[str, str]]], Sequence[float]],
    queries: dict[str, str],
    pools: Pools,
    corpus: dict[str, str],
    relevant: dict[str, set[str]],
) -> dict[float, float]:
    """nDCG@10 of the queries' pools reranked by `predict` blended with the retrieval, at each weight in WEIGHTS."""
    import numpy as np

    from .evaluation import measure
    from .rerank import combine

    pairs = [(queries[q], corpus[i]) for q in queries for i, _ in pools.get(q, [])]
    flat = np.asarray(predict(pairs), dtype=np.float64).reshape(-1) if pairs else np.zeros(0)
    qrels = {q: dict.fromkeys(relevant[q], 1) for q in queries}
    found: dict[float, float] = {}
    start = 0
    per_query = []
    for q in queries:
        pool = pools.get(q, [])
        per_query.append((q, [i for i, _ in pool], flat[start : start + len(pool)], np.array([s for _, s in pool])))
        start += len(pool)
    for weight in WEIGHTS:
        run = {q: dict(zip(ids, combine(ce, ret, weight).tolist())) for q, ids, ce, ret in per_query if ids}
        found[weight] = measure(qrels, run)["nDCG@10"]
    return found


def finetune_reranker(
    data: str | Path,
    output: str | Path,
    *,
    base: str | None = None,
    retriever: str | None = None,
    mode: str = "hybrid",
    split: str = "train",
    candidates: int = 50,
    negatives: int = 3,
    epochs: int = 3,
    batch_size: int = 8,
    learning_rate: float = 3e-5,
    max_length: int = 256,
    dev_share: float = 0.1,
    seed: int = 42,
    device: str | None = None,
    progress: bool = True,
    general: str | Path | None = None,
) -> RerankerReport:
    """Train a cross-encoder from `base` (default: the bundled MiniLM) to rerank the top `candidates` of the
    `retriever` model's `mode` search, keep the epoch best on held-out queries and the retrieval weight best there
    among those that cost nothing on `general` (the shipped general probe, or a BEIR folder: choose_weight), and
    save it to `output` with the weight (RERANKER_SETTINGS), finetune.json and finetune.png."""
    if epochs < 1 or batch_size < 1 or negatives < 1 or candidates < 2 or max_length < 64:
        raise InvalidArgument("epochs, batch size and negatives must be >= 1, candidates >= 2, max length >= 64")
    if not 0 < dev_share < 1:
        raise InvalidArgument("a reranker needs held-out queries to choose its weight by: --dev-share in (0, 1)")
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        raise InvalidArgument(f"{out} is not empty: give a new folder for the reranker")
    started = time.monotonic()
    training = load_training_data(data, split)
    train_pairs, dev_ids = split_queries(training, dev_share, seed)
    if not train_pairs or not dev_ids:
        raise DatasetError("a reranker needs at least two queries: one to train on, one to choose its weight by")
    try:
        from datasets import Dataset
        from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer
        from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments as Arguments
    except ImportError as exc:
        raise needs_extra(exc) from exc
    from .encoders import DEFAULT_MODEL, resolve_model
    from .finetune import _device, _remove
    from .rerank import RERANKER_SETTINGS

    base_id, folder = resolve_model(base)
    pools = retrieval_pools(data, split, training, mode, retriever, candidates, progress)
    rows = training_rows(train_pairs, training, pools, negatives, seed)
    if not rows:
        raise DatasetError("no training pair has a negative: give 'negatives', or more passages to draw them from")
    columns = {"query": [r[0] for r in rows], "positive": [r[1] for r in rows]}
    columns |= {f"negative_{n + 1}": [r[2][n] for r in rows] for n in range(negatives)}
    model = CrossEncoder(str(folder), num_labels=1, max_length=max_length, device=device or _device())
    dev_queries = {p.query_id: p.query for p in training.pairs if p.query_id in dev_ids}
    evaluator = _evaluator(dev_queries, pools, training.corpus, training.relevant)
    work = out.parent / f".{out.name}.checkpoints"
    args = Arguments(
        **trainer_settings(work, len(rows), epochs, batch_size, learning_rate, seed, "eval_dev_ndcg@10", progress)
    )
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict(columns), loss=_loss(model), evaluator=evaluator
    )
    trainer.train()
    log = trainer.state.log_history
    best = max((e for e in log if "eval_dev_ndcg@10" in e), key=lambda e: e["eval_dev_ndcg@10"])

    def predict(pairs: list[tuple[str, str]]) -> Any:
        return model.predict(pairs, batch_size=32, show_progress_bar=False, convert_to_numpy=True)

    held = weight_curve(predict, dev_queries, pools, training.corpus, training.relevant)
    probe = weight_curve(predict, *general_pools(retriever, min(candidates, PROBE_CANDIDATES), general))
    weight = choose_weight(held, probe)
    dev = DevScores(held[1.0], held[0.0], held[weight], weight)
    model.save_pretrained(str(out))
    _remove(work)
    report = RerankerReport(
        output=str(out),
        base=base_id,
        retriever=retriever or DEFAULT_MODEL,
        mode=mode,
        pairs=len(rows),
        train_queries=len({p.query_id for p in train_pairs}),
        dev_queries=len(dev_ids),
        epochs=epochs,
        best_epoch=round(best["epoch"]),
        dev=dev,
        seconds=time.monotonic() - started,
        settings={
            "data": training.source,
            "loss": "softmax over the positive and its negatives (localized contrastive estimation)",
            "negatives": f"{negatives} per pair, drawn from the retrieval's top {candidates}, never labelled relevant",
            "candidates": candidates,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "max_length": max_length,
            "dev_share": dev_share,
            "seed": seed,
            "device": str(model.device),
        },
        weight_curve={f"{w:g}": v for w, v in held.items()},
        general_curve={f"{w:g}": v for w, v in probe.items()},
    )
    settings = {"retrieval_weight": dev.weight, "max_length": max_length, "mode": mode, "candidates": candidates}
    (out / RERANKER_SETTINGS).write_text(json.dumps(settings | {"retriever": report.retriever}, indent=2))
    (out / "finetune.json").write_text(json.dumps(asdict(report) | {"log": log}, indent=2))
    points = [BlendPoint(round(1 - w, 2), held[w], probe[w]) for w in sorted(WEIGHTS, reverse=True)]
    plot(out / "finetune.png", log, "eval_dev_ndcg@10", dev.retrieval, dev.combined, points)
    return report


def _loss(model: Any) -> Any:
    """Cross-entropy over each row's positive and its hard negatives, on the raw logits; no random in-batch
    negatives (a reranker only ever sees the retrieval's candidates, never random passages)."""
    from sentence_transformers.cross_encoder.losses import MultipleNegativesRankingLoss

    class HardNegativesOnly(MultipleNegativesRankingLoss):
        def get_in_batch_negatives(self, anchors: list[str], candidates: list[list[str]]) -> Any:
            return iter(())

    return HardNegativesOnly(model, num_negatives=None, scale=1.0, activation_fn=None)


def _evaluator(queries: dict[str, str], pools: Pools, corpus: dict[str, str], relevant: dict[str, set[str]]) -> Any:
    """dev_scores as sentence-transformers' trainer calls an evaluator after each epoch."""
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

    class HeldOut(BaseEvaluator):
        name = "dev"
        primary_metric = "dev_ndcg@10"
        greater_is_better = True

        def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> Any:
            def predict(pairs: list[tuple[str, str]]) -> Any:
                return model.predict(pairs, batch_size=32, show_progress_bar=False, convert_to_numpy=True)

            found = dev_scores(predict, queries, pools, corpus, relevant)
            metrics = {"ndcg@10": found.combined, "retrieval": found.retrieval, "reranker": found.reranker}
            return self.prefix_name_to_metrics(metrics | {"weight": found.weight}, self.name)

    return HeldOut()
