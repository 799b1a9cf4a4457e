"""The blend and unlabelled parts of benchmarks/finetune.py (run them from there): what the share of fine-tuned
weights does on the collection trained on and on one never seen, in both directions, and what adapting to a folder
without labels does."""

from __future__ import annotations

import json
import random
from pathlib import Path

from common import DATASETS, REPO, Report, paired_difference, per_query_ndcg, write_corpus_files

CACHE = REPO / "benchmarks" / ".cache" / "finetune"
MODES = ("dense", "hybrid")


def cranfield_halves(seed: int = 0) -> Path:
    """Cranfield with its judged queries split in two at random: qrels/train.tsv (trained on) and qrels/test.tsv
    (the other half, never seen); corpus and queries are Cranfield's own."""
    out = CACHE / "cranfield-half"
    if (out / "qrels" / "test.tsv").exists():
        return out
    source = DATASETS / "cranfield"
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (out / name).symlink_to(source / name)
    header, *rows = (source / "qrels" / "test.tsv").read_text().splitlines()
    queries = sorted({r.split("\t")[0] for r in rows if r.strip()}, key=int)
    random.Random(seed).shuffle(queries)
    train = set(queries[: len(queries) // 2])
    for split, keep in (("train", True), ("test", False)):
        kept = [r for r in rows if r.strip() and (r.split("\t")[0] in train) == keep]
        (out / "qrels" / f"{split}.tsv").write_text("\n".join([header, *kept]) + "\n")
    return out


def blended(tuned: Path, share: float) -> Path | None:
    """`tuned` blended at `share` with the bundled model, saved once (None: share 0, the bundled model itself).
    The same weights `finetune encoder --blend SHARE` saves."""
    if share == 0:
        return None
    if share == 1:
        return tuned
    out = CACHE / f"{tuned.name}-blend{share:g}"
    if not (out / "config.json").exists():
        from sentence_transformers import SentenceTransformer

        from searchbert.blending import blend_weights
        from searchbert.encoders import resolve_model

        base = SentenceTransformer(str(resolve_model(None)[1]), device="cpu").state_dict()
        model = SentenceTransformer(str(tuned), device="cpu")
        model.load_state_dict(blend_weights(base, model.state_dict(), share))
        model.save(str(out))
    return out


def curves(tuned: Path) -> list:
    """The points `--blend auto` chooses from: the held-out curve finetune.json recorded while training, and the
    general probe measured at the same shares (kept in general_curve.json beside the model)."""
    from searchbert.blending import BLENDS, BlendPoint, general_evaluator, measure

    trained = json.loads((tuned / "finetune.json").read_text())
    general = trained.get("general_curve") or {}
    kept = tuned / "general_curve.json"
    if not general and kept.exists():
        general = json.loads(kept.read_text())
    if not general:
        from sentence_transformers import SentenceTransformer

        from searchbert.encoders import resolve_model

        base = SentenceTransformer(str(resolve_model(None)[1]), device="cpu").state_dict()
        model = SentenceTransformer(str(tuned), device="cpu")
        points, _ = measure(model, base, list(BLENDS), None, general_evaluator())
        general = {f"{p.share:g}": p.general for p in points}
        kept.write_text(json.dumps(general, indent=2))
    held = trained.get("blend_curve", {})
    return [BlendPoint(float(a), held.get(a), general[a]) for a in general]


def scored(folder: Path, mode: str, model: Path | None) -> tuple[float, dict[str, float]]:
    """nDCG@10 (points) of a model on a collection's test queries, and each query's (0-1)."""
    from searchbert.evaluation import evaluate

    # fp32 ONNX for every model: the fine-tuned ones were never measured in int8, so `auto` runs them in fp32
    result = evaluate(folder, mode=mode, model=str(model) if model else None, backend="onnx", progress=True)
    return 100 * result.metrics["nDCG@10"], per_query_ndcg(folder, result.run)


def score(folder: Path, mode: str, model: Path | None) -> float:
    return scored(folder, mode, model)[0]


def blend_both_ways(shares: list[float]) -> None:
    from searchbert.blending import FORGET_TOLERANCE, choose
    from searchbert.finetune import finetune_encoder

    report = Report("finetune_blend", "Fine-tuning without forgetting: the blend, in both directions")
    report.line(
        "Each model is fine-tuned with `finetune_encoder`'s defaults (3 epochs, batch 16, a tenth of the training "
        "queries held out) and saved unblended; `A` is the fine-tuned weights' share, `(1 - A) * base + A * tuned`, "
        "A = 0 the bundled all-MiniLM-L6-v2. held-out: nDCG@10 on the held-out training queries (recorded by "
        "`finetune encoder`); probe: nDCG@10 on the general probe shipped with searchbert (State of the Union "
        f"passages, inverse cloze); `auto`: the share `--blend auto` keeps (best held-out among shares below the "
        f"first that falls more than {100 * FORGET_TOLERANCE:.1f} under A = 0 on the probe). Test collections: "
        "nDCG@10, standard protocol, fp32 ONNX."
    )
    halves = cranfield_halves()
    directions = [
        ("SciFact train", DATASETS / "scifact", CACHE / "scifact-encoder-e3-b16",
         ("SciFact test", DATASETS / "scifact"), ("Cranfield", DATASETS / "cranfield")),
        ("half of Cranfield's queries", halves, CACHE / "cranfield-half-encoder-e3-b16",
         ("Cranfield other half", halves), ("SciFact test", DATASETS / "scifact")),
    ]  # fmt: skip
    for trained_on, data, tuned, (home, home_folder), (away, away_folder) in directions:
        if not (tuned / "finetune.json").exists():
            finetune_encoder(data, tuned, blend=1.0)
        points = curves(tuned)
        auto = choose(points)
        rows = []
        queries: dict[float, list[dict[str, float]]] = {}  # each query's nDCG@10 in each scored cell, by share
        for p in points:
            if p.share not in {0.0, 1.0, auto, *shares}:
                rows.append((p, None))  # the curves only: scoring a share on both collections takes minutes here
                continue
            model = blended(tuned, p.share)
            results = [scored(f, m, model) for f in (home_folder, away_folder) for m in MODES]
            cells = [mean for mean, _ in results]
            rows.append((p, cells))
            queries[p.share] = [each for _, each in results]
            print(trained_on, p, cells, flush=True)
        report.line()
        report.line(f"## Trained on {trained_on}")
        report.line()
        report.line(f"| A | held-out | probe | {home} dense | {home} hybrid | {away} dense | {away} hybrid |")
        report.line("|---|---|---|---|---|---|---|")
        for p, cells in rows:
            mark = " (auto)" if p.share == auto else ""
            held = "-" if p.held_out is None else f"{100 * p.held_out:.2f}"
            shown = " | ".join(f"{c:.2f}" for c in cells) if cells else "- | - | - | -"
            report.line(f"| {p.share:g}{mark} | {held} | {100 * p.general:.2f} | {shown} |")
        base, full = rows[0][1], rows[-1][1]
        kept = next(c for p, c in rows if p.share == auto)
        assert base and full and kept
        gain = (kept[0] - base[0]) / (full[0] - base[0]) if full[0] != base[0] else float("nan")
        report.line()
        report.line(
            f"auto keeps A = {auto:g}: {home} dense {base[0]:.2f} -> {kept[0]:.2f}, {gain:.0%} of the unblended "
            f"gain ({full[0]:.2f}; target >= 80%); {away}, never trained on: dense {kept[2] - base[2]:+.2f}, hybrid "
            f"{kept[3] - base[3]:+.2f} against the bundled model (unblended: {full[2] - base[2]:+.2f}, "
            f"{full[3] - base[3]:+.2f}; target: no loss beyond 0.5)."
        )
        report.line()
        report.line(
            f"Against the bundled model, per query (mean difference, paired 95% interval over the test queries): "
            f"{away} at auto's A = {auto:g}: dense {paired_difference(queries[auto][2], queries[0.0][2])}, hybrid "
            f"{paired_difference(queries[auto][3], queries[0.0][3])}; {home}: dense "
            f"{paired_difference(queries[auto][0], queries[0.0][0])}."
        )
    report.save()


def unlabelled(max_pairs: int) -> None:
    from searchbert.adapt import adapt_encoder
    from searchbert.blending import FORGET_TOLERANCE, choose

    collections = {"SciFact": DATASETS / "scifact", "Cranfield": DATASETS / "cranfield"}
    report = Report("finetune_unlabelled", "Adapting the encoder to a folder without labels")
    report.line(
        f"`searchbert.adapt.adapt_encoder(FOLDER, max_pairs={max_pairs})` (1 epoch, batch 16) on each collection's "
        f"corpus written as Markdown files (title heading, then the "
        "text); no queries and no qrels are used in training. Pseudo-queries: each heading (here a title) asks "
        "for the text under it, and one sentence of each passage for what is left of it (inverse cloze), with a hard "
        "negative mined by the bundled model; about 200 of them held out. The model is saved unblended, then "
        f"blended at the share `--blend auto` keeps (best held-out pseudo-query score among "
        f"shares below the first that falls more than {100 * FORGET_TOLERANCE:.1f} under A = 0 on the general "
        "probe). nDCG@10 on each collection's test queries, dense, standard protocol, fp32 ONNX."
    )
    report.line()
    report.line("| adapted to | A | held-out pseudo | probe | SciFact dense | Cranfield dense |")
    report.line("|---|---|---|---|---|---|")
    bundled = {name: score(folder, "dense", None) for name, folder in collections.items()}
    report.line(f"| - (bundled) | 0 | - | - | {bundled['SciFact']:.2f} | {bundled['Cranfield']:.2f} |")
    verdicts = []
    for name, folder in collections.items():
        docs = CACHE / "unlabelled" / name.lower() / "docs"
        if not docs.exists():
            write_corpus_files(folder, docs)
        tuned = CACHE / f"{name.lower()}-unlabelled-p{max_pairs}"
        if not (tuned / "finetune.json").exists():
            adapt_encoder(docs, tuned, max_pairs=max_pairs, blend=1.0)
        trained = json.loads((tuned / "finetune.json").read_text())
        points = curves(tuned)
        auto = choose(points)
        for share in sorted({1.0, auto}, reverse=True):
            p = next(p for p in points if p.share == share)
            cells = {other: score(f, "dense", blended(tuned, share)) for other, f in collections.items()}
            held = "-" if p.held_out is None else f"{100 * p.held_out:.2f}"
            report.line(f"| {name} ({trained['pairs']} pseudo-queries, {trained['seconds'] / 60:.0f} min) | "
                        f"{share:g}{' (auto)' if share == auto else ''} | {held} | {100 * p.general:.2f} | "
                        f"{cells['SciFact']:.2f} | {cells['Cranfield']:.2f} |")  # fmt: skip
            if share == auto:
                other = next(o for o in collections if o != name)
                verdicts.append(
                    f"adapted to {name} (auto, A = {auto:g}): {name} {cells[name] - bundled[name]:+.2f} (target "
                    f">= +2), {other} {cells[other] - bundled[other]:+.2f} (target >= -0.5)"
                )
    report.line()
    for verdict in verdicts:
        report.line(verdict)
    report.save()
