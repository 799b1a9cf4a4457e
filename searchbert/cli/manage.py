"""`searchbert index`, `remove` and `status`: what goes into an index, and its health."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..models import BACKENDS
from ..stores import store_names
from . import (
    BACKEND_HELP,
    bm25_options,
    chunk_options,
    display_path,
    fusion_from,
    fusion_options,
    index_option,
    main,
    model_option,
    open_index,
    reports_errors,
)


@main.command("index")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@index_option
@model_option
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Index only files matching GLOB (repeatable), even those passed over otherwise as a documentation build's "
    "own (Sphinx _sources copies, search indexes, minified scripts).",
)
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
@click.option(
    "--ray",
    "ray_address",
    metavar="local|auto|ADDRESS",
    help="Embed on a Ray cluster: local (one started for this run, on this machine), auto (the one `ray start` "
    "made here) or a cluster's address. Needs the ray extra.",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    help="Encoder actors on the Ray cluster (default: one per CPU, or per GPU, of the cluster).",
)
@click.option(
    "--vector-store",
    type=click.Choice(store_names()),
    help="Where a new index keeps its vectors: faiss (a file in the index folder, the default), milvus "
    "(needs --milvus-uri and the milvus extra) or numpy (exact search over the database's own copy: slow, for "
    "checking the others). Recorded in the index.",
)
@click.option(
    "--milvus-uri",
    metavar="URI",
    help="Milvus for --vector-store milvus: a Milvus Lite file (*.db) or a server's http(s)://host:19530; "
    "the token, if any, from the MILVUS_TOKEN environment variable.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    metavar="auto|cpu|cuda|cuda:N|mps",
    help="Where the model runs. auto: a GPU when torch sees one (full precision, with torch), else the CPU.",
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    help="Most CPU threads the model and the tokenizer use, to keep the machine usable (default: every core).",
)
@bm25_options
@fusion_options
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
    section_prefix: bool | None,
    rebuild: bool,
    backend: str | None,
    index_type: str | None,
    batch_size: int,
    lock_timeout: float,
    max_doc_size: float,
    ray_address: str | None,
    workers: int | None,
    vector_store: str | None,
    milvus_uri: str | None,
    device: str,
    threads: int | None,
    bm25_k1: float | None,
    bm25_b: float | None,
    fusion: str | None,
    alpha: float | None,
    norm: str | None,
    rrf_k: int | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Index files and folders (text, Markdown, reST, HTML, PDF, source code).

    Every file is first stored by its words (searchable with BM25 within seconds, hybrid search ranking what is
    not embedded yet by its words alone), then embedded, with a progress bar in chunks/s and the time left.
    Re-running it embeds only new and changed text and drops deleted files. It can be stopped at any moment:
    what was committed stays searchable, and the next run picks up where it stopped.
    """
    from ..folders import index_paths
    from ..index import locate_index

    if milvus_uri is not None and vector_store not in (None, "milvus"):
        raise click.UsageError("--milvus-uri goes with --vector-store milvus")
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
        section_prefix=section_prefix,
        rebuild=rebuild,
        progress=not quiet,
        commit_chunks=batch_size,
        lock_timeout=lock_timeout,
        backend=backend,
        index_type=index_type,
        bm25_k1=bm25_k1,
        bm25_b=bm25_b,
        max_doc_size=int(max_doc_size * 1_000_000),
        fusion=fusion_from(fusion, alpha, norm, rrf_k),
        ray=ray_address,
        workers=workers,
        vector_store=vector_store,
        store_options={"uri": milvus_uri} if milvus_uri is not None else None,
        device=device,
        threads=threads,
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

    with open_index(index_path) as index:
        removed = index.remove(paths)
    click.echo(f"Removed {removed} documents from the index.")


@main.command("status")
@index_option
@click.option(
    "--repair",
    is_flag=True,
    help="Rebuild what can be rebuilt without embedding (the vector file; in Milvus, orphan vectors are deleted and "
    "missing ones put back).",
)
@click.option(
    "--deep",
    is_flag=True,
    help="Also embed a few chunks again with the index's model and compare them with their stored vectors "
    "(loads the model).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@reports_errors
def status_cmd(index_path: str | None, repair: bool, deep: bool, as_json: bool) -> None:
    """Show the index's model, counts, size on disk, last update, and whether it is consistent: every chunk has one
    vector, and a sample of the vectors holds what the database says (with --deep, what the model gives)."""
    from .. import health

    info = health.repair(index_path) if repair else health.status(index_path, deep=deep)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
        return
    c = info.chunking
    click.echo(f"index:      {display_path(info.path)}")
    click.echo(f"model:      {info.model} ({info.dimension} dimensions)")
    click.echo(
        f"chunking:   {c['strategy']}, {c['max_tokens']} tokens, overlap {c['overlap']}"
        f"{', title prefix' if c['title_prefix'] else ''}{', section paths' if c.get('section_prefix') else ''}"
    )
    click.echo(f"bm25:       k1 {info.lexical['k1']:g}, b {info.lexical['b']:g}")
    judged = "this model's weights" if info.relevance_model else "words alone (no weights for this model)"
    click.echo(f"relevance:  {judged}; hits under {info.relevance_threshold:.0%} are no good match")
    click.echo(f"contents:   {info.documents} documents, {info.chunks} chunks, {info.vectors} vectors")
    if info.embedded < info.chunks:
        waiting = info.chunks - info.embedded
        click.echo(
            f"dense:      {info.embedded / info.chunks:.0%} embedded ({waiting} chunks found by their words only "
            "until `searchbert index` embeds them)"
        )
    click.echo(f"on disk:    {info.bytes_on_disk / 1e6:.1f} MB")
    click.echo(f"created:    {info.created}   updated: {info.updated}")
    click.echo(f"vectors:    {info.vector_file}")
    click.echo("consistent: yes" if info.consistent else "consistent: NO")
    for problem in info.problems:
        click.echo(f"  - {problem}")
    if not info.consistent and not repair:
        click.echo("Run `searchbert status --repair` to rebuild what can be rebuilt.")
