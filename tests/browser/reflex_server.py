"""Serve a Reflex app for real, for browser tests: `reflex run --env prod` in a process group of its own.

    with reflex_app(Path("tests/browser/smoke_app"), env={"DB_PATH": "/tmp/x.db"}) as server:
        page.goto(server.frontend_url)

`app_dir` is a Reflex project directory (its own `rxconfig.py` and app package); its `.web` (the
frontend build, node_modules) stays there and is gitignored. The first start with no `.web` runs
`npm install` (through the registry npm is configured for) and takes about half a minute here;
later starts rebuild the frontend bundle and take about ten seconds.

Why prod rather than dev (measured on 2 cores, smoke app): a warm prod start answers in ~10.5 s
and its first page is interactive ~1.3 s later; a warm dev start answers in ~5 s but its first page
needs ~5.5 s more while Vite transforms modules on demand (and every new page pays again). Prod
also serves the frontend and the backend on ONE port bound to 127.0.0.1 only (dev's Vite server
listens on every interface), and has no hot reload that could restart the backend when a test
writes a file under the app directory.

In prod mode Reflex 0.10 serves the compiled frontend from the backend itself (granian, one worker),
so `frontend_url == backend_url`; tests should use the property that names what they mean.

One instance per app directory at a time: the production bundle in `.web` embeds the backend's
URL (port included), so a second `reflex run` of the same directory would rebuild it and pages of
the first would talk to the second. `start_reflex_app` refuses a second instance in the same
process, and waits (bounded) for a lock that another process serving the same directory holds.
The session fixture `reflex_server` stops an app's running instance before starting it with
another environment.

Stopping sends SIGTERM to the whole process group (Reflex, granian and its worker, any npm/node),
then SIGKILL after a grace period, and checks that every process of the tree is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
# A cold start (no .web: npm install, then the first production build) took ~45 s here with an
# empty npm cache; the bound leaves room for slow CI machines and a slow registry.
START_TIMEOUT = float(os.environ.get("REFLEX_TEST_START_TIMEOUT", "480"))
STOP_TIMEOUT = 15.0
# Inherited variables that would change how the app runs: Reflex's per-run ports and URLs (set
# by the harness itself), and pytest's (Reflex behaves differently when it thinks it is under test).
DROPPED_ENV_PREFIXES = ("PYTEST_",)
DROPPED_ENV = {
    "PORT",
    "REFLEX_FRONTEND_PORT",
    "REFLEX_BACKEND_PORT",
    "REFLEX_BACKEND_HOST",
    "REFLEX_API_URL",
    "REFLEX_DEPLOY_URL",
    "REFLEX_ENV_MODE",
    "REFLEX_FRONTEND_ONLY",
    "REFLEX_BACKEND_ONLY",
}

RUNNING: list[ReflexServer] = []  # servers started and not yet stopped (for failure reports)


class ReflexServerError(RuntimeError):
    """The app did not start (its log's tail is in the message), or did not stop cleanly."""


@dataclass
class ReflexServer:
    app_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)  # the whole environment the app got
    launched_at: float = field(default_factory=time.monotonic, repr=False)
    started_in: float = 0.0  # seconds from launch until the page and the backend answered
    _lock: IO[bytes] | None = field(default=None, repr=False)  # held while the app runs
    _stopped: bool = field(default=False, repr=False)

    @property
    def frontend_url(self) -> str:
        """The page's origin, e.g. http://127.0.0.1:41234 (no trailing slash)."""
        return f"http://{HOST}:{self.port}"

    @property
    def backend_url(self) -> str:
        """The backend's origin (the same as the frontend's in prod mode)."""
        return f"http://{HOST}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.frontend_url + "/" + path.lstrip("/")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(no log: {error})"

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def is_running(self) -> bool:
        return not self._stopped and self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the whole process group (once: later calls do nothing); raise `ReflexServerError`
        if any process of it survives."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(ValueError):
            RUNNING.remove(self)
        try:
            survivors = _stop_group(self.process, timeout)
        finally:
            if self._lock is not None:
                self._lock.close()  # releases the app directory's lock
        if survivors:
            raise ReflexServerError(
                f"processes of the Reflex app {self.app_dir} survived SIGKILL: "
                + ", ".join(f"{p.pid} {_cmdline(p)}" for p in survivors)
            )


