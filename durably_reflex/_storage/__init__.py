"""Storage backends behind one interface; `open_storage(url)` picks one by the URL's scheme.

Importing this package loads neither SQLAlchemy nor a database driver: `open_storage` loads the
backend its URL names.
"""

from __future__ import annotations

from .base import Storage
from .urls import parse_url


def open_storage(url: str) -> Storage:
    backend = parse_url(url).backend
    if backend == "sqlite":
        from .sqlite import SqliteStorage

        return SqliteStorage(url)
    if backend == "postgresql":
        from .postgres import PostgresStorage

        return PostgresStorage(url)
    raise ValueError(
        f"Unsupported database URL {url!r}: durably-reflex stores runs in SQLite (sqlite:///file.db) "
        "or PostgreSQL (postgresql://user:password@host/database)"
    )


__all__ = ["Storage", "open_storage"]
