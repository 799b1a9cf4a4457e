"""The `searchbert` command: each subcommand parses its options, calls one library function and prints."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import SearchbertError
from .onnx_encoder import BACKENDS

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn searchbert's errors into a clear message and exit code (2 usage, 1 failure), never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SearchbertError as exc:
            if exc.exit_code == 2:
                raise click.UsageError(str(exc)) from exc
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:
            click.echo("interrupted: everything committed before now is kept in the index", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


index_option = click.option(
    "--index",
    "index_path",
    metavar="PATH",
    help="Index folder. Default: $SEARCHBERT_INDEX, else indexes/default in this folder or the nearest one above.",
)


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several click options as one decorator, in the order they are listed (shown so in --help)."""

    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


model_option = click.option(
    "--model", help="Bi-encoder: a local folder or a cached hub id. Default: all-MiniLM-L6-v2 (bundled)."
)
chunk_options = _stack(
    click.option(
        "--chunk-size", type=click.IntRange(16, 510), help="Word pieces per chunk. Default: the model's limit."
    ),
    click.option("--overlap", type=click.IntRange(0), help="Word pieces shared by neighbouring chunks. Default: 15%."),
    click.option(
        "--title-prefix/--no-title-prefix",
        default=None,
        help="Embed each chunk with its document's title (default on).",
    ),
)
BACKEND_HELP = (
    "What runs the model: torch, onnx (the same vectors as torch, faster), openvino (the same vectors, needs the "
    "openvino extra) or onnx-int8 (int8 document vectors: faster still, slightly different; queries stay full "
    "precision). Default auto: onnx-int8 for the bundled model (measured within 0.5 nDCG@10), onnx for others."
)


def mode_option(help_text: str) -> Callable[[F], F]:
    """--mode, shared by `query` and `eval`."""
    return click.option(
        "--mode", type=click.Choice(["dense", "bm25", "hybrid"]), default="dense", show_default=True, help=help_text
    )


def bm25_options(func: F) -> F:
    """--bm25-k1 and --bm25-b, shared by `index` and `eval`."""
    func = click.option(
        "--bm25-b",
        type=click.FloatRange(0, 1),
        help="BM25 length normalisation b (default 0.75; an index keeps its own).",
    )(func)
    return click.option(  # type: ignore[return-value]
        "--bm25-k1",
        type=click.FloatRange(0),
        help="BM25 term-frequency saturation k1 (default 1.5; changing it rebuilds only the BM25 index).",
    )(func)


def display_path(path: str) -> str:
    """A path relative to the current folder when it lies below it, as a person would type it."""
    try:
        return os.path.relpath(path) if Path(path).is_absolute() and path.startswith(os.getcwd() + os.sep) else path
    except ValueError:
        return path


def _open_index(index_path: str | None) -> Any:
    """The index a command works on (located as --index, $SEARCHBERT_INDEX, or upward from here)."""
    from .index import Index, locate_index

    return Index.open(locate_index(index_path))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="searchbert")
@click.option("-v", "--verbose", is_flag=True, help="Say more about what is going on.")
@click.option(
    "--offline",
    is_flag=True,
    help="Never use the network: a model that is not on this machine is an error (also SEARCHBERT_OFFLINE=1).",
)
def main(verbose: bool, offline: bool) -> None:
    """searchbert: semantic search over your own documents, offline.

    \b
    Index a folder, then ask it questions in plain words:
      searchbert index ./docs
      searchbert query "how do I rotate the signing keys"
    """
    log = logging.getLogger("searchbert")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("searchbert: %(message)s"))
        log.addHandler(handler)
    log.propagate = False  # said once, by this handler, whatever a library does to the root logger
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    if offline:
        os.environ["SEARCHBERT_OFFLINE"] = "1"


