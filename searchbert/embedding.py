"""Where the write path's batches are embedded: a thread beside the writer (the default), or a pool of encoder actors
on a Ray cluster (`index --ray`). Either way the writer hands over a batch's texts, gets a Future of their vectors,
and commits batches in order as they come back, through the same crash-safe transaction.

A batch is cut the same way on both: its texts sorted longest first, then slices of EMBED_SLICE, so each slice pads
as little as one large call would, and a slice embedded on a Ray actor is the very input the local thread would have
encoded (with the ONNX runner the vectors are bit-identical).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from typing import TYPE_CHECKING, Any, Protocol

from .encoders import checked
from .errors import EmbeddingFailed, InvalidArgument, MissingExtra

if TYPE_CHECKING:
    import numpy as np

    from .encoders import Encoder

log = logging.getLogger("searchbert")

#: texts per encode call within a batch (after a stop the thread ends within one); a Ray block is one slice
EMBED_SLICE = 64
#: times a block that failed on an actor (an error, or the actor's process dying) is sent again before the run stops
RAY_RETRIES = 3


class Embedder(Protocol):
    """Embeds a batch of texts in the background."""

    #: how many batches may be in flight before the writer waits to commit the oldest
    depth: int

    def submit(self, texts: list[str]) -> Future[np.ndarray]: ...

    def close(self) -> None:
        """Stop: work not returned yet is dropped (the next run embeds it again)."""
        ...


class Workers:
    """Daemon threads that run calls in the order they come, each call's outcome in its Future (ThreadPoolExecutor's
    contract). Unlike ThreadPoolExecutor's, the interpreter does not wait for them when it exits: a stop (Ctrl-C,
    `kill`) leaves behind a slice being embedded or a model being loaded instead of waiting for it, and a call that
    never returns cannot hang the exit. Safe because nothing they run writes: the writer commits in its own thread."""

    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None]
        self._jobs = queue.SimpleQueue()
        self._count = count
        for i in range(count):
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True).start()

    def submit(self, call: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((future, call, args))
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, call, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call(*args))
            except BaseException as exc:  # the Future carries it to the writer
                future.set_exception(exc)

    def shutdown(self) -> None:
        """Cancel the calls not started; each thread ends after the call it is in."""
        with contextlib.suppress(queue.Empty):
            while True:
                job = self._jobs.get_nowait()
                if job is not None:
                    job[0].cancel()
        for _ in range(self._count):
            self._jobs.put(None)


def slices(texts: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    """The order longest first, and that order cut into EMBED_SLICE-long runs of positions."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    return order, [order[start : start + EMBED_SLICE] for start in range(0, len(order), EMBED_SLICE)]


def assemble(order: list[int], parts: list[np.ndarray]) -> np.ndarray:
    """The slices' vectors put back in the texts' order."""
    import numpy as np

    stacked = np.concatenate(parts)
    vectors = np.empty_like(stacked)
    vectors[order] = stacked
    return vectors


