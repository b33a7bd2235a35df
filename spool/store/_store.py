"""The SQLite spool: one file, WAL mode, one connection per process.

``Spool`` opens the file (and a forked child's own connection), appends, keeps
the cap and expiry, and reads and writes ``meta``; the uploader's batches and
acks come from the ``Queue`` mixin (spool/store/_queue.py). Nothing here
swallows errors: callers classify them with ``classify_error`` and count them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._policy import OPEN_WAIT_S, Policy
from ._limits import Limits
from ._migrations import migrate
from ._paths import DB_NAME, UnsafeStateDir, check_regular_or_absent, secure_create
from ._queue import Queue
from ._rows import INSERT_SQL, MANY_ROWS, insert_many_sql
from ._sqlite import ABANDONED, FORK_GEN, classify_error, transaction

__all__ = ["Spool", "wal_limits"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._rows import Row

# New spools use 1 KiB pages: an append rewrites its leaf page into the WAL
# (about 1.7 frames per event here), so 4 KiB pages wrote 4.4 KB of WAL per
# event and 1 KiB pages 1.8 KB: WAL maintenance comes 2.4x less often.
PAGE_SIZE = 1024





def wal_limits(policy: Policy) -> tuple[int, int]:
    """(soft, hard) WAL bytes, scaled with the cap so the data keeps room.

    Past ``soft`` the maintainer thread checkpoints and restarts the WAL at
    the next pause in appends. ``hard`` is SQLite's inline autocheckpoint:
    reached only by a flood with no pause (about 4,000 events at the default
    cap), it then costs one append a checkpoint.
    """
    soft = max(16 * PAGE_SIZE, policy.max_bytes // 16)
    return soft, max(2 * soft, policy.max_bytes // 4)


def check_every(policy: Policy) -> int:
    """Row bytes between the call path's size checks, away from the cap.

    An append rewrites a page or two into the WAL, 12-20x its own bytes: at a
    4 MiB cap, ``size_check_bytes`` (64 KiB) of rows wrote 1.3 MiB of WAL, past
    the hard share (1 MiB), so the WAL job was asked only after SQLite had
    checkpointed inline (3-10 ms in one call, every ~490 events). A sixteenth
    of the soft share asks in time.
    """
    return max(min(policy.size_check_bytes, wal_limits(policy)[0] // 16), 1)


class Spool(Limits, Queue):
    """One process's handle on ``<state_dir>/spool.db``.

    Not thread-safe by itself: the facade serialises access. After ``os.fork()``
    the child must call ``reopen_after_fork()`` (SQLite connections must not
    cross a fork).
    """

    def __init__(
        self,
        state_dir: Path,
        policy: Policy,
        *,
        busy_ms: int | None = None,
        open_wait_s: float = OPEN_WAIT_S,
        recover: bool = True,
    ) -> None:
        self.state_dir = state_dir
        self._open_wait_s = open_wait_s
        # Only hosts move a corrupt spool aside (and start a fresh one): the
        # uploader passes False and reports instead, since hosts that still
        # have the file open would keep writing into the renamed copy, uncounted.
        self._recover = recover
        self.path = state_dir / DB_NAME
        self.policy = policy
        self._busy_ms = policy.lock_wait_ms if busy_ms is None else busy_ms
        # The WAL is checkpointed (off the call path) beyond wal_budget bytes.
        self.wal_budget, self.wal_hard = wal_limits(policy)
        # Above this many bytes on disk (db + WAL) the oldest events are evicted:
        # room is left for the WAL at its hard limit, SQLite's own pages (64 KiB)
        # and the overshoot between size checks.
        headroom = self.wal_hard + 64 * 1024 + 4 * policy.size_check_bytes
        self.high_water = max(policy.max_bytes - headroom, policy.max_bytes // 2)
        # Eviction takes the pages in use down to evict_target once they pass
        # evict_at, a quarter of the way up to high water: slices come spread
        # through a flood, and the rest is room for the appends that land
        # while the helper gets going (it is a thread: under CPU contention it
        # can be late by a scheduler tick or more).
        self.evict_target = int(self.high_water * policy.evict_to_fraction)
        self.evict_at = self.evict_target + (self.high_water - self.evict_target) // 4
        # Past full_at the helper has fallen behind a flood: appends stop
        # (counted under "cap") until it made room. The file grows only when
        # no free page is left, so it stays near full_at; the WAL keeps its
        # hard share, SQLite's pages and one large commit their 64 KiB.
        self.full_at = max(
            policy.max_bytes - self.wal_hard - 64 * 1024 - policy.size_check_bytes,
            self.high_water,
        )
        # file + WAL past this, full too whatever the pages in use: a pinned
        # WAL grows past its share (room is left for the appends between two
        # size checks near the cap, a 64th of size_check_bytes apart).
        self.disk_full_at = policy.max_bytes - policy.size_check_bytes
        self.page_size = PAGE_SIZE  # read from the file once open (older spools: 4 KiB)
        self._conn: sqlite3.Connection | None = None
        self._needs_open = False  # a forked child's re-open failed: retried on use
        self._pid = os.getpid()
        self._fork_gen = FORK_GEN[0]
        self.unchecked_bytes = 0
        self.appends = 0  # rows appended by this process: the maintainer's idleness probe
        # Rows read that telespool never wrote (hand-edited): callers count them.
        self.bad_rows = 0
        self._open()

    # -- connection ---------------------------------------------------------------
    def _open(self) -> None:
        existed = check_regular_or_absent(self.path)
        if not existed:
            try:
                secure_create(self.path)
            except OSError as exc:
                raise UnsafeStateDir(
                    classify_error(exc), f"cannot create {self.path}: {exc}"
                ) from exc
        try:
            self._conn = self._connect_retrying()
        except sqlite3.DatabaseError as exc:
            if classify_error(exc) != "corrupt" or not self._recover:
                raise
            self._move_aside()
            self._conn = self._connect()
            self.add_drops({"corrupt": 1})

    def _connect_retrying(self) -> sqlite3.Connection:
        # Hosts starting at once race to set up a fresh spool, and SQLite
        # answers some of those races "locked" at once, without waiting in
        # its busy handler (seen: 1 of 4 processes in about 1 of 30 runs).
        deadline = time.monotonic() + self._open_wait_s
        while True:
            try:
                return self._connect()
            except sqlite3.OperationalError as exc:
                if classify_error(exc) != "locked" or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)

    def _connect(self) -> sqlite3.Connection:
        # Opening may race other processes creating the same fresh spool: allow
        # a longer wait here (construction), then drop to the call-path bound.
        conn = sqlite3.connect(
            str(self.path),
            timeout=self._open_wait_s,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            if pages == 0:
                # Only a new file takes these, before its first table. On one
                # in use, setting auto_vacuum wants the write lock, and SQLite
                # answers "locked" at once while other hosts are appending.
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot enable WAL (journal_mode={mode})")
            # NORMAL: a commit survives a process crash, not a power cut;
            # durable_sync=True trades ~an fsync per append for that too.
            sync = "FULL" if self.policy.durable_sync else "NORMAL"
            conn.execute(f"PRAGMA synchronous = {sync}")
            migrate(conn)
            (page_size,) = conn.execute("PRAGMA page_size").fetchone()
            self.page_size = int(page_size)
            # The maintainer thread checkpoints past wal_budget; SQLite's own
            # autocheckpoint (inline, in some append) is only the flood's limit.
            conn.execute(f"PRAGMA wal_autocheckpoint = {int(self.wal_hard // self.page_size)}")
            # A restarted WAL is cut back to the soft size: a flood's WAL is not kept.
            conn.execute(f"PRAGMA journal_size_limit = {int(self.wal_budget)}")
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _move_aside(self) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                os.replace(src, Path(f"{self.path}.corrupt-{stamp}{suffix}"))
        secure_create(self.path)

    @property
    def conn(self) -> sqlite3.Connection:
        # A generation bumped by an at-fork hook, not os.getpid(): a syscall
        # on every append for an event (fork) that almost never happens.
        if self._fork_gen != FORK_GEN[0] and self._pid != os.getpid():
            self.reopen_after_fork()
        if self._conn is None and self._needs_open:
            self._open()  # a forked child's open that met "locked": try again
            self._needs_open = False
        if self._conn is None:
            raise sqlite3.ProgrammingError("spool is closed")
        return self._conn

    def reopen_after_fork(self) -> None:
        # The parent's connection object is abandoned, never closed, in the
        # child: closing it could release locks that belong to the parent.
        ABANDONED.append(self._conn)
        self._conn = None
        self._pid = os.getpid()
        self._fork_gen = FORK_GEN[0]
        # The child's first track() opens it: no open wait on the call path
        # (a "locked" answer is counted and the row parked, as for any append).
        self._open_wait_s = 0.0
        self._needs_open = True
        self._open()
        self._needs_open = False

    def recover_corrupt(self) -> None:
        """Move a database found corrupt mid-use aside and start a fresh one."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._move_aside()
        self._conn = self._connect()
        self.add_drops({"corrupt": 1})

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            try:
                # Closing the last connection checkpoints the WAL; it must
                # never wait for an uploader (or reader) holding a lock: then
                # the checkpoint is simply left to the next connection.
                self._conn.execute("PRAGMA busy_timeout = 0")
            except sqlite3.Error:
                pass
            self._conn.close()
        self._conn = None

    # -- call path -----------------------------------------------------------------
    def append_one(self, row: Row) -> None:
        """One committed INSERT: the call path's whole SQLite cost."""
        conn = self._conn
        if conn is None or self._fork_gen != FORK_GEN[0]:
            conn = self.conn  # closed, or first use after a fork: the slow checks
        conn.execute(INSERT_SQL, row)
        self.unchecked_bytes += row[5]
        self.appends += 1

    def append(self, rows: Sequence[Row]) -> None:
        """Append rows: one committed INSERT, or one transaction for several."""
        if not rows:
            return  # another thread took the parked rows first
        if len(rows) == 1:
            self.append_one(rows[0])
            return
        conn = self.conn
        if len(rows) <= MANY_ROWS:
            # One statement, committed by itself: SQLite holds its write lock
            # for a single call, inside which this thread never needs the
            # GIL. BEGIN + executemany + COMMIT is three calls, and between
            # them a thread waiting for the GIL (up to the 5 ms switch
            # interval) holds the write lock for every other process.
            conn.execute(insert_many_sql(len(rows)), [v for row in rows for v in row])
        else:
            with transaction(conn):
                conn.executemany(INSERT_SQL, rows)
        self.unchecked_bytes += sum(r.size for r in rows)
        self.appends += len(rows)

    def add_drops(self, counts: Mapping[str, int]) -> None:
        items = [(reason, n, n) for reason, n in counts.items() if n > 0]
        if not items:
            return
        conn = self.conn
        with transaction(conn):
            conn.executemany(
                "INSERT INTO drops (reason, total, unreported) VALUES (?, ?, ?) "
                "ON CONFLICT (reason) DO UPDATE SET total = total + excluded.total, "
                "unreported = unreported + excluded.unreported",
                items,
            )

    # -- size and age limits ---------------------------------------------------------
    def set_busy_timeout(self, ms: int) -> None:
        """How long this connection waits for another writer's lock."""
        self._busy_ms = ms
        self.conn.execute(f"PRAGMA busy_timeout = {int(ms)}")

    def data_version(self) -> int:
        """SQLite's counter of commits by *other* connections: unchanged across
        a wait for the write lock means the holder did not let go once."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def set_busy_ms_for_reopen(self, ms: int) -> None:
        """The busy timeout the next (re)opened connection gets (after a fork)."""
        self._busy_ms = ms

    def abandon(self) -> None:
        """In a forked child: drop the parent's connection without closing it."""
        ABANDONED.append(self._conn)
        self._conn = None

    def oldest_time(self) -> str | None:
        row = self.conn.execute("SELECT time FROM events ORDER BY id LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    # -- reading -------------------------------------------------------------------
    def has_events(self) -> bool:
        return bool(self.conn.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()[0])

    def queued(self) -> tuple[int, int]:
        """(events, payload bytes) queued. O(n): for status, not the call path."""
        n, size = self.conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM events"
        ).fetchone()
        return int(n), int(size)

    def drops(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT reason, total FROM drops WHERE total > 0 ORDER BY reason")
        return self._counts(rows)

    def unreported_drops(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT reason, unreported FROM drops WHERE unreported > 0")
        return self._counts(rows)

    def _counts(self, rows: Any) -> dict[str, int]:
        # A count edited by hand into text or a float is skipped and counted,
        # so one bad row never hides the others (or breaks status()).
        counts: dict[str, int] = {}
        for reason, n in rows:
            if isinstance(reason, str) and isinstance(n, int):
                counts[reason] = n
            else:
                self.bad_rows += 1
        return counts

    # -- meta ------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        """The row's JSON value; None when absent or not JSON (counted in ``bad_rows``).

        The spool is for people too: a row edited by hand in the sqlite3 CLI
        reads as absent (the next write replaces it) instead of breaking
        status(), the trigger or every later uploader pass.
        """
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except (TypeError, ValueError):
            self.bad_rows += 1
            return None

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, sort_keys=True)),
        )

