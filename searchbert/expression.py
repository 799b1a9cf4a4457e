"""A search's filters, compiled once into a small expression that each backend translates in one place: SQL in
store.py, a Milvus boolean expression in stores/milvus.py, Python here (`matches`, what the exact oracle and the
tests use). An expression is a conjunction of conditions on a document's fields; each condition is "any of" its
values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import Filters


@dataclass(frozen=True)
class ExtIn:
    """The file extension (lower case, no dot) is one of `exts`."""

    exts: tuple[str, ...]


@dataclass(frozen=True)
class ModifiedSince:
    """Modified at or after this Unix time."""

    time: float


@dataclass(frozen=True)
class PathGlob:
    """The path below the indexed folder matches one of these fnmatch globs (`*` crosses folders)."""

    patterns: tuple[str, ...]


@dataclass(frozen=True)
class MetadataIs:
    """metadata[key] equals one of `values`, type and all (3 is not "3", nor 3.0, nor true); None: a stored null
    (an absent key matches nothing)."""

    key: str
    values: tuple[Any, ...]


Condition = ExtIn | ModifiedSince | PathGlob | MetadataIs


@dataclass(frozen=True)
class Expression:
    """Every condition must hold; no conditions: everything passes."""

    conditions: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.conditions)


def compile_filters(filters: Filters | Expression | None) -> Expression:
    """The filters as an Expression (one normal form: extensions lower-cased and sorted, lists as tuples)."""
    if filters is None:
        return Expression()
    if isinstance(filters, Expression):
        return filters
    parts: list[Condition] = []
    if filters.exts:
        parts.append(ExtIn(tuple(sorted({e.lower().lstrip(".") for e in filters.exts}))))
    if filters.since is not None:
        parts.append(ModifiedSince(float(filters.since)))
    if filters.paths:
        parts.append(PathGlob(tuple(filters.paths)))
    for key, value in filters.metadata.items():
        parts.append(MetadataIs(key, tuple(value) if isinstance(value, list) else (value,)))
    return Expression(tuple(parts))


_MISSING = object()


def matches(expression: Expression, relpath: str, ext: str, mtime: float, metadata: dict[str, Any]) -> bool:
    """Whether a document with these fields passes (the Python translation)."""
    import fnmatch

    for c in expression.conditions:
        if isinstance(c, ExtIn):
            ok = ext in c.exts
        elif isinstance(c, ModifiedSince):
            ok = mtime >= c.time
        elif isinstance(c, PathGlob):
            ok = any(fnmatch.fnmatchcase(relpath, p) for p in c.patterns)
        else:
            have = metadata.get(c.key, _MISSING)
            ok = have is not _MISSING and any(same_json(have, v) for v in c.values)
        if not ok:
            return False
    return True


def same_json(have: Any, want: Any) -> bool:
    """Equal as JSON values of the same type: 3 is not 3.0, "3" or true."""
    return type(have) is type(want) and have == want


def json_type(value: Any) -> str:
    """SQLite's json_type() of a Python value, so that 3, 3.5, "3" and true never equal one another."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "integer"
    return "real" if isinstance(value, float) else "text"
