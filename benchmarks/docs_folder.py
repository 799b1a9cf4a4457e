"""A real documentation folder nobody here wrote: Debian's Python 3.11 docs (`apt-get install python3.11-doc`), indexed
from scratch by `searchbert index` as a user runs it, then re-indexed after one paragraph of 20 pages is edited.

Reported in one run: the time to the first answer a query can give (a new `searchbert query` process asked every
2 s while `index` runs), the time until every document is committed by its words (BM25 finds it from then on; each
document's title is then asked of BM25), the time until every chunk is embedded, texts embedded per second end to end
against the raw encode rate of the same texts through the same runner (the ceiling, measured in this run on a random
sample of them), the index process's peak memory, and where the time goes: each stage of the pipeline timed alone on
the same documents (reading and parsing, chunking with the tokenizer, the model, SQLite, FAISS, BM25).

    .venv/bin/python benchmarks/docs_folder.py [--folder /usr/share/doc/python3.11/html] [--sample 8000]
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, Report

FOLDER = Path("/usr/share/doc/python3.11/html")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


#: runs the searchbert CLI from the source tree named first (the venv's editable install of this checkout would win
#: over PYTHONPATH: its finder is dropped)
_AT = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')];"
    "sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'searchbert'; from searchbert.cli import main; main()"
)


def _searchbert(code: Path) -> list[str]:
    return [sys.executable, "-c", _AT, str(code)]


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    import psutil

    try:
        parent = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / 1e6
    except psutil.Error:
        return 0.0


def _progress(db: Path) -> tuple[int, int, int] | None:
    """(documents, chunks, chunks embedded) committed so far, read from the index's database as any reader can."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            docs = con.execute("SELECT count(*) FROM documents").fetchone()[0]
            chunks = con.execute("SELECT count(*) FROM chunks").fetchone()[0]
            waiting = con.execute("SELECT count(*) FROM chunks WHERE length(vector) = 0").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return docs, chunks, chunks - waiting


