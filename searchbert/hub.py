"""Where models come from: a folder, the Hugging Face cache, or the hub, fetched once when named.

A hub id that is not cached is downloaded into the standard Hugging Face cache with huggingface_hub (its progress
bars), after one line saying what, how big and where. `--offline`, SEARCHBERT_OFFLINE=1 or HF_HUB_OFFLINE=1 forbid
any network access. An unreachable hub fails within seconds (short timeouts, no retries), with a message that says
how to pass a local folder instead. `weights_hash` identifies a model's weights, so an index can tell two models
apart when they share a name.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from fnmatch import fnmatch
from pathlib import Path

from .errors import ModelNotAvailable

#: seconds the hub gets to answer each request before searchbert gives up on it
HUB_TIMEOUT = 5.0
#: what a model repository may also hold that searchbert never loads (other frameworks' weights, other runtimes'
#: exports: searchbert exports ONNX itself), left on the hub
SKIPPED = ("*.msgpack", "*.h5", "*.ot", "*.tflite", "onnx/*", "openvino/*", "coreml/*")
#: the files whose bytes are a model's weights (the first present is hashed)
_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.onnx", "onnx/model.onnx")


def offline() -> bool:
    """Whether network access is forbidden: --offline (SEARCHBERT_OFFLINE=1) or HF_HUB_OFFLINE=1."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in _OFFLINE_VARS)


_OFFLINE_VARS = ("SEARCHBERT_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _how_to_pass_a_folder(option: str) -> str:
    return (
        "Save the model to a folder on a machine with internet access (for example with `.save('DIR')` in "
        f"sentence-transformers), copy the folder here, and pass its path: {option} /path/to/DIR"
    )


def cached(model: str, revision: str | None = None) -> Path | None:
    """The model's folder in the Hugging Face cache, or None; never touches the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model, revision=revision, local_files_only=True, ignore_patterns=list(SKIPPED)))
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None


def fetch(model: str, *, revision: str | None = None, option: str = "--model") -> Path:
    """The model's local folder: from the cache, else downloaded now (unless offline)."""
    found = cached(model, revision)
    if found is not None:
        return found
    if offline():
        raise ModelNotAvailable(
            f"model {model!r} is not in the local Hugging Face cache, and network access is off (--offline, "
            f"SEARCHBERT_OFFLINE or HF_HUB_OFFLINE). {_how_to_pass_a_folder(option)}"
        )
    return download(model, revision=revision, option=option)


def pull(model: str, revision: str | None = None) -> tuple[Path, bool]:
    """Fetch a model ahead of time (`searchbert pull`): its folder, and whether it was downloaded now."""
    if Path(model).expanduser().is_dir():
        raise ModelNotAvailable(f"{model!r} is a folder on this machine already: pass it as it is, nothing to pull")
    found = cached(model, revision)
    return (found, False) if found is not None else (fetch(model, revision=revision), True)


def download(model: str, *, revision: str | None = None, option: str = "--model") -> Path:
    """Fetch a model from the hub into the Hugging Face cache, saying what and how big first."""
    import httpx2
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    endpoint = constants.ENDPOINT
    try:
        info = HfApi().model_info(model, revision=revision, files_metadata=True, timeout=HUB_TIMEOUT)
        wanted = [s for s in info.siblings or [] if not any(fnmatch(s.rfilename, p) for p in SKIPPED)]
        size = sum(s.size or 0 for s in wanted)
        print(
            f"searchbert: fetching {model} (revision {str(info.sha)[:12]}, {size / 1e6:,.0f} MB) from {endpoint} "
            f"into {constants.HF_HUB_CACHE}",
            file=sys.stderr,
            flush=True,
        )
        # by the name asked for (not the commit), so the cache records the ref and later runs find it offline
        folder = Path(
            snapshot_download(model, revision=revision, etag_timeout=HUB_TIMEOUT, ignore_patterns=list(SKIPPED))
        )
        _verify(model, folder, {s.rfilename: s.lfs.sha256 for s in wanted if s.lfs})
        return folder
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        what = f"revision {revision!r} of " if isinstance(exc, RevisionNotFoundError) else ""
        raise ModelNotAvailable(f"no {what}model {model!r} on the hub at {endpoint}") from exc
    except (httpx2.HTTPError, HfHubHTTPError, OSError) as exc:
        if getattr(getattr(exc, "response", None), "status_code", None) == 404:
            raise ModelNotAvailable(f"no model {model!r} on the hub at {endpoint}") from exc
        raise ModelNotAvailable(
            f"could not fetch model {model!r} from {endpoint} ({type(exc).__name__}: {str(exc)[:200]}). "
            + _how_to_pass_a_folder(option)
        ) from exc


def _verify(model: str, folder: Path, sha256: dict[str, str]) -> None:
    """Check the downloaded weights (LFS files, whose sha256 the hub lists) against the hub's hashes; a file that
    differs is removed from the cache, so the next run fetches it again instead of trusting it."""
    for name, want in sha256.items():
        path = folder / name
        if not path.exists():
            continue
        if _file_sha256(path) != want:
            blob = path.resolve()
            path.unlink(missing_ok=True)
            blob.unlink(missing_ok=True)
            raise ModelNotAvailable(
                f"the download of {model} is corrupt: {name} does not match the sha256 the hub lists. It was "
                f"removed from the cache; run `searchbert pull {model}` again"
            )


def revision_of(folder: Path) -> str | None:
    """The commit a Hugging Face cache snapshot holds (its folder's name), or None for any other folder."""
    return folder.name if folder.parent.name == "snapshots" and len(folder.name) == 40 else None


def weights_hash(folder: Path) -> str | None:
    """sha256 of the model's weights file (first 16 hex digits), remembered per (path, size, mtime) under
    $SEARCHBERT_CACHE so a query never re-reads 90 MB; None if the folder has no weights file searchbert knows."""
    path = weights_file(folder)
    if path is None:
        return None
    real = path.resolve()  # a cache snapshot links to a blob: hash what it points at
    stat = real.stat()
    key = f"{real}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_path = _memo_file()
    memo = _read_memo(memo_path)
    if key not in memo:
        memo[key] = _file_sha256(real)[:16]
        _write_memo(memo_path, memo)
    return memo[key]


def weights_file(folder: Path) -> Path | None:
    """The file holding a model folder's weights (the first of _WEIGHTS there), or None."""
    return next((folder / name for name in _WEIGHTS if (folder / name).exists()), None)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _memo_file() -> Path:
    from .cache import cache_dir

    return cache_dir() / "weights.json"


def _read_memo(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_memo(path: Path, memo: dict[str, str]) -> None:
    from .errors import SearchbertError
    from .vectors import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(memo)))
    except (OSError, SearchbertError):
        pass  # a read-only cache only costs the hash again next time
