"""The writer's exit: write what is parked and every count, all by one deadline;
and at open, fold in what an earlier exit left.

A mixin of ``Writer``. ``close()`` never waits past its deadline
(``close_wait_ms``, one for the whole close): rows SQLite cannot take in time
go to the ``events.pending`` sidecar and counts to ``drops.pending``, stored
by the next host or uploader pass, so nothing leaves unstored or uncounted
(tests/test_host_exit_and_stalls.py). It waits for SQLite's lock only
while other connections commit: once a full ``lock_wait_ms`` passed with no
commit by anyone (a ``sqlite3`` session holds the lock), it stops waiting.
"""

from __future__ import annotations

import sqlite3
import time

from .._policy import LOCK_GRACE_MS, LOCK_UNMOVED_MS, OWN_HOLDER_WAIT_S
from ._sidecar import append_losses, take_pending
from ._sqlite import classify_error

# How often sync looks whether the helper has written the rows it took.
IN_FLIGHT_LOOK_S = 0.001

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from .._losses import Losses
    from .._policy import Policy
    from ._helper import Helper
    from ._parked import Parked
    from ._store import Spool

__all__ = ["Closing", "version_or_none"]


class Closing:
    """``sync`` and ``close`` of ``Writer``."""

    if TYPE_CHECKING:
        state_dir: Path
        policy: Policy
        losses: Losses
        helper: Helper
        spool: Spool | None
        fault: str | None
        _lock: Any
        _buffer: Parked
        _lock_failures: int
        stuck_at: tuple[int, float] | None

        def _reopen(self, wait_s: float) -> bool: ...
        def _handle_error(self, exc: BaseException, rows: list[Any]) -> None: ...
        def _written(self) -> None: ...
        def note_unmoved(self, version: int, since: float) -> float: ...
        def note_error(self, kind: str) -> None: ...

    def sync(self, wait_ms: int | None = None, deadline: float | None = None) -> bool:
        """Write parked rows and pending counts, waiting at most ``wait_ms`` in
        all (and never past ``deadline``, a monotonic time); True when done.

        Called at close/atexit, by status() and before an upload, where a
        short bounded wait for another process's write lock is acceptable.
        """
        wait_s = (self.policy.close_wait_ms if wait_ms is None else wait_ms) / 1000.0
        end = time.monotonic() + wait_s
        if deadline is not None:
            end = min(end, deadline)
        if self.spool is None and self.fault == "locked":
            # Parked rows from a spool locked at open: one bounded try to open it.
            if not self._lock.acquire(timeout=max(end - time.monotonic(), 0.001)):
                return False
            try:
                self._reopen(max(end - time.monotonic(), 0.0))
            finally:
                self._lock.release()
        spool = self.spool
        if spool is None:
            return False
        while True:
            done = self._sync_once(spool, end)
            # Rows the helper took to write on its own connection are still
            # parked until it has: status() and flush() wait for them too, or
            # they report rows "buffered" that are a busy-handler sleep (1-20
            # ms under load) from the spool. The helper puts back what SQLite
            # refuses, and the next round writes those.
            if not done or not self._buffer.in_flight:
                return done
            while self._buffer.in_flight and time.monotonic() < end:
                time.sleep(IN_FLIGHT_LOOK_S)
            if self._buffer.in_flight:
                return False

    def _sync_once(self, spool: Spool, end: float) -> bool:
        if not self._lock.acquire(timeout=max(end - time.monotonic(), 0.001)):
            return False
        try:
            unmoved_s = (self.policy.lock_wait_ms + LOCK_UNMOVED_MS) / 1000.0
            graced = False
            while True:
                try:
                    self._buffer.write_to(spool)
                    self._flush_drops(spool)
                    self._written()
                    return True
                except sqlite3.Error as exc:
                    if classify_error(exc) != "locked" or time.monotonic() >= end:
                        self._handle_error(exc, [])
                        return False
                now = time.monotonic()
                wait_s = self.policy.lock_wait_ms / 1000.0
                # Not judged while the helper has parked rows in flight: the
                # holder may be its own connection, whose commit (or give-up,
                # within one lock_wait_ms slice) comes next.
                version = None if self._buffer.in_flight else version_or_none(spool)
                if version is not None:
                    still = now - self.note_unmoved(version, now)
                    if still >= unmoved_s and not graced:
                        graced = True  # found so before this write: one short try
                        spool.set_busy_timeout(LOCK_GRACE_MS)
                        continue
                    if still >= unmoved_s:
                        # No connection committed through our waits (and the
                        # helper's): a session holds the lock, and will not
                        # let go by the deadline. Stop waiting.
                        self.note_error("locked")
                        return False
                    wait_s = min(wait_s, unmoved_s - still)
                # Other connections commit (appending hosts, an uploader), or
                # not for long yet: wait a slice, until the deadline.
                left_s = end - now
                spool.set_busy_timeout(max(1, int(min(wait_s, left_s) * 1000)))
        finally:
            try:
                spool.set_busy_timeout(0)  # the call path never waits
            except sqlite3.Error:
                pass
            self._lock.release()

    def close(self, deadline: float | None = None) -> None:
        """Stop the helper, write what is parked, release the spool: all by
        ``deadline`` (monotonic; default ``close_wait_ms`` from now).

        Rows and counts SQLite cannot take in time go to the sidecars, for the
        next host to fold in (rows that cannot even go there are counted
        ``locked``): nothing leaves unstored or uncounted.
        """
        if deadline is None:
            deadline = time.monotonic() + self.policy.close_wait_ms / 1000.0
        self.helper.stop(max(deadline - time.monotonic(), 0.0))
        self.sync(deadline=deadline)
        got = self._lock.acquire(timeout=max(deadline - time.monotonic(), 0.001))
        try:
            self._buffer.spill(self.state_dir, self.losses, self.policy.max_bytes)
            spool = self.spool
            if spool is not None and self.losses:
                try:
                    self._flush_drops(spool)
                except Exception:
                    pass  # to the sidecar below
            leftover = self.losses.take()
            if leftover and not append_losses(self.state_dir, leftover):
                self.losses.restore(leftover)  # still shown by status() in this process
            if spool is not None and got:
                spool.close()
        finally:
            if got:
                self._lock.release()

    def fold_pending(self) -> None:
        """At open: rows and counts a previous run's exit could not write to
        SQLite (see _sidecar), parked to go with the config write or the next
        append. Half the buffer at most, one size check's bytes, and only into
        an open spool: taken while it is locked, they filled the buffer this
        run's own events need (each then counted ``locked``)."""
        if self.spool is None:
            return  # left in the file for a later host or uploader pass
        limit, max_bytes = self.policy.buffer_events // 2, self.policy.size_check_bytes
        self._buffer.park(take_pending(self.state_dir, limit, max_bytes, self.losses), self.losses)

    def discard_parked(self) -> None:
        """For a purge, under the writer's lock: rows parked in memory (behind
        another process's lock, or folded from ``events.pending``) are queued
        events too, and must not be written after the clear. Rows the helper
        took out to write are waited for (one drain slice, bounded) first,
        or they would come back, or commit, after the clear."""
        end = time.monotonic() + OWN_HOLDER_WAIT_S
        while self._buffer.in_flight and time.monotonic() < end:
            time.sleep(IN_FLIGHT_LOOK_S)
        self._buffer.clear()

    def _flush_drops(self, spool: Spool) -> None:
        counts = self.losses.take()
        if not counts:
            return
        try:
            spool.add_drops(counts)
        except BaseException:
            self.losses.restore(counts)
            raise


def version_or_none(spool: Spool) -> int | None:
    """``Spool.data_version()``, or None when SQLite cannot say."""
    try:
        return spool.data_version()
    except sqlite3.Error:
        return None
