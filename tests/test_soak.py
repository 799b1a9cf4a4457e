"""The soak benchmark, shortened: readers through the API, `serve` and `mcp`, `watch` beside them, a writer SIGKILLed at
random and `index --rebuild` twice, for 35 seconds; no wrong answer, no traceback, consistent at the end, and the
same top 10 as a fresh index (benchmarks/soak.py runs it for 10 minutes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.model
@pytest.mark.slow
def test_a_short_soak_gives_no_wrong_answer(tmp_path: Path) -> None:
    out = tmp_path / "soak.md"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--seconds", "35", "--rebuild-every", "12",
         "--work", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    report = out.read_text() if out.exists() else run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "| wrong answers | **0** |" in report and "| tracebacks | **0** |" in report, report
    assert "| rebuilds | 3 |" in report or "| rebuilds | 2 |" in report, report
