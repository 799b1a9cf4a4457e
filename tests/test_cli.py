"""The CLI through CliRunner (in process) and as a real installed `searchbert` subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from searchbert.cli import main

from .test_integration import CORPUS

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from .conftest import write_tree

    docs = write_tree(tmp_path_factory.mktemp("docs"), CORPUS)
    ix = tmp_path_factory.mktemp("ix") / "ix"
    result = CliRunner().invoke(main, ["index", str(docs), "--index", str(ix), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"Indexed {len(CORPUS)} documents" in result.output
    return docs, ix


def run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args))


def test_query_text_output_shows_path_lines_and_snippet(indexed: tuple[Path, Path]) -> None:
    _, ix = indexed
    result = run("query", "how do I rotate the signing keys", "--index", str(ix), "-k", "2")
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert "key-rotation.md:1-" in first and "score" in first
    assert "cryptographic" in result.output


def test_query_json_and_jsonl(indexed: tuple[Path, Path]) -> None:
    _, ix = indexed
    every = ("--min-relevance", "0")  # the weak hits too
    hits = json.loads(run("query", "office wifi password", "--index", str(ix), "--json", "-k", "3", *every).stdout)
    assert len(hits) == 3 and hits[0]["path"].endswith("it/wifi.md")
    assert {"path", "score", "text", "start_line", "end_line", "chunk_id", "rank"} <= set(hits[0])
    lines = run("query", "office wifi password", "--index", str(ix), "--jsonl", "-k", "3", *every).stdout.splitlines()
    assert [json.loads(line)["chunk_id"] for line in lines] == [h["chunk_id"] for h in hits]


def test_reindex_is_a_no_op(indexed: tuple[Path, Path]) -> None:
    docs, ix = indexed
    result = run("index", str(docs), "--index", str(ix), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["unchanged"] == len(CORPUS) and report["chunks_embedded"] == 0


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["query", "", "--index", "{ix}"], 2, "query is empty"),
        (["query", "x", "-k", "0", "--index", "{ix}"], 2, "positive"),
        (["query", "x", "--index", "{tmp}/none"], 1, "no searchbert index"),
        (["index", "{tmp}/missing", "--index", "{tmp}/new"], 2, "does not exist"),
        (["index", "{tmp}/empty", "--index", "{tmp}/new"], 1, "found no documents"),
        (["index", "{docs}", "--index", "{tmp}/new", "--model", "org/not-cached-model"], 1, "--model /path/to/DIR"),
        (["index", "{docs}", "--index", "{ix}", "--model", "{tmp}"], 1, "not a model folder"),
        (["index", "{docs}", "--index", "{ix}", "--chunk-size", "100"], 1, "--rebuild"),
    ],
)
def test_bad_input_gives_clear_errors(indexed, tmp_path: Path, args: list[str], code: int, message: str) -> None:
    docs, ix = indexed
    (tmp_path / "empty").mkdir()
    argv = [a.format(ix=ix, tmp=tmp_path, docs=docs) for a in args]
    result = run(*argv)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_index_found_from_a_subfolder_and_env(indexed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, ix = indexed
    monkeypatch.delenv("SEARCHBERT_INDEX", raising=False)
    shutil.copytree(ix, tmp_path / "indexes" / "default")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deep" / "er")
    assert "vacation.md" in run("query", "annual leave allowance", "-k", "1").output
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEARCHBERT_INDEX", str(ix))
    assert "vacation.md" in run("query", "annual leave allowance", "-k", "1").output


def test_every_command_has_help_and_a_readme_mention() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for name, command in main.commands.items():
        assert command.help and len(command.help) > 20, name
        assert f"searchbert {name}" in readme, f"README does not mention `searchbert {name}`"
        assert run(name, "--help").exit_code == 0


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; from searchbert.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n"
        "bad = [m for m in ('torch', 'sentence_transformers', 'transformers', 'faiss') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_real_subprocess_index_and_query(tmp_path: Path) -> None:
    from .conftest import write_tree

    exe = shutil.which("searchbert", path=str(Path(sys.executable).parent)) or "searchbert"
    docs = write_tree(tmp_path / "docs", CORPUS)
    env = {**os.environ, "SEARCHBERT_INDEX": str(tmp_path / "ix")}
    done = subprocess.run([exe, "index", str(docs)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "reading" in done.stderr and "chunk/s" in done.stderr, "progress bars are shown on stderr"
    out = subprocess.run(
        [exe, "query", "espresso descaling", "--json", "-k", "1"], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["path"].endswith("kitchen/coffee.md")
    bad = subprocess.run(
        [exe, "query", "x", "--index", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 1 and "Error: no searchbert index" in bad.stderr
    module = subprocess.run([sys.executable, "-m", "searchbert", "--version"], capture_output=True, text=True)
    assert module.returncode == 0 and "searchbert" in module.stdout


def test_status_and_repair(indexed: tuple[Path, Path]) -> None:
    """`status` imported its module from the wrong package and failed on every call."""
    _docs, ix = indexed
    result = run("status", "--index", str(ix))
    assert result.exit_code == 0, result.output
    assert "consistent: yes" in result.output and "documents" in result.output
    (ix / "vectors.faiss").unlink()
    result = run("status", "--index", str(ix), "--json")
    assert result.exit_code == 0 and json.loads(result.output)["vector_file"].startswith("missing")
    result = run("status", "--index", str(ix), "--repair")
    assert result.exit_code == 0 and "consistent: yes" in result.output and (ix / "vectors.faiss").exists()


def test_watch_without_watchfiles_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "watchfiles", None)  # as in `pip install searchbert` alone: not installed
    result = CliRunner().invoke(main, ["watch", "--index", str(tmp_path / "ix")])
    assert result.exit_code == 1 and "pip install 'searchbert[serve]'" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
