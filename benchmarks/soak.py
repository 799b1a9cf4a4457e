"""Soak: an index kept whole under everything that runs beside it at once.

For --seconds (600 by default): readers ask without pause through the Python API (one Index kept open, as a notebook
keeps it), `searchbert serve` (HTTP), `searchbert mcp` (the official MCP client) and `searchbert watch` runs beside them
as users leave it running; a writer edits, adds and deletes files and runs `searchbert index` after each change, is
SIGKILLed at random moments, and runs `index --rebuild` every --rebuild-every seconds. Every processes is real, with
the real bundled model.

Every answer is judged against a ledger of what the folder held and when: a hit is wrong if its path was never a file
of the folder, if its text is no text that file ever had, or if the file had been deleted before a writer run that
completed before the question was asked (that run must have taken it out). At the end `status --deep` must find the
index consistent, and a fresh index of the same folder must give the same top 10 for a fixed set of queries.
Counts: queries answered per reader, rebuilds, kills, wrong answers (target 0), errors a user would see (each a clear
message; a traceback anywhere is counted apart).

    .venv/bin/python benchmarks/soak.py                       # 10 minutes; writes benchmarks/results/soak.md
    .venv/bin/python benchmarks/soak.py --seconds 35 --rebuild-every 12 --out /tmp/soak.md   # what make test runs
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, Report

WORDS = (  # noqa: SIM905
    "river stone lantern harvest copper window falcon meadow engine orchard signal harbor thunder velvet canyon "
    "pepper glacier compass violin garden marble rocket saddle timber beacon ladder mirror fossil island quartz "
    "cotton dragon ember feather goblet hammer ivory jungle kettle lemon magnet needle oyster pillow quiver raven "
    "silver tunnel umbrella walnut yarn zephyr anchor bridge candle desert"
).split()


def sb(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "searchbert", *args], capture_output=True, text=True, timeout=timeout,
                          env=_env())  # fmt: skip


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SEARCHBERT_INDEX", None)
    return env


class Ledger:
    """What the folder held and when, and the writer runs that completed: what answers are judged against."""

    def __init__(self, folder: Path, rng: random.Random) -> None:
        self.folder, self.rng = folder, rng
        self.lock = threading.Lock()
        self.versions: dict[str, list[str]] = {}  # every text a path had
        self.events: dict[str, list[tuple[float, bool]]] = {}  # (when, exists from then on)
        self.runs: list[tuple[float, float]] = []  # writer runs that completed: (started, ended)
        self.rebuilds: list[list[float]] = []  # [started, ended] (ended inf while it runs)
        self.serial = 0

    def text(self, marker: str) -> str:
        words = " ".join(self.rng.choice(WORDS) for _ in range(40))
        return f"{marker} {words}. The {self.rng.choice(WORDS)} and the {self.rng.choice(WORDS)} meet {marker}.\n"

    def write(self, path: Path | None = None) -> None:
        with self.lock:
            if path is None:
                self.serial += 1
                path = self.folder / f"note{self.serial:04}.txt"
            marker = f"zq{path.stem}x{len(self.versions.get(str(path), []))}"
            text = self.text(marker)
            path.write_text(text)
            self.versions.setdefault(str(path), []).append(text)
            self.events.setdefault(str(path), []).append((time.time(), True))

    def delete(self, path: Path) -> None:
        with self.lock:
            path.unlink()
            self.events[str(path)].append((time.time(), False))

    def present(self) -> list[Path]:
        with self.lock:
            return [Path(p) for p, e in self.events.items() if e[-1][1]]

    def stable(self, asked: float, rng: random.Random) -> tuple[str, str, float] | None:
        """A file, its text, and since when the index must hold it as it is now: written before a writer run that
        completed before `asked`, and not changed or deleted since."""
        with self.lock:
            done = [(s, e) for s, e in self.runs if e < asked]
            started, ended = max(done, default=(0.0, 0.0))
            fixed = [p for p, e in self.events.items() if e[-1][1] and e[-1][0] < started]
            path = rng.choice(fixed) if fixed else None
            return (path, self.versions[path][-1], ended) if path else None

    def refilling(self, since: float, until: float) -> bool:
        """Whether a rebuild emptied the index between these times (it holds only what it has refilled so far)."""
        with self.lock:
            return any(s < until and e > since for s, e in self.rebuilds)

    def completed(self, started: float, ended: float) -> None:
        with self.lock:
            self.runs.append((started, ended))

    def judge(self, path: str, text: str, asked: float) -> str | None:
        """Why a hit (a file's path and the passage returned) could not be in the index when asked, or None."""
        with self.lock:
            events, versions = self.events.get(path), self.versions.get(path, [])
            if events is None:
                return f"{path} was never a file of the folder"
            if not any(text.strip() in v for v in versions):
                return f"{path} never held the text returned ({text[:60]!r})"
            before = [e for e in events if e[0] < asked]
            if before and not before[-1][1]:
                deleted = before[-1][0]
                if any(s > deleted and e < asked for s, e in self.runs):
                    return f"{path} was deleted {asked - deleted:.1f} s before the question, and indexed since"
        return None


#: a file's own text, asked in dense mode, finds the file first with at least this score (its chunk is the text with
#: the title before it): a vector stored under another chunk's id scores far lower
SELF_SCORE = 0.8


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answered: Counter[str] = Counter()
        self.wrong: list[str] = []
        self.errors: Counter[str] = Counter()  # clear messages a user would see, by reader
        self.refilling: Counter[str] = Counter()  # a file not found yet while a rebuild refilled the index
        self.tracebacks: list[str] = []

    def answer(self, reader: str, ledger: Ledger, hits: list[tuple[str, str]], asked: float) -> None:
        with self.lock:
            self.answered[reader] += 1
            for path, text in hits:
                why = ledger.judge(path, text, asked)
                if why:
                    self.wrong.append(f"{reader}: {why}")

    def itself(self, reader: str, ledger: Ledger, wanted: tuple[str, float], hits: list[tuple[str, float]]) -> None:
        """A file asked for by its own text (dense): it must come first, and score as its own text does; unless a
        rebuild emptied the index since the file was indexed, and has not put it back yet."""
        path, indexed = wanted
        fine = hits and hits[0][0] == path and hits[0][1] >= SELF_SCORE
        with self.lock:
            if fine:
                return
            if ledger.refilling(indexed, time.time()) and not any(p == path for p, _ in hits):
                self.refilling[reader] += 1
                return
            self.wrong.append(f"{reader}: {Path(path).name} asked by its own text, answered {hits[:2]}")

    def error(self, reader: str, message: str) -> None:
        with self.lock:
            if "Traceback" in message:
                self.tracebacks.append(f"{reader}: {message[-400:]}")
            else:
                self.errors[f"{reader}: {message.splitlines()[0][:120]}"] += 1


def question(ledger: Ledger, rng: random.Random) -> tuple[str, tuple[str, float] | None]:
    """A query, and every other time the file it must find first (with since when it is indexed): its own text,
    asked in dense mode."""
    if rng.random() < 0.5:
        found = ledger.stable(time.time(), rng)
        if found:
            return found[1], (found[0], found[2])
    present = ledger.present()
    words = f"{rng.choice(WORDS)} {rng.choice(WORDS)}"
    return (f"zq{rng.choice(present).stem} {words}" if present else words), None


def api_reader(index: Path, ledger: Ledger, tally: Tally, stop: threading.Event, seed: int) -> None:
    from searchbert import Index
    from searchbert.errors import SearchbertError

    rng = random.Random(seed)
    with Index.open(index) as ix:  # kept open for the whole run, as a notebook keeps it
        while not stop.is_set():
            asked = time.time()
            query, itself = question(ledger, rng)
            try:
                hits = ix.search(query, k=5, mode="dense" if itself else "hybrid")
                tally.answer("api", ledger, [(h.path, h.text) for h in hits], asked)
                if itself:
                    tally.itself("api", ledger, itself, [(h.path, h.score) for h in hits])
            except SearchbertError as exc:
                tally.error("api", str(exc))
            except Exception:  # anything else is a traceback a user would see
                import traceback

                tally.error("api", traceback.format_exc())
            stop.wait(0.2)


def http_reader(url: str, ledger: Ledger, tally: Tally, stop: threading.Event, seed: int) -> None:
    import httpx

    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=120) as client:
        while not stop.is_set():
            asked = time.time()
            query, itself = question(ledger, rng)
            try:
                answer = client.post("/search", json={"query": query, "k": 5, "mode": "dense" if itself else "hybrid"})
            except httpx.HTTPError as exc:
                tally.error("serve", f"no answer: {exc}")
                stop.wait(1)
                continue
            if answer.status_code == 200:
                tally.answer("serve", ledger, [(h["path"], h["text"]) for h in answer.json()], asked)
                if itself:
                    tally.itself("serve", ledger, itself, [(h["path"], h["score"]) for h in answer.json()])
            elif answer.status_code < 500 or "detail" in answer.text:
                tally.error("serve", f"{answer.status_code} {answer.json().get('detail', answer.text)}")
            else:
                tally.error("serve", f"Traceback? {answer.status_code} {answer.text}")
            stop.wait(0.2)


