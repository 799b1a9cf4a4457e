"""The shape the code promises: no import circles among the modules that make models; SQL text only in store.py;
nothing above the VectorStore seam asks which store it has."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "searchbert"


def _imports(path: Path, module: str) -> set[str]:
    """Modules of the package this one imports, at run time (imports only for type checkers left out)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level and id(node) not in typing_only:
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found |= {f"{base}.{a.name}" for a in node.names} | {base}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    return {m: _imports(p, m) & set(modules) for m, p in modules.items()}


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), list(graph[start])
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m not in seen:
            seen.add(m)
            todo += graph.get(m, ())
    return False


def test_the_modules_that_make_models_import_in_one_direction() -> None:
    graph = _graph()
    layer = [f"searchbert.{m}" for m in ("cache", "hub", "encoders", "onnx_encoder", "models")]
    for module in layer:
        assert not _reaches(graph, module, module), f"{module} imports itself through others"
    assert _reaches(graph, "searchbert.models", "searchbert.onnx_encoder")
    assert not _reaches(graph, "searchbert.encoders", "searchbert.onnx_encoder")


SQL = re.compile(r"\b(SELECT|INSERT INTO|DELETE FROM|UPDATE \w+ SET|CREATE TABLE)\b")


#: the store and its two halves: the only modules that write SQL
SQL_MODULES = {"store.py", "store_reads.py", "store_schema.py"}


def test_sql_is_written_in_the_store_modules_only() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name not in SQL_MODULES and SQL.search(p.read_text())
    ]
    assert offenders == []


def _code(path: Path) -> str:
    """A module's code without its docstrings and comments."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.unparse(tree)


def test_nothing_above_the_store_seam_asks_which_store_it_has() -> None:
    for name in ("index.py", "indexing.py", "health.py", "search.py", "filtering.py", "service.py", "folders.py"):
        code = _code(PACKAGE / name).lower()
        assert "milvus" not in code and "faissstore" not in code and "livevectors" not in code, name