def free_port() -> int:
    """A port of 127.0.0.1 free right now (another process could take it before Reflex binds it:
    `start_reflex_app` retries with a new port when that happens)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def app_environment(extra: Mapping[str, str] | None = None, port: int | None = None) -> dict[str, str]:
    """The environment `reflex run` gets: this one minus run-specific variables, plus the project's
    settings (the venv's Node.js first on PATH, npm not bun, no telemetry, no version check), the
    repository root on PYTHONPATH (apps import `durably_reflex`), then `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in DROPPED_ENV and not key.startswith(DROPPED_ENV_PREFIXES)
    }
    venv = Path(sys.prefix)
    path = [str(venv / "node-bin"), str(venv / "bin")]
    env["PATH"] = os.pathsep.join([*path, env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO_ROOT), env.get("PYTHONPATH", "")] if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("REFLEX_USE_NPM", "1")
    env.setdefault("REFLEX_CHECK_LATEST_VERSION", "0")
    env["REFLEX_TELEMETRY_ENABLED"] = "false"
    env.setdefault("NPM_CONFIG_FUND", "false")
    env.setdefault("NPM_CONFIG_UPDATE_NOTIFIER", "false")
    env.setdefault("NPM_CONFIG_AUDIT", "false")
    if not env.get("NPM_CONFIG_REGISTRY") and (registry := _npm_registry(env)):
        # As scripts/env.sh does: otherwise Reflex times a mirror against npm's default registry.
        env["NPM_CONFIG_REGISTRY"] = registry
    if port is not None:
        # The backend's own idea of its URL (server-side code may build absolute URLs from it):
        # 127.0.0.1, not Reflex's default "localhost", which may resolve to ::1 first.
        env["REFLEX_API_URL"] = f"http://{HOST}:{port}"
        env["REFLEX_DEPLOY_URL"] = f"http://{HOST}:{port}"
    env.update(extra or {})
    return env


def start_reflex_app(
    app_dir: Path | str,
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = START_TIMEOUT,
    log_path: Path | None = None,
    attempts: int = 3,
) -> ReflexServer:
    """Start `reflex run --env prod` in `app_dir` on a free port of 127.0.0.1 and wait (bounded by
    `timeout`) until the page and the backend's /ping answer. `env`: extra variables for the app
    (they win over everything else, so they can also override the harness's defaults). Raises
    `ReflexServerError` with the log's tail if the app exits or does not answer in time."""
    app_dir = Path(app_dir).resolve()
    if not (app_dir / "rxconfig.py").is_file():
        raise ReflexServerError(f"{app_dir} is not a Reflex app directory (no rxconfig.py)")
    for other in RUNNING:
        if other.app_dir == app_dir and other.is_running():
            raise ReflexServerError(
                f"{app_dir} is already served on {other.frontend_url}; stop that instance first "
                "(one instance per app directory: its .web bundle embeds the backend's port)"
            )
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix=f"reflex-{app_dir.name}-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    deadline = time.monotonic() + timeout
    lock = _lock_app_dir(app_dir, deadline)
    try:
        for attempt in range(1, attempts + 1):
            server = _launch(app_dir, env, log_path, attempt)
            try:
                _wait_until_ready(server, deadline)
            except BaseException as error:
                RUNNING.remove(server)
                _stop_group(server.process, STOP_TIMEOUT)
                if isinstance(error, _PortTaken) and attempt < attempts:
                    continue  # another process took the port first: try a new one
                if isinstance(error, _PortTaken):
                    raise ReflexServerError(f"port taken {attempts} times in a row:\n{server.log_tail()}") from None
                raise
            server._lock = lock
            return server
    except BaseException:
        lock.close()
        raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def reflex_app(app_dir: Path | str, env: Mapping[str, str] | None = None, **options: float) -> Iterator[ReflexServer]:
    """`start_reflex_app` as a context manager: the app is stopped (whole process group) on exit."""
    server = start_reflex_app(app_dir, env, **options)
    try:
        yield server
    finally:
        server.stop()


# -- internals -------------------------------------------------------------------------------------
class _PortTaken(Exception):
    pass


def _launch(app_dir: Path, env: Mapping[str, str] | None, log_path: Path, attempt: int) -> ReflexServer:
    port = free_port()
    command = [
        sys.executable, "-m", "reflex", "run", "--env", "prod",
        "--backend-host", HOST, "--frontend-port", str(port), "--backend-port", str(port),
    ]  # fmt: skip
    full_env = app_environment(env, port)
    with log_path.open("ab") as log:
        log.write(f"\n=== attempt {attempt}: {' '.join(command)} (cwd {app_dir})\n".encode())
        log.flush()
        process = subprocess.Popen(
            command,
            cwd=app_dir,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
    server = ReflexServer(app_dir, port, process, log_path, full_env)
    RUNNING.append(server)
    return server


def _lock_app_dir(app_dir: Path, deadline: float) -> IO[bytes]:
    """An exclusive lock on the app directory among processes (a file in the temporary directory,
    so nothing appears in the repository), waited for until `deadline`."""
    digest = hashlib.sha256(str(app_dir).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"reflex-test-app-{app_dir.name}-{digest}.lock"
    handle = path.open("a+b")
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise ReflexServerError(
                    f"another process kept serving {app_dir} for the whole wait (lock {path})"
                ) from None
            time.sleep(1)
        else:
            return handle


def _answers(url: str, expect: bytes | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
            return response.status == 200 and (expect is None or expect in body.lower())
    except (urllib.error.URLError, OSError):
        return False


def _wait_until_ready(server: ReflexServer, deadline: float) -> None:
    launched = server.launched_at
    while True:
        code = server.process.poll()
        if code is not None:
            this_attempt = server.log_text().rsplit("\n=== attempt ", 1)[-1]
            if "already in use" in this_attempt.lower():
                raise _PortTaken
            raise ReflexServerError(
                f"`reflex run` in {server.app_dir} exited with status {code} before it answered; "
                f"log {server.log_path}, last lines:\n{server.log_tail()}"
            )
        if _answers(server.backend_url + "/ping") and _answers(server.frontend_url + "/", b"<html"):
            server.started_in = time.monotonic() - launched
            return
        if time.monotonic() > deadline:
            raise ReflexServerError(
                f"the Reflex app in {server.app_dir} did not answer on {server.frontend_url} within "
                f"{time.monotonic() - launched:.0f}s; log {server.log_path}, last lines:\n{server.log_tail()}"
            )
        time.sleep(0.5)


def _cmdline(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return " ".join(process.cmdline())[:200]
    return "?"


def _stop_group(process: subprocess.Popen[bytes], timeout: float) -> list[psutil.Process]:
    """SIGTERM the process group (and any descendant that left it), SIGKILL what is left after
    `timeout`; return the processes still alive after that (normally none)."""
    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    for child in tree:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    _, alive = psutil.wait_procs(tree, timeout=max(0.1, timeout / 3))
    if alive or process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        _, alive = psutil.wait_procs(alive, timeout=5)
    return [p for p in alive if _alive(p)]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _npm_registry(env: Mapping[str, str]) -> str:
    npm = Path(sys.prefix) / "node-bin" / "npm"
    try:
        result = subprocess.run(
            [str(npm), "config", "get", "registry"],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""
