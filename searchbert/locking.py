"""The index's write lock: one writer at a time, readers never wait."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import IndexLocked, storage_error

log = logging.getLogger("searchbert")

#: the lock file in the index folder; never deleted: a writer waiting on it would then hold a lock nobody else sees
LOCK = "write.lock"
#: seconds a writer waits for another writer before giving up
LOCK_TIMEOUT_S = 600.0


class WriteLock:
    """The index's write lock (write.lock, never deleted): one writer at a time; readers never wait.

    Re-entrant in one process, so creating an index and then filling it is one hold of the lock.
    """

    def __init__(self, path: Path) -> None:
        from filelock import FileLock

        self.path = path
        self._lock = FileLock(str(path / LOCK))

    @contextmanager
    def held(self, timeout: float | None = None) -> Iterator[None]:
        from filelock import Timeout

        timeout = LOCK_TIMEOUT_S if timeout is None else timeout
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            log.warning(
                "another searchbert process is writing to %s; waiting for it (up to %.0f s)", self.path, timeout
            )
            try:
                self._lock.acquire(timeout=timeout)
            except Timeout:
                raise IndexLocked(
                    f"another process is still writing to {self.path} after {timeout:.0f} s; try again when it is done"
                ) from None
        except OSError as exc:  # after Timeout, which is an OSError too
            raise storage_error(exc, self.path) from exc
        try:
            yield
        finally:
            self._lock.release()
