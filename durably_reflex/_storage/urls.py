"""Database URLs, read the way SQLAlchemy reads them, without importing it (it is not needed to open
a database: see `sql.py`).

    sqlite:///relative/path.db   sqlite:////absolute/path.db   sqlite:// (in memory)
    postgresql://user:password@host:5432/database?sslmode=require   (or postgresql+psycopg://)

The query holds our options (`synchronous`, `busy_timeout`, `reconnect_timeout`), which the
storage takes out, and the driver's, which go on to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode

Query = dict[str, str | tuple[str, ...]]  # an option given twice is a tuple, as in SQLAlchemy's URLs


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    scheme: str  # "sqlite", "postgresql+psycopg", ...
    location: str  # between "://" and "?": "user:password@host:port/database", "/path" for SQLite
    query: Query

    @property
    def backend(self) -> str:
        """The database's name in SQLAlchemy's terms: the scheme without its driver."""
        return self.scheme.split("+", 1)[0]

    @property
    def host_part(self) -> str:
        """What comes before the database: "user:password@host:port" ("" for SQLite)."""
        return self.location.split("/", 1)[0]

    @property
    def database(self) -> str | None:
        """The database: SQLite's file (or `:memory:`, or a `file:` URI), PostgreSQL's name; None
        when the URL names none (SQLite: in memory)."""
        _, separator, database = self.location.partition("/")
        return (unquote(database) or None) if separator else None

    def with_database(self, database: str) -> DatabaseUrl:
        return DatabaseUrl(self.scheme, f"{self.host_part}/{database}", self.query)

    def without_options(self, query: Query, scheme: str | None = None) -> str:
        """This URL with `query` for its query (and another scheme, if given), as a string."""
        pairs = [(name, value) for name, values in query.items() for value in _values(values)]
        rest = f"?{urlencode(pairs)}" if pairs else ""
        return f"{scheme or self.scheme}://{self.location}{rest}"


def parse_url(url: str) -> DatabaseUrl:
    """Split a database URL; ValueError if it is not one."""
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme:
        raise ValueError(
            f"Unsupported database URL {url!r}: durably-reflex stores runs in SQLite (sqlite:///file.db) "
            "or PostgreSQL (postgresql://user:password@host/database)"
        )
    location, _, query_string = rest.partition("?")
    query: Query = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        earlier = query.get(name)
        query[name] = value if earlier is None else (*_values(earlier), value)
    return DatabaseUrl(scheme.lower(), location, query)


def _values(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


def as_bool(value: str) -> bool:
    """A URL option's truth, as SQLAlchemy reads it."""
    text = value.strip().lower()
    if text in ("true", "yes", "on", "y", "t", "1"):
        return True
    if text in ("false", "no", "off", "n", "f", "0"):
        return False
    raise ValueError(f"not a boolean: {value!r}")