def index_run(docs: Path, index: Path, probe: str | None, code: Path = REPO) -> dict[str, Any]:
    """`searchbert index` in its own process: wall time, peak memory, what was committed when (polled), and (with
    `probe`) when a query in a new process first answered."""
    started = time.perf_counter()
    command = [*_searchbert(code), "index", str(docs), "--index", str(index), "-q", "--json"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    peak, first, next_probe, seen = 0.0, None, 0.0, []
    while run.poll() is None:
        peak = max(peak, _rss_mb(run.pid))
        now = time.perf_counter() - started
        counts = _progress(index / "index.db") if (index / "index.db").exists() else None
        if counts is not None:
            seen.append((now, *counts))
        if probe and first is None and now >= next_probe and (index / "manifest.json").exists():
            asked = subprocess.run([*_searchbert(code), "query", probe, "--index", str(index), "--json", "-k",
                                    "1", "--no-server"], capture_output=True, text=True, env=_env())  # fmt: skip
            if asked.returncode == 0 and json.loads(asked.stdout or "[]"):
                first = time.perf_counter() - started
            next_probe = time.perf_counter() - started + 2
        time.sleep(0.25)
    out, err = run.communicate()
    assert run.returncode == 0, err[-2000:]
    report = json.loads(out)
    seconds = time.perf_counter() - started
    final = _progress(index / "index.db")
    assert final is not None
    # every document committed (by its words): from then on BM25, and hybrid, find each of them
    words = next((t for t, d, _, _ in seen if d >= final[0]), seconds)
    return {"seconds": seconds, "peak_mb": peak, "first_answer": first or float("nan"), "words_done": words,
            "rate": report["chunks_embedded"] / seconds,
            "chunks_embedded": report["chunks_embedded"], "documents": report["added"] + report["updated"],
            "chunks": final[1]}  # fmt: skip


def titles_found(index: Path) -> tuple[int, int, int]:
    """(documents, found first, found in the top 10) when each document's title is asked of BM25 (the words every
    document is committed with first; a query during the embedding pass ranks with the same BM25 index)."""
    from searchbert.index import Index

    with Index.open(index) as ix:
        rows = ix.store.execute("SELECT path, title FROM documents").fetchall()
        first = top = 0
        for path, title in rows:
            hits = ix.search(title, k=10, mode="bm25")
            paths = [h.path for h in hits]
            first += bool(paths) and paths[0] == path
            top += path in paths
    return len(rows), first, top


def ceiling(index: Path, sample: int) -> float:
    """The raw encode rate (texts/s) of a random `sample` of the index's distinct embedded texts, title prefixes
    included, longest first in slices of 64 through the writer's own embedder: in a new process, as `index` is."""
    done = subprocess.run([sys.executable, __file__, "--ceiling-of", str(index), "--sample", str(sample)],
                          capture_output=True, text=True, env=_env(), check=True)  # fmt: skip
    return float(done.stdout.strip().splitlines()[-1])


def _ceiling_here(index: Path, sample: int) -> float:
    from searchbert.chunking import document_prefix
    from searchbert.embedding import LocalEmbedder
    from searchbert.index import Index

    with Index.open(index) as ix:
        enc, settings = ix.encoder, ix.manifest.chunking
        rows = ix.store.execute("SELECT d.title, c.text FROM chunks c JOIN documents d ON d.id = c.document_id")
        prefixes: dict[str, str] = {}
        texts = set()
        for title, text in rows:
            if title not in prefixes:
                prefixes[title] = document_prefix(title, enc.token_spans, settings)
            texts.add(prefixes[title] + text)
        picked = random.Random(3).sample(sorted(texts), min(sample, len(texts)))
        enc.encode(["warm up"] * 8)
        embedder = LocalEmbedder(enc, ix.manifest.dimension, ix.manifest.model_id)
        started = time.perf_counter()
        embedder.submit(picked).result()
        seconds = time.perf_counter() - started
        embedder.close()
    return len(picked) / seconds


def stages(docs: Path, index: Path, ceiling: float) -> dict[str, float]:
    """Each stage alone on the same documents (those the index holds), in this process: reading and parsing,
    chunking (the tokenizer's share apart), the model (every distinct text at the `ceiling` rate), SQLite, FAISS and
    BM25."""
    import numpy as np

    from searchbert.chunking import chunk_many, document_prefix
    from searchbert.index import Index
    from searchbert.index_files import build_lexical
    from searchbert.loaders import discover, read_document
    from searchbert.store import Store
    from searchbert.vectors import FaissFlatIndex

    times: dict[str, float] = {}
    with Index.open(index) as ix:
        enc, settings = ix.encoder, ix.manifest.chunking
        held = {r[0] for r in ix.store.execute("SELECT path FROM documents")}
        started = time.perf_counter()
        found = discover([docs])
        documents = [read_document(path, root) for path, root in found.files if str(path) in held]
        times["reading and parsing"] = time.perf_counter() - started

        spans_time = 0.0

        def many(texts: list[str]) -> list[list[tuple[int, int]]]:
            nonlocal spans_time
            t = time.perf_counter()
            out = enc.token_spans_many(texts)
            spans_time += time.perf_counter() - t
            return out

        started = time.perf_counter()
        cut = []
        for i in range(0, len(documents), 64):  # in the writer's groups
            group = documents[i : i + 64]
            prefixes = [document_prefix(d.title, enc.token_spans, settings) for d in group]
            parts = chunk_many([d.text for d in group], prefixes, enc.token_spans, settings, many, enc.whole_words)
            cut += list(zip(group, parts, prefixes))
        times["chunking (without the tokenizer)"] = time.perf_counter() - started - spans_time
        times["tokenizing (for chunking)"] = spans_time

        texts = set(p + c.text for _, chunks, p in cut for c in chunks)
        times["the model (raw encode of the same texts)"] = len(texts) / ceiling  # the whole, at the ceiling's rate
        times["chunks"], times["texts"] = sum(len(c) for _, c, _ in cut), len(texts)
        vectors = np.random.default_rng(0).normal(size=(int(times["chunks"]), ix.manifest.dimension)).astype("float32")

        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "index.db")
            store.create_schema()
            started, offset, pending = time.perf_counter(), 0, 0
            store.execute("BEGIN IMMEDIATE")
            for doc, chunks, _ in cut:  # as the writer stores them: a transaction per 512 chunks
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
    parser.add_argument("--sample", type=int, default=8000, help="distinct texts encoded alone for the ceiling")
    parser.add_argument("--baseline", metavar="REV", help="also index the folder with searchbert at this git revision")
    parser.add_argument("--ceiling-of", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling_of is not None:
        print(_ceiling_here(args.ceiling_of, args.sample))
        return
    if not args.folder.exists():
        sys.exit(f"{args.folder} is missing: apt-get install python3.11-doc")
    report = Report("docs_folder", "Debian's Python 3.11 documentation, indexed from scratch and after 20 edits")
    with tempfile.TemporaryDirectory() as tmp:
        docs, index = Path(tmp) / "html", Path(tmp) / "ix"
        shutil.copytree(args.folder, docs, symlinks=False)
        files = sum(1 for p in docs.rglob("*") if p.is_file())
        first = index_run(docs, index, probe="What's New In Python 3.11")
        titles = titles_found(index)
        ceilings = [ceiling(index, args.sample)]
        base = None
        if args.baseline:  # the same folder, the same machine, by the revision named: then the ceiling again
            code = Path(tmp) / "baseline"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(code), args.baseline],
                           check=True, capture_output=True)  # fmt: skip
            try:
                base = index_run(docs, Path(tmp) / "ix-baseline", probe="What's New In Python 3.11", code=code)
            finally:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(code)], check=False)
            ceilings.append(ceiling(index, args.sample))
        split = stages(docs, index, max(ceilings))
        rng = random.Random(11)
        edited = edit_paragraphs(docs, args.edits, rng)
        again = index_run(docs, index, probe=None)

    split.pop("chunks")
    texts, best = split.pop("texts"), max(ceilings)
    # both sides per text embedded: `index` embeds each distinct text once, and so does the ceiling
    rate = first["chunks_embedded"] / first["seconds"]
    report.line(f"{files} files in {args.folder}; {first['documents']:.0f} documents indexed, {first['chunks']:.0f} "
                f"chunks, {texts:.0f} distinct texts ({first['chunks_embedded']:.0f} embedded by `index`)")  # fmt: skip
    report.line()
    head = f"| from scratch | this version | {args.baseline} |" if base else "| from scratch | |"
    report.line(head)
    report.line("|---|---|---|" if base else "|---|---|")

    def row(name: str, key: str, unit: str = "s", digits: int = 0) -> None:
        cells = [first] + ([base] if base else [])
        report.line(f"| {name} | " + " | ".join(f"{c[key]:.{digits}f} {unit}" for c in cells) + " |")

    row("first answer to a query (a new `query` process every 2 s)", "first_answer")
    row("every document committed by its words (BM25 finds it)", "words_done")
    row("every chunk embedded (the whole run)", "seconds")
    row("end to end", "rate", "texts embedded/s", 1)
    row("peak memory of the index process", "peak_mb", "MB")
    report.line()
    shown = " and ".join(f"{c:.1f}" for c in ceilings)
    report.line(f"- Raw encode of the same texts through the same runner, in a new process (the ceiling; a random "
                f"{args.sample} of them, measured {'before and after the baseline' if base else 'once'}): {shown} "
                f"texts/s. End to end / the best ceiling: **{rate / best:.2f}**.")  # fmt: skip
    if base:
        report.line(f"- Whole run: this version / {args.baseline}: **{first['seconds'] / base['seconds']:.2f}**; "
                    f"every document searchable (by its words) after {first['words_done']:.0f} s against "
                    f"{base['words_done']:.0f} s (the baseline commits a document only with its vectors).")  # fmt: skip
    report.line(f"- Each document's title asked of BM25 once all were committed: found first for {titles[1]}, in the "
                f"top 10 for {titles[2]} of {titles[0]}.")  # fmt: skip
    report.line()
    report.line("Where the time goes (each stage alone, same documents, same process; the model's time is the whole "
                "folder's at the best ceiling's rate):")  # fmt: skip
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
