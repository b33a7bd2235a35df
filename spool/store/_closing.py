"""The writer's exit: write what is parked and every count, all by one deadline.

A mixin of ``Writer``. ``close()`` never waits past its deadline
(``close_wait_ms``, one for the whole close): rows SQLite cannot take in time
are counted ``locked``, and counts it cannot take go to the ``drops.pending``
sidecar, folded in at the next start, so nothing leaves uncounted
(tests/test_host_exit_and_stalls.py). Under a lock that already failed
``LOCKED_IN_A_ROW`` waits (a ``sqlite3`` session, say) the exit waits only
``lock_wait_ms``.
"""

from __future__ import annotations

import sqlite3
import time

from .._policy import LOCKED_IN_A_ROW
from ._sidecar import append_losses
from ._sqlite import classify_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from .._losses import Losses
    from .._policy import Policy
    from ._helper import Helper
    from ._parked import Parked
    from ._store import Spool

__all__ = ["Closing"]


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
        _contended: bool
        _lock_failures: int

        def _reopen(self, wait_s: float) -> bool: ...
        def _handle_error(self, exc: BaseException, rows: list[Any]) -> None: ...
        def _set_contended(self, spool: Spool, contended: bool) -> None: ...

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
        if not self._lock.acquire(timeout=max(end - time.monotonic(), 0.001)):
            return False
        try:
            while True:
                try:
                    self._buffer.write_to(spool)
                    self._flush_drops(spool)
                    self._lock_failures = 0
                    if self._contended:
                        self._set_contended(spool, False)
                    return True
                except sqlite3.Error as exc:
                    reason = classify_error(exc)
                    if reason != "locked" or time.monotonic() >= end:
                        self._handle_error(exc, [])
                        return False
                    time.sleep(0.002)
        finally:
            self._lock.release()

    def close(self, deadline: float | None = None) -> None:
        """Stop the helper, write what is parked, release the spool: all by
        ``deadline`` (monotonic; default ``close_wait_ms`` from now).

        Rows SQLite cannot take in time are counted under ``locked``, and
        counts it cannot take go to the sidecar: nothing leaves uncounted.
        """
        if deadline is None:
            deadline = time.monotonic() + self.policy.close_wait_ms / 1000.0
        self.helper.stop(max(deadline - time.monotonic(), 0.0))
        self.sync(wait_ms=self.close_wait_ms(), deadline=deadline)
        got = self._lock.acquire(timeout=max(deadline - time.monotonic(), 0.001))
        try:
            self._buffer.count_lost(self.losses)
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

    def close_wait_ms(self) -> int:
        """How long the exit may wait for SQLite's write lock.

        Appending processes hold it for microseconds at a time, so a short
        run of "locked" answers is worth the full ``close_wait_ms``: the rows
        get written. A lock that failed ``LOCKED_IN_A_ROW`` waits in a row
        (a ``sqlite3`` session, say) will not be let go in time: then the exit
        waits only ``lock_wait_ms`` and counts the parked rows ``locked``.
        """
        held = self._contended or self._lock_failures >= LOCKED_IN_A_ROW
        return self.policy.lock_wait_ms if held else self.policy.close_wait_ms

    def _flush_drops(self, spool: Spool) -> None:
        counts = self.losses.take()
        if not counts:
            return
        try:
            spool.add_drops(counts)
        except BaseException:
            self.losses.restore(counts)
            raise

