"""`searchbert eval`: retrieval quality on a BEIR collection; `searchbert calibrate`: relevance fitted on your own
judged queries."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..models import BACKENDS
from . import (
    BACKEND_HELP,
    bm25_options,
    chunk_options,
    fusion_from,
    fusion_options,
    index_option,
    main,
    mode_option,
    model_option,
    open_index,
    reports_errors,
)


@main.command("eval")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", default="test", show_default=True, help="Which qrels/SPLIT.tsv to score.")
@mode_option(
    "hybrid: both, fused (--fusion); dense: the bi-encoder through searchbert's index (--mode dense --protocol "
    "standard gives MTEB's figure); bm25: the lexical baseline (bm25s, k1 1.5, b 0.75)."
)
@fusion_options
@click.option("--rerank-model", metavar="ID_OR_PATH", help="Rerank each query's candidates with this cross-encoder.")
@click.option(
    "--candidates",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Chunks the cross-encoder reads per query (with --rerank-model).",
)
@click.option(
    "--protocol",
    type=click.Choice(["standard", "chunked"]),
    default="standard",
    show_default=True,
    help="standard: title + text embedded whole, truncated (MTEB); chunked: searchbert's chunking.",
)
@model_option
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="auto",
    show_default=True,
    help=BACKEND_HELP + " onnx or torch give the published full-precision figures.",
)
@chunk_options
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the collection's index is cached. Default: indexes/eval.",
)
@click.option("--run-file", type=click.Path(dir_okay=False, path_type=Path), help="Write the run in TREC format.")
@click.option("--compare", is_flag=True, help="Run every mode (and reranked, with --rerank-model): one table.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="With every mode: recall@1..100 and nDCG@10 per mode, drawn to FILE (.png or .svg; extra: plot).",
)
@bm25_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@reports_errors
def eval_cmd(
    dataset: Path,
    split: str,
    mode: str,
    fusion: str | None,
    alpha: float | None,
    norm: str | None,
    rrf_k: int | None,
    rerank_model: str | None,
    candidates: int,
    protocol: str,
    model: str | None,
    backend: str,
    chunk_size: int | None,
    overlap: int | None,
    title_prefix: bool | None,
    section_prefix: bool | None,
    cache_dir: Path | None,
    run_file: Path | None,
    compare: bool,
    plot: Path | None,
    bm25_k1: float | None,
    bm25_b: float | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Score retrieval on a BEIR-format collection (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv).

    Reports nDCG@10, Recall@100, MRR@10 and MAP. The collection's index is cached, so a second run with the same
    model and settings embeds nothing.
    """
    from ..evaluation import evaluate, write_trec_run

    options = {
        "chunk_size": chunk_size, "overlap": overlap, "title_prefix": title_prefix, "section_prefix": section_prefix
    }  # fmt: skip
    if compare or plot:
        if run_file:
            raise click.UsageError("--run-file writes one mode's run: leave out --compare and --plot")
        _compare(dataset, split, plot, as_json, protocol=protocol, model=model, cache_dir=cache_dir,
                 progress=not quiet, rerank=rerank_model, candidates=candidates, backend=backend,
                 fusion=fusion_from(fusion, alpha, norm, rrf_k), bm25_k1=bm25_k1, bm25_b=bm25_b,
                 **{k: v for k, v in options.items() if v is not None})  # fmt: skip
        return
    result = evaluate(
        dataset,
        split=split,
        mode=mode,
        protocol=protocol,
        model=model,
        cache_dir=cache_dir,
        progress=not quiet,
        rerank=rerank_model,
        candidates=candidates,
        backend=backend,
        fusion=fusion_from(fusion, alpha, norm, rrf_k),
        bm25_k1=bm25_k1,
        bm25_b=bm25_b,
        **{k: v for k, v in options.items() if v is not None},
    )
    if run_file:
        write_trec_run(result, run_file)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(
        f"{result.dataset} ({result.split}, {result.queries} queries)  mode={result.mode}"
        + (f" ({result.fusion})" if result.fusion else "")
        + "  "
        f"protocol={result.protocol}  model={result.model}"
    )
    if result.before is not None:  # the retrieval alone, then reranked: does the reranker help?
        click.echo("before rerank  " + "  ".join(f"{n} {v * 100:6.2f}" for n, v in result.before.items()))
        click.echo("reranked       " + "  ".join(f"{n} {v * 100:6.2f}" for n, v in result.metrics.items()))
        click.echo(f"({result.seconds:.0f} s; reranker: {rerank_model})")
        return
    click.echo(
        "  ".join(f"{name} {value * 100:6.2f}" for name, value in result.metrics.items())
        + f"   ({result.seconds:.0f} s)"
    )


def _compare(dataset: Path, split: str, plot: Path | None, as_json: bool, **settings: object) -> None:
    from ..evaluation import compare

    if plot is not None:
        from ..plots import FORMATS

        if plot.suffix.lower() not in FORMATS:  # said before minutes of evaluation, not after
            raise click.UsageError(f"--plot writes {' or '.join(FORMATS)}, not {plot.name}")
    compared = compare(dataset, split=split, **settings)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps([{"label": label, **r.to_dict()} for label, r, _ in compared], indent=2))
    else:
        first = compared[0][1]
        click.echo(f"{first.dataset} ({first.split}, {first.queries} queries)  protocol={first.protocol}  "
                   f"model={first.model}")  # fmt: skip
        names = list(first.metrics)
        click.echo(f"{'mode':<18}" + "".join(f"{n:>9}" for n in names))
        for label, result, _ in compared:
            click.echo(f"{label:<18}" + "".join(f"{result.metrics[n] * 100:9.2f}" for n in names))
    if plot is not None:
        from ..plots import plot_modes

        click.echo(f"chart: {plot_modes(compared, plot)}", err=True)


@main.command("calibrate")
@click.argument("judged", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@index_option
@click.option("--split", default="test", show_default=True, help="Which qrels/SPLIT.tsv holds the judgements.")
@click.option("--reset", is_flag=True, help="Go back to the weights shipped for the index's model.")
@reports_errors
def calibrate_cmd(judged: Path | None, index_path: str | None, split: str, reset: bool) -> None:
    """Fit how relevance is estimated here on your own judged queries: JUDGED is a folder with queries.jsonl and
    qrels/SPLIT.tsv (BEIR's layout) whose document ids are the index's (paths relative to the folder indexed
    will do). For a model searchbert ships no weights for, and for a folder unlike the collections they were
    fitted on; at least 10 queries with a relevant document."""
    from ..evaluation import load_judgements
    from ..relevance import calibrate

    if judged is None and not reset:
        raise click.UsageError("give a folder of judged queries, or --reset")
    with open_index(index_path) as index:
        if reset:
            index.set_calibration(None)
            click.echo(f"relevance: the shipped weights again; threshold {index.calibration.threshold:.0%}")
            return
        queries, qrels = load_judgements(judged, split)  # type: ignore[arg-type]
        found = calibrate(index, queries, qrels)
        index.set_calibration(found)
    click.echo(
        f"relevance: fitted on {found.fitted_on}; hits under {found.threshold:.0%} are no good match "
        "(`searchbert calibrate --reset` goes back)"
    )
