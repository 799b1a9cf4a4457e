"""Memory while indexing: peak RSS of `searchbert index` for growing corpora, against the vectors it must hold.

Each size runs in a fresh process that indexes N real sentences (SciFact and Cranfield, one file each) with the
default backend and reports its peak RSS. The index's own vectors (4 bytes x 384 per chunk, held by the writer's
FAISS index) and the BM25 matrix grow with the corpus; everything else (reading, chunking, embedding, committing)
streams in batches of 512 chunks and must not. The script prints the peak, the part not explained by the vectors,
and the growth of that part per 1,000 chunks.

    .venv/bin/python benchmarks/index_memory.py [--sizes 2000 8000 32000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Report
from real_vectors import sentences

CHILD = """
import json, re, sys
from pathlib import Path
from searchbert.folders import index_paths
report = index_paths(sys.argv[1], [sys.argv[2]])
peak_kib = int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))  # since exec
print(json.dumps({"chunks": report.chunks_embedded, "peak_mib": peak_kib / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000, 8000, 32000])
    args = parser.parse_args()
    report = Report("index_memory", "Peak memory while indexing")
    texts = sentences()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            folder = Path(tmp) / f"docs{n}"
            folder.mkdir()
            for i, text in enumerate(texts[:n]):
                (folder / f"{i:06}.txt").write_text(text + "\n")
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(Path(tmp) / f"ix{n}"), str(folder)],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            vectors_mib = result["chunks"] * 384 * 4 / 2**20
            rows.append((n, result["chunks"], result["peak_mib"], vectors_mib))
            report.line(
                f"{n:>7,} files  {result['chunks']:>7,} chunks  peak RSS {result['peak_mib']:7.1f} MiB  "
                f"vectors {vectors_mib:6.1f} MiB  rest {result['peak_mib'] - vectors_mib:7.1f} MiB",
            )
    (_, c0, p0, v0), (_, c1, p1, v1) = rows[0], rows[-1]
    per_k = 1000 / (c1 - c0)
    report.line(f"peak RSS grew {p1 - p0:.1f} MiB for {c1 - c0:,} more chunks: {(p1 - p0) * per_k:.2f} MiB per 1,000")
    report.line(f"beyond the vectors: {((p1 - v1) - (p0 - v0)) * per_k:.2f} MiB per 1,000 chunks")
    report.save()


if __name__ == "__main__":
    main()
