"""Shared fixtures: every test gets its own real SQLite file in a temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durably_reflex import Durably, create_durably

# Fast timings so tests that wait on the worker stay quick; tests of the defaults set their own.
FAST = {"polling_interval": 0.05, "heartbeat_interval": 0.05, "stale_threshold": 0.5}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'durably.db'}"


@pytest.fixture
async def durably(db_url: str) -> AsyncIterator[Durably]:
    """An engine on a fresh database file, migrated but not started (tests register jobs, then start)."""
    engine = create_durably(db_url, **FAST)
    await engine.migrate()
    yield engine
    await engine.close(timeout=5)
