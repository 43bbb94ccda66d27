"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb into a temporary directory, serve
on 127.0.0.1 on a free port, stop and delete it afterwards.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` OS user (Debian's
package creates it). Settings trade durability for speed where tests do not care (`fsync=off`
unless `durable=True`); the benchmark keeps PostgreSQL's defaults.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

SERVER_USER = "postgres"


def find_bin_dir() -> Path | None:
    """The newest installed server's bin directory (Debian keeps them under /usr/lib/postgresql)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgCluster:
    """Start with `start()`, stop with `stop()`; `restart()` is a real server restart (backends die)."""

    def __init__(self, *, durable: bool = False, max_connections: int = 200) -> None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb) not found; install Debian's `postgresql`")
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="durably-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        self._options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            f"-c unix_socket_directories={self.root}",
            f"-c max_connections={max_connections}",
            "-c shared_buffers=128MB",
        ]
        if not durable:
            self._options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PgCluster:
        if self._as_root:
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, SERVER_USER, SERVER_USER)
        if not self.data.exists():
            self._run(self.bin / "initdb", "-D", str(self.data), "-U", SERVER_USER, "--auth=trust",
                      "--no-sync", "--encoding=UTF8", "--locale=C.UTF-8")  # fmt: skip
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.root / "server.log"), "-o", " ".join(self._options))
        return self

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` kills the server (with this cluster's fsync=off and synchronous_commit=off, the
        last acknowledged commits may be lost, as after a crash); `fast` ends every connection and
        shuts down cleanly."""
        self._pg_ctl("stop", "-m", mode, "-w", check=False)

    def restart(self) -> None:
        """Stop (terminating every connection) and start again on the same port."""
        self._pg_ctl("stop", "-m", "fast", "-w")
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.root / "server.log"), "-o", " ".join(self._options))

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        self._run(self.bin / "pg_ctl", "-D", str(self.data), *args, check=check)

    def _run(self, program: Path, *args: str, check: bool = True) -> None:
        command = [str(program), *args]
        if self._as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=self.root, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
