"""`durably-reflex dashboard MODULE:ATTR`: its arguments, the checks it makes before it starts Reflex
(each failure one line on stderr and exit code 2), the Reflex project and environment it prepares,
and how it stops a process tree. Reflex itself is started only in tests/browser/test_dashboard_command.py.

The command runs in real subprocesses from a temporary folder holding the user's modules.
"""

from __future__ import annotations

import os
import runpy
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from durably_reflex._cli import build_parser
from durably_reflex._dashboard_cli import is_public, public_host_warning, reflex_command, watched_sources
from durably_reflex._dashboard_project import APP_MODULE, NODE_BIN, reflex_environment, write_project
from durably_reflex._dashboard_targets import load_durably

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX process groups and signals")

USER_MODULES = {
    "jobs_module.py": """
        from durably_reflex import create_durably
        durably = create_durably("sqlite:///:memory:")
        not_an_engine = 42
    """,
    "auth_module.py": """
        from durably_reflex.server import DurablyAuth
        auth = DurablyAuth(authenticate=lambda request: "someone")
        not_an_auth = "open sesame"
    """,
}


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    for name, source in USER_MODULES.items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    return tmp_path


def dashboard(user_dir: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """`durably-reflex dashboard ARGS` in `user_dir` (`prelude`: Python run first in that process)."""
    code = f"import sys\n{prelude}\nfrom durably_reflex._cli import main\nsys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code, "dashboard", *args],
        cwd=user_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_usage_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in lines[0]


# -- arguments ---------------------------------------------------------------------------------------
def test_defaults_are_a_production_build_on_127_0_0_1_port_3000() -> None:
    args = build_parser().parse_args(["dashboard", "jobs:durably"])
    assert (args.target, args.host, args.port, args.dev, args.auth) == ("jobs:durably", "127.0.0.1", 3000, False, None)
    assert args.build_dir == Path(".durably/dashboard")
    command = reflex_command(args)
    assert command[command.index("--env") + 1] == "prod"
    assert command[command.index("--backend-host") + 1] == "127.0.0.1"
    assert command[command.index("--frontend-port") + 1] == command[command.index("--backend-port") + 1] == "3000"


def test_dev_mode_serves_the_pages_on_the_port_and_the_backend_on_the_next() -> None:
    args = build_parser().parse_args(["dashboard", "jobs:durably", "--dev", "--port", "4000"])
    command = reflex_command(args)
    assert command[command.index("--env") + 1] == "dev"
    assert (command[command.index("--frontend-port") + 1], command[command.index("--backend-port") + 1]) == (
        "4000",
        "4001",
    )


def test_a_port_that_is_not_a_number_is_a_usage_error(user_dir: Path) -> None:
    result = dashboard(user_dir, "jobs_module:durably", "--port", "web")
    assert result.returncode == 2 and "not a port number" in result.stderr


# -- checks before Reflex starts ---------------------------------------------------------------------
def test_a_malformed_target_is_one_line_and_exit_2(user_dir: Path) -> None:
    assert_usage_error(dashboard(user_dir, "jobs_module"), "expected MODULE:ATTR")


def test_a_module_that_cannot_be_imported_is_one_line_and_exit_2(user_dir: Path) -> None:
    assert_usage_error(dashboard(user_dir, "missing_module:durably"), 'cannot import module "missing_module"')


def test_an_attribute_that_is_not_a_durably_is_one_line_and_exit_2(user_dir: Path) -> None:
    assert_usage_error(dashboard(user_dir, "jobs_module:not_an_engine"), "is an int, not a Durably")


def test_an_auth_that_is_not_a_durably_auth_is_one_line_and_exit_2(user_dir: Path) -> None:
    result = dashboard(user_dir, "jobs_module:durably", "--auth", "auth_module:not_an_auth")
    assert_usage_error(result, '"auth_module:not_an_auth" is a str, not a DurablyAuth')


def test_without_the_reflex_extra_the_command_says_how_to_install_it(user_dir: Path) -> None:
    # sys.modules[name] = None is how Python marks a module as not importable.
    result = dashboard(user_dir, "jobs_module:durably", prelude="sys.modules['reflex'] = None")
    assert_usage_error(result, "needs the Reflex extra", 'pip install "durably-reflex[reflex]"')


def test_a_busy_port_is_one_line_and_exit_2(user_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = dashboard(user_dir, "jobs_module:durably", "--port", str(port))
    assert_usage_error(result, f"127.0.0.1:{port}", "already in use")


def test_bad_input_leaves_no_build_directory_behind(user_dir: Path) -> None:
    dashboard(user_dir, "jobs_module:not_an_engine")
    assert not (user_dir / ".durably").exists()


# -- a public host without auth ----------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_are_private(host: str) -> None:
    assert not is_public(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "dashboard.example.com"])
def test_other_hosts_are_public(host: str) -> None:
    assert is_public(host)


def test_the_public_host_warning_names_the_host_and_how_to_protect_it() -> None:
    warning = public_host_warning("0.0.0.0")
    assert warning.startswith("warning: ") and "0.0.0.0" in warning and "--auth MODULE:ATTR" in warning


# -- the Reflex project ------------------------------------------------------------------------------
def test_the_generated_rxconfig_points_reflex_at_the_packaged_dashboard(tmp_path: Path) -> None:
    import reflex as rx

    write_project(tmp_path)
    config = runpy.run_path(str(tmp_path / "rxconfig.py"))["config"]
    assert config.app_module_import == APP_MODULE == "durably_reflex.dashboard.app"
    assert config.telemetry_enabled is False
    assert any(isinstance(plugin, rx.plugins.RadixThemesPlugin) for plugin in config.plugins)
    assert rx.plugins.SitemapPlugin in config.disable_plugins


def test_the_project_links_a_node_and_npm_that_run(tmp_path: Path) -> None:
    write_project(tmp_path)
    for program in ("node", "npm"):
        result = subprocess.run(
            [str(tmp_path / NODE_BIN / program), "--version"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0 and result.stdout.strip(), result.stderr


def test_writing_the_project_again_keeps_what_reflex_built(tmp_path: Path) -> None:
    write_project(tmp_path)
    (tmp_path / ".web").mkdir()
    (tmp_path / ".gitignore").write_text("*\n.web\n")  # Reflex adds its own lines
    write_project(tmp_path)
    assert (tmp_path / ".web").is_dir() and (tmp_path / ".gitignore").read_text() == "*\n.web\n"


def test_reflex_runs_with_npm_node_first_the_users_folder_importable_and_the_engine_named(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "PYTHONPATH": "/elsewhere", "DURABLY_AUTH": "stale:auth", "NPM_CONFIG_REGISTRY": "r"}
    env = reflex_environment(
        base,
        build_dir=tmp_path / "build",
        user_dir=tmp_path,
        target="jobs:durably",
        auth=None,
        api_url="http://localhost:3000",
    )
    assert env["PATH"].split(os.pathsep)[0] == str(tmp_path / "build" / NODE_BIN)
    assert env["PATH"].split(os.pathsep)[-1] == "/usr/bin"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), "/elsewhere"]
    assert env["DURABLY_APP"] == "jobs:durably" and "DURABLY_AUTH" not in env
    assert env["DURABLY_WORKDIR"] == str(tmp_path)  # the user's module is imported from there
    assert (env["REFLEX_USE_NPM"], env["REFLEX_CHECK_LATEST_VERSION"]) == ("1", "0")
    assert env["REFLEX_API_URL"] == "http://localhost:3000"


def test_dev_mode_reloads_on_the_dashboards_code_and_the_users_module_only(user_dir: Path) -> None:
    """Reflex would watch the folder above the app module's package (site-packages, or a checkout),
    where a SQLite -wal file that changes restarts the backend, whose worker writes again."""
    import durably_reflex

    sys.path.insert(0, str(user_dir))
    try:
        load_durably("jobs_module:durably")
        sources = watched_sources("jobs_module:durably")
    finally:
        sys.path.remove(str(user_dir))
        sys.modules.pop("jobs_module", None)
    assert sources == [Path(durably_reflex.__file__).resolve().parent, (user_dir / "jobs_module.py").resolve()]
    env = reflex_environment(
        {},
        build_dir=user_dir / "build",
        user_dir=user_dir,
        target="jobs_module:durably",
        auth=None,
        api_url="http://localhost:3001",
        reload_paths=sources,
    )
    assert env["REFLEX_HOT_RELOAD_OVERRIDE_PATHS"].split(":") == [str(path) for path in sources]


# -- stopping a process tree -------------------------------------------------------------------------
TREE = """
import subprocess, sys, time
from pathlib import Path
from durably_reflex._process_group import run_group

# The "server": a child that starts a grandchild ignoring SIGTERM, records both pids, then waits.
server = '''
import os, signal, subprocess, sys, time
stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
open("pids", "w").write(f"{os.getpid()} {stubborn.pid}")
time.sleep(600)
'''
sys.exit(run_group([sys.executable, "-c", server], cwd=Path.cwd(), env={"PATH": "/usr/bin"}, stop_timeout=2.0))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_whole_tree_and_exits_0(tmp_path: Path, signum: signal.Signals) -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-c", TREE], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        pids_file = tmp_path / "pids"
        deadline = time.monotonic() + 30
        while not (pids_file.exists() and len(pids_file.read_text().split()) == 2):
            assert time.monotonic() < deadline and supervisor.poll() is None, "the tree did not start"
            time.sleep(0.1)
        tree = [psutil.Process(int(pid)) for pid in pids_file.read_text().split()]
        supervisor.send_signal(signum)
        assert supervisor.wait(timeout=15) == 0
        _, alive = psutil.wait_procs(tree, timeout=5)
        assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
    finally:
        supervisor.kill()
        supervisor.wait(5)
