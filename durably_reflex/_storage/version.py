"""The schema version `tables.py` is at: the last step of `migrations.MIGRATIONS`, which says what
each version changed. Its own module, so that a process checks a database is current (see
`SqlStorage.migrate`) without importing SQLAlchemy and the tables."""

SCHEMA_VERSION = 5
