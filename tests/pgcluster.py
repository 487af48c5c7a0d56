"""A PostgreSQL cluster of a test's own (initdb + pg_ctl of the installed server into a
temporary directory): the fault scenarios restart it, and the machine's shared server is
never restarted. Fails, never skips, without the server binaries."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

POSTGRES_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name)


@dataclass(frozen=True)
class Cluster:
    bin: Path
    data: Path
    port: int
    as_owner: tuple[str, ...]

    def command(self, *argv: str) -> str:
        return shlex.join([*self.as_owner, str(self.bin / argv[0]), *argv[1:]])

    def run(self, *argv: str) -> None:
        done = subprocess.run(self.command(*argv), shell=True, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, f"{argv[0]}: {done.stdout}{done.stderr}"[-2000:]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def database_url_for(self, service: str) -> str:
        name = f"zwfw_{service.replace('-', '_')}"
        admin = create_engine(f"{self.url}/postgres", isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return f"{self.url}/{name}"

    def restart_fault(self) -> dict[str, Any]:
        """The profile's `database_restart:` for this cluster: a crash restart (-m immediate:
        in-flight transactions lost, committed ones recovered), ready once pg_isready is."""
        return {
            # -l: the restarted server must not inherit the harness's output pipe.
            "cause": {"run": self.command(
                "pg_ctl", "-D", str(self.data), "-w", "-m", "immediate",
                "-l", str(self.data.parent / "server.log"), "restart")},
            "recovered": {"run": self.command(
                "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port))},
        }  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def own_cluster() -> Iterator[Cluster]:
    """Trust auth on a free port of 127.0.0.1, run as `postgres` when the tests run as root
    (the server refuses root)."""
    if not POSTGRES_BINARIES or not (POSTGRES_BINARIES[-1] / "initdb").is_file():
        pytest.fail("the PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are missing",
                    pytrace=False)  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="zwfw-pg-"))
    as_owner: tuple[str, ...] = ()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_owner = ("runuser", "-u", "postgres", "--")
    cluster = Cluster(POSTGRES_BINARIES[-1], root / "data", _free_port(), as_owner)
    cluster.run("initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres",
                "-E", "UTF8", "--no-sync")  # fmt: skip
    options = f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=300"
    cluster.run("pg_ctl", "-D", str(cluster.data), "-l", str(root / "server.log"), "-w",
                "-o", options, "start")  # fmt: skip
    try:
        yield cluster
    finally:
        subprocess.run(cluster.command("pg_ctl", "-D", str(cluster.data), "-m", "immediate",
                                       "stop"), shell=True, capture_output=True, timeout=60,
                       check=False)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
