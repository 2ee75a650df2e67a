"""The on-disk format of :class:`~fastllm.cache.disk.DiskCache`: its schema and statements.

The layout is described in :mod:`fastllm.cache.disk`; the schema version is SQLite's
``user_version`` (a file of another version is refused, never migrated blindly).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Iterator

__all__ = [
    "CHUNK",
    "FILENAME",
    "INSERT",
    "OLDEST",
    "SCHEMA",
    "SCHEMA_VERSION",
    "rollback",
    "select_sql",
    "touch_sql",
    "writing",
]

FILENAME = "cache.sqlite3"
SCHEMA_VERSION = 1
CHUNK = 100  # keys per SELECT ... IN (...): short lists cost SQLite less per key

SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    size INTEGER NOT NULL,
    stored_at REAL NOT NULL,
    accessed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_access ON entries (accessed_at);
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    entries INTEGER NOT NULL,
    size INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals (id, entries, size)
    SELECT 0, COUNT(*), COALESCE(SUM(size), 0) FROM entries;
CREATE TRIGGER IF NOT EXISTS entries_added AFTER INSERT ON entries BEGIN
    UPDATE totals SET entries = entries + 1, size = size + NEW.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_removed AFTER DELETE ON entries BEGIN
    UPDATE totals SET entries = entries - 1, size = size - OLD.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_resized AFTER UPDATE OF size ON entries BEGIN
    UPDATE totals SET size = size - OLD.size + NEW.size WHERE id = 0;
END;
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""
INSERT = (
    "INSERT OR REPLACE INTO entries (key, value, size, stored_at, accessed_at) "
    "VALUES (?, ?, ?, ?, ?)"
)
OLDEST = "SELECT key, size FROM entries ORDER BY accessed_at, rowid LIMIT ?"


@functools.lru_cache(maxsize=32)
def select_sql(count: int) -> str:
    """``SELECT`` of ``count`` keys' rows."""
    marks = ",".join("?" * count)
    return f"SELECT key, value, stored_at, accessed_at FROM entries WHERE key IN ({marks})"


@functools.lru_cache(maxsize=32)
def touch_sql(count: int) -> str:
    """``UPDATE`` of ``count`` keys' access times (only those older than a bound)."""
    marks = ",".join("?" * count)
    return f"UPDATE entries SET accessed_at = ? WHERE accessed_at < ? AND key IN ({marks})"


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open; never raises."""
    with contextlib.suppress(sqlite3.Error):
        conn.rollback()


@contextlib.contextmanager
def writing(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction, taking the write lock up front (waits up to the busy timeout)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
