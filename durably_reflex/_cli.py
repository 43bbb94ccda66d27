"""The command line: serve the HTTP/SSE API with workers, run workers alone, or serve the dashboard.

    durably-reflex serve app:durably [--host 127.0.0.1] [--port 8000]
                                     [--processes N | --in-process-worker | --no-worker] ...
    durably-reflex worker app:durably [--processes N] [--stop-timeout 30]
    durably-reflex dashboard app:durably [--port 3000] [--auth app:auth] [--dev]
    durably-reflex dashboard --api URL [--api-header "Name: value"]   # an API served elsewhere

(`python -m durably_reflex ...` is the same command.) The dashboard command lives in
_dashboard_cli.py: it runs Reflex in a process tree of its own, and only it needs Reflex.

Where job code runs: `serve` keeps it out of the API's process, in `--processes` worker child
processes (1 by default) that it supervises (_supervisor.py) at a lower priority (`--worker-nice`),
so a step that computes for seconds stalls no event stream; `--in-process-worker` runs the worker in
the API's process instead (one process, as `serve` did before it had worker processes), and
`--no-worker` runs none. `worker` is one worker in this process, or with `--processes N` (N > 1, or
`auto`: one per CPU) N worker children under one supervisor. An in-memory SQLite database cannot be
shared with other processes: `serve` then runs its worker in the API's process (and says so), and
`--processes` is refused.

`app:durably` names a module importable from the current directory (like uvicorn) and, in it, a
`Durably` (or a function with no arguments that returns one, possibly async).

Stopping: the first SIGINT (Ctrl-C) or SIGTERM stops accepting HTTP requests, lets in-flight ones
finish briefly, then stops the engine: the worker claims nothing more, and runs in progress get
`--stop-timeout` seconds to finish; after that they are interrupted and handed back as pending, to
resume from their last completed step in any worker (a synchronous step cannot be interrupted: the
engine gives it one more second, then hands the run back anyway, and that step runs again later).
A second signal while stopping interrupts at once (the runs are handed back just the same).
Both end with exit code 0. A supervisor passes each of these signals on to its worker children (see
_supervisor.py) and exits 0 once they have all stopped cleanly. Bad input (an unimportable module, a
missing or wrong attribute, a busy port, a malformed MODULE:ATTR) is one line on stderr and exit code 2.

Signals are handled here, not by uvicorn: uvicorn's `Server.serve()` re-raises a captured SIGINT or
SIGTERM as it returns, which would end the process (SIGTERM's default action, or KeyboardInterrupt)
before the engine could hand its runs back. So the server runs with uvicorn's capture disabled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import importlib
import inspect
import logging
import os
import re
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from ._clock import parse_duration
from ._engine import Durably
from ._supervisor import Lifeline, Supervisor, WorkerCommand, unshareable_database
from ._switch import SHORT_SWITCH_INTERVAL

PROG = "durably-reflex"  # the console script; `python -m durably_reflex` is the same command
USAGE_ERROR = 2
# How long in-flight HTTP requests get once the server stops listening: at most this, at most
# --stop-timeout, at least HTTP_DRAIN_MIN. API calls take milliseconds, and event streams are ended
# at once (see EndStreamsOnShutdown), so this only bounds the unexpected.
HTTP_DRAIN_SECONDS = 5.0
HTTP_DRAIN_MIN = 1.0
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

logger = logging.getLogger("durably_reflex._cli")

_TARGET = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


# -- arguments -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="durably-reflex: durable, step-oriented jobs on SQLite. Serve the HTTP/SSE API "
        "(with a worker that executes runs), run a worker alone, or serve the web dashboard.",
        epilog="MODULE:ATTR names a module importable from the current directory and the Durably in it "
        '(from create_durably(...)), or a function with no arguments returning one. Example: "app:durably". '
        f"Run `{PROG} COMMAND --help` for each command's options.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the HTTP/SSE API, with worker processes beside it (unless --no-worker)",
        description="Serve the durably HTTP/SSE API with uvicorn, and execute runs in worker processes that "
        "this process starts and supervises (one by default; a crashed one is started again), so that job code "
        "never slows the API's event streams. Ctrl-C or SIGTERM stops cleanly: the server stops accepting "
        "requests, runs in progress get --stop-timeout seconds to finish, then they are interrupted and handed "
        "back as pending, so any worker resumes them from their last completed step. A second Ctrl-C stops at once.",
        epilog=f"Example: {PROG} serve app:durably --port 8000 --processes 2",
    )
    _add_target(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0: all)")
    serve.add_argument("--port", type=_port, default=8000, help="port to listen on (default: %(default)s; 0: any free)")
    serve.add_argument(
        "--base-path", default="/api/durably", help="URL prefix of the API routes (default: %(default)s)"
    )
    where = serve.add_mutually_exclusive_group()
    _add_processes(where, default_text="1")
    where.add_argument(
        "--in-process-worker",
        action="store_true",
        help="run the worker in the API's own process (one process; a step that computes without yielding "
        "then delays the API's event streams)",
    )
    where.add_argument(
        "--no-worker",
        action="store_true",
        help="serve the API only (tables are still created); runs are executed by `worker` processes",
    )
    serve.add_argument(
        "--worker-nice",
        type=int,
        default=10,
        metavar="N",
        help="niceness added to the worker processes, so that the API's process gets the CPU first when both "
        "want it and its event streams keep flowing while jobs compute (default: %(default)s; 0: the same)",
    )
    _add_stop_timeout(serve)
    _add_retain_runs(serve)
    _add_log_level(serve)

    worker = commands.add_parser(
        "worker",
        help="run workers only: execute runs until stopped",
        description="Run a worker that executes the runs of the jobs registered on the Durably, including "
        "runs triggered by other processes on the same database; with --processes N, N worker processes under "
        "this one, which starts again any that crashes. Ctrl-C or SIGTERM stops cleanly: runs in progress get "
        "--stop-timeout seconds to finish, then they are interrupted and handed back as pending, so any worker "
        "resumes them from their last completed step. A second Ctrl-C stops at once.",
        epilog=f"Example: {PROG} worker app:durably --processes auto --stop-timeout 60",
    )
    _add_target(worker)
    _add_processes(worker, default_text="1: this process is the worker")
    _add_stop_timeout(worker)
    _add_retain_runs(worker)
    _add_log_level(worker)
    # Given by a supervisor to its worker children (see _supervisor.py), never by people.
    worker.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    worker.add_argument("--lifeline", type=int, help=argparse.SUPPRESS)
    worker.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)

    from . import _dashboard_cli  # here: it imports this module

    _dashboard_cli.add_parser(commands, PROG)
    return parser


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="MODULE:ATTR",
        help='where the Durably is, e.g. "app:durably" (the module is imported with the current directory on sys.path)',
    )


def _add_stop_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stop-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="on SIGINT/SIGTERM, how long runs in progress may take to finish before they are interrupted "
        "and handed back as pending, to resume from their last completed step (default: %(default)s)",
    )


def _add_retain_runs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retain-runs",
        type=_duration,
        metavar="DURATION",
        help='delete finished runs older than this, such as "30d", "12h" or "90m": the leading worker does it, '
        "a batch at a time while idle (default: the Durably's own retain_runs; without one, every run is kept)",
    )


def _add_processes(parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup, default_text: str) -> None:
    parser.add_argument(
        "--processes",
        type=_processes,
        metavar="N",
        help="worker processes to run, each with the Durably's max_concurrent_runs slots; "
        f"auto: one per CPU (default: {default_text})",
    )


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="log level (default: %(default)s)")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 0 and 65535, got {value}")
    return value


def _processes(text: str) -> int:
    if text == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes or auto, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 process, got {value}")
    return value


def _duration(text: str) -> str:
    """A duration as create_durably's `retain_runs` reads it, checked here and kept as given (so a
    supervisor passes the same text on to its worker processes)."""
    try:
        parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text.strip()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds of at least 0, got {text}")
    return value


# -- finding the Durably ---------------------------------------------------------------------------
def import_target(spec: str) -> Any:
    """Import MODULE (the current directory first on sys.path, like uvicorn) and return its ATTR."""
    match = _TARGET.fullmatch(spec.strip())
    if match is None:
        raise UsageError(f'expected MODULE:ATTR, such as "app:durably", got {spec!r}')
    module_name, attribute = match["module"], match["attr"]
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (module_name == error.name or module_name.startswith(error.name + ".")):
            raise UsageError(
                f'cannot import module "{module_name}": {error} (looked in {cwd} and on PYTHONPATH)'
            ) from None
        raise UsageError(f'importing module "{module_name}" failed: {error}') from None
    except ImportError as error:
        raise UsageError(f'importing module "{module_name}" failed: {error}') from None
    except SyntaxError as error:
        where = f" ({error.filename}, line {error.lineno})" if error.filename else ""
        raise UsageError(f'importing module "{module_name}" failed: SyntaxError: {error.msg}{where}') from None
    # Anything else is raised by the module's own code: main() shows its traceback.
    value: Any = module
    owner = f'module "{module_name}"'
    parts = attribute.split(".")
    for position, part in enumerate(parts):
        try:
            value = getattr(value, part)
        except AttributeError:
            found = sorted(name for name, item in vars(module).items() if isinstance(item, Durably))
            hint = f" (Durably engines in it: {', '.join(f'{module_name}:{name}' for name in found)})" if found else ""
            raise UsageError(f'{owner} has no attribute "{part}"{hint}') from None
        owner = f'"{module_name}:{".".join(parts[: position + 1])}"'
    return value


async def resolve_durably(value: Any, spec: str) -> Durably:
    """The Durably itself, or what a factory with no arguments (sync or async) returns."""
    if isinstance(value, Durably):
        return value
    if callable(value):
        try:
            inspect.signature(value).bind()
        except TypeError:
            raise UsageError(
                f'"{spec}" is a callable that needs arguments; expected a Durably or a factory with no arguments'
            ) from None
        except ValueError:
            pass  # no signature to check (some builtins): just call it
        result = value()
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Durably):
            return result
        raise UsageError(f'"{spec}" returned {_describe(result)}, not a Durably (expected create_durably(...))')
    raise UsageError(
        f'"{spec}" is {_describe(value)}, not a Durably: point at the object create_durably(...) returns, '
        "or at a function with no arguments that returns one"
    )


def _describe(value: Any) -> str:
    kind = type(value).__name__
    return f"an {kind}" if kind[:1].lower() in "aeiou" else f"a {kind}"


# -- listening -------------------------------------------------------------------------------------
def listen(host: str, port: int) -> socket.socket:
    """A listening socket, so that a busy port is reported clearly (and before the worker starts)."""
    where = f"{_bracket(host)}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise UsageError(f"cannot listen on {where}: unknown host ({error.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections wait in the backlog until the server accepts them
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise UsageError(
                f"cannot listen on {where}: the address is already in use (another server on that port?); "
                "pick another --port"
            ) from None
        raise UsageError(f"cannot listen on {where}: {error.strerror or error}") from None
    return sock


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _base_path(text: str) -> str:
    return "/" + text.strip("/") if text.strip("/") else ""


def _slots(durably: Durably, each: bool = False) -> str:
    count = durably.options.max_concurrent_runs
    return f"{count} slot" + ("" if count == 1 else "s") + (" each" if each else "")


def _processes_text(count: int, durably: Durably) -> str:
    if count == 1:
        return f"1 process, {_slots(durably)}"
    return f"{count} processes, {_slots(durably, each=True)}"


# -- ending event streams ----------------------------------------------------------------------------
class EndStreamsOnShutdown:
    """ASGI middleware: once `closing` is set, responses in progress (event streams: they never end by
    themselves) are told that their client left, and are then ended properly.

    uvicorn's graceful shutdown waits for open connections, and for a streaming response that means
    until its drain timeout, after which it cancels the task and logs the CancelledError as an
    "Exception in ASGI application". The API's event streams already stop cleanly on `http.disconnect`
    (closing their feed subscription), so that is what they get; the body is then completed here, so
    the client sees the stream end (and reconnects, resuming by Last-Event-ID, once a server is back).
    Requests whose response has not started yet (reading their body, say) are left alone.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.closing = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = completed = False

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started, completed
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                completed = True
            await send(message)

        async def receive_or_leave() -> dict[str, Any]:
            if not started:
                return await receive()
            if self.closing.is_set():
                return {"type": "http.disconnect"}
            receiving = asyncio.ensure_future(receive())
            closing = asyncio.ensure_future(self.closing.wait())
            try:
                await asyncio.wait({receiving, closing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()
                if not receiving.done():
                    receiving.cancel()
            if receiving.done() and not receiving.cancelled():
                return receiving.result()
            return {"type": "http.disconnect"}

        await self.app(scope, receive_or_leave, tracked_send)
        if started and not completed and self.closing.is_set():
            with contextlib.suppress(Exception):  # the client may be gone already
                await send({"type": "http.response.body", "body": b"", "more_body": False})


# -- signals and stopping ----------------------------------------------------------------------------
class Shutdown:
    """SIGINT and SIGTERM, on the event loop: the first asks to stop, a second one (while stopping) to
    stop now, a third exits at once (runs in progress are then recovered by the next worker).
    `on_signal` callbacks hear every one of them first (a supervisor passes them on)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stop_timeout: float) -> None:
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()
        self.on_signal: list[Callable[[], None]] = []
        self.on_request: list[Callable[[], None]] = []
        self.on_force: list[Callable[[], None]] = []
        self._stop_timeout = stop_timeout
        self._loop = loop
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._received, f"{signal.Signals(signum).name} received")

    def request(self, why: str) -> None:
        """Stop as on a first signal, for another reason (a worker whose supervisor is gone)."""
        if not self.requested.is_set():
            self._received(why)

    def _received(self, what: str) -> None:
        for callback in self.on_signal:
            callback()
        if not self.requested.is_set():
            self.requested.set()
            logger.info(
                "%s: stopping; runs in progress get up to %gs to finish, then they are handed back "
                "as pending (press Ctrl-C again to stop now)",
                what,
                self._stop_timeout,
            )
            callbacks = self.on_request
        elif not self.forced.is_set():
            self.forced.set()
            logger.info("%s again: stopping now; running runs are handed back as pending", what)
            callbacks = self.on_force
        else:
            logger.warning("%s a third time: exiting at once (the next worker recovers unfinished runs)", what)
            _exit_now(1)
        for callback in callbacks:
            callback()

    def remove(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._loop.remove_signal_handler(signum)


async def stop_engine(durably: Durably, timeout: float, shutdown: Shutdown) -> None:
    """`durably.stop(timeout)`, cut short by a second signal, then close the database."""
    stopping = asyncio.create_task(durably.stop(0 if shutdown.forced.is_set() else timeout))
    forced = asyncio.create_task(shutdown.forced.wait())
    try:
        await asyncio.wait({stopping, forced}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        forced.cancel()
    if not stopping.done():
        # Stopping again with no patience interrupts the runs in progress and hands them back.
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        await durably.stop(0)
    else:
        stopping.result()
    await durably.close()  # the worker has stopped: this closes the database


def _exit_now(code: int) -> None:
    """Leave without waiting for threads: after a forced stop, the cancelled first stop still waits
    (in a thread) for a step that cannot be interrupted, and so would the interpreter's exit."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _threads_left() -> bool:
    main = threading.main_thread()
    return any(thread.is_alive() and not thread.daemon and thread is not main for thread in threading.enumerate())


@contextlib.contextmanager
def _engine_errors(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as error:
        raise _StartError(f"{what}: {type(error).__name__}: {error}") from error


class _StartError(Exception):
    """The engine could not start (say, the database cannot be opened): one line, exit code 1."""


# -- commands ----------------------------------------------------------------------------------------
def _require_server() -> None:
    """`serve` runs the API on uvicorn, which the core package does not install."""
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise UsageError(
            "serve needs an ASGI server: pip install 'durably-reflex[server]' (uvicorn), "
            "or mount create_durably_handler(durably) on a server of your own"
        ) from None


def _loop_factory(command: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """`serve` runs on uvloop's event loop where it is installed (the `server` extra has it): every
    event stream's socket write and wake-up for each batch of events goes through the loop, and
    uvloop's cost less. Elsewhere (and for `worker`), asyncio's loop (None: the Runner's default)."""
    if command != "serve":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _uvicorn_server(config: Any) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn without its signal handling: this module's handlers stop the server, then the engine."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        def install_signal_handlers(self) -> None:  # the name in uvicorn before 0.29
            pass

    return Server(config)


def plan_workers(args: argparse.Namespace, durably: Durably) -> None:
    """Where this command runs job code: `args.children` worker processes to supervise, and whether
    `args.in_process` this process runs a worker itself."""
    serving = args.command == "serve"
    asked = args.processes is not None
    args.children = 0 if serving and (args.no_worker or args.in_process_worker) else args.processes or 1
    args.in_process = serving and args.in_process_worker
    if not serving and args.children == 1:  # `worker`: one worker is this process itself
        args.children, args.in_process = 0, True
    reason = unshareable_database(durably) if args.children else None
    if reason is None:
        return
    if asked:
        raise UsageError(f"--processes needs a database that other processes can open: {reason}")
    logger.warning("%s: the worker runs in the API's process (use a SQLite file for worker processes)", reason)
    args.children, args.in_process = 0, True


def _supervisor(args: argparse.Namespace, shutdown: Shutdown) -> Supervisor:
    nice = getattr(args, "worker_nice", 0)
    command = WorkerCommand(args.target, args.stop_timeout, args.log_level, nice, args.retain_runs)
    supervisor = Supervisor(command, args.children)
    shutdown.on_signal.append(supervisor.escalate)
    return supervisor


async def serve(args: argparse.Namespace, durably: Durably, sock: socket.socket, shutdown: Shutdown) -> int:
    import uvicorn

    from ._http_protocol import serve_protocol
    from .server import create_durably_handler

    supervisor = _supervisor(args, shutdown) if args.children else None
    supervising: asyncio.Task[bool] | None = None
    clean = True
    try:
        app = EndStreamsOnShutdown(create_durably_handler(durably, base_path=args.base_path))
        config = uvicorn.Config(
            app,
            http=serve_protocol(),  # closes connections that never send a request head, or never read
            log_level=args.log_level,
            lifespan="off",
            timeout_graceful_shutdown=min(HTTP_DRAIN_SECONDS, max(args.stop_timeout, HTTP_DRAIN_MIN)),
        )
        server = _uvicorn_server(config)

        def request_exit() -> None:
            server.should_exit = True
            app.closing.set()

        def force_exit() -> None:
            server.should_exit = server.force_exit = True

        shutdown.on_request.append(request_exit)
        shutdown.on_force.append(force_exit)
        with _engine_errors("could not start the engine"):
            if args.in_process:  # job threads share this process's interpreter lock with the API
                await durably.start(switch_interval=SHORT_SWITCH_INTERVAL)
            else:
                await durably.migrate()  # before any worker process starts
        host, port = sock.getsockname()[:2]
        shown_host = args.host if args.port == port else host
        if args.children:
            worker = _processes_text(args.children, durably)
        else:
            worker = f"this process, {_slots(durably)}" if args.in_process else "off"
        if not shutdown.requested.is_set():  # else a signal came while the engine started: just stop
            if supervisor is not None:
                supervising = asyncio.create_task(supervisor.run())
            print(
                f"durably-reflex API on http://{_bracket(shown_host)}:{port}{_base_path(args.base_path)} "
                f"(worker: {worker})",
                flush=True,
            )
            await server.serve(sockets=[sock])
    finally:
        sock.close()
        if supervisor is not None and supervising is not None:
            supervisor.stop()
            clean = await supervising
        await stop_engine(durably, args.stop_timeout, shutdown)
    logger.info("stopped")
    return 0 if clean else 1


async def work(args: argparse.Namespace, durably: Durably, shutdown: Shutdown) -> int:
    """One worker in this process; a supervisor's child when it has a lifeline."""
    loop = asyncio.get_running_loop()
    lifeline = None if args.lifeline is None else Lifeline(args.lifeline)
    if lifeline is not None:
        lifeline.watch(loop, lambda: shutdown.request("the supervisor is gone"))
    try:
        with _engine_errors("could not start the engine"):  # its runner must not wait on job threads
            await durably.start(switch_interval=SHORT_SWITCH_INTERVAL)
        if not shutdown.requested.is_set():
            if lifeline is None:
                print(f"durably-reflex worker running ({_slots(durably)}); press Ctrl-C to stop", flush=True)
            else:  # its line first: the supervisor's own "running" line must follow every worker's
                logger.info("running (pid %d, %s)", os.getpid(), _slots(durably))
                lifeline.ready()
            await shutdown.requested.wait()
    finally:
        await stop_engine(durably, args.stop_timeout, shutdown)
        if lifeline is not None:
            lifeline.close(loop)
    logger.info("stopped")
    return 0


async def supervise(args: argparse.Namespace, durably: Durably, shutdown: Shutdown) -> int:
    """`worker --processes N`: N worker children, kept running until a signal stops them."""
    try:
        with _engine_errors("could not start the engine"):
            await durably.migrate()  # here, once, and so that a database that cannot open is one error
    finally:
        await durably.close()  # the children open their own
    supervisor = _supervisor(args, shutdown)
    if shutdown.requested.is_set():
        return 0
    supervising = asyncio.create_task(supervisor.run())
    ready = asyncio.create_task(supervisor.all_ready.wait())
    await asyncio.wait({supervising, ready}, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if not shutdown.requested.is_set():
        text = _processes_text(args.children, durably)
        print(f"durably-reflex worker running ({text}); press Ctrl-C to stop", flush=True)
    clean = await supervising
    logger.info("stopped")
    return 0 if clean else 1


def _configure_logging(level_name: str, worker_index: int | None = None) -> None:
    level = logging.DEBUG if level_name == "trace" else getattr(logging, level_name.upper())
    package = logging.getLogger("durably_reflex")
    package.setLevel(level)
    if not package.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Formatter("" if worker_index is None else f"worker {worker_index}: "))
        package.addHandler(handler)
        package.propagate = False


class _Formatter(logging.Formatter):
    """uvicorn's look: `INFO:     message`; a supervised worker's lines say which worker it is."""

    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self._prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname + ':':<9} {self._prefix}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    if args.command == "dashboard":
        from . import _dashboard_cli

        return _dashboard_cli.run(args)
    _configure_logging(args.log_level, getattr(args, "worker_index", None))
    if getattr(args, "nice", 0):
        os.nice(args.nice)  # before any thread starts: Linux keeps a niceness per thread, inherited
    try:
        if args.command == "serve":
            _require_server()
        value = import_target(args.target)
        with asyncio.Runner(loop_factory=_loop_factory(args.command)) as runner:
            durably = runner.run(resolve_durably(value, args.target))
            if args.retain_runs is not None:
                durably.set_retain_runs(args.retain_runs)
            plan_workers(args, durably)
            sock = listen(args.host, args.port) if args.command == "serve" else None
            shutdown = Shutdown(runner.get_loop(), args.stop_timeout)
            try:
                if sock is not None:
                    code = runner.run(serve(args, durably, sock, shutdown))
                elif args.children:
                    code = runner.run(supervise(args, durably, shutdown))
                else:
                    code = runner.run(work(args, durably, shutdown))
            finally:
                shutdown.remove()
            if shutdown.forced.is_set() and _threads_left():
                _exit_now(code)
            return code
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except _StartError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the engine started: nothing to stop
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the application's own code raised: its module, its factory
        _print_traceback(error)
        print(f"error: {type(error).__name__}: {error} (traceback above)", file=sys.stderr)
        return 1


def _print_traceback(error: BaseException) -> None:
    """The traceback from the first frame of the application's code on (not this module's, asyncio's
    or the import machinery's)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None and _is_machinery(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb)


def _is_machinery(filename: str) -> bool:
    return (
        filename == __file__
        or filename.startswith("<frozen ")
        or os.path.dirname(filename) in (os.path.dirname(asyncio.__file__), os.path.dirname(importlib.__file__))
    )
