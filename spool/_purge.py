"""Remove what telespool stored in a state dir.

Two strengths:
- ``purge_state_dir`` unlinks every file (opt-out: nothing may remain but the
  marker). A host still running keeps writing into its unlinked file, which
  disappears when it exits; its next start sees the opt-out and stores nothing.
- ``clear_state_dir`` empties the spool in place and deletes the install id
  (``telespool purge`` while staying opted in): a running host keeps a working
  spool instead of writing into an unlinked file.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ._paths import DB_NAME, LOCK_NAME, MARKER_NAME

__all__ = ["clear_state_dir", "purge_state_dir"]

# How long ``telespool purge`` waits for a host's write lock; hosts hold it for
# microseconds per append, so this only matters when an external session holds it.
_CLEAR_BUSY_S = 5.0


def purge_state_dir(state_dir: Path, *, keep_marker: bool) -> list[str]:
    """Delete the spool (with WAL/SHM and corrupt copies), lock and install id.

    Returns the names removed. Keeps the opt-out marker when asked, so an
    opt-out survives its own purge; a directory left empty is removed too.
    Never raises; a file that cannot be removed is left and reported by omission.
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(state_dir))
    except OSError:
        return removed
    for entry in entries:
        if keep_marker and entry.name == MARKER_NAME:
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                continue  # never recurse: we only ever create plain files here
            os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            pass
    try:
        # Only succeeds when empty: a kept marker (or anything not ours) keeps the dir.
        state_dir.rmdir()
    except OSError:
        pass
    return sorted(removed)


def clear_state_dir(state_dir: Path) -> tuple[int, list[str]]:
    """Empty the spool in place and delete every other file but the lock and marker.

    Returns (events deleted, file names removed). Deleted rows are overwritten
    (``secure_delete``) and the WAL truncated, so no event survives in free
    pages. A spool that is corrupt is unlinked instead. Raises OSError when the
    spool is busy or unwritable, so the caller can say so.
    """
    cleared = 0
    db = state_dir / DB_NAME
    removed: list[str] = []
    if db.is_file():
        try:
            cleared = _clear_spool(db)
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise OSError(f"cannot clear {db}: {exc}") from exc
            removed += _unlink_spool(db)
    keep = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", LOCK_NAME, MARKER_NAME}
    try:
        entries = list(os.scandir(state_dir))
    except OSError:
        entries = []
    for entry in entries:
        if entry.name in keep or entry.is_dir(follow_symlinks=False):
            continue
        try:
            os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            pass
    return cleared, sorted(removed)


def _clear_spool(db: Path) -> int:
    # mode=rw: never create a spool that is not there.
    uri = db.resolve().as_uri() + "?mode=rw"
    conn = sqlite3.connect(uri, uri=True, timeout=_CLEAR_BUSY_S, isolation_level=None)
    try:
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            n = conn.execute("DELETE FROM events").rowcount
            conn.execute("DELETE FROM drops")
            # ``config`` is the host's endpoint and settings, not data about anyone.
            conn.execute("DELETE FROM meta WHERE key <> 'config'")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("PRAGMA incremental_vacuum").fetchall()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return int(n)
    finally:
        conn.close()


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    message = str(exc).lower()
    return "malformed" in message or "not a database" in message or "no such table" in message


def _unlink_spool(db: Path) -> list[str]:
    removed = []
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{db}{suffix}")
        try:
            path.unlink()
            removed.append(path.name)
        except OSError:
            pass
    return removed
