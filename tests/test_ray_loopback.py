"""`--ray local` starts a Ray instance of its own: it must listen on loopback only. Not in a network namespace as the
other Ray tests are (there loopback is the only interface, so Ray falls back to it and a fault cannot show): here,
beside the machine's real interfaces, the listening sockets of every process the run starts are listed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import listening

pytest.importorskip("ray")


_LOCAL_RUN = """
import sys
from searchbert.embedding import RayEmbedder
from tests.conftest import FakeEncoder

embedder = RayEmbedder(FakeEncoder(), 64, "fake/hashing", address="local", workers=2)
embedder.submit(["a text", "another text"] * 64).result()  # the actors are up and have worked
print("ready", flush=True)
sys.stdin.readline()
embedder.close()
print("closed", flush=True)
"""


def test_a_local_instance_listens_on_loopback_only(tmp_path: Path) -> None:
    """`--ray local` starts a GCS server, a raylet, workers and agents: none of them may listen beyond loopback (an
    open Ray port runs anyone's code). Listed from the processes themselves, the driver's children included."""

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    run = subprocess.Popen([sys.executable, "-c", _LOCAL_RUN], cwd=root, env={**env, "PYTHONPATH": str(root)},
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert run.stdout is not None and run.stdout.readline() == "ready\n"
        addresses = listening(run.pid)
        assert addresses and addresses <= {"127.0.0.1", "::1"}, addresses
        run.communicate("\n", timeout=60)
        assert run.returncode == 0
    finally:
        run.kill()
