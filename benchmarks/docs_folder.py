"""A real documentation folder nobody here wrote: Debian's Python 3.11 docs (`apt-get install python3.11-doc`), indexed
from scratch by `searchbert index` as a user runs it, then re-indexed after one paragraph of 20 pages is edited.

Reported in one run: the time to the first answer a query can give (a new `searchbert query` process asked every few
seconds while `index` runs), the time until every chunk is embedded, chunks/s end to end against the raw encode rate
of the very same texts through the same runner (the ceiling, measured in this run, after the index), the index
process's peak memory, and where the time goes: each stage of the pipeline timed alone on the same folder (reading
and parsing, chunking with the tokenizer, the model, SQLite, FAISS, BM25).

    .venv/bin/python benchmarks/docs_folder.py [--folder /usr/share/doc/python3.11/html]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, Report

FOLDER = Path("/usr/share/doc/python3.11/html")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    import psutil

    try:
        parent = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / 1e6
    except psutil.Error:
        return 0.0


def index_run(docs: Path, index: Path, probe: str | None) -> dict[str, float]:
    """`searchbert index` in its own process: wall time, peak memory, and (with `probe`) when a query first answered."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "searchbert", "index", str(docs), "--index", str(index), "-q", "--json"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    peak, first, next_probe = 0.0, None, 0.0
    while run.poll() is None:
        peak = max(peak, _rss_mb(run.pid))
        now = time.perf_counter() - started
        if probe and first is None and now >= next_probe and (index / "manifest.json").exists():
            asked = subprocess.run([sys.executable, "-m", "searchbert", "query", probe, "--index", str(index),
                                    "--json", "-k", "1", "--no-server"], capture_output=True, text=True,
                                   env=_env())  # fmt: skip
            if asked.returncode == 0 and json.loads(asked.stdout or "[]"):
                first = time.perf_counter() - started
            next_probe = now + 5
        time.sleep(0.5)
    out, err = run.communicate()
    assert run.returncode == 0, err[-2000:]
    report = json.loads(out)
    return {"seconds": time.perf_counter() - started, "peak_mb": peak, "first_answer": first or float("nan"),
            "chunks_embedded": report["chunks_embedded"], "documents": report["added"] + report["updated"]}  # fmt: skip


def stages(docs: Path, index: Path) -> dict[str, float]:
    """Each stage alone on the same folder, in this process: reading and parsing, chunking (the tokenizer's share
    apart), the model (the ceiling: the indexed texts, longest first in slices of 64 as the writer sends them),
    SQLite, FAISS and BM25."""
    import numpy as np

    from searchbert.chunking import chunk_document, document_prefix
    from searchbert.embedding import LocalEmbedder
    from searchbert.index import Index
    from searchbert.index_files import build_lexical
    from searchbert.loaders import discover, read_document
    from searchbert.store import Store
    from searchbert.vectors import FaissFlatIndex

    times: dict[str, float] = {}
    with Index.open(index) as ix:
        enc, settings = ix.encoder, ix.manifest.chunking
        enc.encode(["warm up"] * 8)
        started = time.perf_counter()
        found = discover([docs])
        documents = [read_document(path, root) for path, root in found.files]
        times["reading and parsing"] = time.perf_counter() - started

        spans_time = 0.0

        def spans(text: str) -> list[tuple[int, int]]:
            nonlocal spans_time
            t = time.perf_counter()
            out = enc.token_spans(text)
            spans_time += time.perf_counter() - t
            return out

        started = time.perf_counter()
        texts, cut = [], []
        for doc in documents:
            prefix = document_prefix(doc.title, spans, settings)
            chunks = chunk_document(doc.text, spans, settings, prefix)
            texts += [prefix + c.text for c in chunks]
            cut.append((doc, chunks))
        times["chunking (without the tokenizer)"] = time.perf_counter() - started - spans_time
        times["tokenizing (for chunking)"] = spans_time

        # each text once, as `index` embeds them (a text already embedded is reused): the same work for both sides
        unique = list(dict.fromkeys(texts))
        embedder = LocalEmbedder(enc, ix.manifest.dimension, ix.manifest.model_id)
        started = time.perf_counter()
        embedded = dict(zip(unique, embedder.submit(unique).result()))
        times["the model (raw encode of the same chunks)"] = time.perf_counter() - started
        embedder.close()
        times["chunks"], times["texts"] = len(texts), len(unique)
        vectors = np.stack([embedded[t] for t in texts])

        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "index.db")
            store.create_schema()
            started, offset, pending = time.perf_counter(), 0, 0
            store.execute("BEGIN IMMEDIATE")
            for doc, chunks in cut:  # as the writer stores them: a transaction per 512 chunks
                store.insert_document(doc, "0" * 64, chunks, vectors[offset : offset + len(chunks)], "now")
                offset, pending = offset + len(chunks), pending + len(chunks)
                if pending >= 512:
                    store.bump_generation()
                    store.execute("COMMIT")
                    store.execute("BEGIN IMMEDIATE")
                    pending = 0
            store.execute("COMMIT")
            times["SQLite (insert every document, chunk and vector)"] = time.perf_counter() - started
            store.close()
        started = time.perf_counter()
        flat = FaissFlatIndex(ix.manifest.dimension)
        for part_ids, part in ix.store.all_vectors(ix.manifest.dimension):
            flat.add(part_ids, part)
        with tempfile.TemporaryDirectory() as tmp:
            flat.save(Path(tmp) / "v.faiss")
        times["FAISS (build and save)"] = time.perf_counter() - started
        started = time.perf_counter()
        lexical = build_lexical(ix.store, ix.manifest)
        with tempfile.TemporaryDirectory() as tmp:
            lexical.save(Path(tmp) / "bm25", {})
        times["BM25 (build and save)"] = time.perf_counter() - started
    return times


