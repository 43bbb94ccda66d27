"""`durably-reflex serve` started as a user starts it, from any code tree, for the benchmarks.

    server = CliServer(code, workdir, db_url, ["--processes", "1"])
    ... http://127.0.0.1:{server.port}/api/durably ...
    server.stop()

`code` is a folder holding `durably_reflex/` (the repository, or a `git archive` of an earlier commit
unpacked by `archive_commit`), so one run measures before and after. The jobs are bench/sse_jobs.py,
copied into `workdir` (the command imports `sse_jobs:make_durably` from its current folder, as it
would a user's module). The server listens on 127.0.0.1 at a port it picks (port 0); its banner
gives the port.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBS = Path(__file__).resolve().parent / "sse_jobs.py"
BANNER = "durably-reflex API on http://"


def archive_commit(commit: str) -> str:
    """`git archive` of `commit`, unpacked into a temporary folder (removed at exit is the caller's
    choice): its path, to pass as `code`."""
    folder = tempfile.mkdtemp(prefix=f"durably-code-{commit[:12]}-")
    tar = os.path.join(folder, "code.tar")
    subprocess.run(["git", "archive", "-o", tar, commit], cwd=ROOT, check=True)
    with tarfile.open(tar) as archive:
        archive.extractall(folder, filter="data")
    os.remove(tar)
    return folder


def code_for(rev: str) -> str:
    """A folder holding durably_reflex/: `rev` itself if it is one, else the `git archive` of commit `rev`."""
    return rev if os.path.isdir(os.path.join(rev, "durably_reflex")) else archive_commit(rev)


def describe_code(code: str) -> str:
    return "this checkout" if Path(code).resolve() == ROOT else code


class CliServer:
    """One `python -m durably_reflex serve sse_jobs:make_durably --port 0 ...` process."""

    def __init__(self, code: str, workdir: str, db_url: str, extra: list[str], name: str = "cli-server") -> None:
        shutil.copy(JOBS, os.path.join(workdir, "sse_jobs.py"))
        self.name = name
        self.stderr_path = os.path.join(workdir, f"{name}.stderr")
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - the child's lifetime
        env = {**os.environ, "PYTHONPATH": code, "DURABLY_BENCH_DB": db_url}
        command = [sys.executable, "-m", "durably_reflex", "serve", "sse_jobs:make_durably", "--port", "0",
                   "--log-level", "warning", "--stop-timeout", "2", *extra]  # fmt: skip
        self.proc = subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True, bufsize=1)  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.banner = self._banner(90)
        self.port = int(self.banner.split(BANNER, 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _banner(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                continue
            if line is None:
                break
            if line.startswith(BANNER):
                return line
        self.stop()
        raise RuntimeError(f"{self.name}: no banner within {timeout:.0f} s{self.tail()}")

    def tail(self) -> str:
        text = self.stderr_end(1500)
        return f"; stderr tail:\n{text}" if text else ""

    def stderr_end(self, size: int) -> str:
        """The last `size` characters the server wrote to its stderr (its log), while it runs or after."""
        if not self._stderr.closed:
            self._stderr.flush()
        try:
            return Path(self.stderr_path).read_text()[-size:]
        except OSError:
            return ""

    def workers(self) -> list[int]:
        """Pids of the worker processes it supervises (none when its worker runs in its own process)."""
        import psutil

        try:
            return [child.pid for child in psutil.Process(self.proc.pid).children()]
        except psutil.Error:
            return []

    def cpu_s(self) -> float:
        """CPU time of the API process itself (user + system)."""
        return _cpu_s([self.proc.pid])

    def workers_cpu_s(self) -> float:
        return _cpu_s(self.workers())

    def stop(self, grace: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                for pid in self.workers():
                    os.kill(pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait(10)
        self._stderr.close()


def _cpu_s(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total
