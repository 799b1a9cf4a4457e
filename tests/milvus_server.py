"""A real Milvus server for the tests and benchmarks: the standalone Milvus 2.3 that PyPI's `milvus` package bundles
(no docker), started in a temporary folder on free ports, every component told to use 127.0.0.1, and stopped
afterwards. It listens on every interface all the same, as Ray does: callers run where only loopback exists."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def milvus_server(base: Path) -> Iterator[str]:
    """Yields the server's URI (http://127.0.0.1:PORT)."""
    import milvus
    from milvus import MilvusServer, MilvusServerConfig

    template = Path(milvus.__file__).parent / "data" / "config.yaml.template"
    text = re.sub(r"(?m)^(\s+)ip: *#.*$", r"\1ip: 127.0.0.1", template.read_text())
    ours = Path(tempfile.mkdtemp(dir=base)) / "config.yaml.template"
    ours.write_text(text)
    config = MilvusServerConfig(template=str(ours))
    config.glog_conf_file = str(template.parent / "glog.conf")  # set only when the bundled template is used
    server = MilvusServer(config)
    server.set_base_dir(str(base / "milvus"))
    server.start()
    try:
        yield f"http://127.0.0.1:{server.listen_port}"
    finally:
        server.stop()


def only_loopback() -> bool:
    """Whether this process sees no network but loopback (a namespace of its own, as `unshare -rn` makes): no route,
    IPv4 or IPv6, goes through any other interface."""
    try:
        v4 = Path("/proc/net/route").read_text().splitlines()[1:]
        v6 = Path("/proc/net/ipv6_route").read_text().splitlines()
    except OSError:
        return False
    return all(line.split()[0] == "lo" for line in v4 if line.strip()) and all(
        line.split()[-1] == "lo" for line in v6 if line.strip()
    )
