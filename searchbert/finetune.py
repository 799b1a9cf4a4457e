"""Fine-tune the bi-encoder on your own (query, relevant passage) pairs: `searchbert finetune encoder`.

BERT's recipe, as Sentence-BERT applies it: the pretrained encoder, trained a little on labelled pairs of your
domain, with MultipleNegativesRankingLoss (each query against its passage, the batch's other passages and a hard
negative the current model ranks high but nobody labelled relevant). A share of the queries is held out; the epoch
that scores best on them (nDCG@10) is kept, and the output folder is a Sentence-Transformers model that works
wherever a model does (`index --model DIR`, `eval --model DIR`), with `finetune.json` and `finetune.png` beside it.

Training runs sentence-transformers' own trainer (extra `finetune`: datasets, accelerate, matplotlib).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .blending import BLENDS, BlendPoint, blend_weights, choose, general_evaluator, measure, parse_share
from .errors import DatasetError, InvalidArgument, SearchbertError

#: passages besides the labelled ones the held-out queries are ranked among after each epoch
DEV_DISTRACTORS = 1000


@dataclass(frozen=True)
class Pair:
    """One labelled example: a query, a passage relevant to it, and passages known not to be."""

    query: str
    positive: str
    negatives: tuple[str, ...] = ()
    query_id: str = ""


@dataclass(frozen=True)
class TrainingData:
    """Pairs, and the passages hard negatives are mined from (with which of them each query has labelled relevant)."""

    pairs: list[Pair]
    corpus: dict[str, str]
    relevant: dict[str, set[str]]  # query id -> corpus ids labelled relevant
    source: str


@dataclass(frozen=True)
class FinetuneReport:
    output: str
    base: str
    pairs: int
    train_queries: int
    dev_queries: int
    epochs: int
    best_epoch: int
    dev_before: dict[str, float]
    dev_after: dict[str, float]
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    #: the fine-tuned weights' share in the saved model (1: as trained, 0: the base model), and how it was chosen
    blend: float = 1.0
    blend_chosen: str = "given"
    #: nDCG@10 at each share measured (blending.BLENDS and the one kept): on the held-out queries (what blending
    #: costs on the user's own), and on the general probe (what fine-tuning cost on everything else)
    blend_curve: dict[str, float] = field(default_factory=dict)
    general_curve: dict[str, float] = field(default_factory=dict)


def load_training_data(data: str | Path, split: str = "train") -> TrainingData:
    """A BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) or a JSONL file of {"query", "positive",
    "negatives"?} lines. Bad input is a DatasetError naming the file and line."""
    path = Path(data)
    if path.is_dir():
        return _beir(path, split)
    if not path.exists():
        raise DatasetError(f"no training data at {path}: give a BEIR folder or a JSONL file of query/positive pairs")
    return _jsonl(path)


def _beir(folder: Path, split: str) -> TrainingData:
    from .evaluation import load_collection

    collection = load_collection(folder, split)
    corpus = {i: f"{t}\n\n{x}".strip() if t else x for i, (t, x) in collection.corpus.items()}
    relevant = {q: {d for d, grade in docs.items() if grade > 0} for q, docs in collection.qrels.items()}
    pairs = [Pair(collection.queries[q], corpus[d], (), q) for q, docs in relevant.items() for d in sorted(docs)]
    if not pairs:
        raise DatasetError(f"{folder}/qrels/{split}.tsv labels no passage relevant: nothing to train on")
    return TrainingData(pairs, corpus, relevant, f"{folder} ({split})")


def _jsonl(path: Path) -> TrainingData:
    pairs: list[Pair] = []
    passages: dict[str, str] = {}  # text -> id
    ids: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    for number, line in _lines(path):
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{number}: expected an object with 'query' and 'positive'")
        query, positive, negatives = row.get("query"), row.get("positive"), row.get("negatives", [])
        if not isinstance(query, str) or not query.strip():
            raise DatasetError(f"{path}:{number}: 'query' must be a non-empty string")
        if not isinstance(positive, str) or not positive.strip():
            raise DatasetError(f"{path}:{number}: 'positive' must be a non-empty string")
        if not isinstance(negatives, list) or not all(isinstance(n, str) for n in negatives):
            raise DatasetError(f"{path}:{number}: 'negatives' must be a list of strings")
        qid = ids.setdefault(query, f"q{len(ids)}")
        for text in (positive, *negatives):
            passages.setdefault(text, f"p{len(passages)}")
        relevant.setdefault(qid, set()).add(passages[positive])
        pairs.append(Pair(query, positive, tuple(negatives), qid))
    if not pairs:
        raise DatasetError(f"{path} holds no pairs: one JSON object per line, with 'query' and 'positive'")
    return TrainingData(pairs, {i: text for text, i in passages.items()}, relevant, str(path))


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                yield number, line


def split_queries(data: TrainingData, dev_share: float, seed: int) -> tuple[list[Pair], list[str]]:
    """Training pairs, and the query ids held out to choose the epoch by (never trained on)."""
    queries = sorted({p.query_id for p in data.pairs})
    random.Random(seed).shuffle(queries)
    dev = set(queries[: max(1, round(dev_share * len(queries)))]) if len(queries) > 1 and dev_share > 0 else set()
    return [p for p in data.pairs if p.query_id not in dev], sorted(dev)


def mine_negatives(
    embed: Callable[[list[str]], Any], pairs: list[Pair], data: TrainingData, skip: int = 2, pool: int = 30
) -> list[Pair]:
    """Each pair with a hard negative if it has none: the passage the current model ranks highest for its query
    among those not labelled relevant to it, after the first `skip` of them (a top-ranked unlabelled passage is
    often relevant after all), and within the top `pool`. A pair whose query has no unlabelled passage in its top
    `pool` keeps none, and is left out of training (MultipleNegativesRankingLoss takes one layout per dataset).
    `embed` gives normalized vectors for a list of texts (the model being trained, as it starts)."""
    import numpy as np

    todo = [p for p in pairs if not p.negatives]
    queries = sorted({p.query for p in todo})
    if not queries:
        return pairs
    ids = list(data.corpus)
    docs = np.asarray(embed([data.corpus[i] for i in ids]))
    q_vectors = np.asarray(embed(queries))
    top = np.argsort(-(q_vectors @ docs.T), axis=1)[:, :pool]
    mined: dict[str, str] = {}
    query_ids = {p.query: p.query_id for p in todo}
    for query, row in zip(queries, top):
        labelled = data.relevant.get(query_ids[query], set())
        candidates = [ids[j] for j in row if ids[j] not in labelled]
        if candidates:  # the first `skip` only when nothing else is left
            mined[query] = data.corpus[candidates[min(skip, len(candidates) - 1)]]
    return [Pair(p.query, p.positive, (mined[p.query],), p.query_id) if p.query in mined else p for p in pairs]


def finetune_encoder(
    data: str | Path | TrainingData,
    output: str | Path,
    *,
    base: str | None = None,
    split: str = "train",
    epochs: int = 3,
    batch_size: int = 16,
    learning_rate: float = 2e-5,
    dev_share: float = 0.1,
    seed: int = 42,
    device: str | None = None,
    progress: bool = True,
    blend: float | str | None = "auto",
    general: str | Path | None = None,
) -> FinetuneReport:
    """Fine-tune a bi-encoder (default: the bundled model) on `data`, keep the epoch best on held-out queries, and
    save it to `output` with finetune.json and finetune.png. `blend`: the fine-tuned weights' share in the saved
    model, the rest the base model's, or "auto" to choose it by measurement (`blending.choose`, on the held-out
    queries and on `general`: the shipped general probe, or a BEIR folder)."""
    if epochs < 1 or batch_size < 2 or not 0 <= dev_share < 1:
        raise InvalidArgument("epochs must be >= 1, batch size >= 2, and the dev share in [0, 1)")
    share = parse_share(blend)
    out = new_folder(output)
    started = time.monotonic()
    training = data if isinstance(data, TrainingData) else load_training_data(data, split)
    train_pairs, dev_ids = split_queries(training, dev_share, seed)
    if not train_pairs:
        raise DatasetError("no pairs left to train on once the dev queries are held out: lower --dev-share")
    try:
        from datasets import Dataset
        from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
        from sentence_transformers import SentenceTransformerTrainingArguments as Arguments
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError as exc:
        raise needs_extra(exc) from exc
    from .encoders import resolve_model

    base_id, folder = resolve_model(base)
    model = SentenceTransformer(str(folder), device=device or _device())
    evaluator = _dev_evaluator(training, dev_ids)
    before = _scores(evaluator, model) if evaluator else {}
    train_pairs = mine_negatives(_fast_embedder(base), train_pairs, training)
    rows = [p for p in train_pairs if p.negatives]
    if not rows:
        raise DatasetError("no training pair has a negative: give 'negatives', or more passages to mine them from")
    columns = {"anchor": [p.query for p in rows], "positive": [p.positive for p in rows]}
    dataset = Dataset.from_dict(columns | {"negative": [p.negatives[0] for p in rows]})
    work = out.parent / f".{out.name}.checkpoints"
    metric = f"eval_{evaluator.name}_cosine_ndcg@10" if evaluator else None
    args = Arguments(
        **trainer_settings(work, len(dataset), epochs, batch_size, learning_rate, seed, metric, progress),
        batch_sampler="no_duplicates",  # a passage twice in one batch would be its own negative
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=MultipleNegativesRankingLoss(model), evaluator=evaluator
    )
    base_weights = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}  # before it trains
    trainer.train()
    points, tuned = measure(model, base_weights, [*BLENDS, share or 0.0], evaluator, general_evaluator(general))
    kept = choose(points) if share is None else share
    model.load_state_dict(blend_weights(base_weights, tuned, kept))
    after = _scores(evaluator, model) if evaluator else {}
    best_epoch = _best_epoch(trainer.state.log_history, evaluator.name if evaluator else "", epochs)
    model.save(str(out))
    _remove(work)
    report = FinetuneReport(
        output=str(out),
        base=base_id,
        pairs=len(train_pairs),
        train_queries=len({p.query_id for p in train_pairs}),
        dev_queries=len(dev_ids),
        epochs=epochs,
        best_epoch=best_epoch,
        dev_before=before,
        dev_after=after,
        seconds=time.monotonic() - started,
        settings={
            "data": training.source,
            "loss": "MultipleNegativesRankingLoss",
            "hard_negatives": f"mined by the base model: the 3rd-ranked unlabelled passage ({len(rows)} pairs)",
            "pairs_without_a_negative": len(train_pairs) - len(rows),
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "dev_share": dev_share,
            "seed": seed,
            "device": str(model.device),
        },
        blend=kept,
        blend_chosen="auto" if share is None else "given",
        blend_curve={f"{p.share:g}": p.held_out for p in points if p.held_out is not None},
        general_curve={f"{p.share:g}": p.general for p in points},
    )
    (out / "finetune.json").write_text(json.dumps(asdict(report) | {"log": trainer.state.log_history}, indent=2))
    key = f"eval_{evaluator.name}_cosine_ndcg@10" if evaluator else ""
    plot(out / "finetune.png", trainer.state.log_history, key, before.get("ndcg@10"), after.get("ndcg@10"), points)
    return report


def new_folder(output: str | Path) -> Path:
    """The output folder, refused before any work if it holds something (a model is never written over)."""
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        raise InvalidArgument(f"{out} is not empty: give a new folder for the fine-tuned model")
    return out


def needs_extra(exc: ImportError) -> SearchbertError:
    return SearchbertError(f"fine-tuning needs the finetune extra: pip install 'searchbert[finetune]' ({exc})")


def trainer_settings(
    work: Path,
    rows: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    metric: str | None,
    progress: bool,
) -> dict[str, Any]:
    """What both trainers are told: checkpoints in `work`, 10% warm-up, ten loss reports an epoch, and with a
    held-out `metric`, an evaluation each epoch and the best epoch kept."""
    return {
        "output_dir": str(work),
        "num_train_epochs": epochs,
        "per_device_train_batch_size": batch_size,
        "learning_rate": learning_rate,
        "warmup_steps": max(1, rows * epochs // batch_size // 10),
        "seed": seed,
        "eval_strategy": "epoch" if metric else "no",
        "save_strategy": "epoch" if metric else "no",
        "save_total_limit": 1,
        "load_best_model_at_end": bool(metric),
        "metric_for_best_model": metric,
        "logging_steps": max(1, rows // batch_size // 10),
        "report_to": "none",
        "disable_tqdm": not progress,
        # pinned memory speeds copies to a GPU only; without one, torch warns at every epoch that it is unused
        "dataloader_pin_memory": _device() == "cuda",
    }


def _fast_embedder(base: str | None) -> Callable[[list[str]], Any]:
    """The base model as searchbert runs it for indexing (ONNX, int8 for the bundled model: 2x torch here): mining
    embeds the whole corpus, and ranks no worse for it."""
    from .models import make_encoder

    return make_encoder(base, "auto").encode


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _dev_evaluator(data: TrainingData, dev_ids: list[str]) -> Any:
    """nDCG@10 of the held-out queries, over their labelled passages and DEV_DISTRACTORS others (the whole corpus
    would be embedded again after every epoch: minutes on a CPU, to choose between a few epochs)."""
    if not dev_ids:
        return None
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    queries = {p.query_id: p.query for p in data.pairs if p.query_id in dev_ids}
    relevant = {q: data.relevant[q] for q in queries}
    wanted = set().union(*relevant.values())
    others = [i for i in data.corpus if i not in wanted]
    random.Random(0).shuffle(others)
    corpus = {i: data.corpus[i] for i in sorted(wanted) + others[:DEV_DISTRACTORS]}
    return InformationRetrievalEvaluator(queries, corpus, relevant, name="dev", write_csv=False)


def _scores(evaluator: Any, model: Any) -> dict[str, float]:
    found = evaluator(model)
    return {k.removeprefix("dev_cosine_"): round(float(v), 4) for k, v in found.items() if "cosine_" in k}


def _best_epoch(log: list[dict[str, Any]], name: str, epochs: int) -> int:
    scored = [(e.get(f"eval_{name}_cosine_ndcg@10", -1.0), round(e.get("epoch", 0))) for e in log if "epoch" in e]
    scored = [s for s in scored if s[0] >= 0]
    return max(scored)[1] if scored else epochs


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def plot(
    path: Path,
    log: list[dict[str, Any]],
    key: str,
    before: float | None,
    after: float | None,
    points: Sequence[BlendPoint] = (),
) -> None:
    """The training loss by step; the held-out nDCG@10 (`key` in the trainer's log) by epoch from `before`; and
    with `points`, nDCG@10 on the held-out queries and on the general probe at each share of the blend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right, *blends) = plt.subplots(1, 3 if points else 2, figsize=(15 if points else 10, 4))
    steps = [(e["step"], e["loss"]) for e in log if "loss" in e and "step" in e]
    if steps:
        left.plot(*zip(*steps))
    left.set(xlabel="step", ylabel="loss", title="training loss")
    curve = [(0.0, before)] + [(e["epoch"], e[key]) for e in log if key in e]
    curve = [(x, y) for x, y in curve if y is not None]
    if curve:
        right.plot(*zip(*curve), "o-")
    right.set(xlabel="epoch (0: before)", ylabel="nDCG@10", title="held-out queries")
    if before is not None and after is not None:
        right.set_title(f"held-out queries: nDCG@10 {before:.3f} -> {after:.3f}")
    for axes in blends:
        shares = [p.share for p in points]
        if all(p.held_out is not None for p in points):
            axes.plot(shares, [p.held_out for p in points], "o-", label="held-out queries")
        axes.plot(shares, [p.general for p in points], "s-", label="general probe")
        axes.set(xlabel="share of the fine-tuned model (a reranker: of the score)", ylabel="nDCG@10", title="blend")
        axes.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
