"""Helpers shared by the benchmark scripts: where the collections are, and writing one out as files."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("SEARCHBERT_DATASETS", REPO.parent / "shared" / "datasets"))


def write_corpus_files(dataset: Path, out: Path, limit: int | None = None) -> int:
    """Write a BEIR corpus as one Markdown file per document (title heading + text); returns the count."""
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with (dataset / "corpus.jsonl").open() as fh:
        for line in fh:
            if limit is not None and n >= limit:
                break
            doc = json.loads(line)
            (out / f"{doc['_id']}.md").write_text(f"# {doc.get('title', '').strip()}\n\n{doc['text']}\n")
            n += 1
    return n


def scifact_index(exe: str) -> Path:
    """SciFact's 5,183 abstracts as Markdown files, indexed by `searchbert index` with its defaults (built once,
    kept under benchmarks/.cache/scifact)."""
    import subprocess

    base = REPO / "benchmarks" / ".cache" / "scifact"
    index = base / "ix"
    if not (index / "manifest.json").exists():
        write_corpus_files(DATASETS / "scifact", base / "docs")
        subprocess.run([exe, "index", str(base / "docs"), "--index", str(index), "--quiet"], check=True)
    return index


def per_query_ndcg(folder: Path, run: dict[str, dict[str, float]], split: str = "test") -> dict[str, float]:
    """nDCG@10 of each judged query of a collection's run (0 for a query the run left unanswered)."""
    from searchbert.evaluation import per_query

    return {q: each["nDCG@10"] for q, each in per_query(_qrels(folder, split), run).items()}


@functools.cache
def _qrels(folder: Path, split: str) -> dict[str, dict[str, int]]:
    """A collection's judgements, read once per run (reading them parses the whole corpus)."""
    from searchbert.evaluation import load_collection

    return load_collection(folder, split).qrels


def paired_difference(after: dict[str, float], before: dict[str, float]) -> str:
    """The mean per-query difference in points, with its 95% confidence interval (paired t): whether a difference
    between two runs over the same queries is more than the queries' own spread."""
    from scipy.stats import ttest_rel

    queries = sorted(before)
    test = ttest_rel([after[q] for q in queries], [before[q] for q in queries])
    low, high = test.confidence_interval(0.95)
    mean = sum(after[q] - before[q] for q in queries) / len(queries)
    return f"{100 * mean:+.2f} (95% CI {100 * low:+.2f} to {100 * high:+.2f})"


def machine() -> str:
    """This machine in one line: CPU model, cores this process may use, vector extensions, memory, Python."""
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next(
            (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), model
        )
        flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    except OSError:
        pass
    simd = ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if f in flags) or "no AVX2"
    try:
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError):
        memory = "? GiB"
    return f"{model}, {len(os.sched_getaffinity(0))} cores ({simd}), {memory}, Python {platform.python_version()}"


class Report:
    """What a benchmark prints, kept to be written to benchmarks/results/NAME.md with when, where and how."""

    def __init__(self, name: str, title: str) -> None:
        import sys
        import time

        self.path = REPO / "benchmarks" / "results" / f"{name}.md"
        self.lines: list[str] = []
        self.header = (
            f"# {title}\n\n"
            f"- command: `{' '.join(['.venv/bin/python', *sys.argv])}`\n"
            f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}\n"
            f"- machine: {machine()}\n"
        )

    def line(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def save(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(self.header + "\n" + "\n".join(self.lines) + "\n")
        print(f"(written to {self.path})")
        return self.path
