"""The `searchbert` command: each subcommand parses its options, calls one library function and prints."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import __version__
from ..errors import SearchbertError
from ..records import FUSIONS, NORMS

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


def stack_options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several click options as one decorator, in the order they are listed (shown so in --help)."""

    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


model_option = click.option(
    "--model", help="Bi-encoder: a local folder or a cached hub id. Default: all-MiniLM-L6-v2 (bundled)."
)
chunk_options = stack_options(
    click.option(
        "--chunk-size", type=click.IntRange(16, 510), help="Word pieces per chunk. Default: the model's limit."
    ),
    click.option("--overlap", type=click.IntRange(0), help="Word pieces shared by neighbouring chunks. Default: 15%."),
    click.option(
        "--title-prefix/--no-title-prefix",
        default=None,
        help="Embed each chunk with its document's title (default on).",
    ),
    click.option(
        "--section-prefix/--no-section-prefix",
        default=None,
        help="Embed each chunk with the headings it sits under, after the title (Markdown, reST, HTML; default off: "
        "measured no better on the Python docs). Hits show their section either way.",
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
        "--mode", type=click.Choice(["dense", "bm25", "hybrid"]), default="hybrid", show_default=True, help=help_text
    )


fusion_options = stack_options(
    click.option(
        "--fusion",
        type=click.Choice(FUSIONS),
        help="How hybrid mode merges the two rankings: rrf (reciprocal rank) or convex (weighted normalised scores). "
        "Default: the index's own (see README, Ranking).",
    ),
    click.option("--alpha", type=click.FloatRange(0, 1), help="convex: the dense side's weight (BM25 gets 1 - alpha)."),
    click.option("--norm", type=click.Choice(NORMS), help="convex: how each side's scores are scaled."),
    click.option("--rrf-k", type=click.IntRange(0), help="rrf: the constant k in 1 / (k + rank)."),
)


def fusion_from(fusion: str | None, alpha: float | None, norm: str | None, rrf_k: int | None) -> Any:
    """The Fusion the options ask for, or None when they ask for none (the index's own is used). Unsaid fields
    take searchbert's default fusion's values when it is the same method."""
    if fusion is None and alpha is None and norm is None and rrf_k is None:
        return None
    from ..records import Fusion
    from ..search import DEFAULT_FUSION

    method = fusion or ("rrf" if rrf_k is not None else "convex")
    base = DEFAULT_FUSION if DEFAULT_FUSION.method == method else Fusion(method)
    given = {"k": rrf_k, "alpha": alpha, "norm": norm}
    return Fusion(**{**base.to_dict(), **{k: v for k, v in given.items() if v is not None}, "method": method})


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


def open_index(index_path: str | None) -> Any:
    """The index a command works on (located as --index, $SEARCHBERT_INDEX, or upward from here)."""
    from ..index import Index, locate_index

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


# the commands register themselves on `main` when their modules load
from . import evaluate, manage, mcp, models, query, serve  # noqa: E402, F401
