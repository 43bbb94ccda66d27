"""Jobs by registration key, reachable as attributes too: `durably.jobs.import_csv`."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class ByKey(dict[str, T]):
    """A dict of jobs (handles or clients) whose keys also read as attributes; an unknown key
    names the registered ones."""

    def __getattr__(self, key: str) -> T:
        try:
            return self[key]
        except KeyError:
            known = ", ".join(sorted(self)) or "none"
            raise AttributeError(f"No job registered under {key!r} (registered: {known})") from None
