"""SQLite plumbing both processes share: the transaction, error classes, fork safety.

Kept apart from the spool's own logic so the rules about SQLite itself read in
one place: a write is one committed statement or one ``transaction``; an error
is mapped to the reason it is counted under by ``classify_error`` (never
swallowed here); and a connection never crosses a fork (SQLite forbids it: a
child reusing its parent's connection corrupts locks; see tests/test_host_fork.py).
"""

from __future__ import annotations

import os
import sqlite3

__all__ = ["ABANDONED", "FORK_GEN", "classify_error", "transaction"]

_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR = 5, 6, 8, 10
_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 11, 13, 14, 26
_SQLITE_IOERR_WRITE = 778



def classify_error(exc: BaseException) -> str:
    """Map a SQLite/OS failure to the drop reason it is counted under."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return "locked"
        if primary == _SQLITE_FULL or code == _SQLITE_IOERR_WRITE:
            # A write refused by RLIMIT_FSIZE (EFBIG) surfaces as IOERR_WRITE
            # after the first short write reported SQLITE_FULL.
            return "disk_full"
        if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return "corrupt"
        if primary in (_SQLITE_READONLY, _SQLITE_CANTOPEN):
            return "unwritable"
        if primary == _SQLITE_IOERR:
            return "io_error"
    message = str(exc).lower()
    # Python < 3.11 has no sqlite_errorcode: fall back to SQLite's fixed messages.
    # IOERR_WRITE has only the generic "disk I/O error" there; under a file-size
    # limit that is EFBIG, the limit refusing a write as a full disk would.
    if code is None and message == "disk i/o error" and _file_size_limited():
        return "disk_full"
    for needle, reason in (
        ("locked", "locked"),
        ("busy", "locked"),
        ("full", "disk_full"),
        ("malformed", "corrupt"),
        ("not a database", "corrupt"),
        ("readonly", "unwritable"),
        ("unable to open", "unwritable"),
        ("disk i/o", "io_error"),
    ):
        if needle in message:
            return reason
    if isinstance(exc, OSError):
        import errno

        if exc.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1)):
            return "disk_full"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return "unwritable"
        return "io_error"
    return "error"


def _file_size_limited() -> bool:
    try:
        import resource  # POSIX only
    except ImportError:
        return False
    return resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY


# Connections inherited across fork: kept alive so they are never closed in the child.
ABANDONED: list[sqlite3.Connection | None] = []
# Bumped in every forked child; a Spool compares it with the value at open.
FORK_GEN = [0]


def _bump_fork_gen() -> None:
    FORK_GEN[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_bump_fork_gen)


class transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
