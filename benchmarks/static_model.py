"""A static embedding model against the default MiniLM, on every collection: what indexing speed it buys and what
quality it costs.

The static model is distilled in this run from the bundled all-MiniLM-L6-v2 (`searchbert distill`: model2vec, 256
dimensions, offline; no pretrained static model can be fetched here). Each model indexes each collection from scratch
(chunked protocol, as `searchbert index` does; the default runner for each: onnx-int8 for MiniLM), then dense and
hybrid nDCG@10 are measured through `searchbert eval`'s own search; BM25, which needs no model, is the floor.

    .venv/bin/python benchmarks/static_model.py [--datasets scifact cranfield] [--dimensions 256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATASETS, Report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["scifact", "cranfield"])
    parser.add_argument("--dimensions", type=int, default=256)
    args = parser.parse_args()

    from searchbert.evaluation import evaluate
    from searchbert.static_encoder import distill

    report = Report("static_model", "A static model (model2vec, distilled from MiniLM) against MiniLM")
    rows, totals = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        static = distill(Path(tmp) / "minilm-static", None, args.dimensions)
        distil_s = time.perf_counter() - started
        models = [("all-MiniLM-L6-v2 (onnx-int8)", None), (f"MiniLM distilled, static {args.dimensions}d", str(static))]
        for name in args.datasets:
            bm25 = evaluate(DATASETS / name, mode="bm25", cache_dir=Path(tmp) / "bm25")
            rows.append((name, "BM25 (no model)", "", bm25.metrics["nDCG@10"] * 100, "", ""))
            for label, model in models:
                cache = Path(tmp) / f"{name}-{len(rows)}"
                cold = evaluate(DATASETS / name, mode="dense", protocol="chunked", model=model, cache_dir=cache)
                hybrid = evaluate(DATASETS / name, mode="hybrid", protocol="chunked", model=model, cache_dir=cache)
                rate = cold.chunks_embedded / cold.seconds
                totals.setdefault(label, []).append((cold.seconds, cold.chunks_embedded))
                rows.append((name, label, f"{cold.metrics['nDCG@10'] * 100:.2f}", hybrid.metrics["nDCG@10"] * 100,
                             f"{cold.seconds:.0f}", f"{rate:.0f}"))  # fmt: skip
                print(rows[-1], flush=True)

    report.line(f"Collections in {DATASETS}: test split, 300 SciFact and 225 Cranfield queries; nDCG@10 x100. Index "
                "seconds: indexing the collection from scratch then running its queries (dense), on this machine; "
                "chunks/s: chunks embedded over those seconds. The static model was distilled in "
                f"{distil_s:.0f} s.")  # fmt: skip
    report.line()
    report.line("| collection | model | dense nDCG@10 | hybrid nDCG@10 | index s | chunks/s |")
    report.line("|---|---|---|---|---|---|")
    for name, label, dense, hybrid, seconds, rate in rows:
        report.line(f"| {name} | {label} | {dense or '-'} | {hybrid:.2f} | {seconds or '-'} | {rate or '-'} |")
    report.line()
    (fast, slow) = (models[1][0], models[0][0])
    speed = sum(s for s, _ in totals[slow]) / sum(s for s, _ in totals[fast])
    report.line(f"Over the collections, the static model indexed and answered **{speed:.1f}x** faster than MiniLM.")
    for name in args.datasets:
        mine = {label: hybrid for n, label, _, hybrid, _, _ in rows if n == name}
        report.line(f"- {name}: hybrid nDCG@10 {mine[fast] - mine[slow]:+.2f} points with the static model")
    report.save()


if __name__ == "__main__":
    main()
