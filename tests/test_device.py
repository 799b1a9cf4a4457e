"""--device and --threads: where the model runs, and how many CPU threads it and the tokenizer may take."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)


def test_device_auto_on_a_machine_without_a_gpu_driver_never_imports_torch() -> None:
    done = _python(
        "import sys\n"
        "from searchbert.models import gpu_device\n"
        "assert gpu_device('auto') is None and gpu_device('cpu') is None and gpu_device(None) is None\n"
        "print('torch' in sys.modules)\n"
    )
    assert done.returncode == 0, done.stderr
    if Path("/proc/driver/nvidia/version").exists():
        pytest.skip("this machine has an NVIDIA driver: auto asks torch")
    assert done.stdout.strip() == "False"


@pytest.mark.model
def test_threads_limit_the_model_runner_and_the_tokenizer() -> None:
    done = _python(
        "import os\n"
        "from searchbert.models import limit_threads, make_encoder\n"
        "limit_threads(1)\n"
        "enc = make_encoder(None)\n"
        "print(enc.session.get_session_options().intra_op_num_threads, os.environ['RAYON_NUM_THREADS'])\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]


@pytest.mark.model
def test_asking_for_a_gpu_torch_cannot_see_is_a_clear_error(tmp_path: Path) -> None:
    if Path("/proc/driver/nvidia/version").exists():
        pytest.skip("this machine may have a GPU")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.md").write_text("a page about lighthouses\n")
    command = [sys.executable, "-m", "searchbert", "index", str(tmp_path / "d"), "--index", str(tmp_path / "ix")]
    done = subprocess.run([*command, "--device", "cuda"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "--device cuda: torch sees no such device here" in done.stderr
    threads = subprocess.run([*command, "--threads", "0"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert threads.returncode == 2 and "--threads" in threads.stderr
