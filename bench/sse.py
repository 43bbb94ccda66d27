"""SSE delivery benchmark: how fast, how completely and at what memory cost events reach HTTP clients.

    .venv/bin/python bench/sse.py [--clients 200] [--jobs 100] [--run-clients 1000] [--quick]
                                  [--only W4a,node,W4b,floor] [--client-procs 1] [--run-client-procs 4]
                                  [--w4a-deadline 40] [--w4b-deadline 60] [--py-spy DIR]
                                  [--before REV] [--after REV] [--repeat N]

W4a       `--clients` subscribers on GET /runs/subscribe (reduced notifications of all runs), then `--jobs`
          runs of a 5-step job triggered over HTTP; each step is `step.run(...)` then `step.progress(i+1, 5)`.
          (1) steps that yield (async, `await asyncio.sleep(0.01)`); (2) synchronous CPU-bound steps that
          spin 50 ms without yielding. Targets: p95 < 100 ms, server RSS < 250 MB, 0 lost. The server is
          `durably-reflex serve sse_jobs:make_durably` (bench/sse_jobs.py, bench/cli_server.py), started as
          a user starts it: its default (a worker process beside the API; the headline), and
          `--in-process-worker` (the worker in the API's process). `--before REV` adds `serve` of an
          earlier commit (`git archive`), `--after REV` measures a commit instead of this checkout: before
          and after in one run. RSS and "srv CPU" are the API process's; "worker-proc CPU" its workers'.
node      W4a's jobs, clients and routes on Durably's own Node server (@coji/durably 0.15 from npm, as
          tests/node_durably installs it: `npm ci` on first use; bench/node_sse_server.mjs, the same 5 steps,
          its progress message the wall clock to the µs as the Python job writes it), worker in its process,
          maxConcurrentRuns 4, steps kept (preserveSteps, as ours), Durably's defaults otherwise: its worker
          polls every 1 s while a slot finds no run (ours is woken by the trigger), so yielding steps run
          also at the 50 ms the tests' server uses. Not in the default set: `--only W4a,node`. Durably's
          frames carry no ids and it keeps no event log: a missing event counts as late, lost and throttled
          read '-'; it names a claimed run's event run:leased (read as run:start). 'progress p95' is the
          like-for-like figure: exact on both sides (each job's own clock in its message).
floor     the same jobs with ONE subscriber and 20 runs (information, no target): the pipeline's own
          latency without fan-out cost; (3) runs the CPU-bound steps with the worker in a 2nd process.
W4b       `--run-clients` subscribers, each on its own run's GET /subscribe?runId=... (full events); the
          runs (3 steps each, with progress) are triggered over HTTP first and the worker is started only
          after every client has connected and received its snapshot. Target: p95 < 250 ms, 0 lost.

Every configuration gets a fresh SQLite database and a fresh server process. floor and W4b: the
benchmark's own server, uvicorn serving `create_durably_handler(durably)` (defaults: base path
/api/durably, progress_interval 0.1) on 127.0.0.1 at a port the server bound itself (port 0),
`max_concurrent_runs=4`, worker in the same process. W4a: `durably-reflex serve` as above (the same
handler defaults and slots), after one warm-up run over HTTP. The server's RSS is sampled with psutil every 100 ms. Clients run in separate processes
(this script with `--child client`): a minimal asyncio HTTP/1.1 + SSE reader (an asyncio.Protocol
that keeps each read with time.time() as the loop hands it over, and splits it into frames and
decodes the JSON only after the measurement), so that client cost stays small beside the server's
(every process here shares the machine's cores, and a client that waits for one delays what it
timestamps, as the server would); each client process reports its
CPU use and event-loop lag, which shows whether it kept up. A client gives up at its deadline; what
it has not received by then counts as 'late' (latency infinity in the percentiles).

Latency = client receive time (time.time()) - the time the event was made (same machine, same clock):
  run:progress          the job puts time.time() (µs) in the progress message when it reports progress
  run:trigger           the time the trigger POST was sent (W4a: reduced payloads carry no timestamp)
  run:start             the run's startedAt (GET /run afterwards; set when the run is claimed)
  step:start/complete   the step's startedAt / completedAt (GET /steps afterwards)
  run:complete          the run's completedAt (GET /run afterwards)
  W4b                   every event's own "timestamp" field (ISO, whole ms, stamped when it is made)
Stored timestamps are truncated to whole milliseconds, so those latencies read 0-1 ms high.

Must-arrive events (W4a, per client): run:trigger, run:start, run:complete, every step:start and
step:complete of every run, and each run's final progress (5/5). Intermediate progress may be
throttled by design (one per 100 ms per run per stream, unless the stream sends another frame first:
a held progress goes out before it, since ids only increase): counted apart as "throttled". W4b, per
stream: the snapshot first, run:start, every step:start/complete, the final progress, run:complete.
A missing must-arrive event is 'lost' if its stream delivered a later event of the log (a gap; the
ids come from the server's event log, read after the server stopped), otherwise 'late'. 'out-of-order
ids': frames whose id is not above every id its stream sent before (a client resuming with
Last-Event-ID after such a frame would be sent again what it had, or miss what was held back).

`--repeat N` prints each configuration's p95 by round, of every event and of run:progress alone.
Only 127.0.0.1 is used; every wait is bounded; every child process is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import pickle
import queue
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import contextlib

from cli_server import CliServer, code_for, describe_code
from sse_jobs import (
    CPU_SPIN_S,
    JOB_CPU,
    JOB_W2,
    JOB_W4B,
    JOB_YIELD,
    MAX_CONCURRENT_RUNS,
    W4A_STEPS,
    W4B_STEPS,
    YIELD_SLEEP_S,
    make_jobs,
)

BASE = "/api/durably"
CONTROL_START_WORKER = "/bench/start-worker"  # added by the benchmark's server wrapper, not the API
TARGET_W4A_P95_MS = 100.0
TARGET_W4B_P95_MS = 250.0
TARGET_RSS_MB = 250.0
RSS_SAMPLE_S = 0.1
NODE_SERVER = Path(__file__).resolve().parent / "node_sse_server.mjs"
# The Node peer's createDurably options beyond maxConcurrentRuns (Durably's defaults otherwise): it keeps
# a run's steps, as durably-reflex does (the same stored work, and GET /steps gives their times).
NODE_OPTIONS: dict[str, Any] = {"preserveSteps": True}
NODE_FAST_POLL_MS = 50  # the tests' Node server polls this often; Durably's default is 1,000 ms
# Durably 0.15 names a claimed run's event run:leased where durably-reflex says run:start.
SAME_EVENT = {"run:leased": "run:start"}
WORKLOADS = {"W4A", "NODE", "W4B", "FLOOR"}  # --only's names, upper-cased
SPLIT_WORKER_POLL_S = 0.02  # the harness's worker in another process (floor(3)) surveys this often

TAG_PORT = "@@PORT "
TAG_READY = "@@READY "
TAG_DONE = "@@DONE "


# ==================================================================================================
# shared helpers
# ==================================================================================================
def raise_nofile(need: int) -> int:
    """Raise the open-files soft limit towards the hard limit (at least `need` if allowed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, need, 65536)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); inf (never received) stays inf."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    if math.isinf(ordered[hi]):
        return ordered[lo] if k == lo else math.inf
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def iso_to_epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()  # Python 3.11+ reads the trailing Z


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    out = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    for row in rows:
        last = len(row) - 1
        out.append(
            "  ".join(
                c.ljust(w) if i in (0, last) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))
            ).rstrip()
        )
    return "\n".join(out)


