"""A throwaway PostgreSQL 15 cluster for tests and benchmarks (initdb + pg_ctl on a free port).

initdb refuses to run as root, so as root the cluster belongs to the `postgres` system user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path(os.environ.get("RECSYS_PG_BIN", "/usr/lib/postgresql/15/bin"))


def available() -> str | None:
    """None when a cluster can be started, else why not."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL binaries in {PG_BIN}"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str]) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(prefix + args, check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def pg_cluster() -> Iterator[str]:
    """Yields a SQLAlchemy URL of a fresh database; stops and deletes the cluster afterwards."""
    with pg_cluster_control() as cluster:
        yield cluster.url


class Cluster:
    def __init__(self, url: str, data: Path, opts: str, log: Path) -> None:
        self.url, self.data, self.opts, self.log = url, data, opts, log

    def start(self) -> None:
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", self.opts, "-l", str(self.log),
              "-w", "start"])  # fmt: skip

    def stop(self) -> None:
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])


@contextlib.contextmanager
def pg_cluster_control() -> Iterator[Cluster]:
    """A fresh cluster that a test can stop and start again (a database outage)."""
    root = Path(tempfile.mkdtemp(prefix="recsys-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    _run([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"])
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    cluster = Cluster(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", data, opts,
                      root / "log")  # fmt: skip
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
