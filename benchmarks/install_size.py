"""What `make demo` and `make test` install: the size of each virtual environment and how long it takes.

`make demo` installs searchbert alone (its core dependencies, with PyTorch's CPU build); `make test` (and `make dev`)
add every extra. Each is made from nothing in a temporary folder, through the Makefile's own targets, with this
machine's package sources (here a local mirror, so the times are installs, not downloads).

    .venv/bin/python benchmarks/install_size.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, Report


def size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        targets = (("make demo (searchbert alone)", "install"), ("make test / make dev (every extra)", "dev"))
        for label, target in targets:
            started = time.monotonic()
            subprocess.run(["make", "-s", target, f"VENV={venv}"], cwd=REPO, check=True)
            seconds = time.monotonic() - started
            listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                                    capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
            rows.append((label, size(venv), len(listed), seconds))
            print(rows[-1], flush=True)
    report = Report("install_size", "What make demo and make test install")
    report.line("One virtual environment made from nothing, then the extras added to it (so the second time is the")
    report.line("extras' install alone). Size: the files under the environment's folder.")
    report.line()
    report.line("| environment | size | packages | install time |")
    report.line("|---|---|---|---|")
    for label, nbytes, packages, seconds in rows:
        report.line(f"| {label} | {nbytes / 2**30:.2f} GiB | {packages} | {seconds:.0f} s |")
    report.line()
    report.line(f"every extra / searchbert alone: {rows[1][1] / rows[0][1]:.2f}x the size, "
                f"{rows[1][2] / rows[0][2]:.2f}x the packages")  # fmt: skip
    report.save()


if __name__ == "__main__":
    main()
