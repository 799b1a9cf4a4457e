"""Path -> Document: find the files under a folder and read each with the reader for its format."""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .builds import BuildFiles
from .errors import DocumentError
from .records import Document

log = logging.getLogger("searchbert")

#: folders never worth indexing, besides hidden ones and virtual environments
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", "venv", "env"})

TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown", ".rst"})
CODE_SUFFIXES = frozenset(
    [
        ".py",
        ".pyi",
        ".js",
        ".jsx",
        ".mjs",
        ".ts",
        ".tsx",
        ".go",
        ".rs",
        ".java",
        ".kt",
        ".scala",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".cs",
        ".rb",
        ".php",
        ".swift",
        ".sh",
        ".bash",
        ".zsh",
        ".sql",
        ".r",
        ".lua",
        ".pl",
        ".toml",
        ".yaml",
        ".yml",
        ".json",
        ".ini",
        ".cfg",
        ".css",
        ".scss",
        ".tex",
        ".xml",
    ]
)
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
PDF_SUFFIXES = frozenset({".pdf"})
#: larger files are almost always data dumps or logs, not documents
MAX_FILE_BYTES = 20 * 1024 * 1024


def size_text(n: int) -> str:
    """A size limit as a person writes it: 20 MiB, 2 MB."""
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n / 1e6:g} MB"


LEGACY_ENCODINGS = [
    "cp1252",
    "latin_1",
    "iso8859_15",
    "cp1250",
    "iso8859_2",
    "cp1251",
    "koi8_r",
    "cp1253",
    "cp1254",
    "cp1255",
    "cp1256",
    "cp1257",
    "shift_jis",
    "euc_jp",
    "gb18030",
    "big5",
    "euc_kr",
    "utf_16",
]


class Reader(Protocol):
    """Reads one format: raw bytes -> (text, title). Raises DocumentError when it cannot."""

    suffixes: frozenset[str]
    format: str

    def read(self, data: bytes, name: str) -> tuple[str, str]: ...


def decode(data: bytes) -> str:
    """Bytes -> str: UTF-8 first (BOM allowed), then the encoding charset-normalizer detects."""
    if b"\x00" in data[:8192]:
        raise DocumentError("binary content")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    # left to itself charset-normalizer often takes short Western text for a Mac code page: ask among the
    # encodings files are really written in
    best = from_bytes(data, cp_isolation=LEGACY_ENCODINGS).best() or from_bytes(data).best()
    if best is None:
        raise DocumentError("cannot detect the text encoding")
    return str(best)


_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
#: a section adornment: a line of one punctuation character repeated (any of reST's, as Sphinx's "%%%" and "###")
_RST_UNDERLINE = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _rst_title(text: str) -> str:
    """The first section title: a line with an adornment under it at least as long (directives, comments and
    overlines before it are passed over)."""
    lines = text.splitlines()
    for i in range(1, len(lines)):
        title, under = lines[i - 1].strip(), lines[i].strip()
        if _RST_UNDERLINE.match(under) and title and not _RST_UNDERLINE.match(title) and len(under) >= len(title):
            return title
    return ""


def markup_of_name(name: str) -> str:
    """The markup a text file is written in, by its suffix: Sphinx keeps page sources as NAME.rst.txt (and MyST's as
    NAME.md.txt), so the suffix before a final .txt counts."""
    suffixes = [s.lower() for s in Path(name).suffixes[-2:]]
    if suffixes and suffixes[-1] == ".txt" and len(suffixes) == 2:
        suffixes.pop()
    return {".md": "md", ".markdown": "md", ".rst": "rst"}.get(suffixes[-1] if suffixes else "", "")


class TextReader:
    """Plain text, Markdown and reStructuredText; the title is the first heading."""

    suffixes = TEXT_SUFFIXES
    format = "text"

    def read(self, data: bytes, name: str) -> tuple[str, str]:
        text = decode(data)
        markup, title = markup_of_name(name), ""
        if markup == "md":
            match = _MD_HEADING.search(text)
            title = match.group(1) if match else ""
        elif markup == "rst":
            title = _rst_title(text)
        return text, title or _first_line(text)[:200] or name


class CodeReader:
    """Source code and config files, read as text; the title is the file name."""

    suffixes = CODE_SUFFIXES
    format = "code"

    def read(self, data: bytes, name: str) -> tuple[str, str]:
        return decode(data), name


class HtmlReader:
    """HTML: the page's main content without its site's navigation (see html.py); the first heading as title."""

    suffixes = HTML_SUFFIXES
    format = "html"

    def read(self, data: bytes, name: str) -> tuple[str, str]:
        from .html import read_html

        return read_html(decode(data), name)


class PdfReader:
    """PDF through pypdf: the text of every page, pages separated by a blank line."""

    suffixes = PDF_SUFFIXES
    format = "pdf"

    def read(self, data: bytes, name: str) -> tuple[str, str]:
        import io

        from pypdf import PdfReader as _Pdf
        from pypdf.errors import PdfReadError

        with _kept_from_stderr("pypdf") as said:  # its "EOF marker not found" is this file's error, said once
            try:
                pdf = _Pdf(io.BytesIO(data))
                if pdf.is_encrypted:
                    raise DocumentError("encrypted PDF")
                pages = [(page.extract_text() or "").strip() for page in pdf.pages]
                meta_title = (pdf.metadata.title if pdf.metadata else None) or ""
            except (PdfReadError, ValueError, KeyError, TypeError) as exc:
                raise DocumentError(f"unreadable PDF: {exc}") from exc
        for line in said:
            log.debug("%s: pypdf: %s", name, line)
        text = "\n\n".join(p for p in pages if p)
        return text, str(meta_title).strip() or _first_line(text)[:200] or name


