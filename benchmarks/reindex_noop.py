"""Time of a no-op re-index of 10,000 small files as a ratio to their first index. Target <= 0.05.

Both runs are the real `searchbert index` command in a new process (start-up and imports included), on files written
from a collection in ../shared/datasets (one file per abstract, cut to its first sentences, so the files are small).

    .venv/bin/python benchmarks/reindex_noop.py [--files 10000] [--dataset scifact]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS, Report


def write_small_files(dataset: Path, out: Path, count: int) -> None:
    docs = [json.loads(line) for line in (dataset / "corpus.jsonl").open()]
    for i in range(count):
        doc = docs[i % len(docs)]
        first = ". ".join(doc["text"].split(". ")[:2])
        folder = out / f"part{i // 500:02}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"note{i:05}.md").write_text(f"# {doc['title']}\n\n{first}\n\n(copy {i})\n")


def timed_index(files: Path, index: Path) -> tuple[float, dict]:
    exe = shutil.which("searchbert", path=str(Path(sys.executable).parent)) or "searchbert"
    started = time.perf_counter()
    done = subprocess.run(
        [exe, "index", str(files), "--index", str(index), "--quiet", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--dataset", default="scifact")
    args = parser.parse_args()
    report = Report("reindex_noop", "No-op re-index vs first index")
    with tempfile.TemporaryDirectory() as tmp:
        files, index = Path(tmp) / "files", Path(tmp) / "ix"
        write_small_files(DATASETS / args.dataset, files, args.files)
        first, summary = timed_index(files, index)
        report.line(f"first index:    {first:8.2f} s  ({summary['added']} added, {summary['chunks_embedded']} chunks)")
        again, summary = timed_index(files, index)
        report.line(
            f"no-op re-index: {again:8.2f} s  ({summary['unchanged']} unchanged, {summary['chunks_embedded']} embedded)"
        )
    report.line(f"no-op / first index ratio: {again / first:.4f}   target <= 0.05")
    report.save()


if __name__ == "__main__":
    main()
