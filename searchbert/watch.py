"""Re-index as files change: `searchbert watch` and `searchbert serve --watch`.

watchfiles reports changes under the indexed folders, gathered over a short debounce so a burst of saves is one
run; each run is the normal incremental `add` (new and changed files embedded, deleted ones dropped, a moved file's
chunks reused), crash-safe as any other. Changes inside the index's own folder (when it lies under a watched one)
are not changes to the documents and are ignored, or every commit would trigger the next.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MissingExtra, SearchbertError

if TYPE_CHECKING:
    from .records import IndexReport

log = logging.getLogger("searchbert")
#: changes are gathered this long after the first of a burst before the folders are re-indexed
DEBOUNCE_MS = 800


def watch(
    reindex: Callable[[], IndexReport],
    roots: Sequence[Path],
    index_path: Path,
    *,
    debounce_ms: int = DEBOUNCE_MS,
    stop: threading.Event | None = None,
    on_report: Callable[[IndexReport, int], None] | None = None,
) -> None:
    """Call `reindex` after each debounced burst of changes under `roots`, until `stop` is set. A failed run is
    logged and the watch goes on (the next change retries)."""
    require_watchfiles()
    from watchfiles import DefaultFilter
    from watchfiles import watch as changes

    own = index_path.resolve()

    class Documents(DefaultFilter):
        def __call__(self, change: Any, path: str) -> bool:
            return super().__call__(change, path) and not Path(path).resolve().is_relative_to(own)

    for batch in changes(*roots, watch_filter=Documents(), debounce=debounce_ms, stop_event=stop, rust_timeout=500):
        try:
            report = reindex()
        except SearchbertError as exc:
            log.warning("re-indexing after %d changes failed: %s", len(batch), exc)
            continue
        if on_report is not None:
            on_report(report, len(batch))


def require_watchfiles() -> None:
    """Watching needs watchfiles (the serve extra): said before anything starts."""
    try:
        import watchfiles  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("watching files needs watchfiles: pip install 'searchbert[serve]'") from exc


def summary(report: IndexReport, changes: int) -> str:
    """What one run after a burst of changes did, in a line."""
    return f"{changes} changes: {report.added} added, {report.updated} updated, {report.removed} removed"


def watched_roots(index_path: Path) -> list[Path]:
    """The folders an index's files came from (records added as data have none)."""
    from .index import Index

    with Index.open(index_path) as index:
        return [Path(r) for r in index.store.roots() if Path(r).is_dir()]