@contextlib.contextmanager
def _kept_from_stderr(logger_name: str) -> Iterator[list[str]]:
    """What a library logs while it reads one file, kept (a list of messages) instead of printed: with no handler
    of the application's, Python's last resort prints its warnings on stderr between the progress lines."""
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    logger, keep = logging.getLogger(logger_name), Keep()
    logger.addHandler(keep)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield said
    finally:
        logger.removeHandler(keep)
        logger.propagate = propagate


READERS: tuple[Reader, ...] = (TextReader(), CodeReader(), HtmlReader(), PdfReader())
_BY_SUFFIX: dict[str, Reader] = {s: r for r in READERS for s in r.suffixes}


def reader_for(path: Path) -> Reader | None:
    """The reader for a file's suffix, or None if searchbert does not read that format."""
    return _BY_SUFFIX.get(path.suffix.lower())


def read_bytes(path: Path) -> tuple[bytes, os.stat_result]:
    """A file's bytes and its stat, or DocumentError."""
    try:
        return path.read_bytes(), path.stat()
    except OSError as exc:
        raise DocumentError(f"cannot read: {exc.strerror or exc}") from exc


def read_document(path: Path, root: Path | None = None, raw: tuple[bytes, os.stat_result] | None = None) -> Document:
    """Read one file (or its bytes, already read) into a Document; raises DocumentError if it cannot be read."""
    reader = reader_for(path)
    if reader is None:
        raise DocumentError(f"unsupported file type {path.suffix or '(none)'}")
    data, stat = raw or read_bytes(path)
    text, title = reader.read(data, path.name)
    return Document(
        path=str(path),
        text=text,
        title=title,
        root=str(root) if root else str(path.parent),
        size=stat.st_size,
        mtime=stat.st_mtime,
        format=reader.format,
    )


def existing_roots(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The paths as Paths; InvalidArgument naming every one that does not exist."""
    from .errors import InvalidArgument

    roots = [Path(p) for p in paths]
    missing = [str(p) for p in roots if not p.exists()]
    if missing:
        raise InvalidArgument(f"no such file or folder: {', '.join(missing)}")
    return roots


@dataclass
class Discovery:
    """The files found under some roots, and the count of files passed over by reason."""

    files: list[tuple[Path, Path]] = field(default_factory=list)  # (file, root)
    skipped: Counter[str] = field(default_factory=Counter)
    #: (path as it can be printed, why) for files that are there but cannot be indexed
    errors: list[tuple[str, str]] = field(default_factory=list)


def printable(path: Path | str) -> str:
    """A path as text that can be stored and printed: bytes that are not UTF-8 are shown as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _matches(relpath: str, patterns: Iterable[str]) -> bool:
    name = relpath.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(relpath, p) or fnmatch.fnmatch(name, p) for p in patterns)


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _stat(path: Path) -> os.stat_result | None:
    """The file's stat, followed through links (one call answers type, size and identity), or None."""
    try:
        return path.stat()
    except OSError:
        return None


def _is_venv(dirpath: str) -> bool:
    return os.path.exists(os.path.join(dirpath, "pyvenv.cfg"))


def _walk(root: Path) -> Iterator[tuple[str, list[str]]]:
    """os.walk following symlinks, but entering each real folder once (no loops)."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and d not in SKIP_DIRS and not _is_venv(os.path.join(dirpath, d))
        )
        yield dirpath, sorted(filenames)


def discover(
    roots: Iterable[Path],
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    *,
    max_file_bytes: int | None = MAX_FILE_BYTES,
) -> Discovery:
    """Find the files searchbert can read under each root (a folder or a single file).

    Files larger than `max_file_bytes` (None: no limit) are passed over unread.
    """
    limit = max_file_bytes
    include, exclude = tuple(include), tuple(exclude)
    found = Discovery()
    files_seen: set[tuple[int, int]] = set()
    builds = BuildFiles()
    for root in roots:
        root = root.resolve()
        walked = not root.is_file()
        if not walked:
            candidates: Iterable[tuple[Path, str]] = [(root, root.name)]
            base = root.parent
        else:
            base = root
            candidates = (
                (Path(dirpath, name), os.path.relpath(os.path.join(dirpath, name), root))
                for dirpath, names in _walk(root)
                for name in names
            )
        for path, rel in candidates:
            rel = rel.replace(os.sep, "/")
            if path.name.startswith("."):
                found.skipped["hidden"] += 1
            elif not _utf8(str(path)):
                # SQLite, JSON and the terminal all need text: such a name cannot be stored or shown as it is
                found.skipped["unreadable"] += 1
                found.errors.append((printable(path), "the file name is not valid UTF-8: rename the file"))
            elif include and not _matches(rel, include):
                found.skipped["not included"] += 1
            elif exclude and _matches(rel, exclude):
                found.skipped["excluded"] += 1
            elif reader_for(path) is None:
                found.skipped["unsupported type"] += 1
            # a file named as a root, or matched by --include, is wanted whatever a build made it for
            elif walked and not include and (artifact := builds.reason(path)):
                found.skipped[artifact] += 1
            elif (st := _stat(path)) is None or not stat.S_ISREG(st.st_mode):
                found.skipped["not a regular file"] += 1
            elif limit is not None and st.st_size > limit:
                found.skipped[f"file over {size_text(limit)} (--max-doc-size 0 lifts it)"] += 1
            elif (st.st_dev, st.st_ino) in files_seen:
                continue  # the same file again, through a link or a second root: indexed once
            else:
                files_seen.add((st.st_dev, st.st_ino))
                found.files.append((path, base))
    return found
