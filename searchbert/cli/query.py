"""`searchbert query`: hits as text with snippets, or JSON."""

from __future__ import annotations

import json
import logging
import textwrap
from dataclasses import replace
from typing import Any

import click

from . import (
    display_path,
    fusion_from,
    fusion_options,
    index_option,
    main,
    mode_option,
    open_index,
    reports_errors,
)

log = logging.getLogger("searchbert")


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
@mode_option("hybrid: meaning and exact words, fused (--fusion); dense: meaning (the bi-encoder); bm25: exact words.")
@fusion_options
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
    help="How many chunks the cross-encoder reads (with --rerank), or --diverse picks from.",
)
@click.option(
    "--max-tokens", type=click.IntRange(1),
    help="Fit the hits' texts in this many tokens (the model's word pieces): the best that fit, the last cut where a "
    "sentence ends.",
)  # fmt: skip
@click.option(
    "--tokenizer", metavar="NAME",
    help="Count --max-tokens with this tokenizer (the LLM's: a tokenizer.json, its folder or a Hugging Face id) "
    "instead of the index's model.",
)  # fmt: skip
@click.option("--diverse", is_flag=True, help="Pick the hits by maximal marginal relevance: no near-copies.")
@click.option(
    "--mmr-lambda", type=click.FloatRange(0, 1), default=0.5, show_default=True,
    help="--diverse: relevance's weight against novelty (1: relevance alone).",
)  # fmt: skip
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
@click.option(
    "--min-relevance",
    type=click.FloatRange(0, 1),
    metavar="P",
    help="Show only hits at least this likely to be relevant (the estimated probability printed with each hit). "
    "Default: the index's model's own threshold (see `searchbert status`); 0 shows every hit.",
)
@click.option("--show-weak", is_flag=True, help="When no hit is a good match, show the best weak ones anyway.")
@click.option("--explain", is_flag=True, help="Show each retriever's score and rank, the fused and rerank scores.")
@click.option("--chunks", is_flag=True, help="Rank chunks instead of documents (a document may appear twice).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of hits.")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="Print one JSON object per hit, a line each.")
@click.option(
    "--no-server", is_flag=True, help="Search in this process even when a `searchbert serve` of the index is running."
)
@reports_errors
def query_cmd(
    text: str,
    index_path: str | None,
    k: int,
    mode: str,
    fusion: str | None,
    alpha: float | None,
    norm: str | None,
    rrf_k: int | None,
    rerank: bool,
    rerank_model: str | None,
    candidates: int,
    diverse: bool,
    mmr_lambda: float,
    max_tokens: int | None,
    tokenizer: str | None,
    paths: tuple[str, ...],
    exts: str | None,
    where: tuple[str, ...],
    since: Any,
    min_score: float | None,
    min_relevance: float | None,
    show_weak: bool,
    explain: bool,
    chunks: bool,
    as_json: bool,
    as_jsonl: bool,
    no_server: bool,
) -> None:
    """Search the index for TEXT and show the best documents with the passage that matched."""
    from ..records import Filters, SearchOptions
    from ..sections import beneath

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
        diverse=diverse,
        mmr_lambda=mmr_lambda,
        max_tokens=max_tokens,
        tokenizer=tokenizer,
        filters=filters or None,
        min_score=min_score,
        fusion=fusion_from(fusion, alpha, norm, rrf_k),
    )
    hits = None if no_server else _ask_server(index_path, text, options, rerank_model)
    if hits is None:
        with open_index(index_path) as index:
            hits = index.search(text, options=options)
            floor = index.calibration.threshold if min_relevance is None else min_relevance
    else:
        floor = _default_floor(index_path) if min_relevance is None else min_relevance
    good = [h for h in hits if h.relevance is None or h.relevance >= floor]
    weak = hits if not good else []  # every hit under the threshold: none is a good match
    hits = weak if weak and show_weak else [replace(h, rank=n) for n, h in enumerate(good, start=1)]
    if as_json:
        click.echo(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
    elif as_jsonl:
        for h in hits:
            click.echo(json.dumps(h.to_dict(), ensure_ascii=False))
    elif weak and not show_weak:
        best = max(h.relevance or 0.0 for h in weak)
        click.echo(
            f"No good match: the best hit is {best:.0%} likely to be relevant, under the {floor:.0%} asked for "
            "(--min-relevance). --show-weak shows the weak hits anyway."
        )
    elif not hits:
        click.echo("No results." + (" (Nothing matched the filters or --min-score.)" if filters or min_score else ""))
    else:
        if weak:
            click.echo("No good match; the best weak hits:", err=True)
        for h in hits:
            click.secho(f"{h.rank:>2}. {display_path(h.path)}:{h.start_line}-{h.end_line}", bold=True, nl=False)
            likely = "" if h.relevance is None else f"  relevance {h.relevance:.0%}"
            click.echo(f"  score {h.score:.3f}{likely}  {h.title[:80]}")
            if beneath(h.title, h.section):  # a path that is the title alone says nothing new
                click.echo(f"    § {h.section}")
            if explain:
                click.echo(f"    {_explain(h)}")
            for line in _snippet(h.text):
                click.echo(f"    {line}")
        if not all(h.embedded for h in hits):
            click.echo(
                "Some hits were found by their words alone: the index is still being embedded (`searchbert status` "
                "shows how far; --explain marks them).",
                err=True,
            )


def _ask_server(index_path: str | None, text: str, options: Any, rerank_model: str | None) -> list[Any] | None:
    """The hits from a running `searchbert serve` of this index, or None when there is none that can answer this
    search as this process would (another reranker, a search past the server's limits) or it does not answer."""
    from ..locate import locate_index
    from ..records import Hit
    from ..server.client import LIMITS, ServerUnavailable, find, post

    running = find(locate_index(index_path))
    if running is None or (options.rerank and rerank_model != running.rerank_model):
        return None
    if options.k > LIMITS["k"] or options.candidates > LIMITS["candidates"] or len(text) > LIMITS["query"]:
        return None
    from dataclasses import asdict

    f = options.filters
    body = {
        "query": text, "k": options.k, "mode": options.mode, "rerank": bool(options.rerank),
        "candidates": options.candidates, "chunks": options.chunks, "min_score": options.min_score,
        "diverse": options.diverse, "mmr_lambda": options.mmr_lambda, "max_tokens": options.max_tokens,
        "tokenizer": options.tokenizer,
        "fusion": None if options.fusion is None else options.fusion.to_dict(),
        "filters": None if f is None else asdict(f),
    }  # fmt: skip
    try:
        hits = [Hit(**hit) for hit in post(running, "/search", body)]
    except ServerUnavailable as exc:
        log.info("%s: searching in this process", exc)
        return None
    log.info("answered by the server at %s", running.url)
    return hits


def _default_floor(index_path: str | None) -> float:
    """The default --min-relevance of the index a server answered for (its model's threshold)."""
    from ..index import MANIFEST
    from ..locate import locate_index
    from ..manifest import Manifest
    from ..relevance import for_manifest

    return for_manifest(Manifest.load(locate_index(index_path) / MANIFEST)).threshold


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

    dense = part("dense", h.dense_score, h.dense_rank) if h.embedded else "dense - (not embedded yet: words only)"
    return "  ".join(
        [
            dense,
            part("bm25", h.bm25_score, h.bm25_rank),
            part("fused", h.fused_score),
            part("rerank", h.rerank_score),
        ]
    )
