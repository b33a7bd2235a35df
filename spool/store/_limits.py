"""The spool's limits: the size cap (eviction in slices, free pages given back),
expiry, and the WAL's share of the cap (checkpoints, restarts).

A mixin of ``Spool``. A host runs these on its helper thread, never in
``track()`` (tests/test_host_exit_and_stalls.py traces the calling thread);
database plus WAL stay under ``max_bytes`` through a no-pause flood
(tests/test_cap.py). Eviction counts pages in use, not the file's size: through
a flood the file keeps the pages eviction freed and appends reuse them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

from ._rows import bump_drops, bump_epoch, iso_time
from ._sqlite import transaction

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from .._policy import Policy

__all__ = ["Limits"]


class Limits:
    """The cap, expiry and WAL upkeep of ``Spool``."""

    if TYPE_CHECKING:
        path: Path
        policy: Policy
        page_size: int
        wal_hard: int
        evict_target: int
        unchecked_bytes: int

        @property
        def conn(self) -> sqlite3.Connection: ...

        def oldest_time(self) -> str | None: ...

    def disk_bytes(self) -> int:
        """Bytes on disk right now: database plus WAL (the SHM index is not data)."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.stat(str(self.path) + suffix).st_size
            except OSError:
                pass
        return total

    def wal_bytes(self) -> int:
        try:
            return os.stat(str(self.path) + "-wal").st_size
        except OSError:
            return 0

    def wal_salt(self) -> bytes:
        """The WAL header's checkpoint sequence and salts: they change when the
        WAL restarts, which its size does not show (a restart at or under
        journal_size_limit keeps the file as long). b"" without a WAL."""
        try:
            with open(str(self.path) + "-wal", "rb") as f:
                return f.read(24)[12:]
        except OSError:
            return b""

    def checkpoint(self) -> bool:
        """A PASSIVE checkpoint; True if it copied the whole WAL (so it may restart)."""
        busy, frames, copied = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return not busy and frames == copied and frames > 0

    def restart_wal(self) -> None:
        """One small write after a complete checkpoint: it restarts the WAL.

        SQLite syncs the WAL header on restart (and cuts the file back to
        journal_size_limit); done by the maintainer, no append pays for it.
        The row tells people reading the spool when it last happened.
        """
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('wal_restarted_at', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (json.dumps(iso_time(time.time())),),
        )

    def enforce_cap(self) -> int:
        """Evict until under the cap, all at once; returns how many events went.

        For tools and tests; a host evicts on its helper thread, in slices
        (``evict_slice``), so no call waits behind a bulk delete.
        """
        self.unchecked_bytes = 0
        evicted = 0
        while True:
            n = self.evict_slice(10_000)
            if n == 0:
                break
            evicted += n
        while self.vacuum_slice(10_000):
            pass
        self._reclaim(self.conn)
        return evicted

    def evict_slice(self, max_rows: int) -> int:
        """One short transaction deleting up to ``max_rows`` of the oldest
        events, counted ``evicted``; 0 once the data fits under the target.

        The target is a fraction of the high-water mark (not of the cap: the
        WAL has its share of the cap), so eviction runs rarely, in bursts.
        """
        conn = self.conn
        target = self.evict_target
        used = self._used_bytes(conn)
        if used <= target:
            # Over only because of the WAL (a long reader can pin it):
            # evicting events would not shrink it, the next checkpoint will.
            return 0
        # A fixed slice, no count(*): that scan of the whole table cost
        # milliseconds under the writer's lock at the cap. A slice past the
        # target overshoots by at most max_rows of the oldest events.
        n = max(1, max_rows)
        with transaction(conn):
            deleted = conn.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?)", (n,)
            ).rowcount
            bump_drops(conn, "evicted", deleted)
            bump_epoch(conn)
        return int(deleted)

    def vacuum_slice(self, max_pages: int) -> bool:
        """Give up to ``max_pages`` free pages back to the OS; True if some remain."""
        conn = self.conn
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        if not free:
            return False
        # executescript, not execute: incremental_vacuum frees one page per
        # step, and execute() steps a row-less statement only once.
        conn.executescript(f"PRAGMA incremental_vacuum({int(max_pages)});")
        return int(free) > max_pages

    def truncate_wal(self) -> bool | None:
        """A TRUNCATE checkpoint: the WAL back to zero bytes. True if done; None
        if another connection's checkpoint held SQLite's checkpoint lock (it
        answers at once: worth another try soon); False if a reader or writer
        kept it from finishing within the busy timeout."""
        conn = self.conn
        if conn.in_transaction:
            return False
        (busy, log, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return True
        return None if log == -1 else False

    def used_bytes(self) -> int:
        """Bytes of pages in use: the file less the free pages appends will reuse.

        Two PRAGMAs answered from page 1 (cached): cheap enough for the
        writer's size check near the cap.
        """
        return self._used_bytes(self.conn)

    def wal_over_share(self) -> bool:
        """True when the WAL is past its hard limit (a reader pins it): only
        a TRUNCATE checkpoint shrinks it then, not eviction."""
        return self.wal_bytes() > self.wal_hard + self.policy.size_check_bytes

    def _used_bytes(self, conn: sqlite3.Connection) -> int:
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        return int(pages - free) * self.page_size

    def _reclaim(self, conn: sqlite3.Connection) -> None:
        """Return free pages to the OS and truncate the WAL (best effort)."""
        if conn.in_transaction:
            return
        # executescript, not execute: incremental_vacuum frees one page per
        # step, and execute() steps a row-less statement only once.
        conn.executescript("PRAGMA incremental_vacuum;")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def expire(self, max_age_s: float, now: float | None = None) -> int:
        """Delete events older than ``max_age_s``, counted as ``expired``."""
        cutoff = iso_time((time.time() if now is None else now) - max_age_s)
        conn = self.conn
        with transaction(conn):
            n = conn.execute("DELETE FROM events WHERE time < ?", (cutoff,)).rowcount
            bump_drops(conn, "expired", n)
            if n:
                bump_epoch(conn)
        if n:
            self._reclaim(conn)
        return n

    def reclaim(self) -> None:
        self._reclaim(self.conn)

    def expire_if_due(self, max_age_days: float) -> None:
        """Expire only when something is too old: one indexed lookup of the
        oldest row (a host's start); every uploader pass runs ``expire``."""
        max_age_s = max_age_days * 86400.0
        oldest = self.oldest_time()
        if oldest is not None and oldest < iso_time(time.time() - max_age_s):
            self.expire(max_age_s)
