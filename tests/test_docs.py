"""The README's figures cite results files that exist, and each was written by its script with command and date."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_results_file_the_readme_cites_exists_and_says_how_it_was_made() -> None:
    readme = (ROOT / "README.md").read_text()
    cited = set(re.findall(r"`(?:benchmarks/results/)?([a-z0-9_]+\.md)`", readme))
    cited.discard("README.md")
    assert len(cited) >= 10
    for name in sorted(cited):
        path = ROOT / "benchmarks" / "results" / name
        assert path.exists(), f"README cites {name}, which no script has written"
        text = path.read_text()
        made = "benchmarks/" in text and re.search(r"\b20\d\d-\d\d-\d\d\b", text)
        assert made, f"{name} does not name the command and date that made it"


def test_every_benchmark_script_the_readme_names_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    for script in set(re.findall(r"benchmarks/([a-z_]+\.py)", readme)):
        assert (ROOT / "benchmarks" / script).exists(), script
