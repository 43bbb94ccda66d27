"""Storage backends behind one interface; `open_storage(url)` picks one by the URL's scheme."""

from __future__ import annotations

from sqlalchemy import make_url

from .base import Storage


def open_storage(url: str) -> Storage:
    backend = make_url(url).get_backend_name()
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
