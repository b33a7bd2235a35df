"""The call path's write side: never raises, never blocks, counts every loss.

Wraps a ``Spool`` with what the host needs around it:
- a non-blocking thread lock: a contended call parks its row in a bounded
  in-memory buffer instead of waiting;
- the same buffer when another process holds SQLite's write lock for longer
  than ``lock_wait_ms``; it is written on the next successful append or at close;
- fork safety: a child re-opens its own connection and gets fresh locks;
- drop counters by reason, kept in memory until the spool can take them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from pathlib import Path

from ._paths import UnsafeStateDir
from ._policy import Policy
from ._store import Row, Spool, classify_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

__all__ = ["ERROR_PREFIX", "Writer", "split_errors"]

# "locked" answers in a row before appends stop waiting for the write lock:
# ~100 ms of failing. Appending processes contend for microseconds at a time
# and never get there; a session holding the lock for minutes does.
_LOCKED_IN_A_ROW = 20
# While not waiting, every this many parked rows one append waits lock_wait_ms.
_WAITED_TRY_EVERY = 64


# Drop-table reasons with this prefix count swallowed errors, not lost events.
ERROR_PREFIX = "error."


def split_errors(counts: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """``{reason: n}`` as stored -> (events dropped by reason, errors by kind)."""
    dropped: dict[str, int] = {}
    errors: dict[str, int] = {}
    for reason, n in sorted(counts.items()):
        if n <= 0:
            continue
        if reason.startswith(ERROR_PREFIX):
            errors[reason[len(ERROR_PREFIX) :]] = n
        else:
            dropped[reason] = n
    return dropped, errors


class Writer:
    def __init__(self, state_dir: Path, policy: Policy) -> None:
        self.state_dir = state_dir
        self.policy = policy
        self.pending_drops: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.fault: str | None = None  # why spooling is impossible, if it is
        self.fault_detail = ""
        self._size_check_bytes = policy.size_check_bytes  # read on every append
        self._lock = threading.Lock()
        self._buffer: deque[Row] = deque()
        # After many "locked" answers in a row (another process has held the
        # write lock for > 20 x lock_wait_ms), appends stop waiting (busy
        # timeout 0) until one succeeds: a lock held for minutes then costs each
        # track() one instant try, not lock_wait_ms. Short contention between
        # appending processes never gets there.
        self._contended = False
        self._lock_failures = 0
        self._maintainer = _Maintainer(state_dir, policy, self.note_error)
        self.spool: Spool | None = None
        try:
            self.spool = Spool(state_dir, policy)
        except (UnsafeStateDir, sqlite3.Error, OSError) as exc:
            self._set_fault(exc)

    # -- public -----------------------------------------------------------------------
    def append(self, row: Row) -> None:
        """Durably append one row, or buffer it, or count it; never raises."""
        spool = self.spool
        if spool is None:
            self.pending_drops[self.fault or "unwritable"] += 1
            return
        if not self._lock.acquire(blocking=False):
            # Another thread is mid-append: park the row rather than wait.
            self._park([row])
            return
        try:
            if self._buffer or self._contended or self.pending_drops:
                self._write(row)  # parked rows or counts to write first
                return
            # The common case, kept flat: one committed INSERT.
            try:
                spool.append_one(row)
            except Exception as exc:  # classified and counted, never raised
                self._handle_error(exc, [row])
                return
            self._lock_failures = 0
            if spool.unchecked_bytes >= self._size_check_bytes:
                self._after_append(spool)
        finally:
            self._lock.release()

    def count_drop(self, reason: str, n: int = 1) -> None:
        self.pending_drops[reason] += n

    def note_error(self, kind: str) -> None:
        """Count a swallowed error. Persisted beside the drops as ``error.<kind>``
        so it reaches the maintainer with the next batch, not just a log."""
        self.errors[kind] += 1
        self.pending_drops[ERROR_PREFIX + kind] += 1

    def sync(self, wait_ms: int | None = None) -> None:
        """Write the buffer and pending drop counts, waiting up to ``wait_ms``.

        Called at close/atexit and before an upload, where a short bounded wait
        for another process's write lock is acceptable.
        """
        spool = self.spool
        if spool is None:
            return
        wait_s = (self.policy.close_wait_ms if wait_ms is None else wait_ms) / 1000.0
        if not self._lock.acquire(timeout=max(wait_s, 0.001)):
            return
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    self._flush_buffer(spool)
                    self._flush_drops(spool)
                    self._lock_failures = 0
                    if self._contended:
                        self._set_contended(spool, False)
                    return
                except sqlite3.Error as exc:
                    reason = classify_error(exc)
                    if reason != "locked" or time.monotonic() >= deadline:
                        self._handle_error(exc, [])
                        return
                    time.sleep(0.002)
        finally:
            self._lock.release()

    def close(self) -> None:
        self._maintainer.join(self.policy.close_wait_ms / 1000.0)
        self.sync()
        with self._lock:
            if self._buffer:
                self.pending_drops["locked"] += len(self._buffer)
                self._buffer.clear()
            if self.spool is not None:
                self.spool.close()

    def run_locked(self, fn: Callable[[Spool], object], wait_ms: int = 50) -> object:
        """Run ``fn(spool)`` under the thread lock; None if unavailable. Never raises."""
        spool = self.spool
        if spool is None or not self._lock.acquire(timeout=wait_ms / 1000.0):
            return None
        try:
            return fn(spool)
        except (sqlite3.Error, OSError) as exc:
            self._handle_error(exc, [])
            return None
        finally:
            self._lock.release()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # -- internals --------------------------------------------------------------------
    def _write(self, row: Row) -> None:
        spool = self.spool
        assert spool is not None
        rows = [row]
        if self._buffer:
            if self._contended and len(self._buffer) % _WAITED_TRY_EVERY == 0:
                # Every so many parked rows, one bounded wait for the lock:
                # a few ms now and then beats a full buffer losing events.
                self._set_contended(spool, False)
            rows = self._take_buffer() + rows
        try:
            spool.append(rows)
        except Exception as exc:  # classified and counted, never raised
            self._handle_error(exc, rows)
            return
        self._lock_failures = 0
        if self._contended:
            self._set_contended(spool, False)
        self._after_append(spool)

    def _after_append(self, spool: Spool) -> None:
        try:
            if self.pending_drops:
                self._flush_drops(spool)
            if spool.unchecked_bytes >= self._size_check_bytes:
                self._check_size(spool)
        except Exception as exc:  # classified and counted, never raised
            self._handle_error(exc, [])

    def _check_size(self, spool: Spool) -> None:
        """Two stats on the call path; the WAL checkpoint runs on another thread."""
        if spool.disk_bytes() > spool.high_water:
            # Rare (a flood at the cap) and a promise: evict here, oldest first.
            spool.enforce_cap()
        elif spool.wal_bytes() > spool.wal_budget:
            self._maintainer.kick()
        spool.unchecked_bytes = 0

    def _handle_error(self, exc: BaseException, rows: list[Row]) -> None:
        reason = exc.reason if isinstance(exc, UnsafeStateDir) else classify_error(exc)
        self.note_error(reason)
        if reason == "locked":
            self._lock_failures += 1
            if (
                self._lock_failures >= _LOCKED_IN_A_ROW
                and not self._contended
                and self.spool is not None
            ):
                self._set_contended(self.spool, True)
            self._park(rows)
            return
        if reason == "corrupt" and self.spool is not None:
            try:
                self.spool.recover_corrupt()
                if rows:
                    self.spool.append(rows)
                return
            except (sqlite3.Error, OSError, UnsafeStateDir) as again:
                self._set_fault(again)
        if rows:
            self.pending_drops[reason] += len(rows)

    def _set_contended(self, spool: Spool, contended: bool) -> None:
        try:
            spool.set_busy_timeout(0 if contended else self.policy.lock_wait_ms)
            self._contended = contended
        except Exception as exc:  # classified and counted, never raised
            self.note_error(_reason(exc))

    def _park(self, rows: list[Row]) -> None:
        room = self.policy.buffer_events - len(self._buffer)
        for row in rows[: max(room, 0)]:
            self._buffer.append(row)
        lost = len(rows) - max(room, 0)
        if lost > 0:
            self.pending_drops["locked"] += lost

    def _take_buffer(self) -> list[Row]:
        rows: list[Row] = []
        while self._buffer:
            try:
                rows.append(self._buffer.popleft())
            except IndexError:  # pragma: no cover - emptied by another thread
                break
        return rows

    def _flush_buffer(self, spool: Spool) -> None:
        if not self._buffer:
            return
        rows = self._take_buffer()
        try:
            spool.append(rows)
        except sqlite3.Error:
            # Put them back in order; the caller decides whether to retry.
            self._buffer.extendleft(reversed(rows))
            raise

    def _flush_drops(self, spool: Spool) -> None:
        if not self.pending_drops:
            return
        snapshot = dict(self.pending_drops)
        spool.add_drops(snapshot)
        self.pending_drops.subtract(snapshot)
        for reason in [r for r, n in self.pending_drops.items() if n <= 0]:
            del self.pending_drops[reason]

    def _set_fault(self, exc: BaseException) -> None:
        self.fault = exc.reason if isinstance(exc, UnsafeStateDir) else classify_error(exc)
        self.note_error(self.fault)
        self.fault_detail = str(exc)
        if self.spool is not None:
            self.spool.close()
        self.spool = None

    def after_fork_in_child(self) -> None:
        """Called by the facade's at-fork hook in the child process."""
        # A lock held by another parent thread at fork time would never be
        # released in the child; the parent's buffered rows belong to the parent.
        self._lock = threading.Lock()
        self._buffer = deque()
        self.pending_drops = Counter()
        self._maintainer = _Maintainer(self.state_dir, self.policy, self.note_error)
        self._contended = False
        self._lock_failures = 0
        if self.spool is not None:
            self.spool.set_busy_ms_for_reopen(self.policy.lock_wait_ms)
        # The spool re-opens its connection lazily on first use in the child.