def edit_paragraphs(docs: Path, n: int, rng: random.Random) -> list[Path]:
    """Change one word in one paragraph of n HTML pages that have a long one."""
    pages = sorted(p for p in docs.rglob("*.html") if "genindex" not in p.name)
    rng.shuffle(pages)
    edited = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        match = re.search(r"<p>([^<]{200,})</p>", text)
        if match is None:
            continue
        changed = match.group(1).replace(" the ", " the edited ", 1)
        page.write_text(text[: match.start(1)] + changed + text[match.end(1) :], encoding="utf-8")
        edited.append(page)
        if len(edited) == n:
            break
    return edited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument("--edits", type=int, default=20)
    args = parser.parse_args()
    if not args.folder.exists():
        sys.exit(f"{args.folder} is missing: apt-get install python3.11-doc")
    report = Report("docs_folder", "Debian's Python 3.11 documentation, indexed from scratch and after 20 edits")
    with tempfile.TemporaryDirectory() as tmp:
        docs, index = Path(tmp) / "html", Path(tmp) / "ix"
        shutil.copytree(args.folder, docs, symlinks=False)
        files = sum(1 for p in docs.rglob("*") if p.is_file())
        first = index_run(docs, index, probe="What's New In Python 3.11")
        split = stages(docs, index)
        rng = random.Random(11)
        edited = edit_paragraphs(docs, args.edits, rng)
        again = index_run(docs, index, probe=None)

    chunks, texts = split.pop("chunks"), split.pop("texts")
    model = split["the model (raw encode of the same chunks)"]
    # both sides per text embedded: `index` embeds each distinct text once, and so does the ceiling
    rate, ceiling = first["chunks_embedded"] / first["seconds"], texts / model
    report.line(f"{files} files in {args.folder}; {first['documents']:.0f} documents indexed, {chunks:.0f} chunks, "
                f"{texts:.0f} distinct texts ({first['chunks_embedded']:.0f} embedded by `index`)")  # fmt: skip
    report.line()
    report.line("| from scratch | |")
    report.line("|---|---|")
    report.line(f"| first answer to a query | {first['first_answer']:.0f} s |")
    report.line(f"| every chunk embedded (the whole run) | {first['seconds']:.0f} s |")
    report.line(f"| end to end | {rate:.1f} texts embedded/s |")
    report.line(f"| raw encode of the same texts, same runner (the ceiling) | {ceiling:.1f} texts/s |")
    report.line(f"| end to end / ceiling | **{rate / ceiling:.2f}** |")
    report.line(f"| peak memory of the index process | {first['peak_mb']:.0f} MB |")
    report.line()
    report.line("Where the time goes (each stage alone, same folder, same process):")
    report.line()
    report.line("| stage | seconds | share of the stages |")
    report.line("|---|---|---|")
    total = sum(split.values())
    for stage, seconds in split.items():
        report.line(f"| {stage} | {seconds:.1f} | {seconds / total:.0%} |")
    report.line()
    per_page = again["chunks_embedded"] / max(len(edited), 1)
    report.line(f"Re-index after one paragraph of {len(edited)} pages was edited: {again['seconds']:.1f} s, "
                f"{again['chunks_embedded']:.0f} chunks embedded ({per_page:.1f} per edited page), "
                f"{again['documents']:.0f} documents updated, peak {again['peak_mb']:.0f} MB")  # fmt: skip
    report.save()


if __name__ == "__main__":
    main()