class LocalEmbedder:
    """One thread beside the writer (onnxruntime and torch release the GIL while they compute), so the next batch is
    read and chunked, and the one before committed, while this one is embedded."""

    depth = 1

    def __init__(self, encoder: Encoder, dimension: int, model_id: str) -> None:
        self.encoder, self.dimension, self.model_id = encoder, dimension, model_id
        self._pool: Workers | None = None
        self._stopping = False

    def submit(self, texts: list[str]) -> Future[np.ndarray]:
        if self._pool is None:
            self._pool = Workers(1, "searchbert-embed")
        return self._pool.submit(self._embed, texts)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """A slice at a time, so that after a stop the thread ends within a slice, not the whole batch (a process
        that goes on, a notebook or a server, gets its cores back)."""
        if not texts:
            return self.encoder.encode([])
        order, runs = slices(texts)
        parts = []
        for run in runs:
            if self._stopping:
                raise CancelledError
            part = [texts[i] for i in run]
            parts.append(checked(self.encoder.encode(part), len(part), self.dimension, self.model_id))
        return assemble(order, parts)

    def close(self) -> None:
        self._stopping = True
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class _EncoderActor:
    """A Ray actor holding one encoder, unpickled on the worker (a model loads its own weights there: a pickled
    encoder is its recipe, see encoders.LocalBiEncoder.__reduce__)."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts)


class RayEmbedder:
    """Batches cut into blocks of EMBED_SLICE texts, each sent to the next of a pool of encoder actors; a batch's
    Future completes when all its blocks are back. A block that fails is sent again, to the next actor, up to
    RAY_RETRIES times (a dead actor is restarted as often); then the batch fails and the run stops with that error,
    keeping every batch committed before it."""

    def __init__(
        self,
        encoder: Encoder,
        dimension: int,
        model_id: str,
        *,
        address: str = "local",
        workers: int | None = None,
        batch: int = 512,
        retries: int = RAY_RETRIES,
    ) -> None:
        """`batch`: about how many texts the writer hands over at once (its commit size)."""
        self.dimension, self.model_id, self.retries = dimension, model_id, retries
        running = "ray" in sys.modules and sys.modules["ray"].is_initialized()
        self._saved = _loopback_only() if address == "local" and not running else {}
        try:
            ray = _import_ray()
            if self._saved:
                _loopback_node(self._saved)
            self._started = _connect(ray, address, workers)
        except BaseException:
            _restore(self._saved)
            raise
        self.ray = ray
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if gpus and getattr(encoder, "backend", None) != "torch":
            log.warning(
                "the cluster has %d GPUs, but this index's model runs on %s, a CPU runner: the actors use CPUs "
                "(an index made with --backend torch embeds on the GPUs)",
                gpus,
                getattr(encoder, "backend", "its own runner"),
            )
            gpus = 0
        if workers is None:
            workers = gpus or max(1, int(resources.get("CPU", 1)))
        if workers < 1:
            raise InvalidArgument("--workers must be at least 1")
        # one CPU (or one GPU) per actor: Ray then sets OMP_NUM_THREADS=1 in it, which the ONNX runner follows
        shape = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        actor = ray.remote(max_restarts=retries, **shape)(_EncoderActor)
        # the encoder travels inline (a model pickles as its recipe: a few hundred bytes), so a restarted actor
        # never depends on an object-store copy that may be gone
        self.actors = [actor.remote(encoder) for _ in range(workers)]
        # enough batches in flight to keep two blocks queued at every actor while the oldest is committed
        self.depth = max(1, -(-2 * workers // max(1, -(-batch // EMBED_SLICE))))
        self._next = 0
        self._pool = Workers(self.depth + 1, "searchbert-ray")  # a gatherer a batch
        log.info("embedding on Ray: %d encoder actors (%s)", workers, "a GPU each" if gpus else "a CPU each")

    def submit(self, texts: list[str]) -> Future[np.ndarray]:
        if not texts:
            done: Future[np.ndarray] = Future()
            done.set_result(_empty(self.dimension))
            return done
        order, runs = slices(texts)
        blocks = [[texts[i] for i in run] for run in runs]
        refs = [self._send(block) for block in blocks]  # sent now, in order: the cluster starts on them at once
        return self._pool.submit(self._gather, order, blocks, refs)

    def _send(self, block: list[str]) -> Any:
        actor = self.actors[self._next % len(self.actors)]
        self._next += 1
        return actor.encode.remote(block)

    def _gather(self, order: list[int], blocks: list[list[str]], refs: list[Any]) -> np.ndarray:
        ray = self.ray
        parts: list[np.ndarray | None] = [None] * len(blocks)
        tries = [1] * len(blocks)
        waiting = {ref: i for i, ref in enumerate(refs)}
        while waiting:
            ready, _ = ray.wait(list(waiting), num_returns=1)
            i = waiting.pop(ready[0])
            try:
                vectors = ray.get(ready[0])
            except ray.exceptions.RayError as exc:
                if tries[i] > self.retries:
                    raise EmbeddingFailed(
                        f"embedding failed on the Ray cluster {tries[i]} times for a block of {len(blocks[i])} "
                        f"chunks: {_cause(exc)}"
                    ) from None
                log.warning("a Ray encoder actor failed (%s): sending its block again", _cause(exc))
                tries[i] += 1
                waiting[self._send(blocks[i])] = i
                continue
            parts[i] = checked(vectors, len(blocks[i]), self.dimension, self.model_id)
        return assemble(order, parts)  # type: ignore[arg-type]

    def close(self) -> None:
        self._pool.shutdown()
        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone with its cluster
                self.ray.kill(actor)
        self.actors = []
        if self._started:
            self.ray.shutdown()
            _restore(self._saved)


def _empty(dimension: int) -> np.ndarray:
    import numpy as np

    return np.zeros((0, dimension), dtype=np.float32)


def _cause(exc: BaseException) -> str:
    """The actor's own error, without Ray's traceback banner."""
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__


#: starts of a local Ray instance before giving up: Ray waits a fixed 30 s for its raylet to register, which a machine
#: busy with other work can miss once (seen in make test on 2 cores)
LOCAL_START_TRIES = 2
#: how long a local start waits for its GCS server to listen (Ray's default is 30 s; its variable can say otherwise)
LOCAL_GCS_WAIT_S = 120


def _import_ray() -> Any:
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC's notes on fork() are not the user's business
    try:
        import ray
    except ImportError as exc:
        raise MissingExtra("--ray needs Ray: pip install 'searchbert[ray]'") from exc
    return ray


def _connect(ray: Any, address: str, workers: int | None) -> bool:
    """Start a Ray instance of this process's own (address "local": on loopback, stopped with the run) or join a
    running cluster ("auto": the one `ray start` made on this machine; or its address). Returns whether one was
    started here."""
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address == "local":
        cpus = max(workers or 0, os.cpu_count() or 1)
        for attempt in range(1, LOCAL_START_TRIES + 1):
            try:
                ray.init(address="local", num_cpus=cpus, _node_ip_address="127.0.0.1", **quiet)
                return True
            except Exception as exc:  # Ray's own errors: a raylet that did not register in time, above all
                ray.shutdown()  # what it did start goes, before another try
                if attempt == LOCAL_START_TRIES:
                    raise EmbeddingFailed(
                        f"could not start a local Ray instance on loopback ({attempt} tries; its GCS server may take "
                        f"{LOCAL_GCS_WAIT_S} s to listen, but Ray gives its raylet a fixed 30 s to register, which a "
                        f"busy machine can miss): {exc}"
                    ) from exc
                log.warning("starting a local Ray instance failed (%s); trying again", exc)
    try:
        ray.init(address=address, **{k: v for k, v in quiet.items() if k != "include_dashboard"})
    except Exception as exc:  # Ray's own errors (authentication, timeouts) as well as connection failures
        where = "a cluster started with `ray start --head` on this machine" if address == "auto" else address
        raise EmbeddingFailed(f"cannot join the Ray cluster ({where}): {exc}") from exc
    return False


def _loopback_only() -> dict[str, str | None]:
    """Make the local instance Ray is about to start reachable from this machine only, and by this run only; returns
    what to put back (`_restore`) once it has stopped.

    Ray turns a node address of 127.0.0.1 into the host's reachable address on Linux (for clusters), and then its
    GCS server, raylet, workers and runtime-env agent listen on every interface, where anyone who reaches a port can
    run code. Ray's own switch for single-machine use (the one it sets on macOS and Windows) keeps the node on
    loopback; its servers then bind there. And a fresh token (Ray's token authentication) that only the processes
    of this run inherit, unless the user set Ray's authentication up already. Set in this process's environment,
    which the processes Ray starts inherit."""
    wanted = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    set_up = any(k in os.environ for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"))
    if not set_up and "ray" not in sys.modules:  # Ray reads how it authenticates when it is imported
        import secrets

        wanted |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    if "RAY_gcs_server_port_wait_time_s" not in os.environ:
        wanted["RAY_gcs_server_port_wait_time_s"] = str(LOCAL_GCS_WAIT_S)
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    return saved


def _loopback_node(saved: dict[str, str | None]) -> None:
    """Ray reads its switch for single-machine use when it chooses the node's address, from a constant set when it
    was imported: set it too (and note what to put back in `saved`)."""
    import ray._private.ray_constants as constants

    saved[_CLUSTER_CONSTANT] = "1" if constants.ENABLE_RAY_CLUSTER else ""
    constants.ENABLE_RAY_CLUSTER = False


_CLUSTER_CONSTANT = "ray_constants.ENABLE_RAY_CLUSTER"


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if key == _CLUSTER_CONSTANT:
            import ray._private.ray_constants as constants

            constants.ENABLE_RAY_CLUSTER = bool(value)
        elif value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def check_workers(ray: str | None, workers: int | None) -> None:
    if workers is not None and ray is None:
        raise InvalidArgument("--workers goes with --ray")


def make_embedder(
    encoder: Encoder,
    dimension: int,
    model_id: str,
    ray: str | None = None,
    workers: int | None = None,
    batch: int = 512,
) -> LocalEmbedder | RayEmbedder:
    """The local thread, or with `ray` (local, auto or an address) a pool of actors on that cluster, fed batches of
    about `batch` texts."""
    check_workers(ray, workers)
    if ray is None:
        return LocalEmbedder(encoder, dimension, model_id)
    return RayEmbedder(encoder, dimension, model_id, address=ray, workers=workers, batch=batch)
