"""Database URLs are read as SQLAlchemy reads them, without it (`_storage/urls.py`)."""

from __future__ import annotations

import os

import pytest

from durably_reflex._storage.sqlite import SqliteStorage
from durably_reflex._storage.urls import parse_url


def test_a_relative_sqlite_file_is_relative_to_where_the_engine_is_made(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    storage = SqliteStorage("sqlite:///jobs.db?synchronous=FULL")

    assert storage.url.database == os.path.join(tmp_path, "jobs.db")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_sqlite_without_a_file_is_in_memory(url):
    assert SqliteStorage(url).url.database in (None, ":memory:")


def test_a_sqlite_url_naming_a_host_is_refused():
    with pytest.raises(ValueError, match="Invalid SQLite URL"):
        SqliteStorage("sqlite://somehost/jobs.db")


def test_sqlite_uri_options_go_into_the_file_uri_only_with_uri_true(tmp_path):
    from durably_reflex._storage.sqlite import _connect_args

    assert _connect_args("file:jobs.db", {"uri": "true", "mode": "ro"}) == ("file:jobs.db?mode=ro", {"uri": True})
    with pytest.warns(UserWarning, match="mode ignored"):
        _connect_args(str(tmp_path / "jobs.db"), {"mode": "ro"})


def test_a_postgresql_url_keeps_the_drivers_options_and_drops_ours():
    parsed = parse_url("postgresql+psycopg://u:p%40ss@db.example:5433/jobs?reconnect_timeout=5&sslmode=require")
    options = dict(parsed.query)
    options.pop("reconnect_timeout")

    assert parsed.backend == "postgresql" and parsed.database == "jobs"
    assert (
        parsed.without_options(options, scheme="postgresql")
        == "postgresql://u:p%40ss@db.example:5433/jobs?sslmode=require"
    )


def test_an_option_given_twice_is_kept_as_both_values():
    assert parse_url("sqlite:///a.db?x=1&x=2").query == {"x": ("1", "2")}


def test_something_that_is_not_a_url_is_refused():
    with pytest.raises(ValueError, match="Unsupported database URL"):
        parse_url("jobs.db")
