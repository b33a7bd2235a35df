"""The spool's SQL schema, as an ordered registry of migrations.

``PRAGMA user_version`` holds how many migrations ran. A migration is only ever
appended, never edited: spools written by older releases must keep opening.
The tables are meant to be read by people (sqlite3, sqlite-utils, datasette);
see docs/inspect.md.
"""

from __future__ import annotations

import sqlite3

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]


# One row per queued event. No AUTOINCREMENT: it costs an extra page write per
# append; acks match on uuid as well as id, so a reused id is harmless.
_EVENTS = """
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY,
    uuid    TEXT NOT NULL,    -- random per event, receivers deduplicate on it
    name    TEXT NOT NULL,    -- event name from the schema
    time    TEXT NOT NULL,    -- ISO-8601 UTC, e.g. 2026-11-24T15:20:22.123456Z
    run_id  TEXT NOT NULL,    -- random per host process
    props   TEXT NOT NULL,    -- sanitized properties, a JSON object
    size    INTEGER NOT NULL  -- bytes of name + props, for batching
)"""
# Small key/value settings: the endpoint and upload settings the host wrote
# for the detached uploader, backoff state, last upload time.
_META = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL       -- JSON
) WITHOUT ROWID"""
# Every event telespool lost, by reason. "unreported" is what the next upload
# batch reports upstream; "total" is the lifetime count.
_DROPS = """
CREATE TABLE IF NOT EXISTS drops (
    reason     TEXT PRIMARY KEY,
    total      INTEGER NOT NULL DEFAULT 0,
    unreported INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID"""


def _v1(conn: sqlite3.Connection) -> None:
    # Statements one by one, not executescript(): on Python < 3.12 that COMMITs
    # first, which would break the migration's single transaction.
    for statement in (_EVENTS, _META, _DROPS):
        conn.execute(statement)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the database to SCHEMA_VERSION inside one IMMEDIATE transaction.

    Safe when several processes open a fresh spool at once: the version is
    re-read under the write lock. A spool from a newer release is left alone.
    """
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        for step in MIGRATIONS[version:]:
            step(conn)
        # PRAGMA takes no parameters; SCHEMA_VERSION is an int we own.
        conn.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