def ms(value: float, deadline: float = 0.0) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return f">{deadline:.0f}s"
    return f"{value:.1f}" if value < 10_000 else f"{value / 1000:.1f}s"


def ms_with_unit(value: float, deadline: float = 0.0) -> str:
    """`ms` with its unit: "55.8 ms", "25.2 s", ">40 s"."""
    text = ms(value, deadline)
    return text if text.endswith("s") else f"{text} ms"


# ==================================================================================================
# child: the server (uvicorn + create_durably_handler, worker in the same process unless told)
# ==================================================================================================
def child_server(opts: argparse.Namespace) -> None:
    raise_nofile(opts.nofile)
    if opts.switch_interval:
        sys.setswitchinterval(opts.switch_interval)  # diagnosis only (--switch-interval)
    import socket

    import uvicorn

    from durably_reflex import create_durably
    from durably_reflex.server import create_durably_handler

    async def main() -> None:
        durably = create_durably(f"sqlite:///{opts.db}", max_concurrent_runs=MAX_CONCURRENT_RUNS)
        durably.register(**make_jobs())
        await durably.migrate()
        if opts.worker == "same":
            await durably.start()
        api = create_durably_handler(durably)  # defaults: /api/durably, progress_interval=0.1

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == CONTROL_START_WORKER:
                if opts.worker == "later":
                    await durably.start()
                await send(
                    {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
                )
                await send({"type": "http.response.body", "body": b"started"})
                return
            await api(scope, receive, send)

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(4096)
        config = uvicorn.Config(
            app, lifespan="off", log_level="warning", access_log=False, backlog=4096, timeout_graceful_shutdown=2
        )
        server = uvicorn.Server(config)
        config.load()
        print(f"{TAG_PORT}{sock.getsockname()[1]} {config.http_protocol_class.__name__}", flush=True)
        try:
            await server.serve(sockets=[sock])
        finally:
            await durably.close(timeout=2)

    asyncio.run(main())


def child_worker(opts: argparse.Namespace) -> None:
    """A worker alone in its own process, on the server's database (comparison configuration)."""
    from durably_reflex import create_durably

    async def main() -> None:
        durably = create_durably(
            f"sqlite:///{opts.db}", max_concurrent_runs=MAX_CONCURRENT_RUNS, polling_interval=SPLIT_WORKER_POLL_S
        )
        durably.register(**make_jobs())
        await durably.start()
        print(f"{TAG_READY}worker", flush=True)
        await asyncio.sleep(opts.timeout)  # killed by the parent long before
        await durably.close(timeout=2)

    asyncio.run(main())


# ==================================================================================================
# child: SSE clients
# ==================================================================================================
COMPLETE = b'"type":"run:complete"'
LAST_CHUNK = b"\r\n0\r\n\r\n"  # the end of a chunked body (SSE data never holds \r)


class SseConnection(asyncio.Protocol):
    """One HTTP/1.1 GET of a chunked text/event-stream body.

    While the measurement runs it only keeps what arrives, as (receive time, bytes), and counts the
    `run:complete` it needs to be done; the body is split into frames afterwards (`frames()`), each
    frame with the receive time of the bytes that completed its chunk, as if split on arrival. So the
    measuring side's cost per frame stays small beside the server's: it shares the machine's cores.
    """

    def __init__(self, request: bytes, want_completes: int, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.want = want_completes
        self.received: list[tuple[float, bytes]] = []  # the body as it came
        self.completes = 0
        self.headers = loop.create_future()
        self.ended = loop.create_future()
        self.end_reason = ""
        self.transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._tail = b""  # the end of the body so far: a marker may be split between two reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        t = time.time()
        if not self.headers.done():
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._head[:end]).decode("latin-1")
            data = bytes(self._head[end + 4 :])
            status = head.split(" ", 2)[1] if " " in head else "?"
            if status != "200" or "transfer-encoding: chunked" not in head.lower():
                self.headers.set_exception(RuntimeError(f"HTTP {status}: {head[:200]} {data[:200]!r}"))
                self._finish(f"HTTP {status}")
                if self.transport is not None:
                    self.transport.close()
                return
            self.headers.set_result(t)
            if not data:
                return
        self.received.append((t, data))
        seen = self._tail + data
        self._tail = seen[1 - len(COMPLETE) :]  # too short to hold a whole marker: none counted twice
        self.completes += seen.count(COMPLETE)
        if self.want and self.completes >= self.want:
            self._finish("all run:complete received")
        elif seen.endswith(LAST_CHUNK):
            self._finish("server ended the stream")

    def frames(self) -> tuple[list[tuple[float, bytes]], int]:
        """The body's SSE frames with their receive times, and how many keep-alive comments it held."""
        frames: list[tuple[float, bytes]] = []
        keepalives = 0
        buf, sse = bytearray(), bytearray()
        for t, data in self.received:
            buf += data
            pos, n = 0, len(buf)
            while True:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    break
                size = int(bytes(buf[pos:nl]).split(b";", 1)[0], 16)
                start = nl + 2
                if size == 0 or n < start + size + 2:
                    break
                sse += buf[start : start + size]
                pos = start + size + 2
            del buf[:pos]
            while (i := sse.find(b"\n\n")) >= 0:
                frame = bytes(sse[:i])
                del sse[: i + 2]
                if frame.startswith(b":"):
                    keepalives += 1
                else:
                    frames.append((t, frame))
        return frames, keepalives

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.headers.done():
            self.headers.set_exception(ConnectionError(f"connection lost before headers: {exc}"))
        self._finish("connection closed" if exc is None else f"connection lost: {exc}")

    def _finish(self, why: str) -> None:
        if not self.ended.done():
            self.end_reason = why
            self.ended.set_result(why)


def decode_frame(t: float, frame: bytes) -> tuple[Any, ...]:
    """(receive time, feed id, type, runId, stepIndex, progress current, progress message, timestamp)."""
    event_id = None
    data = b""
    for line in frame.split(b"\n"):
        if line.startswith(b"id: "):
            event_id = int(line[4:])
        elif line.startswith(b"data: "):
            data = line[6:]
    event = json.loads(data)
    progress = event.get("progress") or {}
    return (t, event_id, event.get("type"), event.get("runId"), event.get("stepIndex"), progress.get("current"),
            progress.get("message"), event.get("timestamp"))  # fmt: skip


def child_client(opts: argparse.Namespace) -> None:
    raise_nofile(opts.conns + 256)
    if opts.run_ids:
        ids = json.loads(Path(opts.run_ids).read_text())[opts.offset : opts.offset + opts.conns]
        paths = [f"{BASE}/subscribe?runId={run_id}" for run_id in ids]
    else:
        paths = [f"{BASE}/runs/subscribe"] * opts.conns
    outcome = asyncio.run(client_main(opts, paths))
    with open(opts.out, "wb") as f:
        pickle.dump(outcome, f, protocol=pickle.HIGHEST_PROTOCOL)
    print(f"{TAG_DONE}{json.dumps(outcome['stats'])}", flush=True)


async def client_main(opts: argparse.Namespace, paths: list[str]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    host = f"127.0.0.1:{opts.port}"
    gate = asyncio.Semaphore(opts.connect_parallel)
    connect_errors: list[str] = []

    async def open_one(path: str) -> SseConnection | None:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
        async with gate:
            for attempt in range(5):
                conn = SseConnection(request, opts.want, loop)
                try:
                    await asyncio.wait_for(loop.create_connection(lambda c=conn: c, "127.0.0.1", opts.port), 15)
                    await asyncio.wait_for(conn.headers, 15)
                    if opts.run_ids:  # a per-run stream is ready once its snapshot is in
                        deadline = time.monotonic() + 15
                        while not conn.received and time.monotonic() < deadline and not conn.ended.done():
                            await asyncio.sleep(0.005)
                    return conn
                except (OSError, TimeoutError, RuntimeError, ConnectionError) as error:
                    if conn.transport is not None:
                        conn.transport.close()
                    if attempt == 4:
                        connect_errors.append(f"{type(error).__name__}: {error}")
                    await asyncio.sleep(0.05 * (attempt + 1))
        return None

    t0 = time.monotonic()
    opened = await asyncio.gather(*(open_one(p) for p in paths))
    conns = [c for c in opened if c is not None]
    connect_s = time.monotonic() - t0
    print(f"{TAG_READY}{json.dumps({'connected': len(conns), 'errors': connect_errors[:3], 'connect_s': connect_s})}",
          flush=True)  # fmt: skip

    lags: list[float] = []
    stop_lag = asyncio.Event()

    async def lag_monitor() -> None:
        while not stop_lag.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t - 0.005)

    monitor = loop.create_task(lag_monitor())
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    w0 = time.monotonic()
    pending = [c.ended for c in conns if not c.ended.done()]
    if pending:
        await asyncio.wait(pending, timeout=opts.timeout)
    wall = time.monotonic() - w0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    stop_lag.set()
    await monitor
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    parsed = [conn.frames() for conn in conns]
    records = [[decode_frame(t, frame) for t, frame in frames] for frames, _ in parsed]
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    stats = {
        "connected": len(conns),
        "connect_errors": connect_errors,
        "finished": sum(1 for c in conns if c.ended.done()),
        "end_reasons": dict(collections.Counter(c.end_reason for c in conns)),
        "keepalives": sum(keepalives for _, keepalives in parsed),
        "frames": sum(len(frames) for frames, _ in parsed),
        "wall_s": wall,
        "cpu_s": cpu,
        "lag_p99_ms": percentile(lags, 99) * 1000 if lags else 0.0,
        "lag_max_ms": max(lags) * 1000 if lags else 0.0,
        "peak_rss_kb": usage1.ru_maxrss,
    }
    return {"records": records, "stats": stats}


# ==================================================================================================
# parent: process plumbing
# ==================================================================================================
_live: list[Child] = []


class Child:
    """A child process of this script whose stdout lines can be awaited with a timeout."""

    def __init__(self, kind: str, args: list[str], workdir: str, name: str) -> None:
        self.name = name
        self.out = args[args.index("--out") + 1] if "--out" in args else ""
        self.stderr_path = os.path.join(workdir, f"{name}.stderr")
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - the child's lifetime
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", kind, *args],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1,
        )  # fmt: skip
        _live.append(self)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, tag: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no {tag.strip()} within {timeout:.0f} s{self._tail()}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.name} exited (code {self.proc.poll()}) before {tag.strip()}{self._tail()}")
            if line.startswith(tag):
                return line[len(tag) :]

    def _tail(self) -> str:
        self._stderr.flush()
        try:
            text = Path(self.stderr_path).read_text()[-1500:]
        except OSError:
            text = ""
        return f"; stderr tail:\n{text}" if text else ""

    def cpu_s(self) -> float:
        try:
            import psutil

            times = psutil.Process(self.proc.pid).cpu_times()
            return times.user + times.system
        except psutil.Error:
            return 0.0

    def stop(self, grace: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._stderr.close()
        if self in _live:
            _live.remove(self)


class RssSampler(threading.Thread):
    """The server's RSS every 100 ms (psutil), with its peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process(pid)
        self._psutil_error = psutil.Error
        self.peak = 0
        self.last = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.last = self.process.memory_info().rss
            except self._psutil_error:
                return
            self.peak = max(self.peak, self.last)
            self.samples += 1
            self._halt.wait(RSS_SAMPLE_S)

    def cpu_s(self) -> float:
        try:
            times = self.process.cpu_times()
            return times.user + times.system
        except self._psutil_error:
            return float("nan")

    def stop(self) -> None:
        self._halt.set()
        self.join(2)


def run_queue_wait_s(pid: int) -> float:
    """Seconds the process's threads have spent ready to run but waiting for a core (Linux's
    /proc/PID/task/*/schedstat, 2nd field; nan elsewhere): tells a server that was slow from one
    that was kept waiting."""
    total = 0
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                total += int(Path(task.path, "schedstat").read_text().split()[1])
    except OSError:
        return math.nan
    return total / 1e9


def machine_busy_s() -> float:
    """CPU seconds spent by everything on the machine (all CPUs), for telling other load apart."""
    import psutil

    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0) + getattr(t, "steal", 0.0)


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Profiler:
    """py-spy on the server for the measured part of a phase (only with --py-spy DIR). --gil: only
    the thread holding the GIL is sampled, so the profile shows what the interpreter was doing."""

    def __init__(self, out_dir: str | None, pid: int, name: str) -> None:
        self.path = None if out_dir is None else os.path.join(out_dir, f"{name}.folded.txt")
        self.proc: subprocess.Popen[bytes] | None = None
        if self.path is None:
            return
        spy = Path(sys.executable).parent / "py-spy"
        self.proc = subprocess.Popen(
            [str(spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--threads", "--gil", "-o", self.path],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> str | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return self.path


class NodePeer:
    """Durably's own Node server (bench/node_sse_server.mjs: @coji/durably as tests/node_durably
    installs it, with the W4a jobs of sse_jobs.py): the peer rows. Its worker runs in its process."""

    def __init__(self, workdir: str, db: str, options: dict[str, Any]) -> None:
        from tests.node_durably.harness import NodeServer, ensure_installed

        ensure_installed()  # npm ci on first use, as the tests do
        shape = {
            "jobs": {"yield": JOB_YIELD, "cpu": JOB_CPU, "warmUp": JOB_W2},
            "steps": W4A_STEPS,
            "yieldSleepMs": YIELD_SLEEP_S * 1000,
            "cpuSpinMs": CPU_SPIN_S * 1000,
            "maxConcurrentRuns": MAX_CONCURRENT_RUNS,
            "options": options,
        }
        log = Path(workdir, "node.log")
        self.server = NodeServer(Path(db), log=log, script=NODE_SERVER, arguments=(json.dumps(shape),)).start()
        self.port = self.server.port
        self.pid = self.server.pid

    def stop(self) -> None:
        self.server.stop()


def node_versions() -> str:
    """Node's and @coji/durably's versions, as the peer rows run them ('' before the first install)."""
    try:
        from tests.node_durably.harness import NODE, PROJECT

        package = json.loads((PROJECT / "node_modules/@coji/durably/package.json").read_text())
        node = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    except (ImportError, OSError, subprocess.CalledProcessError):
        return ""
    return f"@coji/durably {package['version']} on Node {node}"


_switch_interval = 0.0


def start_server(workdir: str, db: str, worker: str, nofile: int) -> tuple[Child, int, str]:
    args = ["--db", db, "--worker", worker, "--nofile", str(nofile)]
    if _switch_interval:
        args += ["--switch-interval", str(_switch_interval)]
    server = Child("server", args, workdir, "server")
    port_text, protocol = server.expect(TAG_PORT, 60).split()
    return server, int(port_text), protocol


def start_clients(workdir: str, port: int, total: int, procs: int, want: int, timeout: float,
                  run_ids_file: str | None = None) -> list[Child]:  # fmt: skip
    clients = []
    procs = max(1, min(procs, total))
    per = [total // procs + (1 if i < total % procs else 0) for i in range(procs)]
    offset = 0
    for i, count in enumerate(per):
        args = ["--port", str(port), "--conns", str(count), "--want", str(want), "--timeout", str(timeout),
                "--out", os.path.join(workdir, f"client{i}.pickle"), "--offset", str(offset)]  # fmt: skip
        if run_ids_file:
            args += ["--run-ids", run_ids_file]
        clients.append(Child("client", args, workdir, f"client{i}"))
        offset += count
    return clients


async def trigger_runs(port: int, job: str, count: int, parallel: int) -> dict[str, float]:
    """POST /trigger `count` times, `parallel` at a time; runId -> wall time the request was sent."""
    import httpx

    sent: dict[str, float] = {}
    gate = asyncio.Semaphore(parallel)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}{BASE}", timeout=60) as client:

        async def one() -> None:
            async with gate:
                t = time.time()
                response = await client.post("/trigger", json={"jobName": job, "input": {}})
                response.raise_for_status()
                sent[response.json()["runId"]] = t

        await asyncio.gather(*(one() for _ in range(count)))
    return sent


async def fetch_runs(port: int, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """GET /run and /steps of every run (for the times events of W4a's reduced stream were made)."""
    import httpx

    out: dict[str, dict[str, Any]] = {}
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}{BASE}", timeout=60) as client:

        async def one(run_id: str) -> None:
            async with gate:
                run = (await client.get("/run", params={"runId": run_id})).json()
                run["steps"] = (await client.get("/steps", params={"runId": run_id})).json()
                out[run_id] = run

        await asyncio.gather(*(one(r) for r in run_ids))
    return out


def warm_up(port: int, timeout: float = 60.0) -> None:
    """One run of the one-step job, triggered and awaited over HTTP: the server's worker is up."""
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{port}{BASE}", timeout=30) as client:
        run_id = client.post("/trigger", json={"jobName": JOB_W2, "input": {}}).raise_for_status().json()["runId"]
        deadline = time.monotonic() + timeout
        while client.get("/run", params={"runId": run_id}).json()["status"] != "completed":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the warm-up run did not complete within {timeout:.0f} s")
            time.sleep(0.02)


def post_control(port: int, path: str) -> None:
    import httpx

    httpx.post(f"http://127.0.0.1:{port}{path}", timeout=60).raise_for_status()


def collect(clients: list[Child], timeout: float) -> tuple[list[dict[str, Any]], list[list[tuple[Any, ...]]]]:
    """Wait for every client's DONE; their stats and their connections' records."""
    stats, records = [], []
    deadline = time.monotonic() + timeout
    for client in clients:
        stats.append(json.loads(client.expect(TAG_DONE, max(1.0, deadline - time.monotonic()))))
    for client in clients:
        client.proc.wait(60)
        with open(client.out, "rb") as f:
            records.extend(pickle.load(f)["records"])
        client.stop()
    return stats, records


def logged_event_ids(db: str) -> dict[tuple[str, str, Any], int]:
    """(type, runId, stepIndex | progress current) -> id in the server's event log (read after the
    server stopped): tells an event skipped on a stream (lost) from one still queued (late)."""
    ids: dict[tuple[str, str, Any], int] = {}
    try:
        connection = sqlite3.connect(db, timeout=10)
        try:
            rows = connection.execute("SELECT id, type, run_id, body FROM durably_events ORDER BY id").fetchall()
        finally:
            connection.close()
    except sqlite3.Error:
        return ids
    for event_id, kind, run_id, body in rows:
        event = json.loads(body)
        detail = (event.get("progress") or {}).get("current") if kind == "run:progress" else event.get("stepIndex")
        ids.setdefault((kind, run_id, detail), event_id)
    return ids


def client_summary(stats: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "procs": len(stats),
        "cpu_s": sum(s["cpu_s"] for s in stats),
        "cpu_util": max((s["cpu_s"] / s["wall_s"] for s in stats if s["wall_s"] > 0), default=0.0),
        "lag_p99_ms": max((s["lag_p99_ms"] for s in stats), default=0.0),
        "lag_max_ms": max((s["lag_max_ms"] for s in stats), default=0.0),
        "connected": sum(s["connected"] for s in stats),
        "unfinished": sum(s["connected"] - s["finished"] for s in stats),
        "end_reasons": dict(sum((collections.Counter(s["end_reasons"]) for s in stats), collections.Counter())),
    }


# ==================================================================================================
# one configuration
# ==================================================================================================
class Config:
    """One measured configuration. `worker`: where the benchmark's own server runs its worker
    ("same", "split": a 2nd process, "later": started by a control route), or "cli": the server is
    `durably-reflex serve` of the code in `code` with `serve_args` (see cli_server.py), or "node":
    Durably's own Node server with `node_options` (NodePeer)."""

    def __init__(self, key: str, label: str, job: str, clients: int, runs: int, procs: int, worker: str,
                 timeout: float, target_ms: float, headline: bool, code: str = "",
                 serve_args: tuple[str, ...] = (), node_options: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.key, self.label, self.job = key, label, job
        self.clients, self.runs, self.procs = clients, runs, procs
        self.worker, self.timeout, self.target_ms, self.headline = worker, timeout, target_ms, headline
        self.code, self.serve_args, self.node_options = code, serve_args, node_options or {}
        self.per_run = job == JOB_W4B  # W4b: one stream per run, full events

    @property
    def steps(self) -> int:
        return W4B_STEPS if self.per_run else W4A_STEPS


def run_config(opts: argparse.Namespace, cfg: Config) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="durably-sse-")
    db = os.path.join(workdir, "durably.db")
    children: list[Child | CliServer | NodePeer] = []
    result: dict[str, Any] = {"cfg": cfg}
    try:
        server: Child | CliServer | NodePeer
        if cfg.worker == "cli":
            server = CliServer(cfg.code, workdir, f"sqlite:///{db}", list(cfg.serve_args))
            children.append(server)
            port, protocol, server_pid = server.port, "durably-reflex serve", server.proc.pid
            warm_up(port)  # its worker (in whichever process) has started and run a run
        elif cfg.worker == "node":
            server = NodePeer(workdir, db, cfg.node_options)
            children.append(server)
            port, protocol, server_pid = server.port, "node:http", server.pid
            warm_up(port)
        else:
            server_worker = {"same": "same", "split": "none", "later": "later"}[cfg.worker]
            server, port, protocol = start_server(workdir, db, server_worker, cfg.clients + 256)
            children.append(server)
            server_pid = server.proc.pid
        result["protocol"] = protocol
        worker: Child | None = None
        if cfg.worker == "split":
            worker = Child("worker", ["--db", db, "--timeout", "900"], workdir, "worker")
            children.append(worker)
            worker.expect(TAG_READY, 60)
        sampler = RssSampler(server_pid)
        sampler.start()
        time.sleep(0.3)
        result["rss_idle_mb"] = sampler.last / 2**20

        sent: dict[str, float] = {}
        ids_file = None
        if cfg.per_run:  # W4b: the runs exist (pending, no worker yet) before anyone subscribes
            t = time.monotonic()
            sent = asyncio.run(trigger_runs(port, cfg.job, cfg.runs, parallel=16))
            result["trigger_s"] = time.monotonic() - t
            ids_file = os.path.join(workdir, "run_ids.json")
            with open(ids_file, "w") as f:
                json.dump(list(sent), f)
        want = 1 if cfg.per_run else cfg.runs
        clients = start_clients(workdir, port, cfg.clients, cfg.procs, want, cfg.timeout, ids_file)
        children.extend(clients)
        ready = [json.loads(c.expect(TAG_READY, 120)) for c in clients]
        connected = sum(r["connected"] for r in ready)
        result["connect_s"] = max(r["connect_s"] for r in ready)
        if connected < cfg.clients:
            result["error"] = f"only {connected}/{cfg.clients} clients connected: {[r['errors'] for r in ready]}"
        time.sleep(0.3)
        result["rss_connected_mb"] = sampler.last / 2**20

        spy_dir = None if cfg.worker == "node" else opts.py_spy  # py-spy reads Python processes only
        profiler = Profiler(spy_dir, server_pid, cfg.key.replace("(", "").replace(")", ""))
        workers_cpu = worker.cpu_s if worker else server.workers_cpu_s if isinstance(server, CliServer) else lambda: 0.0
        cpu0, busy0, own0, wcpu0 = sampler.cpu_s(), machine_busy_s(), own_cpu_s(), workers_cpu()
        worker_pids = server.workers() if isinstance(server, CliServer) else []
        waited0 = run_queue_wait_s(server_pid)
        workers_waited0 = sum(run_queue_wait_s(pid) for pid in worker_pids)
        t0 = time.monotonic()
        if cfg.per_run:
            post_control(port, CONTROL_START_WORKER)
        else:
            sent = asyncio.run(trigger_runs(port, cfg.job, cfg.runs, parallel=4))
            result["trigger_s"] = time.monotonic() - t0
        stats, records = collect(clients, cfg.timeout + 60)
        result["wall_s"] = time.monotonic() - t0
        result["server_cpu_s"] = sampler.cpu_s() - cpu0
        result["server_waited_s"] = run_queue_wait_s(server_pid) - waited0
        result["workers_waited_s"] = sum(run_queue_wait_s(pid) for pid in worker_pids) - workers_waited0
        worker_cpu = workers_cpu() - wcpu0
        result["worker_cpu_s"] = worker_cpu
        result["client"] = client_summary(stats)
        others = machine_busy_s() - busy0 - result["server_cpu_s"] - worker_cpu - result["client"]["cpu_s"]
        result["other_cores"] = max(0.0, others - (own_cpu_s() - own0)) / result["wall_s"]
        result["profile"] = profiler.stop()
        runs = {} if cfg.per_run else asyncio.run(fetch_runs(port, list(sent)))
        sampler.stop()
        result["rss_peak_mb"] = sampler.peak / 2**20
        for child in reversed(children):
            child.stop()
        result.update(analyse(cfg, records, sent, runs, logged_event_ids(db)))
        if (result["late"] or result["lost"]) and isinstance(server, CliServer):
            result["server_log"] = server.stderr_end(20000)  # why streams ended early, if the server said
        return result
    finally:
        for child in reversed(children):
            child.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def analyse(cfg: Config, records: list[list[tuple[Any, ...]]], sent: dict[str, float],
            runs: dict[str, dict[str, Any]], logged: dict[tuple[str, str, Any], int]) -> dict[str, Any]:  # fmt: skip
    """Latencies of every received event, and per stream the must-arrive events missing: 'lost' when
    the stream carried a later event of the log (a gap), 'late' when not received by the deadline."""
    steps = cfg.steps
    made: dict[tuple[str, str, Any], float] = {}  # W4a: when the reduced stream's events were made
    for run_id, run in runs.items():
        made[("run:trigger", run_id, None)] = sent[run_id]
        if run.get("startedAt"):
            made[("run:start", run_id, None)] = iso_to_epoch(run["startedAt"])
        if run.get("completedAt"):
            made[("run:complete", run_id, None)] = iso_to_epoch(run["completedAt"])
        for step in run.get("steps", []):
            made[("step:start", run_id, step["index"])] = iso_to_epoch(step["startedAt"])
            made[("step:complete", run_id, step["index"])] = iso_to_epoch(step["completedAt"])

    def must(run_id: str) -> set[tuple[str, str, Any]]:
        keys = {("run:start", run_id, None), ("run:complete", run_id, None), ("run:progress", run_id, steps)}
        keys |= {(kind, run_id, i) for i in range(steps) for kind in ("step:start", "step:complete")}
        if not cfg.per_run:
            keys.add(("run:trigger", run_id, None))
        return keys

    all_must: set[tuple[str, str, Any]] = set()
    if not cfg.per_run:
        for run_id in sent:
            all_must |= must(run_id)
    by_type: dict[str, list[float]] = {}
    first: dict[tuple[str, str, Any], float] = {}  # each event's latency to the stream that had it first
    lost = late = dup = unexpected = out_of_order = throttled = snapshot_missing = delivered = 0
    for conn in records:
        delivered += len(conn)
        body = conn
        if cfg.per_run:
            if not conn or conn[0][2] != "run:snapshot":
                snapshot_missing += 1
                expected: set[tuple[str, str, Any]] = set()
            else:
                expected = must(conn[0][3])
                body = conn[1:]
        else:
            expected = all_must
        seen: set[tuple[str, str, Any]] = set()
        last_id = 0
        for t, event_id, received_kind, run_id, step_index, current, message, timestamp in body:
            kind = SAME_EVENT.get(received_kind, received_kind)
            if event_id is not None:
                if event_id <= last_id:
                    out_of_order += 1
                last_id = max(last_id, event_id)
            key = (kind, run_id, current if kind == "run:progress" else step_index)
            if key in seen:
                dup += 1
                continue
            seen.add(key)
            if kind == "run:progress" and current != steps:
                pass  # intermediate progress: may be throttled
            elif key not in expected:
                unexpected += 1
                continue
            if cfg.per_run:
                base = iso_to_epoch(timestamp) if timestamp else None
            elif kind == "run:progress":
                base = float(message)
            else:
                base = made.get(key)
            if base is not None:
                latency = (t - base) * 1000
                by_type.setdefault(kind, []).append(latency)
                first[key] = min(first.get(key, math.inf), latency)
        for key in expected - seen:
            logged_id = logged.get(key)
            if logged_id is not None and logged_id < last_id:
                lost += 1
            else:
                late += 1
                by_type.setdefault(key[0], []).append(math.inf)
        for run_id in {key[1] for key in expected}:  # intermediate progress the stream went past without
            for current in range(1, steps):  # sending: dropped by the throttle (by design)
                logged_id = logged.get(("run:progress", run_id, current))
                if ("run:progress", run_id, current) not in seen and logged_id is not None and logged_id < last_id:
                    throttled += 1
    missing_streams = cfg.clients - len(records)
    per_stream = len(must("x")) * (1 if cfg.per_run else len(sent))
    return {
        "event_log": bool(logged),  # Durably's Node server keeps none: its lost and throttled are unknown
        "delivered": delivered,
        "lost": lost + missing_streams * per_stream,
        "late": late,
        "dup": dup,
        "unexpected": unexpected,
        "out_of_order": out_of_order,
        "snapshot_missing": snapshot_missing,
        "throttled": throttled,
        "intermediate_possible": (steps - 1) * (len(records) if cfg.per_run else len(sent) * len(records)),
        "latency": [v for values in by_type.values() for v in values],
        "first_latency": list(first.values()),
        "by_type": by_type,
        "runs_not_completed": sum(1 for run in runs.values() if run.get("status") != "completed") if runs else None,
    }


# ==================================================================================================
# report
# ==================================================================================================
def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_results(results: list[dict[str, Any]]) -> None:
    rows, type_rows, health_rows, summary, errors = [], [], [], [], []
    for r in results:
        cfg: Config = r["cfg"]
        if "latency" not in r:
            errors.append(f"  {cfg.key}: ERROR: {r.get('error', '?')[:600]}")
            continue
        lat, deadline = r["latency"], cfg.timeout
        p50, p95, p99 = percentile(lat, 50), percentile(lat, 95), percentile(lat, 99)
        progress_p95 = percentile(r["by_type"].get("run:progress", []), 95)
        unknown = not r["event_log"]  # no event log to tell a gap from a late event or a throttled one
        ok_p95, ok_rss, ok_lost = p95 < cfg.target_ms, r["rss_peak_mb"] < TARGET_RSS_MB, r["lost"] + r["late"] == 0
        status = verdict(ok_p95 and ok_rss and ok_lost and "error" not in r) if cfg.headline else "info"
        rows.append([
            cfg.key, f"{cfg.clients}/{r['client']['procs']}", str(cfg.runs), f"{r['delivered']:,}",
            ms(p50, deadline), ms(p95, deadline), ms(p99, deadline), ms(max(lat) if lat else math.nan, deadline),
            ms(progress_p95, deadline), "-" if unknown and not r["lost"] else str(r["lost"]), f"{r['late']:,}",
            "-" if unknown else f"{r['throttled']:,}/{r['intermediate_possible']:,}",
            f"{r['rss_idle_mb']:.0f}/{r['rss_connected_mb']:.0f}/{r['rss_peak_mb']:.0f}",
            f"{r['server_cpu_s']:.1f}/{r['wall_s']:.1f}", f"{r['delivered'] / r['wall_s']:,.0f}",
            f"{r['server_cpu_s'] / max(1, r['delivered']) * 1e6:,.0f}", f"{r['other_cores']:.2f}", status,
        ])  # fmt: skip
        for kind in ("run:trigger", "run:start", "step:start", "step:complete", "run:progress", "run:complete"):
            values = r["by_type"].get(kind, [])
            type_rows.append([f"{cfg.key} {kind}", f"{len(values):,}", ms(percentile(values, 50), deadline),
                              ms(percentile(values, 95), deadline), ms(percentile(values, 99), deadline),
                              ms(max(values) if values else math.nan, deadline)])  # fmt: skip
        c = r["client"]
        health_rows.append([
            cfg.key, str(c["procs"]), str(c["connected"]), f"{r['connect_s']:.1f}", f"{c['cpu_util'] * 100:.0f}%",
            f"{c['lag_p99_ms']:.1f}/{c['lag_max_ms']:.1f}", str(c["unfinished"]),
            f"{r['dup']}/{r['unexpected']}/{r['out_of_order']}/{r['snapshot_missing']}",
            "-" if r["runs_not_completed"] is None else str(r["runs_not_completed"]),
            f"{r['worker_cpu_s']:.1f}" if r["worker_cpu_s"] else "-",
            f"{r['server_waited_s'] / r['wall_s'] * 1000:.0f}",
            f"{r['workers_waited_s'] / r['wall_s'] * 1000:.0f}" if r["worker_cpu_s"] else "-",
            f"{percentile(r['first_latency'], 50):.1f}/{percentile(r['first_latency'], 95):.1f}",
        ])  # fmt: skip
        if r["late"] or r["lost"]:
            reasons = ", ".join(f"{why} x{count}" for why, count in sorted(c["end_reasons"].items()))
            print(f"  {cfg.key}: streams ended: {reasons}")
            if r.get("server_log"):
                print(f"  {cfg.key}: the server's stderr, last lines:")
                print("\n".join(f"    {line}" for line in r["server_log"].splitlines()))
        if "error" in r:
            print(f"  {cfg.key}: {r['error']}")
        summary.append((cfg, p95, r))
    print(
        "\n=== SSE delivery: latency = client receive time - event creation time (ms), every event x every client ==="
    )
    print(table(["config", "clients/procs", "runs", "events recv", "p50", "p95", "p99", "max", "progress p95", "lost", "late",
                 "throttled/possible", "RSS MB idle/conn/peak", "srv CPU s/wall s", "frames/s", "srv CPU µs/frame",
                 "other CPU", "verdict"], rows))  # fmt: skip
    if errors:
        print("\n".join(errors))
    print(
        f"  targets: W4a p95 < {TARGET_W4A_P95_MS:g} ms, W4b p95 < {TARGET_W4B_P95_MS:g} ms, server peak RSS < "
        f"{TARGET_RSS_MB:g} MB, 0 lost. 'late' = must-arrive events not received when the client gave up (its deadline,"
    )
    print(
        "  counted as latency = infinity, shown '>Ns'); 'lost' = skipped although a later event arrived on that stream."
    )
    print(
        "  'throttled' = intermediate progress a stream went past without sending (by design). frames/s = frames received by"
    )
    print(
        "  all clients / wall time from trigger to the last client done; srv CPU µs/frame = server CPU time (user+sys, all"
    )
    print("  threads, job code included) / frames received. 'other CPU' = average cores used by processes outside this")
    print(
        "  benchmark during the measurement (the machine is shared). 'progress p95': run:progress alone, whose latency"
    )
    print(
        "  is exact (the job's own clock in the message): the like-for-like figure beside Durably's Node server, whose"
    )
    print(
        "  rows ('node') have no event log nor stream ids: a missing event counts as late, lost and throttled read '-'."
    )
    print("\n--- latency by event type (ms; '>Ns' = not received within the client's deadline; '-': none) ---")
    print(table(["config / event", "n", "p50", "p95", "p99", "max"], type_rows))
    print("\n--- client health (did the measuring side keep up?) and consistency ---")
    print(table(["config", "procs", "conns", "connect s", "client CPU (max proc)", "loop lag p99/max ms", "unfinished",
                 "dup/unexpected/out-of-order ids/no snapshot", "runs not completed", "worker-proc CPU s", "srv waited for a core ms/s", "workers waited ms/s", "first stream p50/p95 ms"], health_rows))  # fmt: skip
    print(
        "  'srv waited for a core': time the API process's threads were ready to run but had no core (Linux schedstat),"
    )
    print("  per second of the measurement; 'workers waited': the same for its worker processes' threads, summed.")
    print(
        "  'first stream': each event's latency to the stream that received it first: the pipeline without the fan-out."
    )
    print("\n=== Summary ===")
    srows = []
    for cfg, p95, r in summary:
        checks = (p95 < cfg.target_ms, r["rss_peak_mb"] < TARGET_RSS_MB, r["lost"] + r["late"] == 0)
        st = [verdict(ok) if cfg.headline else "info" for ok in checks]
        srows.append([f"{cfg.key} delivery p95", ms_with_unit(p95, cfg.timeout), f"< {cfg.target_ms:g} ms", st[0]])
        srows.append([f"{cfg.key} server peak RSS", f"{r['rss_peak_mb']:.0f} MB", f"< {TARGET_RSS_MB:g} MB", st[1]])
        srows.append([f"{cfg.key} events lost / late", f"{r['lost']} / {r['late']:,}", "0 / 0", st[2]])
    print(table(["metric", "value", "target", "status"], srows))


def print_rounds(results: list[dict[str, Any]]) -> None:
    """Each configuration's p95 in every round, and their median: the figure to quote."""
    by_key: dict[str, list[str]] = {}
    medians: dict[str, list[float]] = {}
    deadlines: dict[str, float] = {}
    for r in results:
        key = r["cfg"].key.rsplit(" #", 1)[0]
        p95 = percentile(r["latency"], 95) if "latency" in r else math.nan
        progress_p95 = percentile(r["by_type"].get("run:progress", []), 95) if "latency" in r else math.nan
        for row_key, value in ((key, p95), (f"{key}, run:progress", progress_p95)):
            by_key.setdefault(row_key, []).append(ms(value, r["cfg"].timeout))
            medians.setdefault(row_key, []).append(value)
            deadlines[row_key] = r["cfg"].timeout
    print("\n=== p95 by round (ms) and the median of the rounds: every event, and run:progress alone ===")
    rows = [[key, *values, ms(statistics.median(medians[key]), deadlines[key])] for key, values in by_key.items()]
    print(table(["config", *(f"#{n}" for n in range(1, max(len(v) for v in by_key.values()) + 1)), "median"], rows))


def print_profile(path: str, key: str, top: int = 12) -> None:
    """Self and inclusive shares by function from py-spy's folded output (GIL holder only)."""
    self_time: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    threads: dict[str, int] = {}
    total = 0
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1].rstrip(")\"'")
        threads[thread] = threads.get(thread, 0) + count
        funcs = []
        for f in frames[1:]:
            name, _, where = f.partition(" (")
            funcs.append(f"{name} [{where.split(':')[0].rsplit('/', 1)[-1]}]")
        if funcs:
            self_time[funcs[-1]] = self_time.get(funcs[-1], 0) + count
        for func in set(funcs):
            inclusive[func] = inclusive.get(func, 0) + count
    if not total:
        return

    def share(items: dict[str, int]) -> str:
        return "; ".join(f"{f} {100 * n / total:.0f}%" for f, n in sorted(items.items(), key=lambda x: -x[1])[:top])

    print(f"\n--- py-spy --gil on the server during {key}: {total} samples at 200 Hz of the GIL holder ---")
    print(f"  by thread: {share(threads)}")
    print(f"  self: {share(self_time)}")
    interesting = {f: n for f, n in inclusive.items() if not f.startswith(("BaseEventLoop.run", "BaseEventLoop._run_once",
                   "Runner.run", "run [runners", "<module>", "main [", "child_server", "Thread.", "Handle._run"))}  # fmt: skip
    print(f"  inclusive: {share(interesting)}")


METHOD = f"""
Method
  * One server process per configuration (fresh SQLite file): uvicorn serving create_durably_handler(durably) with
    its defaults (progress_interval 0.1, keep-alive 15 s), max_concurrent_runs={MAX_CONCURRENT_RUNS}, worker started in the same
    process (worker-proc configurations: in a second process on the same database, polling every
    {SPLIT_WORKER_POLL_S * 1000:.0f} ms). Server RSS sampled with psutil every {RSS_SAMPLE_S * 1000:.0f} ms: idle / clients connected / peak.
  * Clients run in separate processes: raw asyncio.Protocol HTTP/1.1 readers, receive time = time.time() when the
    loop hands the bytes over; chunked and SSE framing split and JSON decoded only after the measurement (a frame
    keeps the time of the read that completed it). All clients are connected (response headers in; W4b: its first
    bytes, the snapshot, in) before anything is triggered. Client CPU and loop lag (overshoot
    of 5 ms sleeps) show whether the measuring side kept up; one client process sufficed for W4a (see its CPU).
  * W4a: {W4A_STEPS} steps per run, each step.run(...) then step.progress(i+1, {W4A_STEPS}, message=f"{{time.time():.6f}}"). Latency:
    run:progress vs the time in its message (exact); run:trigger vs the time the POST /trigger was sent (4 in flight);
    run:start vs the run's startedAt (claim), run:complete vs its completedAt, step:start/complete vs the step's
    startedAt/completedAt (GET /run and /steps afterwards; whole ms, so 0-1 ms high). Must-arrive per run and client:
    trigger, start, complete, {W4A_STEPS} step:start, {W4A_STEPS} step:complete, progress {W4A_STEPS}/{W4A_STEPS}; intermediate progress missing = 'throttled'.
  * W4b: runs triggered over HTTP (16 in flight) on a server whose worker is not started; the clients connect
    (/subscribe?runId=..., snapshot received); then the benchmark calls a control route of its own ASGI wrapper around
    the handler ({CONTROL_START_WORKER}, not part of the API) that runs durably.start(). Latency = receive time - the event's
    "timestamp" (whole ms: 0-1 ms high). Must-arrive per stream: snapshot first, run:start, {W4B_STEPS} step:start,
    {W4B_STEPS} step:complete, progress {W4B_STEPS}/{W4B_STEPS}, run:complete. RLIMIT_NOFILE soft limit raised to the hard limit in every process.
  * node rows: Durably's own Node server (tests/node_durably/serve.mjs's node:http adapter, better-sqlite3, one process
    for API and worker), the same jobs (bench/node_sse_server.mjs), clients, routes and trigger; each SQL text prepared
    once (better-sqlite3 12 on Node 24 aborts when a statement is finalized by the GC; Python's sqlite3 keeps statements too).
  * Lost vs late: after the run the server's event log (durably_events) gives each event's feed id; a missing
    must-arrive event whose id is below the last id its stream delivered was skipped (lost); otherwise it was still
    queued when the client's deadline passed (late; counted as latency = infinity in the percentiles).
"""


# ==================================================================================================
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=200, help="W4a /runs/subscribe clients (default 200)")
    p.add_argument("--jobs", type=int, default=100, help="W4a runs (default 100)")
    p.add_argument("--run-clients", type=int, default=1000, help="W4b per-run clients = runs (default 1000)")
    p.add_argument("--client-procs", type=int, default=1, help="W4a client processes (default 1)")
    p.add_argument("--run-client-procs", type=int, default=4, help="W4b client processes (default 4)")
    p.add_argument("--quick", action="store_true", help="smoke test: 20 clients, 10 jobs, 50 per-run clients")
    p.add_argument("--only", default="W4a,W4b,floor", help="comma-separated: W4a, node (W4a on Durably's Node "
                   "server), W4b, floor (default W4a,W4b,floor)")  # fmt: skip
    p.add_argument(
        "--w4a-deadline",
        type=float,
        default=40.0,
        help="seconds a W4a client waits (from connected) before giving up (default 40)",
    )
    p.add_argument("--w4b-deadline", type=float, default=60.0, help="same for W4b (default 60)")
    p.add_argument(
        "--py-spy", metavar="DIR", help="profile the server (py-spy --gil) in each configuration; folded stacks in DIR"
    )
    p.add_argument("--before", metavar="REV", help="W4a also with `durably-reflex serve` of this commit (git archive) "
                   "or folder, to print before and after in one run")  # fmt: skip
    p.add_argument("--after", metavar="REV", help="W4a with `durably-reflex serve` of this commit or folder (default: "
                   "this checkout)")  # fmt: skip
    p.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                   help="W4a: an argument for the headline `serve` (repeat the option for more)")  # fmt: skip
    p.add_argument("--repeat", type=int, default=1, help="run every configuration this many times, interleaved, "
                   "and print each one's median p95 (default 1)")  # fmt: skip
    p.add_argument(
        "--switch-interval",
        type=float,
        default=0.0,
        help="diagnosis: sys.setswitchinterval() in the server process (default: Python's 0.005 s)",
    )
    # hidden: child processes
    p.add_argument("--child", choices=["server", "worker", "client"], help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=["same", "later", "none"], default="same", help=argparse.SUPPRESS)
    p.add_argument("--nofile", type=int, default=4096, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--conns", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--want", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--run-ids", help=argparse.SUPPRESS)
    p.add_argument("--connect-parallel", type=int, default=64, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.quick and not opts.child:
        opts.clients, opts.jobs, opts.run_clients = min(opts.clients, 20), min(opts.jobs, 10), min(opts.run_clients, 50)
        opts.w4a_deadline, opts.w4b_deadline = min(opts.w4a_deadline, 20.0), min(opts.w4b_deadline, 30.0)
    return opts


def node_configs(key: str, label: str, job: str, a: tuple[Any, ...]) -> list[Config]:
    """The peer rows beside W4a's `key`: Durably's Node server polling for runs as it does by default
    (1 s while a slot finds none) and, yielding steps only, as the tests' server does (50 ms, close to
    durably-reflex's claim on trigger): what the polling changes shows beside what it does not."""
    polls = [("", {})]
    if job == JOB_YIELD:
        polls.append((f" poll {NODE_FAST_POLL_MS}ms", {"pollingIntervalMs": NODE_FAST_POLL_MS}))
    return [
        Config(f"{key} node{suffix}", f"/runs/subscribe, {label}; Durably's Node server, createDurably options "
               f"{json.dumps({**NODE_OPTIONS, **extra})} (defaults otherwise)", job, *a[:3], "node", *a[3:], False,
               node_options={**NODE_OPTIONS, **extra})
        for suffix, extra in polls
    ]  # fmt: skip


def configs(opts: argparse.Namespace, only: set[str]) -> list[Config]:
    out = []
    yield_label = f"yielding steps ({YIELD_SLEEP_S * 1000:.0f} ms async sleep)"
    cpu_label = f"CPU-bound steps ({CPU_SPIN_S * 1000:.0f} ms spin, never yield)"
    a = (opts.clients, opts.jobs, opts.client_procs, opts.w4a_deadline, TARGET_W4A_P95_MS)
    for key, label, job in (("W4a(1)", yield_label, JOB_YIELD), ("W4a(2)", cpu_label, JOB_CPU)):
        if "W4A" in only:  # `durably-reflex serve` as users start it: before (--before), now, now in one process
            if opts.before_code:
                out.append(Config(f"{key} before", f"/runs/subscribe, {label}; serve of {opts.before}", job, *a[:3],
                                  "cli", *a[3:], False, opts.before_code))  # fmt: skip
            out.append(Config(key, f"/runs/subscribe, {label}; serve {' '.join(opts.serve_arg)} (worker process) of "
                              f"{opts.after}", job, *a[:3], "cli", *a[3:], True, opts.after_code,
                              tuple(opts.serve_arg)))  # fmt: skip
            out.append(Config(f"{key} in-process", f"/runs/subscribe, {label}; serve --in-process-worker of "
                              f"{opts.after}", job, *a[:3], "cli", *a[3:], False, opts.after_code,
                              ("--in-process-worker",)))  # fmt: skip
        if "NODE" in only:  # the same jobs, clients and routes on Durably's own Node server
            out.extend(node_configs(key, label, job, a))
    if "FLOOR" in only:  # the same jobs with ONE client: the pipeline's own latency, without fan-out cost
        runs = min(opts.jobs, 20)
        for key, label, job, worker in (("floor(1)", yield_label, JOB_YIELD, "same"), ("floor(2)", cpu_label, JOB_CPU, "same"),
                                        ("floor(3)", cpu_label + ", worker in a 2nd process", JOB_CPU, "split")):  # fmt: skip
            out.append(Config(key, f"1 client, {label}", job, 1, runs, 1, worker, 30.0, TARGET_W4A_P95_MS, False))
    if "W4B" in only:
        n = opts.run_clients
        out.append(Config("W4b", f"{n} x /subscribe?runId (one run each, {W4B_STEPS} steps)", JOB_W4B, n, n,
                          opts.run_client_procs, "later", opts.w4b_deadline, TARGET_W4B_P95_MS, True))  # fmt: skip
    return out


def main(argv: list[str]) -> int:
    opts = parse_args(argv)
    if opts.child == "server":
        child_server(opts)
        return 0
    if opts.child == "worker":
        child_worker(opts)
        return 0
    if opts.child == "client":
        child_client(opts)
        return 0
    only = {w.strip().upper() for w in opts.only.split(",") if w.strip()}
    opts.before_code = code_for(opts.before) if opts.before else ""
    opts.after_code = code_for(opts.after) if opts.after else str(ROOT)
    opts.after = opts.after or describe_code(opts.after_code)
    if only - WORKLOADS:
        print(f"unknown workload(s): {', '.join(sorted(only - WORKLOADS))}", file=sys.stderr)
        return 2
    nofile = raise_nofile(max(opts.clients, opts.run_clients) + 256)
    global _switch_interval
    _switch_interval = opts.switch_interval
    if opts.py_spy:
        os.makedirs(opts.py_spy, exist_ok=True)
    import platform

    import uvicorn

    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "durably_reflex"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout
    print("durably-reflex SSE delivery benchmark")
    print(f"  python {platform.python_version()}, uvicorn {uvicorn.__version__}, {os.cpu_count()} CPUs, {platform.platform()}, "
          f"open-files limit {nofile}")  # fmt: skip
    print(
        f"  load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (clients and server share these CPUs)"
    )
    print(f"  repo HEAD {head or '?'}{' + uncommitted changes in durably_reflex/' if dirty.strip() else ''}")
    if "NODE" in only:
        from tests.node_durably.harness import ensure_installed

        ensure_installed()  # before the first round, so that no round's time holds an npm install
        print(
            f"  peer: {node_versions()}, node:http adapter tests/node_durably/serve.mjs, jobs bench/node_sse_server.mjs"
        )
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    rounds = [configs(opts, only) for _ in range(opts.repeat)]
    if opts.repeat > 1:  # configurations interleaved, round after round: the machine's drift hits them alike
        for number, round_configs in enumerate(rounds, 1):
            for cfg in round_configs:
                cfg.key = f"{cfg.key} #{number}"
    try:
        for cfg in (cfg for round_configs in rounds for cfg in round_configs):
            t = time.monotonic()
            print(f"\n... {cfg.key}: {cfg.clients} client(s), {cfg.runs} runs, {cfg.label}", flush=True)
            try:
                result = run_config(opts, cfg)
            except Exception as error:
                result = {"cfg": cfg, "error": f"{type(error).__name__}: {error}"}
            results.append(result)
            if "latency" in result:
                lat = result["latency"]
                print(f"    {result['delivered']:,} frames, p95 {ms_with_unit(percentile(lat, 95), cfg.timeout)}, lost {result['lost']}, "
                      f"late {result['late']:,}, peak RSS {result['rss_peak_mb']:.0f} MB, uvicorn {result['protocol']} "
                      f"({time.monotonic() - t:.0f} s)", flush=True)  # fmt: skip
            else:
                print(f"    {result.get('error')}", flush=True)
    finally:
        for child in list(_live):
            child.stop(grace=2)
    print_results(results)
    if opts.repeat > 1:
        print_rounds(results)
    print(METHOD)
    for r in results:
        if r.get("profile"):
            print_profile(r["profile"], r["cfg"].key)
    print(f"\n(total bench time {time.monotonic() - started:.0f} s; load average at end: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
