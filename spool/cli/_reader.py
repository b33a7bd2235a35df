"""Read a spool without changing it: safe while a host is writing.

Never creates a state dir, a spool, or a journal for a spool that has none:
- a spool with a ``-wal`` file (a host has it open, or left it) is opened
  ``mode=ro``, which reads the WAL through the shared-memory index and takes
  only shared read locks, so the host's appends never wait on us;
- a spool without one has nothing in a WAL: it is opened ``immutable=1``,
  which creates no ``-wal``/``-shm`` file and takes no lock at all.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._policy import READER_BUSY_S
from ..store._paths import DB_NAME
from ._errors import CliError

__all__ = ["SpoolSnapshot", "open_readonly", "read_events", "read_snapshot"]


@contextmanager
def open_readonly(state_dir: Path) -> Iterator[sqlite3.Connection | None]:
    """Yield a read-only connection to the spool, or None when there is none.

    Raises CliError (one line) for a spool that is unreadable, corrupt or not a
    telespool spool.
    """
    path = state_dir / DB_NAME
    try:
        if not path.is_file():
            if path.exists() or path.is_symlink():
                raise CliError(f"{path} exists but is not a regular file")
            yield None
            return
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    has_wal = os.path.exists(str(path) + "-wal")
    uri = path.resolve().as_uri() + ("?mode=ro" if has_wal else "?immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=READER_BUSY_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise CliError(f"cannot open spool {path}: {exc}") from exc
    try:
        try:
            conn.execute("PRAGMA query_only = ON")
            names = {
                str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.Error as exc:
            raise CliError(f"cannot read spool {path}: {exc}") from exc
        missing = {"events", "meta", "drops"} - names
        if missing:
            raise CliError(f"{path} is not a telespool spool (no {', '.join(sorted(missing))})")
        yield conn
    finally:
        conn.close()


class SpoolSnapshot:
    """What ``status`` shows about one spool, read in one transaction."""

    def __init__(self) -> None:
        self.exists = False
        self.queued = 0
        self.bytes = 0
        self.oldest: str | None = None
        self.newest: str | None = None
        self.dropped: dict[str, int] = {}
        self.unreported: dict[str, int] = {}
        self.meta: dict[str, Any] = {}


def read_snapshot(state_dir: Path) -> SpoolSnapshot:
    """Counts, ages, drops and meta of the spool; an empty snapshot if absent."""
    snap = SpoolSnapshot()
    with open_readonly(state_dir) as conn:
        if conn is None:
            return snap
        snap.exists = True
        path = state_dir / DB_NAME
        try:
            # One read transaction: every number comes from the same snapshot.
            conn.execute("BEGIN")
            n, size = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM events").fetchone()
            snap.queued, snap.bytes = int(n), _int(size)
            row = conn.execute("SELECT time FROM events ORDER BY id LIMIT 1").fetchone()
            snap.oldest = None if row is None else str(row[0])
            row = conn.execute("SELECT time FROM events ORDER BY id DESC LIMIT 1").fetchone()
            snap.newest = None if row is None else str(row[0])
            for reason, total, unreported in conn.execute(
                "SELECT reason, total, unreported FROM drops ORDER BY reason"
            ):
                # A count edited by hand into text reads as 0: status still renders.
                if _int(total):
                    snap.dropped[str(reason)] = _int(total)
                if _int(unreported):
                    snap.unreported[str(reason)] = _int(unreported)
            for key, value in conn.execute("SELECT key, value FROM meta ORDER BY key"):
                snap.meta[str(key)] = _json_or_text(value)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise CliError(f"cannot read spool {path}: {exc}") from exc
    return snap


def read_events(
    state_dir: Path, *, limit: int | None, event: str | None
) -> tuple[list[dict[str, Any]], int]:
    """The most recent ``limit`` queued events (oldest first) and how many match in all."""
    with open_readonly(state_dir) as conn:
        if conn is None:
            return [], 0
        where, params = ("WHERE name = ?", [event]) if event else ("", [])
        try:
            conn.execute("BEGIN")
            (total,) = conn.execute(f"SELECT count(*) FROM events {where}", params).fetchone()
            # The WHERE clause is one of two fixed strings; values are parameters.
            sql = (
                "SELECT id, uuid, name, time, run_id, props, size FROM events "
                f"{where} ORDER BY id DESC LIMIT ?"
            )
            rows = conn.execute(sql, [*params, -1 if limit is None else limit]).fetchall()
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise CliError(f"cannot read spool {state_dir / DB_NAME}: {exc}") from exc
    events = [
        {
            "id": _int(r[0]),
            "uuid": str(r[1]),
            "name": str(r[2]),
            "time": str(r[3]),
            "run_id": str(r[4]),
            "props": _json_or_text(r[5]),
            "size": _int(r[6]),
        }
        for r in reversed(rows)
    ]
    return events, int(total)


def _int(value: object) -> int:
    """An integer column as an int; anything else (a hand-edited cell) as 0."""
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 2**63:
        return int(value)
    return 0


def _json_or_text(value: object) -> Any:
    try:
        return json.loads(str(value))
    except ValueError:
        return value if isinstance(value, (str, int, float)) or value is None else str(value)