class _Maintainer:
    """Checkpoints the WAL on a short-lived thread with its own connection.

    A checkpoint copies up to the WAL budget into the database (milliseconds),
    which would stall whichever track() triggered SQLite's inline
    autocheckpoint. PASSIVE never takes the write lock, so appends continue;
    SQLite releases the GIL meanwhile. The inline autocheckpoint (at twice the
    budget) remains the safety net if this thread cannot run.
    """

    def __init__(self, state_dir: Path, policy: Policy, note_error: Callable[[str], None]) -> None:
        self._state_dir = state_dir
        self._policy = policy
        self._note_error = note_error
        self._thread: threading.Thread | None = None

    def kick(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        thread = threading.Thread(target=self._run, name="telespool-maintain", daemon=True)
        self._thread = thread
        try:
            thread.start()
        except RuntimeError:  # no threads left (or interpreter shutting down)
            self._thread = None

    def join(self, timeout: float) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)

    def _run(self) -> None:
        try:
            spool = Spool(self._state_dir, self._policy, busy_ms=_MAINTAIN_BUSY_MS)
        except Exception as exc:
            self._note_error(_reason(exc))
            return
        try:
            spool.checkpoint()
        except Exception as exc:
            self._note_error(_reason(exc))
        finally:
            spool.close()


# The maintainer is off the call path: it may wait for the host's brief writes.
_MAINTAIN_BUSY_MS = 1000


def _reason(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, UnsafeStateDir) else classify_error(exc)