def mcp_reader(index: Path, ledger: Ledger, tally: Tally, stop: threading.Event, seed: int) -> None:
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    rng = random.Random(seed)
    params = StdioServerParameters(command=sys.executable, args=["-m", "searchbert", "mcp", "--index", str(index)],
                                   env=_env(), cwd=str(REPO))  # fmt: skip

    async def run() -> None:
        with open(os.devnull, "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                while not stop.is_set():
                    asked = time.time()
                    query, itself = question(ledger, rng)
                    mode = "dense" if itself else "hybrid"
                    result = await session.call_tool("search", {"query": query, "k": 5, "mode": mode})
                    if result.is_error:
                        tally.error("mcp", " ".join(getattr(c, "text", "") for c in result.content))
                    else:
                        hits = result.structured_content["hits"]
                        tally.answer("mcp", ledger, [(h["id"], h["text"]) for h in hits], asked)
                        if itself:
                            tally.itself("mcp", ledger, itself, [(h["id"], h["score"]) for h in hits])
                    await anyio.sleep(0.2)

    try:
        anyio.run(run)
    except Exception:
        import traceback

        tally.error("mcp", traceback.format_exc())


def writer(docs: Path, index: Path, ledger: Ledger, tally: Tally, args: argparse.Namespace, rng: random.Random,
           counts: Counter[str]) -> None:  # fmt: skip
    """Edit, add and delete files, index after each change (killed at random), rebuild every so often."""
    end = time.time() + args.seconds
    next_rebuild = time.time() + args.rebuild_every
    took = [2.0]  # how long a run that completed took: a kill lands somewhere inside one
    while time.time() < end:
        present = ledger.present()
        for path in rng.sample(present, min(2, len(present))):
            ledger.write(path)
        ledger.write()
        if len(present) > 20:
            ledger.delete(rng.choice(present))
        rebuild = time.time() >= next_rebuild
        command = [sys.executable, "-m", "searchbert", "index", str(docs), "--index", str(index), "-q",
                   "--backend", args.backend]  # fmt: skip
        started = time.time()
        if rebuild:
            with ledger.lock:
                ledger.rebuilds.append([started, float("inf")])
        run = subprocess.Popen(command + (["--rebuild"] if rebuild else []), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=_env())  # fmt: skip
        killed = False
        if not rebuild and rng.random() < args.kill_share:
            time.sleep(rng.uniform(0.1, 1.0) * sorted(took)[len(took) // 2])
            if run.poll() is None:
                run.send_signal(signal.SIGKILL)
                killed = True
        _, errors = run.communicate()
        if rebuild:
            with ledger.lock:
                ledger.rebuilds[-1][1] = time.time()
            counts["rebuilds"] += 1
            next_rebuild = time.time() + args.rebuild_every
        if killed:
            counts["kills"] += 1
        elif run.returncode == 0:
            ledger.completed(started, time.time())
            counts["index runs"] += 1
            if not rebuild:
                took.append(time.time() - started)
        else:
            tally.error("index", errors.strip() or f"exit {run.returncode}")


def _top10(index: Path, query: str) -> list[tuple[str, float]]:
    run = sb("query", query, "--index", str(index), "--json", "-k", "10", "--no-server")
    return [(h["path"], round(h["score"], 3)) for h in json.loads(run.stdout or "[]")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rebuild-every", type=float, default=120)
    parser.add_argument("--kill-share", type=float, default=0.35, help="share of index runs SIGKILLed mid-way")
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--backend",
        default="onnx",
        help="what embeds (default onnx, full precision: int8's dynamic quantization makes a chunk's vector depend on "
        "the other chunks of its batch, so two indexes of one folder would differ in the last digits)",
    )
    parser.add_argument("--work", type=Path, help="folder for the documents and indexes (default: a temporary one)")
    parser.add_argument("--out", type=Path, help="results file (default: benchmarks/results/soak.md)")
    args = parser.parse_args()
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="searchbert-soak-"))
    docs, index = work / "docs", work / "ix"
    docs.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    ledger, tally, counts = Ledger(docs, rng), Tally(), Counter[str]()
    for _ in range(args.files):
        ledger.write()
    started = time.time()
    first = sb("index", str(docs), "--index", str(index), "-q", "--backend", args.backend)
    assert first.returncode == 0, first.stderr
    ledger.completed(started, time.time())

    from searchbert.server.client import SERVER_FILE

    server = subprocess.Popen([sys.executable, "-m", "searchbert", "serve", "--index", str(index), "--port", "0",
                               "--exit-after", str(int(args.seconds) + 600)], stderr=subprocess.PIPE, text=True,
                              env=_env())  # fmt: skip
    watcher = subprocess.Popen([sys.executable, "-m", "searchbert", "watch", "--index", str(index)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())  # fmt: skip
    deadline = time.time() + 180
    while not (index / SERVER_FILE).exists():
        assert time.time() < deadline and server.poll() is None, "the server did not start"
        time.sleep(0.3)
    url = json.loads((index / SERVER_FILE).read_text())["url"]
    stop = threading.Event()
    readers = [
        threading.Thread(target=api_reader, args=(index, ledger, tally, stop, 1)),
        threading.Thread(target=http_reader, args=(url, ledger, tally, stop, 2)),
        threading.Thread(target=mcp_reader, args=(index, ledger, tally, stop, 3)),
    ]
    for thread in readers:
        thread.start()
    began = time.time()
    writer(docs, index, ledger, tally, args, rng, counts)
    stop.set()
    for thread in readers:
        thread.join(300)
    soaked = time.time() - began
    for name, process in (("serve", server), ("watch", watcher)):
        process.send_signal(signal.SIGTERM)
        try:
            _, errors = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, errors = process.communicate()
            tally.error(name, "did not stop on SIGTERM")
        if "Traceback" in errors:
            tally.error(name, errors)

    # the end: indexed to the folder as it is, consistent down to the vectors, and answering as a fresh index does
    last = sb("index", str(docs), "--index", str(index), "-q")
    assert last.returncode == 0, last.stderr
    health = json.loads(sb("status", "--index", str(index), "--deep", "--json").stdout)
    fresh = sb("index", str(docs), "--index", str(work / "fresh"), "-q", "--backend", args.backend)
    assert fresh.returncode == 0, fresh.stderr
    fixed = [f"zq{p.stem}" for p in sorted(ledger.present())[:8]] + ["lantern harbor", "copper falcon meadow"]
    differing = [q for q in fixed if [p for p, _ in _top10(index, q)] != [p for p, _ in _top10(work / "fresh", q)]]
    near_ties = [q for q in differing if sorted(_top10(index, q)) == sorted(_top10(work / "fresh", q))]

    report = Report("soak", "An index kept whole under readers, writers, rebuilds and kills")
    report.line(f"{soaked:.0f} s; {args.files} files at the start, {len(ledger.present())} at the end; "
                f"a rebuild every {args.rebuild_every:g} s; {args.kill_share:.0%} of index runs SIGKILLed; "
                f"--backend {args.backend}")  # fmt: skip
    report.line()
    report.line("| what | count |")
    report.line("|---|---|")
    for reader in ("api", "serve", "mcp"):
        report.line(f"| queries answered: {reader} | {tally.answered[reader]} |")
    for what in ("index runs", "rebuilds", "kills"):
        report.line(f"| {what} | {counts[what]} |")
    report.line(f"| wrong answers | **{len(tally.wrong)}** |")
    report.line(f"| a file not found yet while a rebuild refilled the index | {sum(tally.refilling.values())} |")
    report.line(f"| errors a user saw (clear messages) | {sum(tally.errors.values())} |")
    report.line(f"| tracebacks | **{len(tally.tracebacks)}** |")
    report.line(f"| status --deep at the end | {'consistent' if health['consistent'] else 'NOT consistent'} |")
    report.line(f"| fixed queries whose top 10 differs from a fresh index's | {len(differing) - len(near_ties)} "
                f"of {len(fixed)} (and {len(near_ties)} the same but for the order of equal scores) |")  # fmt: skip
    if tally.errors:
        report.line()
        report.line("Errors users saw:")
        for message, n in tally.errors.most_common(10):
            report.line(f"- {n} x {message}")
    for title, items in (("Wrong answers", tally.wrong), ("Tracebacks", tally.tracebacks)):
        if items:
            report.line()
            report.line(f"{title} (first 10):")
            for item in items[:10]:
                report.line(f"- {item}")
    if not health["consistent"]:
        report.line(f"status problems: {health['problems']}")
    if args.out:
        report.path = args.out
    report.save()
    ok = not tally.wrong and not tally.tracebacks and health["consistent"] and len(differing) == len(near_ties)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
