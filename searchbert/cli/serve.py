"""`searchbert serve` and `searchbert watch`: the index as a service, and kept up to date as files change."""

from __future__ import annotations

import logging
import signal

import click

from . import index_option, main, reports_errors

watch_filters = [
    click.option("--include", multiple=True, metavar="GLOB", help="With --watch: only files matching GLOB."),
    click.option("--exclude", multiple=True, metavar="GLOB", help="With --watch: skip files matching GLOB."),
]


@main.command("serve")
@index_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (not loopback: --api-key).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option(
    "--api-key",
    envvar="SEARCHBERT_API_KEY",
    help="Key clients send as 'Authorization: Bearer KEY'. Writes need it; off loopback, everything does.",
)
@click.option("--cors", multiple=True, metavar="ORIGIN", help="Let pages from ORIGIN call the API (off by default).")
@click.option(
    "--trusted-host",
    multiple=True,
    metavar="NAME",
    help="On loopback, also answer requests sent to NAME (a proxy's or an alias's host name); others get 400.",
)
@click.option("--rerank-model", metavar="ID_OR_PATH", help="Cross-encoder for requests with rerank: true.")
@click.option("--watch", is_flag=True, help="Re-index the indexed folders as their files change.")
@watch_filters[0]
@watch_filters[1]
@click.option("--exit-after", type=click.FloatRange(min=0, min_open=True), hidden=True)
@reports_errors
def serve_cmd(index_path: str | None, host: str, port: int, api_key: str | None, cors: tuple[str, ...],
              trusted_host: tuple[str, ...], rerank_model: str | None, watch: bool, include: tuple[str, ...],
              exclude: tuple[str, ...], exit_after: float | None) -> None:  # fmt: skip
    """Serve the index over HTTP: a search page at /, the API at /search, /documents, /status, docs at /docs.

    \b
    The model and index load once, so searches take milliseconds; `searchbert query` uses a running server
    for the same index by itself (--no-server to not). Writes (POST/DELETE /documents) need --api-key.
      searchbert serve                      # http://127.0.0.1:8765
      searchbert serve --watch              # and re-index files as they change
    """
    from ..index import locate_index
    from ..server import serve

    logging.getLogger("searchbert").setLevel(logging.INFO)
    path = locate_index(index_path)

    def ready(url: str) -> None:
        click.echo(f"searchbert: serving {path} at {url} (search page: {url}/, API docs: {url}/docs)", err=True)

    serve(path, host=host, port=port, api_key=api_key, cors=cors, trusted_hosts=trusted_host, rerank_model=rerank_model,
          watch=watch, include=include, exclude=exclude, exit_after=exit_after, on_ready=ready)  # fmt: skip


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@main.command("watch")
@index_option
@watch_filters[0]
@watch_filters[1]
@reports_errors
def watch_cmd(index_path: str | None, include: tuple[str, ...], exclude: tuple[str, ...]) -> None:
    """Re-index the indexed folders whenever their files change (Ctrl-C to stop).

    Changes are gathered for a moment, so a burst of saves is one run; each run is the usual incremental `index`.
    """
    from ..index import Index, locate_index
    from ..watch import require_watchfiles, summary, watch, watched_roots

    require_watchfiles()
    signal.signal(signal.SIGTERM, _interrupted)  # `kill` stops it as Ctrl-C does: between runs, or cut short safely
    path = locate_index(index_path)
    roots = watched_roots(path)
    if not roots:
        raise click.ClickException(f"{path} holds no folders to watch: index one first (searchbert index FOLDER)")
    with Index.open(path) as index:
        click.echo(f"watching {', '.join(map(str, roots))} (Ctrl-C to stop)", err=True)

        def said(report, changes: int) -> None:  # type: ignore[no-untyped-def]
            click.echo(summary(report, changes), err=True)

        watch(lambda: index.add(roots, include=include, exclude=exclude), roots, path, on_report=said)
