"""The queue the uploader drains: batches in id order, acks, drops, the epoch, the clear.

A mixin of ``Spool`` (the host never calls these on its call path). Ids are
not AUTOINCREMENT, so after any delete that is not an ack an id can be reused;
the epoch, bumped by every such delete and never reset, lets an in-flight ack
tell whether its id range still means the same rows
(tests/test_store_ack.py, tests/test_purge_report.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

from .._protocol import CONFIG_KEY
from ._rows import EPOCH_KEY, UPLOAD_KEY, StoredEvent, WireBatch, bump_drops, bump_epoch, read_epoch
from ._sqlite import transaction

__all__ = ["Queue", "clear_spool"]


class Queue:
    """The uploader's side of ``Spool``."""

    TYPE_CHECKING = False
    if TYPE_CHECKING:

        @property
        def conn(self) -> sqlite3.Connection: ...

    def read_batch(self, after_id: int, max_events: int, max_bytes: int) -> list[StoredEvent]:
        """Up to ``max_events`` events with id > after_id, in id order, cut at ``max_bytes``.

        Always returns at least one event if any is queued, so an oversized
        event cannot wedge the queue.
        """
        rows = self.conn.execute(
            "SELECT id, uuid, name, time, run_id, props, size FROM events "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, max_events),
        ).fetchall()
        batch: list[StoredEvent] = []
        total = 0
        for row in rows:
            event = StoredEvent(*row)
            if batch and total + event.size > max_bytes:
                break
            batch.append(event)
            total += event.size
        return batch

    def read_wire_batch(self, after_id: int, max_events: int, max_bytes: int) -> WireBatch | None:
        """Like ``read_batch``, but each event comes back as its JSON wire object.

        SQLite renders the object in C (json_quote, props spliced as stored),
        which makes reading about 3x cheaper than building StoredEvents and
        encoding them in Python. Props that are not valid JSON (a hand-edited
        spool) travel as ``{}`` rather than breaking the whole envelope.
        """
        rows = self.conn.execute(_WIRE_SQL, (after_id, max_events)).fetchall()
        if not rows:
            return None
        uuids: list[str] = []
        fragments: list[str] = []
        total = 0
        last = rows[0][0]
        for row_id, uuid, size, fragment in rows:
            if fragments and total + size > max_bytes:
                break
            uuids.append(uuid)
            fragments.append(fragment)
            total += size
            last = row_id
        return WireBatch(rows[0][0], last, uuids, fragments)

    def ack(
        self,
        first_id: int,
        last_id: int,
        reported: Mapping[str, int] | None = None,
        *,
        uuids: Sequence[str] | None = None,
        epoch: int | None = None,
    ) -> int:
        """Delete delivered events (and mark reported drops) in one transaction.

        With ``uuids`` (the uploader always passes the batch's), only rows in
        the id range whose uuid was in the batch go: ids are not AUTOINCREMENT,
        so a reused id can never delete a newer, unsent event. When ``epoch``
        (read before the batch) is unchanged, no other delete happened since,
        so no id in the range can have been reused and a plain range delete,
        several times cheaper, is exact.
        """
        conn = self.conn
        with transaction(conn):
            n = _delete_range(conn, first_id, last_id, uuids, epoch)
            for reason, count in (reported or {}).items():
                conn.execute(
                    "UPDATE drops SET unreported = max(unreported - ?, 0) WHERE reason = ?",
                    (count, reason),
                )
        return int(n)

    def drop_range(
        self, first_id: int, last_id: int, reason: str, *, uuids: Sequence[str] | None = None
    ) -> int:
        """Delete undeliverable events, counting them under ``reason`` (``uuids`` as in ack)."""
        conn = self.conn
        with transaction(conn):
            n = _delete_range(conn, first_id, last_id, uuids)
            bump_drops(conn, reason, n)
        return int(n)

    def epoch(self) -> int:
        """Bumped by every delete of queued events that is not an uploader ack
        (eviction, expiry, purge). Ids are reused only after such a delete."""
        return read_epoch(self.conn)

    def clear(self) -> int:
        """Delete every event and drop count (see ``clear_spool``); returns events deleted."""
        return clear_spool(self.conn)


_WIRE_SQL = (
    "SELECT id, uuid, size, "
    "'{\"id\":' || json_quote(uuid) || ',\"name\":' || json_quote(name) || "
    "',\"time\":' || json_quote(time) || ',\"run_id\":' || json_quote(run_id) || "
    "',\"props\":' || CASE WHEN json_valid(props) THEN props ELSE '{}' END || '}' "
    "FROM events WHERE id > ? ORDER BY id LIMIT ?"
)


# Meta rows a clear keeps: the host's settings (no data about anyone), the
# epoch (bumped, never reset: an uploader's in-flight ack compares it) and the
# upload schedule (a purge must not make hosts hammer an endpoint that said wait).
_KEPT_META = (CONFIG_KEY, EPOCH_KEY, UPLOAD_KEY)


def clear_spool(conn: sqlite3.Connection) -> int:
    """The one clear, used by ``Telemetry.purge``, ``telespool purge``/``disable``
    and the uploader's opt-out purge. Returns the events deleted.

    Deletes every event, drop count and meta row but ``_KEPT_META`` in one
    transaction that bumps the epoch, so an ack already in flight can never
    delete an event appended after it (ids are reused: no AUTOINCREMENT).
    Deleted rows are overwritten (``secure_delete``) and the WAL truncated, so
    nothing survives in free pages. Raises ``sqlite3.Error``.
    """
    (secure,) = conn.execute("PRAGMA secure_delete").fetchone()
    conn.execute("PRAGMA secure_delete = ON")
    try:
        with transaction(conn):
            n = conn.execute("DELETE FROM events").rowcount
            conn.execute("DELETE FROM drops")
            conn.execute(
                f"DELETE FROM meta WHERE key NOT IN ({', '.join('?' * len(_KEPT_META))})",
                _KEPT_META,
            )
            bump_epoch(conn)
        # executescript: incremental_vacuum frees one page per step (see _reclaim).
        conn.executescript("PRAGMA incremental_vacuum;")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.execute(f"PRAGMA secure_delete = {int(secure)}")
    return int(n)


def _delete_range(
    conn: sqlite3.Connection,
    first_id: int,
    last_id: int,
    uuids: Sequence[str] | None,
    epoch: int | None = None,
) -> int:
    # An unknown epoch (-1, hand-edited) never allows the plain range delete.
    if uuids is None or (epoch is not None and epoch >= 0 and read_epoch(conn) == epoch):
        cur = conn.execute("DELETE FROM events WHERE id BETWEEN ? AND ?", (first_id, last_id))
    else:
        cur = conn.execute(
            "DELETE FROM events WHERE id BETWEEN ? AND ? "
            "AND uuid IN (SELECT value FROM json_each(?))",
            (first_id, last_id, json.dumps(list(uuids))),
        )
    return int(cur.rowcount)
