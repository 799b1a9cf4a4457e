"""`pip install searchbert` alone: a wheel built from this repository, installed in a fresh virtual environment with
its core dependencies only, indexes a folder and answers a query; each command that needs an extra says which one to
install (no traceback). Minutes (an environment from nothing): `make test-install` runs it, `make test` does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import write_tree

pytestmark = pytest.mark.install
ROOT = Path(__file__).resolve().parent.parent
TORCH = os.environ.get("SEARCHBERT_TEST_TORCH", "torch==2.13.0+cpu")  # the Makefile's CPU build


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("core")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(base / "dist"), str(ROOT)],
                   check=True)  # fmt: skip
    wheel = next((base / "dist").glob("searchbert-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True)
    pip = [str(base / "venv" / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, str(wheel)], check=True)
    return base / "venv" / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SEARCHBERT_INDEX")}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([str(bin_dir / "searchbert"), *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)  # fmt: skip


def test_the_core_alone_indexes_and_answers(core: Path, tmp_path: Path) -> None:
    docs = write_tree(tmp_path / "docs", {"light.md": "# Lighthouses\n\nLighthouses guide ships at night.\n",
                                          "bread.md": "# Bread\n\nSourdough needs a starter and time.\n"})  # fmt: skip
    listed = subprocess.run([str(core / "python"), "-m", "pip", "list", "--format=freeze"], capture_output=True,
                            text=True, check=True).stdout.lower()  # fmt: skip
    assert "fastapi" not in listed and "ray==" not in listed and "langchain" not in listed  # the core only
    assert _run(core, "index", str(docs), "--index", "ix", "-q", cwd=tmp_path).returncode == 0
    run = _run(core, "query", "ships at night", "--index", "ix", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)[0]["path"].endswith("light.md")


@pytest.mark.parametrize(
    "args, extra",
    [
        (["serve", "--index", "ix"], "serve"),
        (["watch", "--index", "ix"], "serve"),
        (["mcp", "--index", "ix"], "mcp"),
        (["finetune", "encoder", "pairs.jsonl", "-o", "out"], "finetune"),
        (["index", "docs", "--index", "ray-ix", "--ray", "local"], "ray"),
        (["index", "docs", "--index", "milvus-ix", "--vector-store", "milvus", "--milvus-uri", "m.db"], "milvus"),
        (["index", "docs", "--index", "ov-ix", "--backend", "openvino"], "openvino"),
        (["distill", "static-out"], "static"),
    ],
)
def test_each_extra_is_named_when_a_command_needs_it(core: Path, tmp_path: Path, args: list[str], extra: str) -> None:
    write_tree(tmp_path / "docs", {"a.md": "# A\n\nsome text to index\n"})
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"query": "q", "positive": "p"}) + "\n")
    if args[0] in ("serve", "watch", "mcp"):
        assert _run(core, "index", "docs", "--index", "ix", "-q", cwd=tmp_path).returncode == 0
    run = _run(core, *args, cwd=tmp_path)
    said = run.stdout + run.stderr
    assert run.returncode != 0 and f"searchbert[{extra}]" in said, said
    assert "Traceback" not in said, said
