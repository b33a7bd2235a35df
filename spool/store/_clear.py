"""Remove what telespool stored in a state dir.

One clear, ``_queue.clear_spool``, empties the spool in place and bumps its
epoch; everything here goes through it, so an uploader's ack in flight can
never delete an event appended after a purge. Two strengths on top:
- ``clear_state_dir`` (``Telemetry.purge``, ``telespool purge``): the spool is
  emptied in place and every other file but the lock and the opt-out marker is
  deleted (the install id above all). A running host keeps a working spool
  instead of writing into an unlinked file.
- ``purge_state_dir`` (opt-out: ``telespool disable``, an opted-out host or
  uploader): the same clear, then every file is unlinked, the marker kept when
  asked. Clearing first means the events are gone even where the unlink fails
  (Windows refuses to unlink a file another process has open).

Neither raises. Each returns a ``PurgeReport`` naming what it removed and what
it could not, so no front end claims a success that did not happen.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .._policy import CLEAR_BUSY_S
from .._record import Record
from ._paths import DB_NAME, LOCK_NAME, MARKER_NAME
from ._queue import clear_spool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from ._store import Spool
    from ._writer import Writer

__all__ = ["PurgeReport", "clear_for_host", "clear_state_dir", "purge_state_dir"]

_SPOOL_FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm")


class PurgeReport(Record):
    """What a purge did. ``failed`` maps each file left behind to why."""

    _fields = ("cleared", "removed", "failed")
    cleared: int  # queued events deleted
    removed: list[str]  # file names unlinked, sorted
    failed: dict[str, str]  # file name -> reason it is still there

    @property
    def ok(self) -> bool:
        return not self.failed


def clear_state_dir(
    state_dir: Path, *, busy_s: float = CLEAR_BUSY_S, conn: sqlite3.Connection | None = None
) -> PurgeReport:
    """Empty the spool in place and delete every other file but the lock and marker.

    ``conn`` is the caller's own open connection to the spool (a host's), else
    one is opened, waiting up to ``busy_s`` for the write lock. A corrupt spool
    is unlinked instead. A spool that stays busy or unwritable is reported in
    ``failed`` with its events still queued.
    """
    failed: dict[str, str] = {}
    removed: list[str] = []
    cleared = _clear_db(state_dir / DB_NAME, busy_s, conn, removed, failed)
    keep = {*_SPOOL_FILES, LOCK_NAME, MARKER_NAME}
    _unlink_entries(state_dir, lambda name: name not in keep, removed, failed)
    return PurgeReport(cleared, sorted(removed), failed)


def clear_for_host(state_dir: Path, writer: Writer | None, wait_ms: int) -> bool:
    """``Telemetry.purge()``: the clear, on the host's own connection when it has one.

    Waits at most ``wait_ms`` for the writer's lock (an append in another
    thread), then for SQLite's; True when everything was removed.
    """
    busy_s = wait_ms / 1000.0
    report = None
    if writer is not None:

        def clear(spool: Spool) -> PurgeReport:
            writer.discard_parked()
            return clear_state_dir(state_dir, busy_s=busy_s, conn=spool.conn)

        report = writer.run_locked(clear, wait_ms=wait_ms)
    if report is None:
        # No spool of ours open (off, faulted, locked at open) or its lock not
        # ours in time. Rows parked meanwhile are queued events too: gone, or
        # the reopen, or the exit's sidecar, would bring them back.
        if writer is not None:
            writer.discard_parked()
        report = clear_state_dir(state_dir, busy_s=busy_s)
    return bool(getattr(report, "ok", False))


def purge_state_dir(
    state_dir: Path, *, keep_marker: bool, busy_s: float = CLEAR_BUSY_S
) -> PurgeReport:
    """Clear the spool, then unlink every file (the opt-out marker kept when asked).

    A directory left empty is removed too. ``busy_s`` bounds the wait for
    another process's write lock (a host at construction passes a few ms).
    """
    failed: dict[str, str] = {}
    removed: list[str] = []
    cleared = 0
    if os.path.lexists(state_dir / DB_NAME):
        cleared = _clear_db(state_dir / DB_NAME, busy_s, None, removed, failed)
        # Unlinked below whatever the clear did: its failure is no longer news
        # once the file is gone, so only a file still there keeps it reported.
        failed.pop(DB_NAME, None)
    _unlink_entries(
        state_dir, lambda name: not (keep_marker and name == MARKER_NAME), removed, failed
    )
    try:
        # Only succeeds when empty: a kept marker (or anything not ours) keeps the dir.
        state_dir.rmdir()
    except OSError:
        pass
    return PurgeReport(cleared, sorted(set(removed)), failed)


def _clear_db(
    db: Path,
    busy_s: float,
    conn: sqlite3.Connection | None,
    removed: list[str],
    failed: dict[str, str],
) -> int:
    if conn is None and not db.is_file():
        if os.path.lexists(db):
            failed[db.name] = "not a regular file"
        return 0
    try:
        if conn is not None:
            return clear_spool(conn)
        own = _connect(db, busy_s)
        try:
            return clear_spool(own)
        finally:
            own.close()
    except sqlite3.DatabaseError as exc:
        if _is_corrupt(exc):
            # Nothing readable to keep: a corrupt spool goes entirely.
            for name in _SPOOL_FILES:
                _unlink(db.with_name(name), removed, failed)
        else:
            failed[db.name] = f"could not clear the queued events: {exc}"
    except OSError as exc:
        failed[db.name] = f"could not clear the queued events: {exc.strerror or exc}"
    return 0


def _connect(db: Path, busy_s: float) -> sqlite3.Connection:
    # mode=rw: never create a spool that is not there.
    uri = db.resolve().as_uri() + "?mode=rw"
    return sqlite3.connect(uri, uri=True, timeout=busy_s, isolation_level=None)


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    message = str(exc).lower()
    return "malformed" in message or "not a database" in message or "no such table" in message


def _unlink_entries(
    state_dir: Path, wanted: Callable[[str], bool], removed: list[str], failed: dict[str, str]
) -> None:
    try:
        entries = list(os.scandir(state_dir))
    except FileNotFoundError:
        return
    except OSError as exc:
        failed["."] = f"cannot list {state_dir}: {exc.strerror or exc}"
        return
    for entry in entries:
        if not wanted(entry.name):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            # Never recurse: telespool only ever creates plain files here, so
            # a directory is someone else's, and it is reported, not removed.
            failed[entry.name] = "a directory, not a file telespool wrote: left alone"
            continue
        _unlink(Path(entry.path), removed, failed)


def _unlink(path: Path, removed: list[str], failed: dict[str, str]) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        # On Windows: a sharing violation while another process has it open.
        failed[path.name] = exc.strerror or str(exc)
        return
    removed.append(path.name)
