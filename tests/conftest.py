"""Shared fixtures. The engine's tests run on both backends: every test taking `db_url` or `durably`
runs once on a real SQLite file in a temporary directory and once on a fresh database of a real,
throwaway PostgreSQL server (started once per session on 127.0.0.1, see `tests/pg_cluster.py`).

Without a PostgreSQL server installed, the PostgreSQL half is skipped with the reason, except under
CI (`CI=true`), where it fails: CI installs the server (scripts/test.sh).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from durably_reflex import Durably, create_durably
from tests.pg_cluster import PgCluster, find_bin_dir

# Fast timings so tests that wait on the worker stay quick; tests of the defaults set their own.
FAST = {"polling_interval": 0.05, "heartbeat_interval": 0.05, "stale_threshold": 0.5}
BACKENDS = ["sqlite", "postgresql"]
_database_numbers = itertools.count(1)
BROWSER_TESTS = Path(__file__).resolve().parent / "browser"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Server tests run on both backends too: a test whose server makes its own database (the
    `serve`/`server` fixtures, through `server_backend`) runs once per backend, unless the test
    already picks its database with `db_url` (it is parametrized by that)."""
    if "server_backend" in metafunc.fixturenames and "db_url" not in metafunc.fixturenames:
        metafunc.parametrize("server_backend", BACKENDS)


@pytest.fixture
def server_backend() -> str:
    """The database a test server makes for itself (tests/server_fixtures.py): both backends by
    `pytest_generate_tests`; SQLite where a test picks its own database with `db_url`."""
    return "sqlite"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: Playwright's sync API keeps an event loop running in the main thread
    for as long as its (session-wide) browser lives, and pytest-asyncio's tests cannot run beside it."""
    items.sort(key=lambda item: BROWSER_TESTS in Path(str(item.path)).resolve().parents)  # a stable sort


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL server for the whole session."""
    if find_bin_dir() is None:
        reason = "PostgreSQL server not installed (Debian: apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the PostgreSQL half of the suite")
        pytest.skip(reason)
    cluster = PgCluster().start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped afterwards."""
    name = f"t{os.getpid()}_{next(_database_numbers)}"
    url = pg_cluster.create_database(name)
    yield url
    pg_cluster.drop_database(name)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'durably.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def backend(db_url: str) -> str:
    return db_url.split(":", 1)[0].split("+", 1)[0]


@pytest.fixture
def sqlite_only(backend: str) -> None:
    """For tests of SQLite's own behaviour (WAL, file locks)."""
    if backend != "sqlite":
        pytest.skip("tests SQLite-specific behaviour")


@pytest.fixture
async def durably(db_url: str) -> AsyncIterator[Durably]:
    """An engine on a fresh database, migrated but not started (tests register jobs, then start)."""
    engine = create_durably(db_url, **FAST)
    await engine.migrate()
    yield engine
    await engine.close(timeout=5)
