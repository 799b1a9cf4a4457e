"""The examples in examples/ run as a user runs them, and do what they say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.model
def test_the_rag_loop_prints_a_prompt_grounded_in_the_corpus(tmp_path: Path) -> None:
    question = "Which transcription factor keeps blood stem cells dormant?"
    run = subprocess.run(
        [sys.executable, "examples/rag_loop.py", question, "-k", "2", "--index", str(tmp_path / "ix")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.count("Question:") == 1 and f"Question: {question}\nAnswer:" in out
    assert "[1] " in out and "[2] " in out and "[3] " not in out
    assert "gata-3" in out.lower()  # the abstract that answers it (SciFact's judged document) is among the sources