@main.command("index")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@index_option
@model_option
@click.option("--include", multiple=True, metavar="GLOB", help="Index only files matching GLOB (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files matching GLOB (repeatable).")
@chunk_options
@click.option("--rebuild", is_flag=True, help="Start the index over (needed to change model or chunk settings).")
@click.option("--backend", type=click.Choice(BACKENDS), help=BACKEND_HELP)
@click.option(
    "--index-type",
    type=click.Choice(["auto", "flat", "hnsw", "ivf", "ivf-sq8", "ivf-pq"]),
    help="Vector index: flat (exact), hnsw, ivf, ivf-sq8 or ivf-pq (approximate, compressed). "
    "Default auto: exact up to 200,000 chunks, then IVF.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=512,
    show_default=True,
    help="Chunks embedded and committed together: a crash loses at most one batch.",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(0),
    default=600,
    show_default=True,
    help="Seconds to wait for another process writing to the same index.",
)
@click.option(
    "--max-doc-size",
    type=click.FloatRange(0),
    default=2,
    show_default=True,
    metavar="MB",
    help="Skip documents whose text is larger (in MB; 0: no limit). A 10 MB log takes minutes to embed.",
)
@bm25_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@reports_errors
def index_cmd(
    paths: tuple[Path, ...],
    index_path: str | None,
    model: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    chunk_size: int | None,
    overlap: int | None,
    title_prefix: bool | None,
    rebuild: bool,
    backend: str | None,
    index_type: str | None,
    batch_size: int,
    lock_timeout: float,
    max_doc_size: float,
    bm25_k1: float | None,
    bm25_b: float | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Index files and folders (text, Markdown, reST, HTML, PDF, source code).

    Re-running it embeds only new and changed files and drops deleted ones. It can be stopped at any moment:
    what was committed stays searchable, and the next run picks up where it stopped.
    """
    from .index import index_paths, locate_index

    target = locate_index(index_path)
    report = index_paths(
        target,
        paths,
        model=model,
        include=include,
        exclude=exclude,
        chunk_size=chunk_size,
        overlap=overlap,
        title_prefix=title_prefix,
        rebuild=rebuild,
        progress=not quiet,
        commit_chunks=batch_size,
        lock_timeout=lock_timeout,
        backend=backend,
        index_type=index_type,
        bm25_k1=bm25_k1,
        bm25_b=bm25_b,
        max_doc_size=int(max_doc_size * 1_000_000),
    )
    if as_json:
        click.echo(json.dumps({"index": str(target), **report.to_dict()}, indent=2))
        return
    click.echo(
        f"Indexed {report.indexed} documents ({report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.removed} removed; {report.chunks_embedded} chunks embedded) "
        f"in {report.seconds:.1f} s into {display_path(str(target))}"
    )
    if report.skipped:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items(), key=lambda x: -x[1]))
        click.echo(f"Skipped {sum(report.skipped.values())} files: {reasons}")
    for path, error in report.errors[:10]:
        click.echo(f"  could not read {display_path(path)}: {error}", err=True)


@main.command("remove")
@click.argument("paths", nargs=-1, required=True)
@index_option
@reports_errors
def remove_cmd(paths: tuple[str, ...], index_path: str | None) -> None:
    """Remove files, everything under folders, or records by their id from the index (no file is touched)."""

    with _open_index(index_path) as index:
        removed = index.remove(paths)
    click.echo(f"Removed {removed} documents from the index.")


@main.command("status")
@index_option
@click.option("--repair", is_flag=True, help="Rebuild what can be rebuilt without embedding (the vector file).")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@reports_errors
def status_cmd(index_path: str | None, repair: bool, as_json: bool) -> None:
    """Show the index's model, counts, size on disk, last update, and whether it is consistent."""
    from . import health

    info = health.repair(index_path) if repair else health.status(index_path)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
        return
    c = info.chunking
    click.echo(f"index:      {display_path(info.path)}")
    click.echo(f"model:      {info.model} ({info.dimension} dimensions)")
    click.echo(
        f"chunking:   {c['strategy']}, {c['max_tokens']} tokens, overlap {c['overlap']}"
        f"{', title prefix' if c['title_prefix'] else ''}"
    )
    click.echo(f"bm25:       k1 {info.lexical['k1']:g}, b {info.lexical['b']:g}")
    click.echo(f"contents:   {info.documents} documents, {info.chunks} chunks, {info.vectors} vectors")
    click.echo(f"on disk:    {info.bytes_on_disk / 1e6:.1f} MB")
    click.echo(f"created:    {info.created}   updated: {info.updated}")
    click.echo(f"vectors:    {info.vector_file}")
    click.echo("consistent: yes" if info.consistent else "consistent: NO")
    for problem in info.problems:
        click.echo(f"  - {problem}")
    if not info.consistent and not repair:
        click.echo("Run `searchbert status --repair` to rebuild what can be rebuilt.")


def _snippet(text: str, width: int = 100, lines: int = 3) -> list[str]:
    flat = " ".join(text.split())
    wrapped = textwrap.wrap(flat, width=width)
    return (
        [*wrapped[: lines - 1], textwrap.shorten(" ".join(wrapped[lines - 1 :]), width, placeholder=" …")]
        if len(wrapped) > lines
        else wrapped
    )


@main.command("query")
@click.argument("text")
@index_option
@click.option("-k", "--top", "k", default=10, show_default=True, type=int, help="How many results.")
@mode_option("dense: meaning (the bi-encoder); bm25: exact words; hybrid: both, fused by reciprocal rank.")
@click.option("--rerank", is_flag=True, help="Reorder the best candidates with a BERT cross-encoder (slower, better).")
@click.option(
    "--rerank-model",
    metavar="ID_OR_PATH",
    help="Cross-encoder for --rerank: a local folder or a cached hub id. Default: cross-encoder/ms-marco-MiniLM-L6-v2.",
)
@click.option(
    "--candidates",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="How many chunks the cross-encoder reads (with --rerank).",
)
@click.option(
    "--path",
    "paths",
    multiple=True,
    metavar="GLOB",
    help="Only documents whose path (relative to the folder indexed) matches GLOB; repeatable.",
)
@click.option("--ext", "exts", metavar="EXTS", help="Only these file types, comma-separated: md,txt.")
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="KEY=VALUE",
    help='Only records whose metadata KEY equals VALUE (JSON: 3, true, null, "3"; else text); repeat a key for '
    "any of several values, different keys must all match.",
)
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Only documents modified on or after this date (YYYY-MM-DD).",
)
@click.option("--min-score", type=float, help="Drop hits scoring below this (the final score: see --explain).")
@click.option("--explain", is_flag=True, help="Show each retriever's score and rank, the fused and rerank scores.")
@click.option("--chunks", is_flag=True, help="Rank chunks instead of documents (a document may appear twice).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of hits.")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="Print one JSON object per hit, a line each.")
@reports_errors
def query_cmd(
    text: str,
    index_path: str | None,
    k: int,
    mode: str,
    rerank: bool,
    rerank_model: str | None,
    candidates: int,
    paths: tuple[str, ...],
    exts: str | None,
    where: tuple[str, ...],
    since: Any,
    min_score: float | None,
    explain: bool,
    chunks: bool,
    as_json: bool,
    as_jsonl: bool,
) -> None:
    """Search the index for TEXT and show the best documents with the passage that matched."""
    from .records import Filters, SearchOptions

    filters = Filters(
        paths=paths,
        exts=tuple(e.strip() for e in exts.split(",") if e.strip()) if exts else (),
        since=since.timestamp() if since else None,
        metadata=_where(where),
    )
    options = SearchOptions(
        k=k,
        mode=mode,
        chunks=chunks,
        rerank=(rerank_model or True) if rerank else None,
        candidates=candidates,
        filters=filters or None,
        min_score=min_score,
    )
    with _open_index(index_path) as index:
        hits = index.search(text, options=options)
    if as_json:
        click.echo(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
    elif as_jsonl:
        for h in hits:
            click.echo(json.dumps(h.to_dict(), ensure_ascii=False))
    elif not hits:
        click.echo("No results." + (" (Nothing matched the filters or --min-score.)" if filters or min_score else ""))
    else:
        for h in hits:
            click.secho(f"{h.rank:>2}. {display_path(h.path)}:{h.start_line}-{h.end_line}", bold=True, nl=False)
            click.echo(f"  score {h.score:.3f}  {h.title[:80]}")
            if explain:
                click.echo(f"    {_explain(h)}")
            for line in _snippet(h.text):
                click.echo(f"    {line}")


def _where(pairs: tuple[str, ...]) -> dict[str, Any]:
    """--where KEY=VALUE options as a metadata filter: a repeated key means any of its values."""
    wanted: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--where takes KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if isinstance(value, (dict, list)):
            value = raw  # a filter compares plain values: the text as written
        wanted.setdefault(key, []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in wanted.items()}


def _explain(h: Any) -> str:
    def part(name: str, score: float | None, rank: int | None = None) -> str:
        if score is None:
            return f"{name} -"
        return f"{name} {score:.4f}" + (f" (#{rank})" if rank is not None else "")

    return "  ".join(
        [
            part("dense", h.dense_score, h.dense_rank),
            part("bm25", h.bm25_score, h.bm25_rank),
            part("fused", h.fused_score),
            part("rerank", h.rerank_score),
        ]
    )


@main.command("eval")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", default="test", show_default=True, help="Which qrels/SPLIT.tsv to score.")
@mode_option(
    "dense: the bi-encoder through searchbert's index; bm25: the lexical baseline (bm25s, k1 1.5, b 0.75); "
    "hybrid: both, fused."
)
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
@bm25_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@reports_errors
def eval_cmd(
    dataset: Path,
    split: str,
    mode: str,
    rerank_model: str | None,
    candidates: int,
    protocol: str,
    model: str | None,
    backend: str,
    chunk_size: int | None,
    overlap: int | None,
    title_prefix: bool | None,
    cache_dir: Path | None,
    run_file: Path | None,
    bm25_k1: float | None,
    bm25_b: float | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Score retrieval on a BEIR-format collection (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv).

    Reports nDCG@10, Recall@100, MRR@10 and MAP. The collection's index is cached, so a second run with the same
    model and settings embeds nothing.
    """
    from .evaluation import evaluate, write_trec_run

    options = {"chunk_size": chunk_size, "overlap": overlap, "title_prefix": title_prefix}
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
        f"{result.dataset} ({result.split}, {result.queries} queries)  mode={result.mode}  "
        f"protocol={result.protocol}  model={result.model}"
    )
    click.echo(
        "  ".join(f"{name} {value * 100:6.2f}" for name, value in result.metrics.items())
        + f"   ({result.seconds:.0f} s)"
    )


@main.command("mcp")
@index_option
@reports_errors
def mcp_cmd(index_path: str | None) -> None:
    """Serve an index to AI agents over the Model Context Protocol (stdio).

    \b
    Tools: search(query, k, mode, filters, rerank) and get_document(id, start_line, end_line).
    Needs the mcp extra: pip install 'searchbert[mcp]'. Point your client at it, e.g.:
      {"mcpServers": {"docs": {"command": "searchbert", "args": ["mcp", "--index", "/abs/path/to/index"]}}}
    """
    from .index import Index, locate_index

    try:
        from .integrations.mcp import serve
    except ImportError as exc:
        raise SearchbertError(f"searchbert mcp needs the mcp extra: pip install 'searchbert[mcp]' ({exc})") from exc
    path = locate_index(index_path)
    Index.open(path).close()  # a missing or unreadable index is said now, not on the first tool call
    serve(path)


@main.command("pull")
@click.argument("model")
@click.option("--revision", help="A branch, tag or commit of the model (default: main).")
@reports_errors
def pull_cmd(model: str, revision: str | None) -> None:
    """Fetch a model from the Hugging Face hub into its cache, ahead of first use.

    \b
    A named model is otherwise fetched when first used (--model, --rerank-model); pull does it now:
      searchbert pull sentence-transformers/all-mpnet-base-v2
    The default model ships with searchbert and needs nothing fetched.
    """
    from .hub import pull

    folder, fetched = pull(model, revision)
    click.echo(f"{'Fetched' if fetched else 'Already here:'} {model} -> {folder}")


@main.group("finetune")
def finetune_group() -> None:
    """Adapt a model to your own data (needs the finetune extra: pip install 'searchbert[finetune]')."""


@finetune_group.command("encoder")
@click.argument("data", type=click.Path(exists=True))
@click.option("--output", "-o", required=True, type=click.Path(), help="New folder for the fine-tuned model.")
@click.option("--base", help="Model to start from (folder or hub id). Default: the bundled all-MiniLM-L6-v2.")
@click.option("--split", default="train", show_default=True, help="A BEIR folder's qrels split to train on.")
@click.option(
    "--epochs", default=3, show_default=True, help="Passes over the pairs; the best on held-out queries is kept."
)
@click.option("--batch-size", default=16, show_default=True, help="Pairs per step (more: more in-batch negatives).")
@click.option("--learning-rate", default=2e-5, show_default=True)
@click.option("--dev-share", default=0.1, show_default=True, help="Share of the queries held out to choose the epoch.")
@click.option("--seed", default=42, show_default=True)
@click.option("--device", help="cpu, cuda, cuda:1, mps... Default: a GPU if there is one.")
@reports_errors
def finetune_encoder_cmd(
    data: str,
    output: str,
    base: str | None,
    split: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    dev_share: float,
    seed: int,
    device: str | None,
) -> None:
    """Fine-tune the bi-encoder on (query, relevant passage) pairs.

    \b
    DATA: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv), or a JSONL file with one
    {"query": ..., "positive": ..., "negatives": [...]} per line (negatives optional: hard ones are mined).
    The output folder is a Sentence-Transformers model:
      searchbert finetune encoder ../shared/datasets/scifact -o models/scifact
      searchbert index ./docs --model models/scifact --rebuild
    """
    from .finetune import finetune_encoder

    report = finetune_encoder(
        data,
        output,
        base=base,
        split=split,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        dev_share=dev_share,
        seed=seed,
        device=device,
    )
    change = ""
    if report.dev_before and report.dev_after:
        change = (
            f"; held-out nDCG@10 {report.dev_before['ndcg@10'] * 100:.2f} -> {report.dev_after['ndcg@10'] * 100:.2f}"
            f" (epoch {report.best_epoch} of {report.epochs})"
        )
    click.echo(
        f"Fine-tuned {report.base} on {report.pairs} pairs ({report.train_queries} queries, {report.dev_queries} held "
        f"out) in {report.seconds:.0f} s{change}.\nSaved to {display_path(report.output)} (with finetune.json and "
        f"finetune.png). Use it: searchbert index FOLDER --model {display_path(report.output)} --rebuild"
    )
