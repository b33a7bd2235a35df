"""The rows of the spool's tables as both processes see them, and their small writers.

``Row`` is what a host appends, ``WireBatch``/``StoredEvent`` what the uploader
reads. ``bump_drops`` and the epoch are written by eviction, expiry, the
uploader's drops and the one clear alike, so each exists once, here.
"""

from __future__ import annotations

import sqlite3
import time

__all__ = [
    "EPOCH_KEY",
    "INSERT_SQL",
    "MANY_ROWS",
    "UPLOAD_KEY",
    "Row",
    "StoredEvent",
    "WireBatch",
    "bump_drops",
    "bump_epoch",
    "insert_many_sql",
    "iso_time",
    "read_epoch",
]

# The meta rows telespool writes besides the uploader's config (spool/_protocol.py).
UPLOAD_KEY = "upload"  # the upload schedule and last outcome (store/_upload_state.py)
EPOCH_KEY = "epoch"  # bumped by every delete that is not an ack (store/_queue.py)

INSERT_SQL = "INSERT INTO events (uuid, name, time, run_id, props, size) VALUES (?, ?, ?, ?, ?, ?)"
# Rows one multi-row INSERT takes: 6 parameters each, under the 999 host
# parameters of SQLite builds before 3.32 (still found with Python 3.10).
MANY_ROWS = 999 // 6


def insert_many_sql(n: int) -> str:
    """One INSERT for ``n`` rows (1 <= n <= MANY_ROWS)."""
    return INSERT_SQL + ", (?, ?, ?, ?, ?, ?)" * (n - 1)


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple

    class Row(NamedTuple):
        """An event ready to append (the columns of ``events`` but ``id``)."""

        uuid: str
        name: str
        time: str
        run_id: str
        props: str
        size: int

    class WireBatch(NamedTuple):
        """A batch pre-rendered by SQLite as JSON event objects (the uploader's fast path)."""

        first_id: int
        last_id: int
        uuids: list[str]
        fragments: list[str]  # '{"id":...,"name":...,"time":...,"run_id":...,"props":{...}}'

    class StoredEvent(NamedTuple):
        id: int
        uuid: str
        name: str
        time: str
        run_id: str
        props: str
        size: int

else:
    # At run time the same tuples come from collections: ``typing`` is a few
    # milliseconds of import (and teardown) that every host would pay.
    from collections import namedtuple

    Row = namedtuple("Row", "uuid name time run_id props size")
    WireBatch = namedtuple("WireBatch", "first_id last_id uuids fragments")
    StoredEvent = namedtuple("StoredEvent", "id uuid name time run_id props size")


def bump_epoch(conn: sqlite3.Connection) -> None:
    # Any delete outside the uploader's own acks bumps the epoch; see ``epoch``.
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('epoch', '1') "
        "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
    )


def read_epoch(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
    if row is None:
        return 0
    try:
        return int(row[0])
    except (TypeError, ValueError):
        # Hand-edited to something else: unknown, so an ack never trusts it
        # (and the next bump, CAST to 0 + 1, moves it to 1, never to -1).
        return -1


def bump_drops(conn: sqlite3.Connection, reason: str, n: int) -> None:
    if n > 0:
        conn.execute(
            "INSERT INTO drops (reason, total, unreported) VALUES (?, ?, ?) "
            "ON CONFLICT (reason) DO UPDATE SET total = total + excluded.total, "
            "unreported = unreported + excluded.unreported",
            (reason, n, n),
        )


# (second, formatted prefix): one tuple, so threads swap it atomically.
_SECOND_CACHE: tuple[int, str] = (-1, "")


def iso_time(now: float) -> str:
    """``2026-11-24T15:20:22.123456Z``: fixed width, so text order is time order."""
    global _SECOND_CACHE
    sec = int(now)
    cached_sec, prefix = _SECOND_CACHE
    if sec != cached_sec:
        # Formatting the seconds part is the slow bit; reuse it within a second.
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _SECOND_CACHE = (sec, prefix)
    return f"{prefix}.{int((now - sec) * 1_000_000):06d}Z"
